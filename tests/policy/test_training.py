"""BC and RL runs on a tiny synthetic dataset with the debug world model: checkpoints, logs, loading."""

from __future__ import annotations

import csv
from pathlib import Path

import torch

from drivesim.policy.bc import train_bc
from drivesim.policy.config import PolicyConfig
from drivesim.policy.rl import train_rl
from drivesim.policy.runs import load_policy


def test_bc_then_rl(dataset: Path, wm_checkpoint: Path, policy_config: PolicyConfig, tmp_path: Path) -> None:
    checkpoints = train_bc(
        policy_config,
        wm_checkpoint,
        dataset,
        tmp_path / "bc",
        accelerator="cpu",
        devices=1,
        progress_bar=False,
    )
    last = checkpoints / "last.ckpt"
    payload = torch.load(last, map_location="cpu", weights_only=True)
    assert payload["global_step"] == policy_config.bc.max_steps
    loaded = load_policy(last)
    assert loaded.policy.delta is None
    columns = set(next(csv.DictReader((tmp_path / "bc" / "csv" / "metrics.csv").open())))
    assert {"train/l1", "val/ade_m", "val/fde_m"} <= columns

    rl_checkpoints = train_rl(
        policy_config, last, dataset, tmp_path / "rl", accelerator="cpu", devices=1, progress_bar=False
    )
    rl = load_policy(rl_checkpoints / "last.ckpt")
    assert rl.policy.delta is not None
    for key, value in loaded.policy.actor.state_dict().items():  # frozen BC trunk
        torch.testing.assert_close(rl.policy.actor.state_dict()[key], value)
    rows = list(csv.DictReader((tmp_path / "rl" / "csv" / "metrics.csv").open()))
    columns = set(rows[0])
    for name in (
        "imagined/return",
        "imagined/progress",
        "imagined/collision",
        "imagined/off_road",
        "actor/delta_sampled_m",
        "actor/delta_mean_m",
        "actor/entropy",
        "losses/critic",
        "losses/replay_value",
        "replay/return",
    ):
        assert f"train/{name}" in columns, name
    resumed = policy_config.model_copy(deep=True)
    resumed.rl.max_steps = policy_config.rl.max_steps + 2
    train_rl(
        resumed, last, dataset, tmp_path / "rl", accelerator="cpu", devices=1, progress_bar=False, resume=True
    )
    payload = torch.load(rl_checkpoints / "last.ckpt", map_location="cpu", weights_only=True)
    assert payload["global_step"] == resumed.rl.max_steps
    values = [float(row["train/imagined/return"]) for row in rows if row.get("train/imagined/return")]
    assert values and all(torch.isfinite(torch.tensor(values)))
