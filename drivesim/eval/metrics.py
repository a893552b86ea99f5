"""Evaluation stage: per-route and aggregate driving metrics from per-step arrays.

Inputs follow the step convention of ``drivesim.spec``: row t holds the events produced by arriving at o_t
(zeros at t=0). Everything here works on arrays from a live run, a recorded episode or a dream, so the
runner, the viewer and the policy code share one definition of every number. The Leaderboard's own rules
(DS = RC x IP, the penalties, collision filtering, outside-route-lanes and min-speed terms) live in
``drivesim.eval.leaderboard``, with their sources; success is Bench2Drive's (route completed, no infraction
other than min speed: ``tools/merge_route_json.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from drivesim import spec
from drivesim.eval import leaderboard
from drivesim.eval.leaderboard import COLLISION_KINDS, OFF_ROAD_THRESHOLD, ScoringRules

MEASUREMENT_SPEED = spec.MEASUREMENT_NAMES.index("speed_mps")
MEASUREMENT_ACCEL = spec.MEASUREMENT_NAMES.index("accel_mps2")
MEASUREMENT_YAW_RATE = spec.MEASUREMENT_NAMES.index("yaw_rate_dps")
DEFAULT_RULES = "leaderboard-2.0"

# Route-ending reason (the runner's, or a simulator's termination) -> leaderboard infraction without a penalty.
ROUTE_ENDING_INFRACTIONS: dict[str, str] = {
    "route_deviation": "route_deviation",
    "agent_blocked": "agent_blocked",
    "route_timeout": "route_timeout",
    "off_road": "route_deviation",  # simulator names, when a simulator itself ends a route
    "stuck": "agent_blocked",
    "timeout": "route_timeout",
}
PENALISED_INFRACTIONS: tuple[str, ...] = (
    *COLLISION_KINDS, "red_light", "stop_sign", "scenario_timeout", "outside_route_lanes", "min_speed",
)
INFRACTION_TYPES: tuple[str, ...] = (*PENALISED_INFRACTIONS, "route_deviation", "agent_blocked", "route_timeout")
SUCCESS_IGNORES: tuple[str, ...] = ("min_speed",)  # Bench2Drive: min-speed infractions do not fail a route
ROUTE_STATUS: dict[str | None, str] = {
    "route_done": "completed",
    "collision": "failed_collision",
    "route_deviation": "failed_route_deviation",
    "off_road": "failed_route_deviation",
    "agent_blocked": "failed_agent_blocked",
    "stuck": "failed_agent_blocked",
    "route_timeout": "failed_route_timeout",
    "timeout": "failed_route_timeout",
    None: "failed_unfinished",
}


def infraction_counts(
    events: np.ndarray,
    termination: str | None,
    collisions: Sequence[tuple[int, str]],
    outside_pct: float,
    min_speed_pct: Sequence[float],
    scenario_timeouts: int = 0,
) -> dict[str, int]:
    """Count of every entry of ``INFRACTION_TYPES`` for one route (route-ending ones are 0 or 1).

    Outside-route-lanes is one event per route (its percentage scales IP); min speed counts failed checkpoints.
    """
    events = np.asarray(events).reshape(-1, len(spec.EVENT_NAMES))
    counts = dict.fromkeys(INFRACTION_TYPES, 0)
    for _, kind in collisions:
        counts[kind] += 1
    counts["red_light"] = leaderboard.count_flags(events[:, leaderboard.EVENT_RED_LIGHT])
    counts["stop_sign"] = leaderboard.count_flags(events[:, leaderboard.EVENT_STOP_SIGN])
    counts["scenario_timeout"] = int(scenario_timeouts)
    counts["outside_route_lanes"] = int(outside_pct > 0.0)
    counts["min_speed"] = sum(1 for value in min_speed_pct if value < 100.0)
    if termination in ROUTE_ENDING_INFRACTIONS:
        counts[ROUTE_ENDING_INFRACTIONS[termination]] = 1
    return counts


def is_success(status: str, counts: Mapping[str, int]) -> bool:
    """Bench2Drive's success: the route was completed with no infraction (min-speed ones aside)."""
    return status == "completed" and not any(count for name, count in counts.items() if name not in SUCCESS_IGNORES)


