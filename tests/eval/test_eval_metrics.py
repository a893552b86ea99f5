"""Leaderboard arithmetic on hand-built per-step arrays (statistics_manager.py / atomic_criteria.py rules)."""

from __future__ import annotations

import numpy as np
import pytest

from drivesim import spec
from drivesim.eval import leaderboard, metrics

DT_S = 0.05
E = {name: index for index, name in enumerate(spec.EVENT_NAMES)}
RULES_2, RULES_1, B2D = (leaderboard.RULES[name] for name in ("leaderboard-2.0", "leaderboard-1.0", "bench2drive"))


def _events(steps: int, progress_m: float, route_length_m: float) -> np.ndarray:
    """(steps + 1, E) events of steady progress; row 0 is the reset row (zeros)."""
    events = np.zeros((steps + 1, len(spec.EVENT_NAMES)), np.float32)
    events[1:, E["progress_m"]] = progress_m
    events[1:, E["route_completion"]] = np.minimum(np.arange(1, steps + 1) * progress_m / route_length_m, 1.0)
    return events


def _measurements(steps: int, speed_mps: float) -> np.ndarray:
    values = np.zeros((steps + 1, len(spec.MEASUREMENT_NAMES)))
    values[:, metrics.MEASUREMENT_SPEED] = speed_mps
    return values


def _poses(speed_mps: float, steps: int) -> np.ndarray:
    poses = np.zeros((steps + 1, 4))
    poses[:, 0] = np.arange(steps + 1) * speed_mps * DT_S
    return poses


def _route(events: np.ndarray, speed_mps: float = 20.0, actors=None, rules: str = "leaderboard-2.0",
           termination: str | None = "route_done", traffic=None, **kwargs) -> metrics.RouteMetrics:
    steps = len(events) - 1
    return metrics.route_metrics(events, _measurements(steps, speed_mps), _poses(speed_mps, steps), termination,
                                 100.0, DT_S, actors, rules=rules, traffic_speed_mps=traffic, **kwargs)


@pytest.mark.parametrize(
    ("counts", "rules", "expected_ip"),
    [
        ({}, RULES_2, 1.0),
        ({"collision_vehicle": 1}, RULES_2, 0.6),
        ({"collision_vehicle": 2, "collision_static": 1}, RULES_2, 0.6**2 * 0.65),
        ({"collision_pedestrian": 1}, RULES_2, 0.5),
        ({"collision_static": 1, "red_light": 1, "stop_sign": 1}, RULES_2, 0.65 * 0.7 * 0.8),
        ({"scenario_timeout": 2}, RULES_2, 0.7**2),
        ({"scenario_timeout": 2}, RULES_1, 1.0),  # 1.0 has no scenario timeouts
        ({"route_deviation": 1, "agent_blocked": 1, "route_timeout": 1}, RULES_2, 1.0),  # route-ending, no penalty
    ],
)
def test_fixed_penalties(counts: dict[str, int], rules: leaderboard.ScoringRules, expected_ip: float) -> None:
    factors = leaderboard.infraction_factors(counts, 0.0, [], rules)
    assert leaderboard.infraction_penalty(factors) == pytest.approx(expected_ip)
    assert leaderboard.driving_score(50.0, leaderboard.infraction_penalty(factors)) == pytest.approx(50.0 * expected_ip)


def test_outside_route_lanes_scales_ip_not_rc() -> None:
    events = _events(100, 1.0, 100.0)
    events[31:46, E["off_road"]] = 1.0  # 15 m off the driving lanes
    events[46:51, E["wrong_lane"]] = 1.0  # 5 m in an opposite-direction lane
    events[51:55, E["off_road"]] = 0.3  # mostly on the road: not outside
    assert leaderboard.outside_route_lanes(events) == pytest.approx((20.0, 20.0))
    for rules in ("leaderboard-2.0", "leaderboard-1.0"):  # both: IP x (1 - 20 / 100), RC untouched
        result = _route(events, rules=rules)
        assert result.route_completion == 100.0
        assert result.infraction_penalty == pytest.approx(0.8) and result.driving_score == pytest.approx(80.0)
        assert result.infractions["outside_route_lanes"] == 1 and not result.success
    # The percentage is of the route distance passed so far: the same 20 m on a route left at 40 m is 50 %.
    assert _route(events[:41], termination="route_deviation").outside_route_lanes_pct == pytest.approx(25.0)


