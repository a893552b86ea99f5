"""The batched torch controller twin equals the shared numpy ``WaypointController`` on random inputs."""

from __future__ import annotations

import numpy as np
import torch

from drivesim.dream.controller import TorchWaypointController
from drivesim.sim.config import VehicleConfig
from drivesim.sim.controller import WaypointController


def random_waypoints(rng: np.random.Generator, batch: int) -> np.ndarray:
    """Curvy, straight, short (standing) and backwards waypoint sets (B, 8, 2)."""
    steps = rng.uniform(0.0, 6.0, size=(batch, 1, 1)) * np.arange(1, 9)[None, :, None] / 8.0 * 8.0
    heading = rng.normal(0.0, 0.6, size=(batch, 1)) * np.linspace(0.1, 1.0, 8)[None]
    points = np.stack([np.cos(heading), np.sin(heading)], -1) * steps
    points += rng.normal(0.0, 0.3, size=points.shape)
    points[: batch // 8] *= 0.02  # nearly standing still
    points[batch // 8 : batch // 4, :, 0] *= -1.0  # waypoints behind the car
    return points


def test_torch_controller_matches_numpy_controller() -> None:
    rng = np.random.default_rng(0)
    vehicle = VehicleConfig()
    batch, steps, dt_s = 128, 6, 0.05
    numpy_controllers = [WaypointController(vehicle, 0.5) for _ in range(batch)]
    torch_controller = TorchWaypointController(vehicle, 0.5)
    integral = torch.zeros(batch, dtype=torch.float64)
    for _ in range(steps):  # several steps: the PID integral must evolve identically
        waypoints = random_waypoints(rng, batch)
        speed = rng.uniform(0.0, 14.0, size=batch)
        speed[: batch // 16] = rng.uniform(0.0, 0.4, size=batch // 16)
        expected = np.stack(
            [
                c.control(w, float(s), dt_s)
                for c, w, s in zip(numpy_controllers, waypoints, speed, strict=True)
            ]
        )
        controls, integral = torch_controller.control(
            torch.from_numpy(waypoints), torch.from_numpy(speed), integral, dt_s
        )
        np.testing.assert_allclose(controls.numpy(), expected, atol=1e-5)
        np.testing.assert_allclose(integral.numpy(), [c._integral for c in numpy_controllers], atol=1e-9)


def test_torch_controller_float32_close() -> None:
    rng = np.random.default_rng(1)
    waypoints = random_waypoints(rng, 64)
    speed = rng.uniform(0.0, 14.0, size=64)
    controller = TorchWaypointController(VehicleConfig())
    controls, _ = controller.control(
        torch.from_numpy(waypoints).float(), torch.from_numpy(speed).float(), torch.zeros(64)
    )
    expected = np.stack(
        [
            WaypointController(VehicleConfig()).control(w, float(s))
            for w, s in zip(waypoints, speed, strict=True)
        ]
    )
    np.testing.assert_allclose(controls.numpy(), expected, atol=1e-3)
