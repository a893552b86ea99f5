"""Ego dynamics follow CARLA's conventions (no renderer involved)."""

import math

import numpy as np
import pytest

from drivesim.sim.config import VehicleConfig
from drivesim.sim.vehicle import VehicleState, control_for_acceleration, step_vehicle

DT = 0.05


def drive(control, seconds, state=None):
    state = state or VehicleState(0.0, 0.0, 0.0)
    for _ in range(int(round(seconds / DT))):
        state = step_vehicle(state, np.array(control), VehicleConfig(), DT)
    return state


def test_throttle_accelerates_and_brake_stops():
    moving = drive([1.0, 0.0, 0.0], 4.0)
    assert moving.speed_mps > 8.0
    assert moving.x_m > 10.0 and abs(moving.y_m) < 1e-9
    stopped = drive([0.0, 0.0, 1.0], 2.0, moving)
    assert stopped.speed_mps == 0.0
    # Full brake decelerates at about the configured 8 m/s^2 (plus drag).
    one_step = step_vehicle(moving, np.array([0.0, 0.0, 1.0]), VehicleConfig(), DT)
    assert (moving.speed_mps - one_step.speed_mps) / DT == pytest.approx(8.0, abs=0.6)


def test_positive_steer_turns_right_as_in_carla():
    state = drive([0.5, 0.0, 0.0], 2.0)
    turned = drive([0.5, 0.5, 0.0], 1.0, state)
    assert turned.yaw_rad > state.yaw_rad  # yaw increases: clockwise seen from above
    assert turned.y_m > state.y_m  # towards +y, the right side in CARLA's left-handed frame
    left = drive([0.5, -0.5, 0.0], 1.0, state)
    assert left.yaw_rad < state.yaw_rad and left.y_m < state.y_m


def test_constant_speed_travels_expected_distance():
    state = VehicleState(0.0, 0.0, math.radians(90.0), speed_mps=20.0)
    config = VehicleConfig(drag_per_m=0.0, rolling_mps2=0.0)
    for _ in range(40):
        state = step_vehicle(state, np.array([0.0, 0.0, 0.0]), config, DT)
    assert state.y_m == pytest.approx(40.0, abs=0.05)  # heading 90 deg is +y
    assert state.x_m == pytest.approx(0.0, abs=1e-6)


def test_steer_rate_is_limited():
    state = step_vehicle(VehicleState(0, 0, 0, speed_mps=5.0), np.array([0.0, 1.0, 0.0]), VehicleConfig(), DT)
    assert state.steer == pytest.approx(VehicleConfig().steer_rate_per_s * DT)


def test_control_for_acceleration_inverts_the_model():
    config = VehicleConfig()
    for accel in (-5.0, -1.0, 0.5, 2.0):
        throttle, brake = control_for_acceleration(accel, 8.0, config)
        state = step_vehicle(VehicleState(0, 0, 0, speed_mps=8.0), np.array([throttle, 0.0, brake]), config, DT)
        assert state.accel_mps2 == pytest.approx(accel, abs=0.05)