def test_min_speed_checkpoints_and_penalty() -> None:
    events = _events(100, 1.0, 100.0)  # 1 m per step: checkpoints every 25 m of a 100 m route
    traffic = np.full(101, 8.0)
    result = _route(events, speed_mps=4.0, traffic=traffic)  # half the traffic's speed everywhere
    assert result.min_speed_pct == [50.0, 50.0, 50.0, 50.0]
    assert result.infractions["min_speed"] == 4
    assert result.infraction_penalty == pytest.approx((1.0 - 0.3 * 0.5) ** 4)  # 'decreases', p = 0.7
    assert result.success  # Bench2Drive ignores min-speed infractions
    assert _route(events, speed_mps=4.0, traffic=traffic, rules="bench2drive").infraction_penalty == 1.0
    assert _route(events, speed_mps=4.0, traffic=traffic, rules="leaderboard-1.0").infraction_penalty == 1.0
    assert _route(events, speed_mps=9.0, traffic=traffic).min_speed_pct == [112.5] * 4  # faster: no infraction
    no_traffic = _route(events, speed_mps=4.0, traffic=np.full(101, np.nan))
    assert no_traffic.min_speed_pct == [100.0] * 4 and no_traffic.infraction_penalty == 1.0
    # The last checkpoint counts only past 95 % of the route.
    assert len(_route(events[:90], speed_mps=4.0, traffic=traffic[:90], termination="route_timeout").min_speed_pct) == 3


def test_one_route_with_everything() -> None:
    """1 vehicle collision, 1 red light, 10 % outside lanes, min speed 80 % of traffic on the first half."""
    events = _events(100, 1.0, 100.0)
    events[20, E["collision"]] = 1.0
    events[60, E["red_light"]] = 1.0
    events[71:81, E["off_road"]] = 1.0
    speed = np.full(101, 10.0)
    speed[:52] = 8.0
    traffic = np.full(101, 10.0)
    result = metrics.route_metrics(events, np.column_stack([speed, np.zeros((101, 5))]), _poses(10.0, 100), "route_done",
                                   100.0, DT_S, [None] * 20 + ["vehicle:3"] + [None] * 80, traffic_speed_mps=traffic)
    assert result.min_speed_pct == [80.0, 80.0, 100.0, 100.0]
    expected = 0.6 * 0.7 * 0.9 * (1.0 - 0.3 * 0.2) ** 2
    assert result.infraction_penalty == pytest.approx(expected)
    assert result.driving_score == pytest.approx(100.0 * expected)
    assert result.infractions["collision_vehicle"] == 1 and result.infractions["red_light"] == 1
    assert not result.success and result.status == "completed"


def _collisions(steps_actors: list[tuple[int, str | None]], speed: np.ndarray, x: np.ndarray, rules) -> list[tuple[int, str]]:
    events = np.zeros((len(speed), len(spec.EVENT_NAMES)))
    actors: list[str | None] = [None] * len(speed)
    for step, actor in steps_actors:
        events[step, E["collision"]], actors[step] = 1.0, actor
    return leaderboard.counted_collisions(events, actors, speed, np.column_stack([x, np.zeros_like(x)]), DT_S, rules)


def test_collision_filter_leaderboard_2() -> None:
    steps = 400
    speed = np.full(steps, 2.0)
    x = np.arange(steps) * 2.0 * DT_S  # 0.1 m per step
    hits = [
        (10, "vehicle:1"), (11, "vehicle:1"),  # one contact over two steps
        (50, "vehicle:1"),  # 2 s later, same actor: ignored (MAX_ID_TIME 5 s)
        (150, "vehicle:1"),  # 7 s after the counted one and 14 m on: counted
        (160, "vehicle:2"),  # another actor 1 m from the last collision: ignored (COLLISION_RADIUS 5 m)
        (230, "static:cone_1"),  # 8 m on: counted
        (300, "walker:4"),  # counted
    ]
    counted = _collisions(hits, speed, x, RULES_2)
    assert counted == [(10, "collision_vehicle"), (150, "collision_vehicle"), (230, "collision_static"),
                       (300, "collision_pedestrian")]
    stopped = speed.copy()
    stopped[299:301] = 0.05  # the ego stood still when the walker ran into it: not its fault (EPSILON 0.1 m/s)
    assert (300, "collision_pedestrian") not in _collisions(hits, stopped, x, RULES_2)
    assert (300, "collision_pedestrian") in _collisions(hits, stopped, x, RULES_1)  # 1.0 has no speed rule


def test_collision_filter_leaderboard_1_radius() -> None:
    steps = 400
    x = np.arange(steps) * 0.1
    hits = [(10, "vehicle:1"), (50, "vehicle:2"), (120, "vehicle:3")]  # 4 m and 11 m from the first
    assert [step for step, _ in _collisions(hits, np.full(steps, 2.0), x, RULES_1)] == [10, 50, 120]  # 3 m radius
    assert [step for step, _ in _collisions(hits, np.full(steps, 2.0), x, RULES_2)] == [10, 120]  # 5 m radius


def test_layout_contacts_are_filtered_by_place_only() -> None:
    steps = 200
    x = np.zeros(steps)
    x[100:] = 20.0  # the ego moves 20 m away, then hits the layout again
    hits = [(10, "static:building"), (11, "static:building"), (110, "static:building")]
    assert [step for step, _ in _collisions(hits, np.full(steps, 3.0), x, RULES_2)] == [10, 110]


