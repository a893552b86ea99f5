"""Per-step ego events shared by every simulator: off-road, lane invasion, route progress, timers.

Collisions come from each simulator's own contact source (oriented boxes in the embedded simulator, the
collision sensor on a CARLA server); everything else is computed here from the ego pose, the static map
raster and the route, so the embedded simulator and the CARLA bridge report identical quantities.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from drivesim import spec
from drivesim.sensors.geometry import box_corners
from drivesim.sensors.map_raster import MapRaster
from drivesim.sim.config import SimConfig
from drivesim.sim.geometry import ego_to_world, footprint_grid
from drivesim.sim.road import Route

ROUTE_DONE_M = 2.0  # the route is done when less than this remains [m]
PROGRESS_SEARCH = (-3, 12)  # route-point window searched around the last projection
OFF_ROAD_SHARE = 0.5  # a step counts as off-road for the termination timer above this share


@dataclass
class StepEvents:
    """What happened during one step (see drivesim.spec.EVENT_NAMES)."""

    collision: bool = False
    collision_actor: str | None = None
    off_road: float = 0.0
    lane_invasion: bool = False
    progress_m: float = 0.0
    route_completion: float = 0.0
    collision_walker: bool = False
    collision_static: bool = False
    red_light: bool = False
    stop_sign: bool = False
    wrong_lane: bool = False

    def as_array(self) -> np.ndarray:
        """The events row in ``drivesim.spec.EVENT_NAMES`` order."""
        return np.array([float(getattr(self, name)) for name in spec.EVENT_NAMES], dtype=np.float32)


class EgoEventTracker:
    """Follows the ego along its route: progress, off-road share, lane invasions, stuck/off-road timers."""

    def __init__(self, raster: MapRaster, config: SimConfig) -> None:
        self.raster = raster
        self.config = config
        vehicle = config.vehicle
        corners = box_corners(np.array([[0.0, 0.0, 0.0, vehicle.length_m, vehicle.width_m]]))[0]
        # Ego-frame sample points: 4 box corners, then a 3x3 footprint grid.
        self._samples = np.vstack([corners, footprint_grid(np.zeros(2), 0.0, vehicle.length_m, vehicle.width_m)])
        self.route: Route | None = None
        self.reset_state()

    def reset_state(self) -> None:
        self.route_index = 0  # nearest route point
        self.best_index = 0  # furthest route point reached
        self.stuck_s = 0.0
        self.off_road_s = 0.0
        self.distance_m = 0.0
        self.last_off_road = 0.0
        self._on_marking = np.zeros(4, dtype=bool)
        self._last_xy: np.ndarray | None = None

    def reset(self, route: Route, ego_xy: np.ndarray, ego_yaw_rad: float) -> None:
        """Start tracking a new route with the ego at ``ego_xy``."""
        self.route = route
        self.reset_state()
        samples = ego_to_world(self._samples[:4], ego_xy, ego_yaw_rad)
        self._on_marking = self.raster.lookup(self.raster.lane_markings, samples).astype(bool)
        self._last_xy = np.asarray(ego_xy, dtype=float)

    @property
    def route_s_m(self) -> float:
        """Continuous arc length of the ego's projection on the route [m]."""
        route, index = self.route, self.route_index
        yaw = route.yaw_rad[index]
        along = (self._last_xy[0] - route.points[index, 0]) * np.cos(yaw) + (self._last_xy[1] - route.points[index, 1]) * np.sin(yaw)
        return float(min(max(index * route.spacing_m + along, 0.0), route.length_m))

    def update(self, ego_xy: np.ndarray, ego_yaw_rad: float, events: StepEvents) -> StepEvents:
        """Fill ``events`` (off-road, lane invasion, progress, completion) for the ego's new pose."""
        bits = self.raster.lookup(self.raster.layer_bits, ego_to_world(self._samples, ego_xy, ego_yaw_rad))
        events.off_road = 1.0 - np.count_nonzero(bits[4:] & 1) / (len(bits) - 4)
        self.last_off_road = events.off_road
        on_marking = (bits[:4] & 2) > 0
        events.lane_invasion = bool((on_marking & ~self._on_marking).any())
        self._on_marking = on_marking
        # Progress is monotone: driving back and forth does not count twice.
        route = self.route
        low = max(self.route_index + PROGRESS_SEARCH[0], 0)
        high = min(self.route_index + PROGRESS_SEARCH[1], len(route.points))
        offset = route.points[low:high] - ego_xy
        self.route_index = low + int(np.argmin(np.einsum("ij,ij->i", offset, offset)))
        if self.route_index > self.best_index:
            events.progress_m = (self.route_index - self.best_index) * route.spacing_m
            self.best_index = self.route_index
        events.route_completion = min(self.best_index * route.spacing_m / max(route.length_m, 1e-6), 1.0)
        self.distance_m += math.hypot(ego_xy[0] - self._last_xy[0], ego_xy[1] - self._last_xy[1])
        self._last_xy = np.asarray(ego_xy, dtype=float)
        dt = self.config.episode.dt_s
        self.stuck_s = 0.0 if events.progress_m > 0.0 else self.stuck_s + dt
        self.off_road_s = self.off_road_s + dt if events.off_road > OFF_ROAD_SHARE else 0.0
        return events

    def route_done(self) -> bool:
        return self.route.length_m - self.best_index * self.route.spacing_m < ROUTE_DONE_M

    def termination(self, events: StepEvents) -> str | None:
        """Why the episode ends after this step, or None (time-outs are the caller's truncation)."""
        episode = self.config.episode
        if events.collision and episode.terminate_on_collision:
            return "collision"
        if self.route_done():
            return "route_done"
        if episode.off_road_limit_s > 0 and self.off_road_s >= episode.off_road_limit_s:
            return "off_road"
        if self.stuck_s >= episode.stuck_limit_s:
            return "stuck"
        return None

    def path_ahead(self, distance_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Route points (P, 2) and junction flags (P,) at ``distance_m`` ahead of the ego's projection."""
        route = self.route
        index = np.minimum(self.route_index + np.round(distance_m / route.spacing_m).astype(np.int64), len(route.points) - 1)
        return route.points[index], route.in_junction[index]
