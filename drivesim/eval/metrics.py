"""Evaluation stage: CARLA Leaderboard 1.0 driving metrics as pure functions of per-step arrays.

Inputs follow the step convention of ``drivesim.spec``: row t holds the events produced by arriving at o_t
(zeros at t=0). Everything here works on arrays from a live run, a recorded episode or a dream, so the
runner, the viewer and the policy code share one definition of every number.

Leaderboard 1.0 (leaderboard.carla.org, ``statistics_manager.py``; see REFERENCE.md): driving score
DS = RC x IP, infraction penalty IP = prod_i p_i^n_i, off-road driving is removed from route completion,
and route deviation, agent blocked and route timeout end a route without a penalty of their own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from drivesim import spec

EVENT_COLLISION = spec.EVENT_NAMES.index("collision")
EVENT_OFF_ROAD = spec.EVENT_NAMES.index("off_road")
EVENT_PROGRESS = spec.EVENT_NAMES.index("progress_m")
EVENT_COMPLETION = spec.EVENT_NAMES.index("route_completion")
MEASUREMENT_SPEED = spec.MEASUREMENT_NAMES.index("speed_mps")
MEASUREMENT_ACCEL = spec.MEASUREMENT_NAMES.index("accel_mps2")
MEASUREMENT_YAW_RATE = spec.MEASUREMENT_NAMES.index("yaw_rate_dps")

OFF_ROAD_THRESHOLD = 0.5  # share of the footprint off the driving lanes that counts as off-road
MIN_DISTANCE_KM = 0.01  # [km] floor of the driven distance in per-km rates (a parked car is not "0 km")

# Leaderboard 1.0 penalty coefficients (REFERENCE.md "CARLA Leaderboard 1.0 metrics").
PENALTY_COEFFICIENTS: dict[str, float] = {
    "collision_pedestrian": 0.50,
    "collision_vehicle": 0.60,
    "collision_static": 0.65,
    "red_light": 0.70,  # our maps have no traffic lights: always 0
    "stop_sign": 0.80,  # our maps have no stop signs: always 0
}
COLLISION_KINDS: tuple[str, ...] = ("collision_pedestrian", "collision_vehicle", "collision_static")
# Simulator termination reason -> leaderboard route-ending infraction (no penalty coefficient).
ROUTE_ENDING_INFRACTIONS: dict[str, str] = {
    "off_road": "route_deviation",
    "stuck": "agent_blocked",
    "timeout": "route_timeout",
}
INFRACTION_TYPES: tuple[str, ...] = tuple(PENALTY_COEFFICIENTS) + tuple(ROUTE_ENDING_INFRACTIONS.values())
ROUTE_STATUS: dict[str | None, str] = {
    "route_done": "completed",
    "collision": "failed_collision",
    "off_road": "failed_route_deviation",
    "stuck": "failed_agent_blocked",
    "timeout": "failed_route_timeout",
    None: "failed_unfinished",
}


def collision_kind(actor: str | None, unknown: str = "collision_vehicle") -> str:
    """Leaderboard collision type of a ``collision_actor`` label ("vehicle:<id>", "static", "pedestrian:<id>").

    Args:
        actor: The simulator's label of the other actor; None when unknown.
        unknown: Kind assigned to unknown or unlabelled actors (vehicles, the commonest case).
    """
    if not actor:
        return unknown
    head = actor.split(":", 1)[0].lower()
    if head in ("vehicle", "car", "npc"):
        return "collision_vehicle"
    if head in ("static", "layout", "prop", "building"):
        return "collision_static"
    if head in ("pedestrian", "walker"):
        return "collision_pedestrian"
    return unknown


def count_collisions(
    collision: np.ndarray,
    actors: Sequence[str | None] | None,
    dt_s: float,
    repeat_window_s: float = 5.0,
) -> dict[str, int]:
    """Distinct collisions per leaderboard kind.

    Consecutive contact steps are one collision. Contacts with the same labelled actor separated by less
    than ``repeat_window_s`` are one collision too (the leaderboard's repeated-collision filter); contacts
    without a label are split only by a contact-free step.

    Args:
        collision: (T,) per-step collision flag (events column ``collision``).
        actors: (T,) ``info["collision_actor"]`` per step, or None when not recorded.
        dt_s: Step length [s].
        repeat_window_s: Window within which contacts with the same actor merge [s].

    Returns:
        Count per entry of ``COLLISION_KINDS``.
    """
    counts = dict.fromkeys(COLLISION_KINDS, 0)
    steps = np.flatnonzero(np.asarray(collision) > 0.5)
    if steps.size == 0:
        return counts
    labels = np.array([(actors[i] if actors is not None else None) or "" for i in steps], dtype=object)
    for label in np.unique(labels):
        times_s = steps[labels == label] * dt_s
        gap_s = max(repeat_window_s, 1.5 * dt_s) if label else 1.5 * dt_s
        counts[collision_kind(label or None)] += 1 + int(np.count_nonzero(np.diff(times_s) > gap_s))
    return counts


def infraction_penalty(counts: Mapping[str, int]) -> float:
    """Infraction penalty IP = prod_i p_i^n_i over the penalised types (1.0 without infractions)."""
    return float(np.prod([PENALTY_COEFFICIENTS[name] ** counts.get(name, 0) for name in PENALTY_COEFFICIENTS]))


def route_completion_pct(events: np.ndarray, route_length_m: float, termination: str | None) -> float:
    """Route completion RC [%] with the progress made while off-road removed (leaderboard rule).

    Args:
        events: (T, E) per-step events (``drivesim.spec.EVENT_NAMES``).
        route_length_m: Route length [m].
        termination: Why the route ended; ``route_done`` counts as fully completed.
    """
    events = np.asarray(events, dtype=np.float64).reshape(-1, len(spec.EVENT_NAMES))
    if termination == "route_done":
        completed = 1.0
    else:
        completed = float(events[:, EVENT_COMPLETION].max(initial=0.0))
    off_road = events[:, EVENT_OFF_ROAD] > OFF_ROAD_THRESHOLD
    off_road_progress_m = float(np.clip(events[off_road, EVENT_PROGRESS], 0.0, None).sum())
    return 100.0 * float(np.clip(completed - off_road_progress_m / max(route_length_m, 1e-6), 0.0, 1.0))


def driving_score(route_completion: float, penalty: float) -> float:
    """Driving score DS = RC x IP (RC in %, so DS is in [0, 100])."""
    return float(route_completion * penalty)


def infraction_counts(
    events: np.ndarray,
    termination: str | None,
    dt_s: float,
    collision_actors: Sequence[str | None] | None = None,
    repeat_window_s: float = 5.0,
) -> dict[str, int]:
    """Count of every entry of ``INFRACTION_TYPES`` for one route (route-ending ones are 0 or 1)."""
    events = np.asarray(events).reshape(-1, len(spec.EVENT_NAMES))
    counts = dict.fromkeys(INFRACTION_TYPES, 0)
    counts.update(count_collisions(events[:, EVENT_COLLISION], collision_actors, dt_s, repeat_window_s))
    if termination in ROUTE_ENDING_INFRACTIONS:
        counts[ROUTE_ENDING_INFRACTIONS[termination]] = 1
    return counts


def driven_distance_m(ego_pose: np.ndarray) -> float:
    """Length of the driven path [m] from (T, >=2) world poses (x, y first)."""
    xy = np.asarray(ego_pose, dtype=np.float64).reshape(len(ego_pose), -1)[:, :2]
    return float(np.hypot(*np.diff(xy, axis=0).T).sum()) if len(xy) > 1 else 0.0


def off_road_share(events: np.ndarray) -> float:
    """Share of steps (after the first, which has no events) spent off-road."""
    events = np.asarray(events).reshape(-1, len(spec.EVENT_NAMES))
    if len(events) < 2:
        return 0.0
    return float(np.mean(events[1:, EVENT_OFF_ROAD] > OFF_ROAD_THRESHOLD))


def comfort_metrics(measurements: np.ndarray, dt_s: float) -> dict[str, float]:
    """Mean absolute longitudinal jerk [m/s^3] and mean absolute yaw rate [deg/s] from (T, M) measurements."""
    measurements = np.asarray(measurements, dtype=np.float64).reshape(-1, len(spec.MEASUREMENT_NAMES))
    jerk_mps3 = np.diff(measurements[:, MEASUREMENT_ACCEL]) / dt_s
    return {
        "mean_abs_jerk_mps3": float(np.abs(jerk_mps3).mean()) if jerk_mps3.size else 0.0,
        "mean_abs_yaw_rate_dps": float(np.abs(measurements[:, MEASUREMENT_YAW_RATE]).mean())
        if len(measurements)
        else 0.0,
    }


def per_km(count: float, distance_km: float) -> float:
    """A count per driven kilometre (distance floored at ``MIN_DISTANCE_KM``)."""
    return float(count / max(distance_km, MIN_DISTANCE_KM))


@dataclass(frozen=True)
class RouteMetrics:
    """Leaderboard metrics of one route plus driving-quality statistics."""

    driving_score: float  # [0, 100]
    route_completion: float  # [%]
    infraction_penalty: float  # [0, 1]
    termination: str | None
    status: str
    route_length_m: float
    distance_km: float
    duration_s: float
    collisions: int
    collisions_per_km: float
    off_road_share: float
    mean_speed_mps: float
    mean_abs_jerk_mps3: float
    mean_abs_yaw_rate_dps: float
    infractions: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def route_metrics(
    events: np.ndarray,
    measurements: np.ndarray,
    ego_pose: np.ndarray,
    termination: str | None,
    route_length_m: float,
    dt_s: float,
    collision_actors: Sequence[str | None] | None = None,
    repeat_window_s: float = 5.0,
) -> RouteMetrics:
    """All metrics of one route from its per-step arrays.

    Args:
        events: (T, E) events, row 0 from the reset (zeros).
        measurements: (T, M) measurements.
        ego_pose: (T, 4) world poses x, y, z [m], yaw [deg].
        termination: Why the route ended (``drivesim.sim.interface.TERMINATION_REASONS``) or None.
        route_length_m: Route length [m].
        dt_s: Step length [s].
        collision_actors: (T,) ``info["collision_actor"]`` per step (None: collisions count as vehicle ones).
        repeat_window_s: Contacts with one actor within this window are one collision [s].

    Returns:
        The route's ``RouteMetrics``.
    """
    measurements = np.asarray(measurements, dtype=np.float64).reshape(-1, len(spec.MEASUREMENT_NAMES))
    counts = infraction_counts(events, termination, dt_s, collision_actors, repeat_window_s)
    completion = route_completion_pct(events, route_length_m, termination)
    penalty = infraction_penalty(counts)
    distance_km = driven_distance_m(ego_pose) / 1000.0
    collisions = sum(counts[name] for name in COLLISION_KINDS)
    return RouteMetrics(
        driving_score=driving_score(completion, penalty),
        route_completion=completion,
        infraction_penalty=penalty,
        termination=termination,
        status=ROUTE_STATUS.get(termination, "failed_unfinished"),
        route_length_m=float(route_length_m),
        distance_km=distance_km,
        duration_s=max(len(measurements) - 1, 0) * dt_s,
        collisions=collisions,
        collisions_per_km=per_km(collisions, distance_km),
        off_road_share=off_road_share(events),
        mean_speed_mps=float(measurements[:, MEASUREMENT_SPEED].mean()) if len(measurements) else 0.0,
        infractions=counts,
        **comfort_metrics(measurements, dt_s),
    )


MEAN_KEYS: tuple[str, ...] = (
    "driving_score",
    "route_completion",
    "infraction_penalty",
    "off_road_share",
    "mean_speed_mps",
    "mean_abs_jerk_mps3",
    "mean_abs_yaw_rate_dps",
)


def aggregate_metrics(routes: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Leaderboard aggregate over routes (``RouteMetrics.to_dict()`` mappings).

    Scores and driving-quality statistics are means over routes (as the leaderboard averages DS, RC, IP);
    rates per km are total counts over the total driven distance.
    """
    if not routes:
        return {"num_routes": 0}
    values = {key: np.array([float(route[key]) for route in routes]) for key in MEAN_KEYS}
    distance_km = float(sum(route["distance_km"] for route in routes))
    totals = {name: int(sum(route["infractions"].get(name, 0) for route in routes)) for name in INFRACTION_TYPES}
    collisions = sum(totals[name] for name in COLLISION_KINDS)
    return {
        "num_routes": len(routes),
        **{key: float(value.mean()) for key, value in values.items()},
        "driving_score_std": float(values["driving_score"].std()),
        "completed_share": float(np.mean([route["status"] == "completed" for route in routes])),
        "distance_km": distance_km,
        "collisions": collisions,
        "collisions_per_km": per_km(collisions, distance_km),
        "infractions": totals,
        "infractions_per_km": {name: per_km(count, distance_km) for name, count in totals.items()},
    }
