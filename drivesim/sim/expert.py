"""Privileged expert: plans future waypoints along the route; the shared controller turns them into controls.

The plan is a speed profile integrated along the route centre line: the speed target at each moment is the
lowest of the cruise speed, the lane's speed limit, a junction limit, a curvature limit (v^2 kappa <= a_lat)
reachable with comfortable braking, and the speed that still stops behind the obstacle gap (vehicles, walkers,
props, junction conflicts and stop lines, from ``drivesim.sim.world``). To pass a blocked lane the plan shifts
sideways by a ``LateralPlan`` (into the neighbour lane and back). The K waypoints (every 0.5 s) are where that
profile puts the car, in the ego frame; they are both what the expert drives and the targets that waypoint
policies learn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from drivesim.sim.config import ExpertConfig, TrafficConfig
from drivesim.sim.geometry import world_to_ego
from drivesim.sim.road import Route

JUNCTION_APPROACH_M = 8.0  # the junction limit applies this far before a junction [m]
SUBSTEPS_PER_WAYPOINT = 2


@dataclass(frozen=True)
class LateralPlan:
    """A sideways shift of the expert's path (positive to the right) over route arc lengths [m]."""

    start_s: float  # the shift starts
    full_s: float  # fully shifted from here
    release_s: float  # starts shifting back
    end_s: float  # back on the route
    offset_m: float

    def offset(self, s_m: np.ndarray) -> np.ndarray:
        s_m = np.asarray(s_m, dtype=float)
        rise = np.clip((s_m - self.start_s) / max(self.full_s - self.start_s, 1e-6), 0.0, 1.0)
        fall = np.clip((self.end_s - s_m) / max(self.end_s - self.release_s, 1e-6), 0.0, 1.0)
        weight = np.minimum(rise, fall)
        return self.offset_m * weight * weight * (3.0 - 2.0 * weight)


def route_speed_limits(route: Route, config: ExpertConfig, comfort_decel_mps2: float,
                       lane_limit_mps: np.ndarray | None = None) -> np.ndarray:
    """Highest speed (P,) at each route point from which every later limit is reachable by braking."""
    yaw = np.unwrap(route.yaw_rad)
    window = max(int(round(3.0 / route.spacing_m)), 1)  # curvature over +-3 m
    padded = np.pad(yaw, window, mode="edge")
    kappa = np.abs(padded[2 * window :] - padded[: -2 * window]) / (2 * window * route.spacing_m)
    limit = np.minimum(np.sqrt(config.max_lateral_accel_mps2 / np.maximum(kappa, 1e-4)), config.target_speed_mps)
    if lane_limit_mps is not None:
        limit = np.minimum(limit, lane_limit_mps)
    junction_ahead = np.convolve(route.in_junction.astype(float), np.ones(int(JUNCTION_APPROACH_M / route.spacing_m) + 1), "full")
    junction_ahead = junction_ahead[int(JUNCTION_APPROACH_M / route.spacing_m) :][: len(limit)] > 0
    limit = np.where(junction_ahead, np.minimum(limit, config.junction_speed_mps), limit)
    arc = np.arange(len(limit)) * route.spacing_m
    reach = np.minimum.accumulate((limit**2 + 2 * comfort_decel_mps2 * arc)[::-1])[::-1]
    return np.sqrt(np.maximum(reach - 2 * comfort_decel_mps2 * arc, 0.0))


class ExpertPlanner:
    """Plans the expert's future waypoints for one route."""

    def __init__(self, config: ExpertConfig, traffic: TrafficConfig, num_waypoints: int, waypoint_dt_s: float) -> None:
        self.config = config
        self.traffic = traffic
        self.num_waypoints = num_waypoints
        self.waypoint_dt_s = waypoint_dt_s
        self.route: Route | None = None
        self._limits: list[float] = []
        self._normals = np.zeros((0, 2))

    def set_route(self, route: Route, lane_limit_mps: np.ndarray | None = None) -> None:
        """Plan on ``route``; ``lane_limit_mps`` (P,) is the speed limit at each route point."""
        self.route = route
        self._limits = route_speed_limits(route, self.config, self.traffic.comfort_decel_mps2, lane_limit_mps).tolist()
        self._normals = np.stack([-np.sin(route.yaw_rad), np.cos(route.yaw_rad)], axis=1)

    def points_at(self, s_m: np.ndarray, lateral: LateralPlan | None = None) -> np.ndarray:
        """World points (..., 2) at route arc lengths ``s_m``, shifted by ``lateral``."""
        route = self.route
        last = len(route.points) - 1
        index = np.clip(np.asarray(s_m, dtype=float) / route.spacing_m, 0.0, max(last - 1e-6, 0.0))
        low = index.astype(np.int64)
        high = np.minimum(low + 1, last)
        frac = (index - low)[..., None]
        points = route.points[low] + (route.points[high] - route.points[low]) * frac
        beyond = np.maximum(np.asarray(s_m, dtype=float) - last * route.spacing_m, 0.0)  # straight on past the end
        end_yaw = route.yaw_rad[last]
        points = points + beyond[..., None] * np.array([math.cos(end_yaw), math.sin(end_yaw)])
        if lateral is not None:
            points = points + self._normals[low] * lateral.offset(s_m)[..., None]
        return points

    def plan(
        self, route_s_m: float, speed_mps: float, gap_m: float, obstacle_speed_mps: float,
        ego_xy: np.ndarray, ego_yaw_rad: float, lateral: LateralPlan | None = None,
    ) -> np.ndarray:
        """Waypoints (K, 2) in the ego frame, every ``waypoint_dt_s`` seconds ahead."""
        assert self.route is not None, "call set_route() first"
        accel, decel = self.traffic.max_accel_mps2, self.traffic.comfort_decel_mps2
        hard_decel = self.traffic.max_decel_mps2
        standstill = self.traffic.min_gap_m
        dt = self.waypoint_dt_s / SUBSTEPS_PER_WAYPOINT
        spacing, last = self.route.spacing_m, len(self._limits) - 1
        s, v, gap = route_s_m, speed_mps, gap_m
        targets = []
        for step in range(self.num_waypoints * SUBSTEPS_PER_WAYPOINT):
            limit = self._limits[min(int(s / spacing), last)]
            room = gap - standstill - v * 0.5  # keep half a second of headway beyond the standstill gap
            if room < 50.0:
                limit = min(limit, obstacle_speed_mps + math.sqrt(2.0 * decel * room) if room > 0.0 else 0.0)
            change = min(max(limit - v, -hard_decel * dt), accel * dt)
            new_v = max(v + change, 0.0)
            travelled = 0.5 * (v + new_v) * dt
            s += travelled
            gap += obstacle_speed_mps * dt - travelled
            v = new_v
            if step % SUBSTEPS_PER_WAYPOINT == SUBSTEPS_PER_WAYPOINT - 1:
                targets.append(s)
        world = self.points_at(np.array(targets), lateral)
        return world_to_ego(world, ego_xy, ego_yaw_rad).astype(np.float32)
