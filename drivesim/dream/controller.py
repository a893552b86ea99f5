"""Dream stage: a batched torch twin of the shared ``drivesim.sim.controller.WaypointController``.

Imagination turns thousands of waypoint sets into controls per step, so the controller's math is repeated here
vectorised over a batch. It mirrors ``WaypointController`` line by line (pure pursuit about the rear axle, a
PI speed loop whose target is the speed the first waypoint implies, ``control_for_acceleration``);
``tests/policy/test_controller_torch.py`` asserts that both agree on random inputs. Any change to the numpy
controller must be made here too (that test fails otherwise).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from drivesim.sim.config import VehicleConfig


class TorchWaypointController:
    """Batched waypoint controller; the PID integral is passed in and returned (no hidden state).

    Args:
        vehicle: the ego vehicle model (the same ``VehicleConfig`` the numpy controller gets).
        waypoint_dt_s: time between waypoints [s].
        speed_gain_per_s, integral_gain, lookahead_time_s, lookahead_min_m, lookahead_max_m: as
            ``WaypointController``'s defaults.
    """

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

    def target_speed(self, waypoints: Tensor, speed_mps: Tensor) -> Tensor:
        """Speed (B,) at the first waypoint's time, for waypoints (B, K, 2) and speed (B,)."""
        first = torch.linalg.vector_norm(waypoints[:, 0], dim=-1)
        return (2.0 * first / self.waypoint_dt_s - speed_mps).clamp_min(0.0)

    def steer(self, waypoints: Tensor, speed_mps: Tensor) -> Tensor:
        """Pure-pursuit steer (B,) in [-1, 1] for waypoints (B, K, 2) and speed (B,)."""
        batch = waypoints.shape[0]
        rear = waypoints.new_tensor([self.vehicle.rear_axle_to_centre_m, 0.0])
        points = waypoints + rear  # (B, K, 2) in rear-axle coordinates
        lookahead = (self.lookahead_time_s * speed_mps).clamp(self.lookahead_min_m, self.lookahead_max_m)
        beyond = torch.linalg.vector_norm(points, dim=-1) >= lookahead.unsqueeze(-1)  # (B, K)
        found = beyond.any(-1)
        first = beyond.to(torch.uint8).argmax(-1)  # first point at or beyond the look-ahead circle
        rows = torch.arange(batch, device=waypoints.device)
        end = torch.where(found.unsqueeze(-1), points[rows, first], points[:, -1])
        before = torch.where(
            (first > 0).unsqueeze(-1), points[rows, (first - 1).clamp_min(0)], rear.expand(batch, 2)
        )
        start = torch.where(found.unsqueeze(-1), before, end)  # none beyond: aim at the last point
        direction = end - start
        a = (direction * direction).sum(-1)
        b = 2.0 * (start * direction).sum(-1)
        c = (start * start).sum(-1) - lookahead**2
        safe_a = torch.where(a < 1e-9, torch.ones_like(a), a)
        t = (-b + (b * b - 4.0 * safe_a * c).clamp_min(0.0).sqrt()) / (2.0 * safe_a)
        point = torch.where((a < 1e-9).unsqueeze(-1), end, start + t.clamp_min(0.0).unsqueeze(-1) * direction)
        alpha = torch.atan2(point[:, 1], point[:, 0])
        distance = torch.linalg.vector_norm(point, dim=-1).clamp_min(1e-3)
        wheel_angle = torch.atan2(2.0 * self.vehicle.wheelbase_m * torch.sin(alpha), distance)
        steer = (wheel_angle / math.radians(self.vehicle.max_steer_deg)).clamp(-1.0, 1.0)
        standing = torch.linalg.vector_norm(waypoints[:, -1], dim=-1) < 0.5  # no direction to follow
        return torch.where(standing, torch.zeros_like(steer), steer)

    def control_for_acceleration(self, accel_mps2: Tensor, speed_mps: Tensor) -> tuple[Tensor, Tensor]:
        """(throttle, brake), each (B,), producing ``accel_mps2`` at ``speed_mps`` (drivesim.sim.vehicle)."""
        vehicle = self.vehicle
        rolling = torch.where(speed_mps > 0.0, vehicle.rolling_mps2, 0.0)
        needed = accel_mps2 + vehicle.drag_per_m * speed_mps * speed_mps + rolling
        authority = vehicle.max_accel_mps2 * (1.0 - speed_mps / vehicle.max_speed_mps).clamp_min(0.05)
        throttle = torch.where(needed >= 0.0, (needed / authority).clamp_max(1.0), torch.zeros_like(needed))
        brake = torch.where(
            needed >= 0.0, torch.zeros_like(needed), (-needed / vehicle.max_brake_mps2).clamp_max(1.0)
        )
        return throttle, brake

    @torch.no_grad()
    def control(
        self, waypoints: Tensor, speed_mps: Tensor, integral: Tensor, dt_s: float = 0.05
    ) -> tuple[Tensor, Tensor]:
        """Controls for a batch.

        Args:
            waypoints: (B, K, 2) ego-frame waypoints [m].
            speed_mps: (B,) current speeds [m/s].
            integral: (B,) PID integral state (zeros at an episode start).
            dt_s: control step [s].

        Returns:
            Controls (B, 3) [throttle, steer, brake] and the new integral (B,).
        """
        assert waypoints.ndim == 3 and waypoints.shape[-1] == 2, (
            f"waypoints must be (B, K, 2), got {tuple(waypoints.shape)}"
        )
        target = self.target_speed(waypoints, speed_mps)
        steer = self.steer(waypoints, speed_mps)
        hold = (target < 0.3) & (speed_mps < 0.5)  # hold the car at standstill
        error = target - speed_mps
        new_integral = (integral + error * dt_s).clamp(-2.0, 2.0)
        accel = self.speed_gain_per_s * error + self.integral_gain * new_integral
        accel = accel.clamp(-self.vehicle.max_brake_mps2, self.vehicle.max_accel_mps2)
        throttle, brake = self.control_for_acceleration(accel, speed_mps)
        throttle = torch.where(hold, torch.zeros_like(throttle), throttle)
        brake = torch.where(hold, torch.ones_like(brake), brake)
        new_integral = torch.where(hold, torch.zeros_like(new_integral), new_integral)
        return torch.stack([throttle, steer, brake], -1), new_integral
