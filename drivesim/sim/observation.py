"""Builds the shared observation (drivesim.spec) from ego state, route, expert plan and sensors."""

from __future__ import annotations

import math

import numpy as np

from drivesim import spec
from drivesim.sim.config import SimConfig
from drivesim.sim.events import StepEvents
from drivesim.sim.geometry import world_to_ego
from drivesim.sim.road import Route


def measurements(speed_mps: float, accel_mps2: float, yaw_rate_rps: float, control: np.ndarray) -> np.ndarray:
    """Measurement vector in ``spec.MEASUREMENT_NAMES`` order; ``control`` = applied (throttle, steer, brake)."""
    throttle, steer, brake = (float(value) for value in control)
    return np.array([speed_mps, accel_mps2, math.degrees(yaw_rate_rps), steer, throttle, brake], dtype=np.float32)


def route_points(route: Route, route_index: int, ego_xy: np.ndarray, ego_yaw_rad: float, config: SimConfig) -> np.ndarray:
    """The next ``num_route_points`` route points every ``route_spacing_m`` in the ego frame (R, 2)."""
    step = max(int(round(config.route_spacing_m / route.spacing_m)), 1)
    index = np.minimum(route_index + step * np.arange(1, config.num_route_points + 1), len(route.points) - 1)
    return world_to_ego(route.points[index], ego_xy, ego_yaw_rad).astype(np.float32)


def build_observation(
    measurement_vector: np.ndarray, route_ego: np.ndarray, expert_waypoints: np.ndarray, events: StepEvents,
    sensors: dict[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """The observation dict; ``sensors`` adds ``bev`` and/or ``camera``."""
    obs = {
        spec.OBS_MEASUREMENTS: measurement_vector,
        spec.OBS_ROUTE: route_ego,
        spec.OBS_WAYPOINTS: np.asarray(expert_waypoints, dtype=np.float32),
        spec.OBS_EVENTS: events.as_array(),
    }
    if sensors:
        obs.update(sensors)
    return obs
