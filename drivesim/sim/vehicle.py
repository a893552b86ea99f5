"""Ego vehicle dynamics: a kinematic bicycle with throttle, brake, drag, steering-rate limit and tyre friction.

The tyres give at most ``mu * g`` of acceleration in all (a friction circle): braking harder than that locks
the wheels at the limit, and a turn asking for more lateral acceleration than is left slides wide (the yaw rate
is capped at what friction allows, so the car runs off the outside of a too-fast curve). Throttle and brake can
lag by a first-order ``actuator_lag_s``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from drivesim.sim.config import VehicleConfig

GRAVITY_MPS2 = 9.81


@dataclass
class VehicleState:
    """Ego state; ``x_m, y_m`` is the bounding-box centre in the CARLA world frame."""

    x_m: float
    y_m: float
    yaw_rad: float
    speed_mps: float = 0.0
    accel_mps2: float = 0.0
    yaw_rate_rps: float = 0.0
    steer: float = 0.0  # applied steer after the rate limit [-1, 1]
    throttle: float = 0.0  # applied throttle after the actuator lag
    brake: float = 0.0
    sliding: bool = False  # the last step asked for more lateral grip than the tyres had

    @property
    def xy(self) -> np.ndarray:
        return np.array([self.x_m, self.y_m])


def step_vehicle(state: VehicleState, control: np.ndarray, config: VehicleConfig, dt_s: float) -> VehicleState:
    """Advance the bicycle model one step under ``control`` = (throttle, steer, brake).

    Positive steer turns right (yaw increases), as ``carla.VehicleControl``. Integration is about the rear
    axle (semi-implicit Euler), the state is reported at the box centre.
    """
    throttle_command, steer_command, brake_command = (float(value) for value in control)
    if config.actuator_lag_s > 0.0:
        blend = min(dt_s / config.actuator_lag_s, 1.0)
        throttle = state.throttle + (throttle_command - state.throttle) * blend
        brake = state.brake + (brake_command - state.brake) * blend
    else:
        throttle, brake = throttle_command, brake_command
    max_delta = config.steer_rate_per_s * dt_s
    steer = state.steer + min(max(steer_command - state.steer, -max_delta), max_delta)
    speed = state.speed_mps
    grip = config.friction_mu * GRAVITY_MPS2
    drive = throttle * config.max_accel_mps2 * max(0.0, 1.0 - speed / config.max_speed_mps)
    resist = config.drag_per_m * speed * speed + (config.rolling_mps2 if speed > 0.0 else 0.0)
    tyre_accel = min(max(drive - brake * config.max_brake_mps2, -grip), grip)  # locked wheels at the limit
    new_speed = min(max(speed + (tyre_accel - resist) * dt_s, 0.0), config.max_speed_mps)
    wheel_angle = steer * math.radians(config.max_steer_deg)
    yaw_rate = new_speed * math.tan(wheel_angle) / config.wheelbase_m
    # Friction circle: the lateral grip left after the longitudinal demand caps the yaw rate (understeer).
    lateral_grip = math.sqrt(max(grip * grip - tyre_accel * tyre_accel, 0.0))
    max_yaw_rate = lateral_grip / max(new_speed, 0.1)
    sliding = abs(yaw_rate) > max_yaw_rate
    if sliding:
        yaw_rate = math.copysign(max_yaw_rate, yaw_rate)
    cos, sin = math.cos(state.yaw_rad), math.sin(state.yaw_rad)
    rear_x = state.x_m - config.rear_axle_to_centre_m * cos + new_speed * cos * dt_s
    rear_y = state.y_m - config.rear_axle_to_centre_m * sin + new_speed * sin * dt_s
    yaw = math.remainder(state.yaw_rad + yaw_rate * dt_s, math.tau)
    return VehicleState(
        x_m=rear_x + config.rear_axle_to_centre_m * math.cos(yaw),
        y_m=rear_y + config.rear_axle_to_centre_m * math.sin(yaw),
        yaw_rad=yaw,
        speed_mps=new_speed,
        accel_mps2=(new_speed - speed) / dt_s,
        yaw_rate_rps=yaw_rate,
        steer=steer,
        throttle=throttle,
        brake=brake,
        sliding=sliding,
    )


def control_for_acceleration(accel_mps2: float, speed_mps: float, config: VehicleConfig) -> tuple[float, float]:
    """Invert the longitudinal model: (throttle, brake) that produce ``accel_mps2`` at ``speed_mps``."""
    resist = config.drag_per_m * speed_mps * speed_mps + (config.rolling_mps2 if speed_mps > 0.0 else 0.0)
    needed = accel_mps2 + resist
    if needed >= 0.0:
        authority = config.max_accel_mps2 * max(0.05, 1.0 - speed_mps / config.max_speed_mps)
        return min(needed / authority, 1.0), 0.0
    return 0.0, min(-needed / config.max_brake_mps2, 1.0)
