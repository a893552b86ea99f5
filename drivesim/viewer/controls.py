"""Viewer stage: keyboard driving controls in the style of CARLA's manual_control (pure logic, no pygame)."""

from __future__ import annotations

import numpy as np

from drivesim import spec


class KeyboardControl:
    """CARLA manual_control-style keyboard driving: W/S throttle/brake, A/D steer with a steer cache.

    Throttle and brake ramp up while their key is held and drop to zero on release; steer accumulates at
    ``steer_rate`` per second (reset when reversing direction), returns to zero when no steer key is held.
    """

    def __init__(self, throttle_rate: float = 2.0, brake_rate: float = 4.0, steer_rate: float = 1.0,
                 max_steer: float = 0.7) -> None:
        self.throttle_rate = throttle_rate
        self.brake_rate = brake_rate
        self.steer_rate = steer_rate
        self.max_steer = max_steer
        self.control = np.zeros(3, np.float32)

    def update(self, throttle: bool, brake: bool, left: bool, right: bool, dt_s: float) -> np.ndarray:
        """New control (3,) [throttle, steer, brake] after ``dt_s`` seconds with these keys held."""
        current_throttle, steer, current_brake = (float(v) for v in self.control)
        current_throttle = min(current_throttle + self.throttle_rate * dt_s, 1.0) if throttle else 0.0
        current_brake = min(current_brake + self.brake_rate * dt_s, 1.0) if brake else 0.0
        increment = self.steer_rate * dt_s
        if left and not right:
            steer = (0.0 if steer > 0.0 else steer) - increment
        elif right and not left:
            steer = (0.0 if steer < 0.0 else steer) + increment
        else:
            steer = 0.0
        steer = float(np.clip(steer, -self.max_steer, self.max_steer))
        self.control = spec.action_from_control(current_throttle, steer, current_brake)
        return self.control.copy()
