"""The one controller: future waypoints in the ego frame -> ``VehicleControl`` (throttle, steer, brake).

Pure pursuit for steering (about the rear axle) and a speed loop whose target is the speed the waypoints
imply half a second ahead. The expert drives through it, and so do the waypoint policies, so that a
policy that reproduces the expert's waypoints reproduces its driving.
"""

from __future__ import annotations

import math

import numpy as np

from drivesim.sim.config import VehicleConfig
from drivesim.sim.vehicle import control_for_acceleration


class WaypointController:
    """Stateful (PID integral) controller; call ``reset()`` at each episode start."""

    def __init__(
        self,
        vehicle: VehicleConfig,
        waypoint_dt_s: float = 0.5,
        speed_gain_per_s: float = 2.0,
        integral_gain: float = 0.2,
        lookahead_time_s: float = 0.9,
        lookahead_min_m: float = 4.0,
        lookahead_max_m: float = 12.0,
    ) -> None:
        self.vehicle = vehicle
        self.waypoint_dt_s = waypoint_dt_s
        self.speed_gain_per_s = speed_gain_per_s
        self.integral_gain = integral_gain
        self.lookahead_time_s = lookahead_time_s
        self.lookahead_min_m = lookahead_min_m
        self.lookahead_max_m = lookahead_max_m
        self._integral = 0.0

    def reset(self) -> None:
        self._integral = 0.0

    def target_speed(self, waypoints: np.ndarray, speed_mps: float) -> float:
        """Speed at the first waypoint's time, assuming constant acceleration from ``speed_mps``."""
        first = float(math.hypot(waypoints[0, 0], waypoints[0, 1]))
        return max(2.0 * first / self.waypoint_dt_s - speed_mps, 0.0)

    def steer(self, waypoints: np.ndarray, speed_mps: float) -> float:
        """Pure-pursuit steer [-1, 1] toward the waypoint polyline's point at the look-ahead distance."""
        points = waypoints.tolist()  # K is small: plain floats beat numpy's per-call overhead here
        if math.hypot(*points[-1]) < 0.5:
            return 0.0  # standing still: the waypoints give no direction
        rear = self.vehicle.rear_axle_to_centre_m
        lookahead = min(max(self.lookahead_time_s * speed_mps, self.lookahead_min_m), self.lookahead_max_m)
        start = (rear, 0.0)  # polyline from the box centre, in rear-axle coordinates
        end = start
        for x, y in points:
            end = (x + rear, y)
            if math.hypot(*end) >= lookahead:
                break
            start = end
        dx, dy = end[0] - start[0], end[1] - start[1]
        a = dx * dx + dy * dy
        if a < 1e-9:
            px, py = end
        else:  # intersect the segment (extended past the last point) with the look-ahead circle
            b = 2.0 * (start[0] * dx + start[1] * dy)
            c = start[0] ** 2 + start[1] ** 2 - lookahead**2
            t = max((-b + math.sqrt(max(b * b - 4.0 * a * c, 0.0))) / (2.0 * a), 0.0)
            px, py = start[0] + t * dx, start[1] + t * dy
        alpha = math.atan2(py, px)
        wheel_angle = math.atan2(2.0 * self.vehicle.wheelbase_m * math.sin(alpha), max(math.hypot(px, py), 1e-3))
        return min(max(wheel_angle / math.radians(self.vehicle.max_steer_deg), -1.0), 1.0)

    def control(self, waypoints: np.ndarray, speed_mps: float, dt_s: float = 0.05) -> np.ndarray:
        """Control (throttle, steer, brake) as a (3,) float32 array for ego-frame ``waypoints`` (K, 2)."""
        waypoints = np.asarray(waypoints, dtype=np.float64)
        target = self.target_speed(waypoints, speed_mps)
        steer = self.steer(waypoints, speed_mps)
        if target < 0.3 and speed_mps < 0.5:
            self._integral = 0.0
            return np.array([0.0, steer, 1.0], dtype=np.float32)  # hold the car
        error = target - speed_mps
        self._integral = min(max(self._integral + error * dt_s, -2.0), 2.0)
        accel = self.speed_gain_per_s * error + self.integral_gain * self._integral
        accel = min(max(accel, -self.vehicle.max_brake_mps2), self.vehicle.max_accel_mps2)
        throttle, brake = control_for_acceleration(accel, speed_mps, self.vehicle)
        return np.array([throttle, steer, brake], dtype=np.float32)
