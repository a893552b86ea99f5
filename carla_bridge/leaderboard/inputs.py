"""CARLA Leaderboard 2.0 inputs -> drivesim observations: ego pose from GNSS + IMU, route ahead, measurements.

A Leaderboard agent on the SENSORS track gets GNSS, IMU, a speedometer and cameras, and the route as a
global plan in GPS and world coordinates. drivesim's policies read ``measurements`` (speed, acceleration,
yaw rate, applied control), ``route`` (the next route points every 2 m in the ego frame) and images:

- ``GeoFrame`` maps (latitude, longitude) to the map's (x, y), fitted on the plan's (GPS, world) pairs
  with the local scale of a Mercator projection (``route_manipulation._location_to_gps``); an axis the
  plan does not span keeps the direction of the ``carla`` package's own ``transform_to_geolocation``;
- the heading comes from the IMU compass (0 = North, CARLA's yaw + 90 deg);
- ``RouteAhead`` follows the ego's projection along the dense plan, as drivesim's event tracker does.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np

from drivesim import spec
from drivesim.sim.geometry import world_to_ego

EARTH_RADIUS_M = 6378137.0  # route_manipulation.EARTH_RADIUS_EQUA
MIN_SPREAD_M = 10.0  # the plan fixes an axis's direction when it spans at least this [m]
RESAMPLE_M = 0.5  # the plan is resampled at this spacing before route points are taken [m]
SEARCH_WINDOW = (-6, 40)  # resampled points searched around the last projection


@functools.cache
def _wheel_signs() -> tuple[float, float]:
    """(sign of dx/dlongitude, sign of dy/dlatitude) of the installed carla package's geolocation."""
    import carla

    from drivesim.sim.maps import opendrive_source

    probe = carla.Map("probe", opendrive_source("straight")[1])
    origin = probe.transform_to_geolocation(carla.Location(0.0, 0.0, 0.0))
    moved = probe.transform_to_geolocation(carla.Location(10.0, 10.0, 0.0))
    return (
        1.0 if moved.longitude > origin.longitude else -1.0,
        1.0 if moved.latitude > origin.latitude else -1.0,
    )


class GeoFrame:
    """(latitude, longitude) [deg] -> map (x, y) [m] near a route (see the module docstring).

    Args:
        latlon: (N, 2) the plan's latitudes and longitudes.
        xy: (N, 2) the same points in world coordinates.
    """

    def __init__(self, latlon: np.ndarray, xy: np.ndarray) -> None:
        latlon, xy = np.asarray(latlon, dtype=np.float64), np.asarray(xy, dtype=np.float64)
        metres_per_degree = math.radians(1.0) * EARTH_RADIUS_M
        lat_ref = float(np.mean(latlon[:, 0]))
        scale = np.array([metres_per_degree * math.cos(math.radians(lat_ref)), metres_per_degree])
        signs = np.array(_wheel_signs())
        degrees = latlon[:, ::-1]  # (lon, lat) -> (x, y)
        for axis in range(2):
            if np.ptp(xy[:, axis]) >= MIN_SPREAD_M:
                covariance = np.cov(degrees[:, axis], xy[:, axis])[0, 1]
                signs[axis] = 1.0 if covariance > 0 else -1.0
        self.gain = signs * scale
        self.offset = np.mean(xy - self.gain * degrees, axis=0)

    def to_xy(self, latitude: float, longitude: float) -> np.ndarray:
        return self.gain * np.array([longitude, latitude]) + self.offset


def compass_to_yaw(compass_rad: float) -> float:
    """CARLA yaw [rad] from the IMU compass (0 = North = -y, clockwise seen from above)."""
    return math.remainder(compass_rad - math.pi / 2.0, math.tau)


class RouteAhead:
    """The next route points in the ego frame, following the ego's projection along a dense route.

    Args:
        points: (N, 2) route points in world coordinates, in driving order.
        spacing_m: Spacing of the observed points (``SimConfig.route_spacing_m``).
        count: How many (``SimConfig.num_route_points``).
    """

    def __init__(self, points: np.ndarray, spacing_m: float, count: int) -> None:
        points = np.asarray(points, dtype=np.float64)
        keep = np.concatenate([[True], np.hypot(*np.diff(points, axis=0).T) > 1e-6])
        points = points[keep]
        arc = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(points, axis=0).T))])
        samples = np.append(np.arange(0.0, arc[-1] - 1e-6, RESAMPLE_M), arc[-1])  # keep the exact end
        self.points = np.column_stack([np.interp(samples, arc, points[:, 0]), np.interp(samples, arc, points[:, 1])])
        self.step = max(int(round(spacing_m / RESAMPLE_M)), 1)
        self.count = count
        self.index = 0

    def __call__(self, ego_xy: np.ndarray, ego_yaw_rad: float) -> np.ndarray:
        """(count, 2) float32: route points ``spacing_m`` apart ahead of the ego's projection, ego frame."""
        low = max(self.index + SEARCH_WINDOW[0], 0)
        high = min(self.index + SEARCH_WINDOW[1], len(self.points))
        offset = self.points[low:high] - ego_xy
        self.index = low + int(np.argmin(np.einsum("ij,ij->i", offset, offset)))
        index = np.minimum(self.index + self.step * np.arange(1, self.count + 1), len(self.points) - 1)
        return world_to_ego(self.points[index], np.asarray(ego_xy, dtype=np.float64), ego_yaw_rad).astype(np.float32)


def measurement_vector(speed_mps: float, imu: np.ndarray, control: Sequence[float]) -> np.ndarray:
    """``measurements`` (``spec.MEASUREMENT_NAMES``) from the speedometer, the IMU array and the last control.

    Args:
        speed_mps: The speedometer's forward speed.
        imu: [accel x, y, z, gyro x, y, z, compass] (accelerations [m/s^2] and angular rates [rad/s] in the
            vehicle frame: x forward; the yaw rate positive turning right).
        control: The (throttle, steer, brake) applied since the last step.
    """
    throttle, steer, brake = (float(value) for value in control)
    values = {
        "speed_mps": speed_mps,
        "accel_mps2": float(imu[0]),
        "yaw_rate_dps": math.degrees(float(imu[5])),
        "steer": steer,
        "throttle": throttle,
        "brake": brake,
    }
    return np.array([values[name] for name in spec.MEASUREMENT_NAMES], dtype=np.float32)


def bgra_to_rgb(bgra: np.ndarray) -> np.ndarray:
    """A Leaderboard camera array (H, W, 4) BGRA -> (H, W, 3) RGB uint8, drivesim's ``camera``."""
    return np.ascontiguousarray(np.asarray(bgra)[:, :, 2::-1])
