"""DDP on CPU (gloo): 2 processes on one machine, and a 2-node launch simulated with NODE_RANK 0/1.

Both must follow the loss trajectory of 1 process at the doubled batch (each DDP process draws its own
windows, so the curves agree within the sampling noise, not exactly). Slow: each run starts 2 Python processes.
"""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from drivesim.data.synthetic import write_synthetic_dataset

pytestmark = pytest.mark.slow

STEPS = 30
OVERRIDES = [
    f"train.max_steps={STEPS}",
    "train.val_every_steps=1000",
    "train.val_batches=1",
    "train.log_every_steps=1",
    "train.image_log_every_steps=0",
    "train.window_steps=12",
    # Random pixels are noise the model cannot learn: without the image terms the loss falls within 30 steps.
    "loss.camera=0.0",
    "loss.bev=0.0",
]
ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _command(data: Path, out: Path, batch: int, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "drivesim.cli.main", "train-wm", "--data", str(data), "--out", str(out),
        "--config", str(ROOT / "configs/world_model/debug.yaml"), "--accelerator", "cpu", "--no-progress",
        *extra, *OVERRIDES, f"train.batch_size={batch}",
    ]  # fmt: skip


def _env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **extra}
    env.pop("LOCAL_RANK", None)
    return env


def losses(out: Path) -> np.ndarray:
    """train/loss per step (steps 0..STEPS-1) from the run's metrics.csv."""
    rows = csv.DictReader((out / "csv" / "metrics.csv").open())
    by_step = {int(row["step"]): float(row["train/loss"]) for row in rows if row.get("train/loss")}
    assert sorted(by_step) == list(range(STEPS)), sorted(by_step)
    return np.array([by_step[step] for step in range(STEPS)])


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("ddp_data")
    write_synthetic_dataset(
        data_dir, episodes=12, length=60, seed=0, camera_size=32, bev_size=32, event_probability=0.1
    )
    return data_dir


@pytest.fixture(scope="module")
def single(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    out = tmp_path_factory.mktemp("single")
    subprocess.run(_command(dataset, out, 8, "--devices", "1"), check=True, env=_env(), timeout=600)
    return losses(out)


def _assert_same_trajectory(ddp: np.ndarray, single: np.ndarray) -> None:
    relative = np.abs(ddp - single) / single
    print(f"loss {single[0]:.1f} -> {single[-1]:.1f}; DDP vs 1 process: max {relative.max():.4f}, mean {relative.mean():.4f}")
    assert single[-1] < 0.9 * single[0], "the run did not learn: the comparison would be vacuous"
    assert relative.mean() < 0.02 and relative.max() < 0.05


def test_two_processes_follow_one_process_at_the_doubled_batch(dataset: Path, single: np.ndarray, tmp_path: Path) -> None:
    command = _command(dataset, tmp_path, 4, "--devices", "2")
    subprocess.run(command, check=True, env=_env(MASTER_PORT=str(_free_port())), timeout=600)
    _assert_same_trajectory(losses(tmp_path), single)


def test_two_node_launch_follows_one_process(dataset: Path, single: np.ndarray, tmp_path: Path) -> None:
    """The README's multi-node recipe: the same command on each node with MASTER_ADDR, NODE_RANK set."""
    port = str(_free_port())
    command = _command(dataset, tmp_path, 4, "--devices", "1", "--num-nodes", "2")
    nodes = [
        subprocess.Popen(
            command,
            env=_env(MASTER_ADDR="127.0.0.1", MASTER_PORT=port, NODE_RANK=str(rank), WORLD_SIZE="2"),
        )
        for rank in (0, 1)
    ]
    assert [node.wait(timeout=600) for node in nodes] == [0, 0]
    _assert_same_trajectory(losses(tmp_path), single)
