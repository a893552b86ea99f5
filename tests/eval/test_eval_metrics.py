"""Leaderboard metric math on hand-built per-step arrays."""

from __future__ import annotations

import numpy as np
import pytest

from drivesim import spec
from drivesim.eval import metrics

DT_S = 0.05


def _events(steps: int, progress_m: float, route_length_m: float) -> np.ndarray:
    """(steps + 1, E) events of steady progress; row 0 is the reset row (zeros)."""
    events = np.zeros((steps + 1, len(spec.EVENT_NAMES)), np.float32)
    events[1:, metrics.EVENT_PROGRESS] = progress_m
    events[1:, metrics.EVENT_COMPLETION] = np.minimum(np.arange(1, steps + 1) * progress_m / route_length_m, 1.0)
    return events


def _with_collisions(events: np.ndarray, steps_and_actors: list[tuple[int, str | None]]) -> tuple[np.ndarray, list]:
    actors: list[str | None] = [None] * len(events)
    for step, actor in steps_and_actors:
        events[step, metrics.EVENT_COLLISION] = 1.0
        actors[step] = actor
    return events, actors


def _score(counts: dict[str, int], completion: float = 100.0) -> float:
    return metrics.driving_score(completion, metrics.infraction_penalty(counts))


@pytest.mark.parametrize(
    ("counts", "expected_ds"),
    [
        ({}, 100.0),
        ({"collision_vehicle": 1}, 60.0),
        ({"collision_vehicle": 2, "collision_static": 1}, 100.0 * 0.6**2 * 0.65),
        ({"collision_pedestrian": 1}, 50.0),
        ({"collision_static": 1, "red_light": 1, "stop_sign": 1}, 100.0 * 0.65 * 0.7 * 0.8),
        ({"agent_blocked": 1, "route_timeout": 1, "route_deviation": 1}, 100.0),  # route-ending, no penalty
    ],
)
def test_leaderboard_examples(counts: dict[str, int], expected_ds: float) -> None:
    assert _score(counts) == pytest.approx(expected_ds)


def test_partial_route_scales_score() -> None:
    assert _score({"collision_vehicle": 1}, completion=50.0) == pytest.approx(30.0)


def test_clean_finished_route_scores_100() -> None:
    events = _events(100, 1.0, 100.0)
    result = metrics.route_metrics(events, np.zeros((101, 6)), np.zeros((101, 4)), "route_done", 100.0, DT_S)
    assert (result.driving_score, result.route_completion, result.infraction_penalty) == (100.0, 100.0, 1.0)
    assert result.status == "completed" and result.collisions == 0


def test_one_vehicle_collision_on_completed_route_gives_60() -> None:
    events, actors = _with_collisions(_events(100, 1.0, 100.0), [(40, "vehicle:3"), (41, "vehicle:3")])
    result = metrics.route_metrics(events, np.zeros((101, 6)), np.zeros((101, 4)), "route_done", 100.0, DT_S, actors)
    assert result.infractions["collision_vehicle"] == 1
    assert result.driving_score == pytest.approx(60.0)


def test_collision_counting_rules() -> None:
    collision = np.zeros(400)
    actors: list[str | None] = [None] * 400
    for step, actor in [(10, "vehicle:1"), (11, "vehicle:1"), (50, "vehicle:1")]:  # one contact, 2 s later again
        collision[step], actors[step] = 1.0, actor
    for step, actor in [(200, "vehicle:1"), (210, "static"), (211, "vehicle:2")]:  # 9.5 s later: new ones
        collision[step], actors[step] = 1.0, actor
    counts = metrics.count_collisions(collision, actors, DT_S, repeat_window_s=5.0)
    assert counts == {"collision_pedestrian": 0, "collision_vehicle": 3, "collision_static": 1}


def test_unlabelled_collisions_split_by_contact_free_steps() -> None:
    collision = np.zeros(20)
    collision[[2, 3, 4, 8, 15]] = 1.0
    counts = metrics.count_collisions(collision, None, DT_S)
    assert counts["collision_vehicle"] == 3


@pytest.mark.parametrize(
    ("actor", "kind"),
    [("vehicle:7", "collision_vehicle"), ("static", "collision_static"), ("pedestrian:2", "collision_pedestrian"),
     (None, "collision_vehicle"), ("walker:1", "collision_pedestrian")],
)
def test_collision_kind(actor: str | None, kind: str) -> None:
    assert metrics.collision_kind(actor) == kind


def test_off_road_progress_is_removed_from_completion() -> None:
    events = _events(100, 1.0, 100.0)
    events[31:51, metrics.EVENT_OFF_ROAD] = 1.0  # 20 m driven off-road
    events[51:55, metrics.EVENT_OFF_ROAD] = 0.3  # mostly on the road: counts
    assert metrics.route_completion_pct(events, 100.0, "route_done") == pytest.approx(80.0)
    assert metrics.route_completion_pct(events[:61], 100.0, "off_road") == pytest.approx(40.0)
    assert metrics.off_road_share(events) == pytest.approx(0.2)


def test_stationary_agent_is_blocked_with_zero_completion() -> None:
    events = _events(100, 0.0, 500.0)
    result = metrics.route_metrics(events, np.zeros((101, 6)), np.zeros((101, 4)), "stuck", 500.0, DT_S)
    assert result.route_completion == 0.0 and result.driving_score == 0.0
    assert result.infractions["agent_blocked"] == 1 and result.status == "failed_agent_blocked"
    assert result.infraction_penalty == 1.0


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
    events, actors = _with_collisions(_events(steps - 1, 5.0, 200.0), [(5, "static")])
    result = metrics.route_metrics(events, measurements, pose, "route_done", 200.0, DT_S, actors)
    assert result.collisions_per_km == pytest.approx(5.0)
    assert result.mean_speed_mps == pytest.approx(5.0)
    assert result.duration_s == pytest.approx(2.0)


def test_aggregate_means_scores_and_sums_rates() -> None:
    def route(ds: float, collisions: int, km: float, status: str = "completed") -> dict:
        infractions = dict.fromkeys(metrics.INFRACTION_TYPES, 0)
        infractions["collision_vehicle"] = collisions
        values = dict.fromkeys(metrics.MEAN_KEYS, 1.0)
        return {**values, "driving_score": ds, "distance_km": km, "infractions": infractions, "status": status}

    aggregate = metrics.aggregate_metrics([route(100.0, 0, 1.5), route(60.0, 1, 0.5, "failed_agent_blocked")])
    assert aggregate["driving_score"] == pytest.approx(80.0)
    assert aggregate["collisions_per_km"] == pytest.approx(0.5)
    assert aggregate["completed_share"] == pytest.approx(0.5)
    assert aggregate["infractions"]["collision_vehicle"] == 1
    assert metrics.aggregate_metrics([]) == {"num_routes": 0}
