"""Slow learning check: BC learns waypoints that are a function of its route input (debug world model)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from drivesim.data.episode import write_episode
from drivesim.data.synthetic import synthetic_steps
from drivesim.policy.bc import train_bc
from drivesim.policy.config import PolicyConfig


@pytest.mark.slow
def test_bc_learns_route_following_waypoints(
    wm_checkpoint: Path, policy_config: PolicyConfig, tmp_path: Path
) -> None:
    rng = np.random.default_rng(0)
    data_dir = tmp_path / "data"
    for index in range(8):
        steps = synthetic_steps(40, rng, camera_size=32, bev_size=32)
        steps["expert_waypoints"] = 0.5 * steps["route"][:, :8]  # learnable from the route input alone
        write_episode(
            data_dir, index, steps, {"simulator": "synthetic", "map_name": "none", "seed": 0, "dt_s": 0.05}
        )
    config = policy_config.model_copy(deep=True)
    config.actor.units, config.actor.layers = 128, 2
    config.bc.max_steps, config.bc.val_every_steps, config.bc.val_batches = 300, 100, 4
    config.bc.batch_size, config.bc.val_fraction = 8, 0.25
    config.bc.optim.lr = 3e-3
    train_bc(
        config, wm_checkpoint, data_dir, tmp_path / "bc", accelerator="cpu", devices=1, progress_bar=False
    )
    rows = list(csv.DictReader((tmp_path / "bc" / "csv" / "metrics.csv").open()))
    ade = [float(row["val/ade_m"]) for row in rows if row.get("val/ade_m")]
    baseline = float(np.linalg.norm(0.5 * rng.normal(size=(10000, 2)), axis=-1).mean())  # predicting zeros
    assert len(ade) == 3 and ade[-1] < 0.5 * baseline, (ade, baseline)
