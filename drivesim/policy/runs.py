"""Policy stage: checkpoints (self-contained: world model + policy) and the Lightning trainer of BC and RL runs.

A policy checkpoint is a Lightning checkpoint whose ``hyper_parameters`` hold two plain dicts, ``config``
(``PolicyConfig``) and ``world_model_config``, and whose ``state_dict`` holds ``world_model.*`` and
``policy.*`` (plus ``critic.*`` etc. for RL runs), so ``torch.load(..., weights_only=True)`` reads it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from drivesim.policy.actor import WaypointPolicy
from drivesim.policy.config import PolicyConfig
from drivesim.world_model.config import WorldModelConfig
from drivesim.world_model.model import WorldModel

logger = logging.getLogger(__name__)
POLICY_FIELDS = ("route", "expert_waypoints")


@dataclass
class LoadedPolicy:
    """A policy checkpoint's parts, in eval mode."""

    world_model: WorldModel
    policy: WaypointPolicy
    config: PolicyConfig
    state_dict: dict[str, torch.Tensor]


def sub_state_dict(state_dict: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Entries under ``prefix`` with the prefix removed."""
    return {key[len(prefix) :]: value for key, value in state_dict.items() if key.startswith(prefix)}


def migrate_config(config: dict, source: str | Path = "") -> dict:
    """A policy config dict of an older checkpoint in today's form.

    Checkpoints from before decisions every N steps decided every step (``decision_every_steps`` = 1 keeps them
    driving as trained); their ``delta.max_delta_m`` (one bound for every waypoint) is dropped for today's
    time-scaled bounds, with a warning (a BC checkpoint has no delta head, so nothing changes for it).
    """
    config = {key: dict(value) if isinstance(value, dict) else value for key, value in config.items()}
    imagination = config.setdefault("imagination", {})
    imagination.setdefault("decision_every_steps", 1)
    delta = config.get("delta") or {}
    if "max_delta_m" in delta:
        delta.pop("max_delta_m")
        for key in ("min_std", "init_std", "max_std"):
            delta.pop(key, None)
        logger.warning("%s: an older policy config (delta.max_delta_m); its delta head gets today's bounds", source)
    return config


def load_policy(path: str | Path, map_location: str | torch.device = "cpu") -> LoadedPolicy:
    """Load a BC or RL checkpoint (weights only); the delta head is built when the checkpoint has one."""
    payload = torch.load(path, map_location=map_location, weights_only=True)
    hyper = payload.get("hyper_parameters", {})
    if "world_model_config" not in hyper:
        raise ValueError(f"{path}: not a policy checkpoint (no world_model_config in its hyper-parameters)")
    config = PolicyConfig.model_validate(migrate_config(hyper["config"], path))
    world_model = WorldModel(WorldModelConfig.model_validate(hyper["world_model_config"]))
    state = payload["state_dict"]
    world_model.load_state_dict(sub_state_dict(state, "world_model."))
    policy_state = sub_state_dict(state, "policy.")
    has_delta = any(key.startswith("delta.") for key in policy_state)
    policy = WaypointPolicy(
        world_model.feature_size, config.inputs, config.actor, config.delta if has_delta else None
    )
    policy.load_state_dict(policy_state)
    return LoadedPolicy(world_model.eval(), policy.eval(), config, state)


class SaveLastAtEnd(Callback):
    """Write ``last.ckpt`` when training ends (``ModelCheckpoint`` saves it only at its intervals)."""

    def __init__(self, checkpoints: ModelCheckpoint) -> None:
        self.checkpoints = checkpoints

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.checkpoints.dirpath is not None:
            trainer.save_checkpoint(str(Path(self.checkpoints.dirpath) / "last.ckpt"))


def resume_path(out_dir: Path, resume: bool) -> str | None:
    """``out_dir/checkpoints/last.ckpt`` when resuming (it must exist), else None."""
    if not resume:
        return None
    last = out_dir / "checkpoints" / "last.ckpt"
    if not last.is_file():
        raise FileNotFoundError(f"--resume: no checkpoint at {last}")
    return str(last)


def build_datamodule(
    wm_config: WorldModelConfig,
    data_dir: str | Path,
    window: int,
    batch_size: int,
    num_workers: int,
    val_fraction: float,
    seed: int,
) -> pl.LightningDataModule:
    """Windows with the world model's fields plus ``route`` and ``expert_waypoints``."""
    from drivesim.data.dataset import EpisodeDataModule
    from drivesim.world_model.train import model_fields

    return EpisodeDataModule(
        str(data_dir),
        window=window,
        batch_size=batch_size,
        num_workers=num_workers,
        val_fraction=val_fraction,
        seed=seed,
        fields=[*model_fields(wm_config), *POLICY_FIELDS],
    )
