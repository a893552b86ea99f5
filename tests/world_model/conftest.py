"""Shared helpers of the world-model tests: configs and synthetic batches in the dataset's format."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from drivesim import spec
from drivesim.config import load_config
from drivesim.world_model.config import WorldModelConfig

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs" / "world_model"


def load_preset(name: str, *overrides: str) -> WorldModelConfig:
    """A preset from configs/world_model with optional key=value overrides."""
    return load_config(WorldModelConfig, CONFIG_DIR / f"{name}.yaml", list(overrides))


def make_synthetic_batch(
    batch_size: int, steps: int, image_size: int = 32, seed: int = 0, collisions: bool = False
) -> dict[str, torch.Tensor]:
    """A random (B, T) batch with every field of the data contract (docs/ARCHITECTURE.md)."""
    generator = torch.Generator().manual_seed(seed)
    shape = (batch_size, steps)
    batch = {
        "camera": torch.randint(
            0, 256, (*shape, image_size, image_size, 3), generator=generator, dtype=torch.uint8
        ),
        "bev": torch.randint(
            0, 2, (*shape, len(spec.BEV_CHANNELS), image_size, image_size), generator=generator, dtype=torch.uint8
        ),
        "measurements": torch.randn(*shape, 6, generator=generator),
        "events": torch.zeros(*shape, 5),
        "action": torch.rand(*shape, 3, generator=generator),
        "reward": torch.randn(*shape, generator=generator),
        "is_first": torch.zeros(shape, dtype=torch.bool),
        "is_last": torch.zeros(shape, dtype=torch.bool),
        "is_terminal": torch.zeros(shape, dtype=torch.bool),
        "route": torch.randn(*shape, 16, 2, generator=generator),
        "expert_waypoints": torch.randn(*shape, 8, 2, generator=generator),
        "ego_pose": torch.randn(*shape, 4, generator=generator, dtype=torch.float64),
    }
    batch["is_first"][:, 0] = True
    batch["events"][..., 3] = torch.rand(shape, generator=generator)
    if collisions:
        batch["events"][:, -1, 0] = 1.0
        batch["is_last"][:, -1] = True
        batch["is_terminal"][:, -1] = True
    return batch


@pytest.fixture(autouse=True)
def single_thread():
    """One torch thread: the tiny test models are overhead-bound, and 2 threads thrash on a shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def debug_config() -> WorldModelConfig:
    return load_preset("debug")


@pytest.fixture
def synthetic_batch() -> Callable[..., dict[str, torch.Tensor]]:
    return make_synthetic_batch


@pytest.fixture
def preset() -> Callable[..., WorldModelConfig]:
    """``preset(name, *overrides)`` loads a world-model preset."""
    return load_preset
