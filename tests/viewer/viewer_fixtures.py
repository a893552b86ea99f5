"""Builders of the viewer tests' tiny datasets (2 episodes x 30 steps, 64x64), shared by conftest and tests."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from drivesim import spec
from drivesim.data.episode import write_episode
from drivesim.data.synthetic import synthetic_steps

LENGTH = 30
SIZE_PX = 64
CAMERA_RGB = (200, 40, 30)
# Episode index -> (speed [m/s], {event: steps}).
EPISODES = {
    0: (5.0, {"collision": [10, 20], "off_road": [15]}),
    1: (20.0, {"collision": [5], "lane_invasion": [8]}),
}


def make_steps(speed_mps: float, events: dict[str, Sequence[int]], sensors: Sequence[str] = ("camera", "bev"),
               length: int = LENGTH, seed: int = 0) -> dict[str, np.ndarray]:
    """Episode arrays with a constant speed, chosen event steps, a flat red camera and an all-road BEV."""
    steps = synthetic_steps(length, np.random.default_rng(seed), SIZE_PX if "camera" in sensors else None,
                            SIZE_PX if "bev" in sensors else None)
    steps["measurements"][:, spec.MEASUREMENT_NAMES.index("speed_mps")] = speed_mps
    steps["events"][:, :3] = 0.0
    for name, event_steps in events.items():
        steps["events"][list(event_steps), spec.EVENT_NAMES.index(name)] = 1.0
    if "camera" in sensors:
        steps["camera"][:] = CAMERA_RGB
    if "bev" in sensors:
        steps["bev"][:] = 0
        steps["bev"][:, spec.BEV_CHANNELS.index("drivable")] = 1
    return steps


def write_dataset(path: Path, sensors: Sequence[str] = ("camera", "bev")) -> Path:
    for index, (speed_mps, events) in EPISODES.items():
        metadata = {"simulator": "synthetic", "driver": "clean", "dt_s": 0.05}
        write_episode(path, index, make_steps(speed_mps, events, sensors, seed=index), metadata)
    return path
