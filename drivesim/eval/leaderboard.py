"""Evaluation stage: the CARLA Leaderboard's scoring rules as pure functions of per-step arrays.

Read from the public sources (branches named; each rule below cites its file and criterion):
- carla-simulator/leaderboard, branches ``leaderboard-2.0`` and ``leaderboard-1.0``:
  ``leaderboard/utils/statistics_manager.py`` (penalties, how events combine into IP, RC, DS and per-km rates)
  and ``leaderboard/scenarios/route_scenario.py`` (the criteria every route runs, with their thresholds);
- carla-simulator/scenario_runner, same branch names: ``srunner/scenariomanager/scenarioatomics/atomic_criteria.py``
  (CollisionTest, OutsideRouteLanesTest, MinimumSpeedRouteTest, InRouteTest, ActorBlockedTest,
  RouteCompletionTest) and ``srunner/scenariomanager/timer.py`` (RouteTimeoutBehavior);
- Thinklab-SJTU/Bench2Drive: its copy of ``statistics_manager.py`` (min-speed infractions not penalised) and
  ``tools/merge_route_json.py`` (success rate).

Both leaderboard versions apply outside-route-lanes (off-road or opposite-direction lanes) as an IP factor
(1 - percentage / 100) and leave RC alone (``statistics_manager.py`` of both branches; the 1.0 web page's
wording "not considered towards route completion" is not what its code computes).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from drivesim import spec

EVENT_COLLISION = spec.EVENT_NAMES.index("collision")
EVENT_OFF_ROAD = spec.EVENT_NAMES.index("off_road")
EVENT_PROGRESS = spec.EVENT_NAMES.index("progress_m")
EVENT_COMPLETION = spec.EVENT_NAMES.index("route_completion")
EVENT_COLLISION_WALKER = spec.EVENT_NAMES.index("collision_walker")
EVENT_COLLISION_STATIC = spec.EVENT_NAMES.index("collision_static")
EVENT_RED_LIGHT = spec.EVENT_NAMES.index("red_light")
EVENT_STOP_SIGN = spec.EVENT_NAMES.index("stop_sign")
EVENT_WRONG_LANE = spec.EVENT_NAMES.index("wrong_lane")

# A step is "outside the driving lanes" when more than this share of the ego footprint is off them: our stand-in
# for OutsideRouteLanesTest's "centre farther than lane_width / 2 + ALLOWED_OUT_DISTANCE from a lane centre"
# (0.5 m in 2.0, 1.3 m in 1.0), which the per-step events cannot reproduce exactly.
OFF_ROAD_THRESHOLD = 0.5
MIN_COMPLETED_KM = 0.001  # [km] statistics_manager.py 2.0 compute_global_statistics: max(km_driven, 0.001)
MIN_SPEED_CHECKPOINTS = 4  # route_scenario.py 2.0: MinimumSpeedRouteTest(..., checkpoints=4)
MIN_SPEED_FINAL_SHARE = 0.95  # MinimumSpeedRouteTest.terminate: the last checkpoint counts past 95 % of the route

COLLISION_KINDS: tuple[str, ...] = ("collision_pedestrian", "collision_vehicle", "collision_static")
# Labels of the map's layout (CARLA actor id 0): CollisionTest never remembers their id, only the location.
LAYOUT_LABELS = frozenset({"static", "static:building", "building", "layout"})

# statistics_manager.py 2.0, PENALTY_VALUE_DICT (1.0: the PENALTY_* constants, without scenario timeouts).
PENALTIES_2_0: dict[str, float] = {
    "collision_pedestrian": 0.50,
    "collision_vehicle": 0.60,
    "collision_static": 0.65,
    "red_light": 0.70,
    "stop_sign": 0.80,
    "scenario_timeout": 0.70,
}
PENALTIES_1_0: dict[str, float] = {key: value for key, value in PENALTIES_2_0.items() if key != "scenario_timeout"}


@dataclass(frozen=True)
class ScoringRules:
    """One leaderboard version's scoring rules (see the module docstring for the sources)."""

    name: str
    penalties: Mapping[str, float]
    # PENALTY_PERC_DICT[MIN_SPEED_INFRACTION] = [0.7, 'decreases'] in 2.0; None: not penalised (1.0, Bench2Drive).
    min_speed_factor: float | None
    # CollisionTest 2.0: COLLISION_RADIUS = 5 (one remembered location, forgotten beyond it). 1.0:
    # MIN_AREA_OF_COLLISION = 3 (ignore) and MAX_AREA_OF_COLLISION = 5 (forget), every location remembered.
    collision_ignore_radius_m: float
    collision_forget_radius_m: float
    collision_remember_all: bool
    # CollisionTest 2.0: EPSILON = 0.1, "collisions at lower this speed won't be counted"; 1.0 has no such rule.
    collision_min_speed_mps: float | None
    # Route timeout: "length" (1.0 route_scenario.py: int(SECONDS_GIVEN_PER_METERS 0.8 * length + 5)) or
    # "progress" (2.0 timer.py RouteTimeoutBehavior: 300 s plus each metre driven at 10 % of its speed limit).
    timeout: str
    collision_id_time_s: float = 5.0  # CollisionTest.MAX_ID_TIME (both versions)


