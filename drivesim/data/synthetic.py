"""Data stage: synthetic episodes and a tiny fake simulator, for tests and benchmarks without a simulator."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from drivesim import spec
from drivesim.data.episode import write_episode
from drivesim.sensors.config import SensorsConfig
from drivesim.sim.config import SimConfig

EVENT_COLLISION = spec.EVENT_NAMES.index("collision")
EVENT_OFF_ROAD = spec.EVENT_NAMES.index("off_road")
EVENT_PROGRESS = spec.EVENT_NAMES.index("progress_m")
EVENT_COMPLETION = spec.EVENT_NAMES.index("route_completion")


def synthetic_steps(
    length: int,
    rng: np.random.Generator,
    camera_size: int | None = 64,
    bev_size: int | None = 64,
    event_probability: float = 0.0,
    speed_mps: float = 8.0,
    dt_s: float = 0.05,
) -> dict[str, np.ndarray]:
    """Random but well-formed episode arrays of ``length`` steps (a straight drive along +x).

    Args:
        length: Steps T.
        rng: Source of randomness.
        camera_size: Camera height = width [px]; None leaves the camera out.
        bev_size: BEV height = width [px]; None leaves the BEV out.
        event_probability: Per-step probability of a collision (and, independently, of off-road).
        speed_mps: Constant speed of the ego [m/s].
        dt_s: Step length [s].
    """
    shape = spec.ObservationShape()
    steps: dict[str, np.ndarray] = {
        "measurements": rng.normal(size=(length, len(spec.MEASUREMENT_NAMES))).astype(np.float32),
        "route": rng.normal(size=(length, shape.num_route_points, 2)).astype(np.float32),
        "expert_waypoints": rng.normal(size=(length, shape.num_waypoints, 2)).astype(np.float32),
        "events": np.zeros((length, len(spec.EVENT_NAMES)), dtype=np.float32),
        "action": rng.uniform(spec.ACTION_LOW, spec.ACTION_HIGH, size=(length, 3)).astype(np.float32),
        "expert_action": rng.uniform(spec.ACTION_LOW, spec.ACTION_HIGH, size=(length, 3)).astype(np.float32),
        "reward": rng.normal(size=length).astype(np.float32),
        "ego_pose": np.zeros((length, 4), dtype=np.float64),
        "is_first": np.arange(length) == 0,
        "is_last": np.arange(length) == length - 1,
        "is_terminal": np.zeros(length, dtype=bool),
    }
    steps["events"][:, EVENT_COLLISION] = rng.random(length) < event_probability
    steps["events"][:, EVENT_OFF_ROAD] = rng.random(length) < event_probability
    steps["events"][1:, EVENT_PROGRESS] = speed_mps * dt_s
    steps["ego_pose"][:, 0] = np.arange(length) * speed_mps * dt_s
    if bev_size is not None:
        steps[spec.OBS_BEV] = rng.integers(0, 2, size=(length, shape.bev_channels, bev_size, bev_size), dtype=np.uint8)
    if camera_size is not None:
        steps[spec.OBS_CAMERA] = rng.integers(0, 256, size=(length, camera_size, camera_size, 3), dtype=np.uint8)
    return steps


def write_synthetic_dataset(
    data_dir: str | Path,
    episodes: int,
    length: int | tuple[int, int],
    seed: int = 0,
    camera_size: int | None = 64,
    bev_size: int | None = 64,
    event_probability: float = 0.0,
) -> list[Path]:
    """Write ``episodes`` synthetic episodes (fixed length or a [low, high] range) and return their folders."""
    rng = np.random.default_rng(seed)
    low, high = (length, length) if isinstance(length, int) else length
    paths = []
    for index in range(episodes):
        steps = synthetic_steps(int(rng.integers(low, high + 1)), rng, camera_size, bev_size, event_probability)
        metadata = {"simulator": "synthetic", "map_name": "none", "seed": seed, "driver": "clean", "dt_s": 0.05}
        paths.append(write_episode(data_dir, index, steps, metadata))
    return paths


class FakeDrivingEnv:
    """A tiny deterministic simulator following the contract of ``drivesim.sim.interface``.

    The ego drives along +x; episodes last 20-60 steps. ``careless`` drivers usually end in a collision,
    ``noisy`` drivers spend a few steps off-road. Observations follow ``drivesim.spec`` with sensor sizes
    from ``sensors_config``.

    Args:
        sim_config: Simulator config (uses map name, dt, max_steps, route/waypoint counts).
        sensors_config: Which sensors are on and their sizes.
        interrupt_after_resets: Test hook: raise KeyboardInterrupt in the 5th step after this many resets.
    """

    def __init__(
        self,
        sim_config: SimConfig,
        sensors_config: SensorsConfig | None = None,
        interrupt_after_resets: int | None = None,
    ) -> None:
        self.sim_config = sim_config
        self.sensors_config = sensors_config or SensorsConfig(bev=None, camera=None)
        self.interrupt_after_resets = interrupt_after_resets
        self.resets = 0
        self.rng = np.random.default_rng(0)
        self.seed = 0
        self.driver = "clean"
        self.step_index = 0
        self.length = 1
        self.event_step: int | None = None
        self.x_m = 0.0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        """Start an episode; ``options`` may hold ``driver``."""
        self.resets += 1
        self.seed = 0 if seed is None else seed
        self.driver = (options or {}).get("driver", "clean")
        self.rng = np.random.default_rng(self.seed)
        self.length = int(self.rng.integers(20, 61))
        self.event_step = None
        if self.driver == "careless" and self.rng.random() < 0.8:
            self.event_step = int(self.rng.integers(5, self.length))
        elif self.driver == "noisy" and self.rng.random() < 0.5:
            self.event_step = int(self.rng.integers(5, self.length - 3))
        self.step_index = 0
        self.x_m = 0.0
        return self._observation(np.zeros(len(spec.EVENT_NAMES), np.float32)), self._info(None)

    def step(self, action: np.ndarray) -> tuple[dict, float, bool, bool, dict]:
        """Advance one step of ``dt_s``."""
        if self.interrupt_after_resets is not None and self.resets > self.interrupt_after_resets and self.step_index == 5:
            raise KeyboardInterrupt
        self.step_index += 1
        speed_mps = 4.0 + 4.0 * float(np.clip(action[0], 0.0, 1.0))
        progress_m = speed_mps * self.sim_config.episode.dt_s
        self.x_m += progress_m
        events = np.zeros(len(spec.EVENT_NAMES), np.float32)
        events[EVENT_PROGRESS] = progress_m
        events[EVENT_COMPLETION] = self.step_index / self.length
        termination = None
        if self.event_step is not None and self.driver == "careless" and self.step_index == self.event_step:
            events[EVENT_COLLISION] = 1.0
            termination = "collision"
        elif self.event_step is not None and self.event_step <= self.step_index < self.event_step + 3:
            events[EVENT_OFF_ROAD] = 0.8
        if termination is None and self.step_index >= self.length:
            termination = "route_done"
        truncated = termination is None and self.step_index >= self.sim_config.episode.max_steps
        reward = progress_m - 10.0 * events[EVENT_COLLISION] - 2.0 * events[EVENT_OFF_ROAD]
        return self._observation(events), float(reward), termination is not None, truncated, self._info(termination)

    def expert_action(self) -> np.ndarray:
        """A clean cruise control."""
        return spec.action_from_control(0.5, 0.0, 0.0)

    def driver_action(self) -> np.ndarray:
        """The expert plus steer noise for noisy and careless drivers."""
        action = self.expert_action()
        if self.driver != "clean":
            action[1] = np.clip(self.rng.normal(0.0, 0.3), -1.0, 1.0)
        return action

    def episode_metadata(self) -> dict[str, Any]:
        """Self-description of the current episode."""
        name = self.sim_config.map.name
        return {
            "simulator": "fake",
            "map_name": name,
            "map_hash": hashlib.sha256(name.encode()).hexdigest()[:16],
            "seed": self.seed,
            "driver": self.driver,
        }

    def close(self) -> None:
        """Nothing to release."""

    def _observation(self, events: np.ndarray) -> dict[str, np.ndarray]:
        config = self.sim_config
        obs = {
            spec.OBS_MEASUREMENTS: self.rng.normal(size=len(spec.MEASUREMENT_NAMES)).astype(np.float32),
            spec.OBS_ROUTE: self.rng.normal(size=(config.num_route_points, 2)).astype(np.float32),
            spec.OBS_WAYPOINTS: self.rng.normal(size=(config.num_waypoints, 2)).astype(np.float32),
            spec.OBS_EVENTS: events,
        }
        bev = self.sensors_config.bev
        if bev is not None:
            channels = len(spec.BEV_CHANNELS) + bev.past_vehicle_frames
            obs[spec.OBS_BEV] = self.rng.integers(0, 2, size=(channels, bev.size_px, bev.size_px), dtype=np.uint8)
        camera = self.sensors_config.camera
        if camera is not None:
            obs[spec.OBS_CAMERA] = self.rng.integers(
                0, 256, size=(camera.height_px, camera.width_px, 3), dtype=np.uint8
            )
        return obs

    def _info(self, termination: str | None) -> dict[str, Any]:
        return {
            "ego_pose": np.array([self.x_m, 0.0, 0.0, 0.0]),
            "expert_action": self.expert_action(),
            "termination": termination,
            "collision_actor": "vehicle:1" if termination == "collision" else None,
            "route_length_m": 100.0,
            "distance_m": self.x_m,
            "time_s": self.step_index * self.sim_config.episode.dt_s,
        }