@pytest.mark.parametrize(
    ("actor", "walker", "static", "kind"),
    [("vehicle:7", False, False, "collision_vehicle"), ("vehicle:static_2", False, False, "collision_vehicle"),
     ("static:cone_1", False, True, "collision_static"), ("static:triangle_0", False, True, "collision_static"),
     ("walker:3", True, False, "collision_pedestrian"), ("pedestrian:2", False, False, "collision_pedestrian"),
     (None, False, False, "collision_vehicle"), (None, True, False, "collision_pedestrian"),
     (None, False, True, "collision_static")],
)
def test_collision_kind(actor: str | None, walker: bool, static: bool, kind: str) -> None:
    assert leaderboard.collision_kind(actor, walker, static) == kind


def test_red_lights_and_stops_count_once_per_run() -> None:
    events = _events(100, 1.0, 100.0)
    events[[20, 21, 60], E["red_light"]] = 1.0  # a flag held two steps is one run
    events[80, E["stop_sign"]] = 1.0
    result = _route(events)
    assert (result.infractions["red_light"], result.infractions["stop_sign"]) == (2, 1)
    assert result.infraction_penalty == pytest.approx(0.7**2 * 0.8)


def test_partial_route_and_statuses() -> None:
    events = _events(100, 1.0, 200.0)
    blocked = _route(events, termination="agent_blocked")
    assert blocked.route_completion == pytest.approx(50.0) and blocked.driving_score == pytest.approx(50.0)
    assert blocked.status == "failed_agent_blocked" and blocked.infractions["agent_blocked"] == 1
    assert _route(events, termination="stuck").status == "failed_agent_blocked"  # a simulator's own name
    assert _route(events, termination="route_deviation").infractions["route_deviation"] == 1
    assert _route(events, termination=None).status == "failed_unfinished"
    clean = _route(_events(100, 1.0, 100.0))
    assert (clean.driving_score, clean.route_completion, clean.success) == (100.0, 100.0, True)


def test_comfort_distance_and_speed() -> None:
    steps = 41
    measurements = np.zeros((steps, len(spec.MEASUREMENT_NAMES)))
    measurements[:, metrics.MEASUREMENT_ACCEL] = np.arange(steps) * 0.1  # jerk 0.1 / 0.05 = 2 m/s^3
    measurements[:, metrics.MEASUREMENT_YAW_RATE] = np.where(np.arange(steps) % 2, 3.0, -3.0)
    measurements[:, metrics.MEASUREMENT_SPEED] = 5.0
    comfort = metrics.comfort_metrics(measurements, DT_S)
    assert comfort["mean_abs_jerk_mps3"] == pytest.approx(2.0)
    assert comfort["mean_abs_yaw_rate_dps"] == pytest.approx(3.0)
    pose = np.zeros((steps, 4))
    pose[:, 0] = np.arange(steps) * 3.0
    pose[:, 1] = np.arange(steps) * 4.0
    assert metrics.driven_distance_m(pose) == pytest.approx(200.0)
    events = _events(steps - 1, 5.0, 200.0)
    events[5, E["collision"]] = 1.0
    result = metrics.route_metrics(events, measurements, pose, "route_done", 200.0, DT_S, [None] * 5 + ["static"])
    assert result.collisions_per_km == pytest.approx(5.0)  # 1 per 0.2 completed route km
    assert result.mean_speed_mps == pytest.approx(5.0)
    assert result.duration_s == pytest.approx(2.0)


def test_aggregate_means_scores_and_rates_per_completed_km() -> None:
    def route(ds: float, collisions: int, completed_km: float, success: bool) -> dict:
        infractions = dict.fromkeys(metrics.INFRACTION_TYPES, 0)
        infractions["collision_vehicle"] = collisions
        values = dict.fromkeys(metrics.MEAN_KEYS, 1.0)
        return {**values, "driving_score": ds, "distance_km": 2.0, "completed_km": completed_km, "success": success,
                "outside_route_lanes_m": 50.0, "infractions": infractions,
                "status": "completed" if success else "failed_agent_blocked"}

    aggregate = metrics.aggregate_metrics([route(100.0, 0, 1.5, True), route(60.0, 1, 0.5, False)])
    assert aggregate["driving_score"] == pytest.approx(80.0)
    assert aggregate["collisions_per_km"] == pytest.approx(0.5)  # 1 over 2 completed km (not the 4 driven)
    assert aggregate["success_rate"] == pytest.approx(0.5) and aggregate["completed_share"] == pytest.approx(0.5)
    assert aggregate["outside_route_lanes_km"] == pytest.approx(0.1)
    assert aggregate["infractions"]["collision_vehicle"] == 1
    assert metrics.per_km(1, 0.0) == pytest.approx(1000.0)  # km floored at 0.001
    assert metrics.aggregate_metrics([]) == {"num_routes": 0}