RULES: dict[str, ScoringRules] = {
    "leaderboard-2.0": ScoringRules("leaderboard-2.0", PENALTIES_2_0, 0.7, 5.0, 5.0, False, 0.1, "progress"),
    "leaderboard-1.0": ScoringRules("leaderboard-1.0", PENALTIES_1_0, None, 3.0, 5.0, True, None, "length"),
    # Bench2Drive's statistics_manager.py: MIN_SPEED_INFRACTION: [0.7, 'unused']; the rest as 2.0.
    "bench2drive": ScoringRules("bench2drive", PENALTIES_2_0, None, 5.0, 5.0, False, 0.1, "progress"),
}


def scoring_rules(name: str) -> ScoringRules:
    """The rules named ``name`` (a key of ``RULES``)."""
    try:
        return RULES[name]
    except KeyError:
        raise ValueError(f"unknown scoring rules {name!r}; known: {sorted(RULES)}") from None


def collision_kind(actor: str | None, walker: bool = False, static: bool = False) -> str:
    """Leaderboard collision type of a ``collision_actor`` label.

    Labels: "vehicle:<id>" and "vehicle:static_<k>" (parked cars are ``vehicle.*`` actors in CARLA),
    "walker:<id>" / "pedestrian:<id>", "static:cone_<k>", "static:building", "static". Without a label the
    events' ``collision_walker`` / ``collision_static`` flags decide, else it is a vehicle (the commonest).
    CollisionTest's classification: 'static' or 'traffic' in the type id -> static, 'vehicle' -> vehicle,
    'walker' -> pedestrian.
    """
    head = actor.split(":", 1)[0].lower() if actor else ""
    if head in ("vehicle", "car", "npc"):
        return "collision_vehicle"
    if head in ("static", "layout", "prop", "building", "traffic"):
        return "collision_static"
    if head in ("pedestrian", "walker"):
        return "collision_pedestrian"
    if walker:
        return "collision_pedestrian"
    return "collision_static" if static else "collision_vehicle"


