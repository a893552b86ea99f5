"""Shared fixtures of the policy tests: a tiny random world model (``debug`` preset) and a synthetic dataset."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from drivesim.config import load_config
from drivesim.data.synthetic import write_synthetic_dataset
from drivesim.policy.config import PolicyConfig
from drivesim.world_model.config import WorldModelConfig
from drivesim.world_model.model import WorldModel

REPO = Path(__file__).resolve().parents[2]
WM_DEBUG = REPO / "configs" / "world_model" / "debug.yaml"
POLICY_DEBUG = REPO / "configs" / "policy" / "debug.yaml"


@pytest.fixture(scope="session")
def wm_config() -> WorldModelConfig:
    return load_config(WorldModelConfig, WM_DEBUG)


@pytest.fixture(scope="session")
def world_model(wm_config: WorldModelConfig) -> WorldModel:
    torch.manual_seed(0)
    return WorldModel(wm_config).eval()


@pytest.fixture(scope="session")
def policy_config() -> PolicyConfig:
    return load_config(PolicyConfig, POLICY_DEBUG)


@pytest.fixture(scope="session")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("policy_data")
    write_synthetic_dataset(
        data_dir, episodes=5, length=24, seed=0, camera_size=32, bev_size=32, event_probability=0.1
    )
    return data_dir


@pytest.fixture(scope="session")
def wm_checkpoint(
    tmp_path_factory: pytest.TempPathFactory, world_model: WorldModel, wm_config: WorldModelConfig
) -> Path:
    """The random debug world model saved as a ``{"config", "state_dict"}`` file (load_world_model reads it)."""
    path = tmp_path_factory.mktemp("wm") / "wm.ckpt"
    torch.save({"config": wm_config.model_dump(mode="json"), "state_dict": world_model.state_dict()}, path)
    return path


@pytest.fixture(autouse=True)
def single_thread():
    """Tiny models run fastest on one thread (and do not fight parallel test workers for the cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