def driven_distance_m(ego_pose: np.ndarray) -> float:
    """Length of the driven path [m] from (T, >=2) world poses (x, y first)."""
    xy = np.asarray(ego_pose, dtype=np.float64).reshape(len(ego_pose), -1)[:, :2]
    return float(np.hypot(*np.diff(xy, axis=0).T).sum()) if len(xy) > 1 else 0.0


def off_road_share(events: np.ndarray) -> float:
    """Share of steps (after the first, which has no events) spent off-road."""
    events = np.asarray(events).reshape(-1, len(spec.EVENT_NAMES))
    if len(events) < 2:
        return 0.0
    return float(np.mean(events[1:, leaderboard.EVENT_OFF_ROAD] > OFF_ROAD_THRESHOLD))


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
    """A count per kilometre (distance floored at the leaderboard's 0.001 km)."""
    return float(count / max(distance_km, leaderboard.MIN_COMPLETED_KM))


@dataclass(frozen=True)
class RouteMetrics:
    """Leaderboard metrics of one route plus driving-quality statistics."""

    driving_score: float  # [0, 100]
    route_completion: float  # [%]
    infraction_penalty: float  # [0, 1]
    termination: str | None
    status: str
    success: bool  # Bench2Drive: completed with no infraction (min speed aside)
    rules: str  # name of the scoring rules (drivesim.eval.leaderboard.RULES)
    route_length_m: float
    completed_km: float  # route length x RC: the leaderboard's per-km denominator
    distance_km: float  # driven (odometer)
    duration_s: float
    collisions: int
    collisions_per_km: float  # per completed route km, as the leaderboard
    outside_route_lanes_pct: float  # [%] of the route distance passed, driven off-road or in an opposite lane
    outside_route_lanes_m: float
    off_road_share: float  # share of steps mostly off the driving lanes
    mean_speed_mps: float
    mean_abs_jerk_mps3: float
    mean_abs_yaw_rate_dps: float
    infractions: dict[str, int] = field(default_factory=dict)
    infraction_factors: dict[str, float] = field(default_factory=dict)  # IP = their product
    min_speed_pct: list[float] = field(default_factory=list)  # every min-speed checkpoint's value [%]
    scenario_types: list[str] = field(default_factory=list)  # the route's scenario types, in route order

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
    *,
    rules: ScoringRules | str = DEFAULT_RULES,
    traffic_speed_mps: np.ndarray | None = None,
    scenario_timeouts: int = 0,
    scenario_types: Sequence[str] = (),
) -> RouteMetrics:
    """All metrics of one route from its per-step arrays.

    Args:
        events: (T, E) events, row 0 from the reset (zeros).
        measurements: (T, M) measurements.
        ego_pose: (T, 4) world poses x, y, z [m], yaw [deg].
        termination: Why the route ended (``route_done``, ``route_deviation``, ``agent_blocked``,
            ``route_timeout``, a simulator's termination reason) or None.
        route_length_m: Route length [m].
        dt_s: Step length [s].
        collision_actors: (T,) ``info["collision_actor"]`` per step (None: kinds from the events' flags).
        rules: Scoring rules or their name (``drivesim.eval.leaderboard.RULES``).
        traffic_speed_mps: (T,) mean speed of the other vehicles (NaN where none), for the min-speed term.
        scenario_timeouts: Scenarios of this route that timed out.
        scenario_types: The route's scenario types (stored for per-type breakdowns).

    Returns:
        The route's ``RouteMetrics``.
    """
    rules = leaderboard.scoring_rules(rules) if isinstance(rules, str) else rules
    events = np.asarray(events, dtype=np.float64).reshape(-1, len(spec.EVENT_NAMES))
    measurements = np.asarray(measurements, dtype=np.float64).reshape(-1, len(spec.MEASUREMENT_NAMES))
    speed = measurements[:, MEASUREMENT_SPEED]
    collisions = leaderboard.counted_collisions(events, collision_actors, speed, np.asarray(ego_pose), dt_s, rules)
    outside_pct, outside_m = leaderboard.outside_route_lanes(events)
    min_speed = leaderboard.min_speed_checkpoints(events, speed, traffic_speed_mps, route_length_m)
    counts = infraction_counts(events, termination, collisions, outside_pct, min_speed, scenario_timeouts)
    factors = leaderboard.infraction_factors(counts, outside_pct, min_speed, rules)
    completion = leaderboard.route_completion_pct(events, termination)
    penalty = leaderboard.infraction_penalty(factors)
    status = ROUTE_STATUS.get(termination, "failed_unfinished")
    completed_km = leaderboard.completed_km(route_length_m, completion)
    return RouteMetrics(
        driving_score=leaderboard.driving_score(completion, penalty),
        route_completion=completion,
        infraction_penalty=penalty,
        termination=termination,
        status=status,
        success=is_success(status, counts),
        rules=rules.name,
        route_length_m=float(route_length_m),
        completed_km=completed_km,
        distance_km=driven_distance_m(ego_pose) / 1000.0,
        duration_s=max(len(measurements) - 1, 0) * dt_s,
        collisions=len(collisions),
        collisions_per_km=per_km(len(collisions), completed_km),
        outside_route_lanes_pct=outside_pct,
        outside_route_lanes_m=outside_m,
        off_road_share=off_road_share(events),
        mean_speed_mps=float(speed.mean()) if len(speed) else 0.0,
        infractions=counts,
        infraction_factors=factors,
        min_speed_pct=min_speed,
        scenario_types=list(scenario_types),
        **comfort_metrics(measurements, dt_s),
    )