def counted_collisions(
    events: np.ndarray,
    actors: Sequence[str | None] | None,
    speed_mps: np.ndarray,
    position_xy: np.ndarray,
    dt_s: float,
    rules: ScoringRules,
) -> list[tuple[int, str]]:
    """The collisions CollisionTest counts, as (step, kind).

    Every contact step is a sensor event. An event is dropped when its actor is the last counted one and that
    collision is less than ``collision_id_time_s`` old, when the ego is within ``collision_ignore_radius_m`` of a
    remembered collision location, or (2.0) when the ego is slower than ``collision_min_speed_mps``. The ego's
    speed is the larger of the speeds before and after the step: our world stops the ego at a contact.

    Args:
        events: (T, E) per-step events.
        actors: (T,) ``info["collision_actor"]`` per step, or None.
        speed_mps: (T,) ego speed.
        position_xy: (T, 2) ego position [m].
        dt_s: Step length [s].
        rules: Scoring rules.
    """
    events = np.asarray(events).reshape(-1, len(spec.EVENT_NAMES))
    speed_mps = np.asarray(speed_mps, dtype=np.float64).reshape(-1)
    position_xy = np.asarray(position_xy, dtype=np.float64).reshape(len(events), -1)[:, :2]
    counted: list[tuple[int, str]] = []
    last_id: str | None = None
    last_time_s = -math.inf
    locations: list[np.ndarray] = []
    for step in range(len(events)):
        time_s, here = step * dt_s, position_xy[step]
        if events[step, EVENT_COLLISION] > 0.5:  # the sensor callback (_count_collisions)
            label = actors[step] if actors is not None else None
            actor_id = label if label and label not in LAYOUT_LABELS else None
            speed = max(speed_mps[step], speed_mps[step - 1] if step else 0.0)
            near = any(np.hypot(*(here - place)) <= rules.collision_ignore_radius_m for place in locations)
            slow = rules.collision_min_speed_mps is not None and speed < rules.collision_min_speed_mps
            if not (actor_id is not None and actor_id == last_id) and not near and not slow:
                kind = collision_kind(label, events[step, EVENT_COLLISION_WALKER] > 0.5,
                                      events[step, EVENT_COLLISION_STATIC] > 0.5)
                counted.append((step, kind))
                last_time_s = time_s
                locations = [*locations, here] if rules.collision_remember_all else [here]
                if actor_id is not None:
                    last_id = actor_id
        # CollisionTest.update(): forget far locations and old ids
        locations = [place for place in locations if np.hypot(*(here - place)) <= rules.collision_forget_radius_m]
        if last_id is not None and time_s - last_time_s > rules.collision_id_time_s:
            last_id = None
    return counted


def count_flags(flags: np.ndarray) -> int:
    """Number of rising edges of a per-step 0/1 flag (one red-light or stop-sign run each)."""
    on = np.asarray(flags).reshape(-1) > 0.5
    return int(np.count_nonzero(on[1:] & ~on[:-1]) + (1 if on.size and on[0] else 0))


def outside_route_lanes(events: np.ndarray) -> tuple[float, float]:
    """(percentage of the route distance driven outside the route lanes, that distance [m]).

    OutsideRouteLanesTest (both versions): route metres passed while off the driving lanes or in a lane of the
    opposite direction, over all route metres passed, x 100.
    """
    events = np.asarray(events, dtype=np.float64).reshape(-1, len(spec.EVENT_NAMES))
    progress = np.clip(events[:, EVENT_PROGRESS], 0.0, None)
    outside = (events[:, EVENT_OFF_ROAD] > OFF_ROAD_THRESHOLD) | (events[:, EVENT_WRONG_LANE] > 0.5)
    total_m, wrong_m = float(progress.sum()), float(progress[outside].sum())
    return (100.0 * wrong_m / total_m if total_m > 0.0 else 0.0), wrong_m


