"""Shared fixtures of the viewer tests: tiny datasets (2 episodes x 30 steps, 64x64) and a debug world model."""

from __future__ import annotations

import os

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from .viewer_fixtures import write_dataset  # noqa: E402


@pytest.fixture(scope="session")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two episodes (camera + BEV) of 30 steps at 5 and 20 m/s with collisions, off-road and a lane invasion."""
    return write_dataset(tmp_path_factory.mktemp("viewer_data"))


@pytest.fixture(scope="session")
def debug_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised ``debug`` world model saved the way ``load_world_model`` reads it."""
    import torch

    from drivesim.config import load_config
    from drivesim.viewer.dream import DEBUG_PRESET
    from drivesim.world_model.config import WorldModelConfig
    from drivesim.world_model.model import WorldModel

    torch.manual_seed(0)
    config = load_config(WorldModelConfig, DEBUG_PRESET, [])
    model = WorldModel(config)
    path = tmp_path_factory.mktemp("viewer_wm") / "debug.ckpt"
    torch.save({"config": config.model_dump(mode="json"), "state_dict": model.state_dict()}, path)
    return path