MEAN_KEYS: tuple[str, ...] = (
    "driving_score",
    "route_completion",
    "infraction_penalty",
    "outside_route_lanes_pct",
    "off_road_share",
    "mean_speed_mps",
    "mean_abs_jerk_mps3",
    "mean_abs_yaw_rate_dps",
)


def aggregate_metrics(routes: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Leaderboard aggregate over routes (``RouteMetrics.to_dict()`` mappings).

    As statistics_manager.py 2.0 compute_global_statistics: DS, RC and IP are means over routes; infractions
    per km are total counts over the total completed route length (sum of length x RC, at least 0.001 km);
    outside-route-lanes is reported as the total distance driven outside them. Success rate is Bench2Drive's.
    """
    if not routes:
        return {"num_routes": 0}
    values = {key: np.array([float(route.get(key, 0.0)) for route in routes]) for key in MEAN_KEYS}
    completed = float(sum(route.get("completed_km", 0.0) for route in routes))
    totals = {name: int(sum(route["infractions"].get(name, 0) for route in routes)) for name in INFRACTION_TYPES}
    collisions = sum(totals[name] for name in COLLISION_KINDS)
    return {
        "num_routes": len(routes),
        **{key: float(value.mean()) for key, value in values.items()},
        "driving_score_std": float(values["driving_score"].std()),
        "success_rate": float(np.mean([bool(route.get("success", False)) for route in routes])),
        "completed_share": float(np.mean([route["status"] == "completed" for route in routes])),
        "completed_km": completed,
        "distance_km": float(sum(route["distance_km"] for route in routes)),
        "outside_route_lanes_km": float(sum(route.get("outside_route_lanes_m", 0.0) for route in routes)) / 1000.0,
        "collisions": collisions,
        "collisions_per_km": per_km(collisions, completed),
        "infractions": totals,
        "infractions_per_km": {name: per_km(count, completed) for name, count in totals.items()},
    }