def min_speed_checkpoints(
    events: np.ndarray,
    speed_mps: np.ndarray,
    traffic_speed_mps: np.ndarray | None,
    route_length_m: float,
    checkpoints: int = MIN_SPEED_CHECKPOINTS,
) -> list[float]:
    """MinimumSpeedRouteTest (2.0): the ego's mean speed over each quarter of the route, in % of the mean speed of
    the background traffic over the same frames (100 where no traffic moved).

    Args:
        events: (T, E) events (route progress from ``route_completion``).
        speed_mps: (T,) ego speed.
        traffic_speed_mps: (T,) mean speed of the other vehicles per step; NaN (or None) where there are none.
        route_length_m: Route length [m].
        checkpoints: Number of route pieces.

    Returns:
        The value of every checkpoint reached; values below 100 are min-speed infractions.
    """
    events = np.asarray(events, dtype=np.float64).reshape(-1, len(spec.EVENT_NAMES))
    route_s = events[:, EVENT_COMPLETION] * route_length_m
    checkpoint_m = route_length_m / checkpoints
    traffic = np.full(len(events), np.nan) if traffic_speed_mps is None else np.asarray(traffic_speed_mps, np.float64)
    speed_mps = np.asarray(speed_mps, dtype=np.float64).reshape(-1)
    values: list[float] = []
    sums = [0.0, 0.0, 0]  # traffic speed, ego speed, frames

    def record() -> None:
        traffic_sum, ego_sum, frames = sums
        values.append(round(ego_sum / traffic_sum * 100.0, 2) if frames and traffic_sum else 100.0)

    current_m = 0.0
    for step in range(1, len(events)):
        if route_s[step] - current_m > checkpoint_m:
            record()
            current_m, sums[:] = route_s[step], [0.0, 0.0, 0]
        if np.isfinite(traffic[step]):
            sums[0] += traffic[step]
            sums[1] += speed_mps[step]
            sums[2] += 1
    if len(events) > 1 and route_s[-1] / max(route_length_m, 1e-9) > MIN_SPEED_FINAL_SHARE:
        record()
    return values


def infraction_factors(
    counts: Mapping[str, int], outside_pct: float, min_speed_pct: Sequence[float], rules: ScoringRules
) -> dict[str, float]:
    """Each infraction type's share of the penalty: IP is the product of these factors.

    statistics_manager.py 2.0 compute_route_statistics: a PENALTY_VALUE_DICT event multiplies IP by its value; a
    PENALTY_PERC_DICT event by ``1 - (1 - p) * percentage / 100`` ('increases', outside-route-lanes, p = 0) or
    ``1 - (1 - p) * (1 - percentage / 100)`` ('decreases', min speed, p = 0.7). 1.0 multiplies by
    ``1 - percentage / 100`` for outside-route-lanes (the same value) and has no min-speed term.
    """
    factors = {name: float(value ** counts.get(name, 0)) for name, value in rules.penalties.items()}
    factors["outside_route_lanes"] = 1.0 - outside_pct / 100.0
    if rules.min_speed_factor is not None:
        factors["min_speed"] = float(np.prod([1.0 - (1.0 - rules.min_speed_factor) * (1.0 - value / 100.0)
                                               for value in min_speed_pct if value < 100.0]))
    return factors


def infraction_penalty(factors: Mapping[str, float]) -> float:
    """IP = the product of the infraction factors (1.0 without infractions)."""
    return float(np.prod(list(factors.values()))) if factors else 1.0


def route_completion_pct(events: np.ndarray, termination: str | None) -> float:
    """RC [%]: the share of the route passed, 100 once the route is done (RouteCompletionTest)."""
    if termination == "route_done":
        return 100.0
    events = np.asarray(events, dtype=np.float64).reshape(-1, len(spec.EVENT_NAMES))
    return 100.0 * float(np.clip(events[:, EVENT_COMPLETION].max(initial=0.0), 0.0, 1.0))


def driving_score(route_completion: float, penalty: float) -> float:
    """DS = max(RC x IP, 0) (RC in %, so DS is in [0, 100])."""
    return float(max(route_completion * penalty, 0.0))


def completed_km(route_length_m: float, route_completion: float) -> float:
    """Route kilometres completed: the per-km denominator of statistics_manager.py 2.0 (length x RC / 100)."""
    return route_length_m / 1000.0 * route_completion / 100.0
