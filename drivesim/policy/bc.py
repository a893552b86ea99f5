"""Policy stage: behaviour cloning of the expert's waypoints from world-model features (Lightning).

The world model filters each real window with its posterior; the actor maps [h_t, z_t] (plus route and
speed) to K waypoints, trained with an L1 loss to ``expert_waypoints``. The world model is frozen unless
``bc.finetune_world_model`` (then its own loss is added). Validation reports ADE/FDE [m].
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import Tensor

from drivesim import spec
from drivesim.config import dump_yaml
from drivesim.policy.actor import WaypointPolicy
from drivesim.policy.config import PolicyConfig
from drivesim.policy.runs import SaveLastAtEnd, build_datamodule, resume_path
from drivesim.world_model.config import WorldModelConfig
from drivesim.world_model.model import WorldModel, load_world_model
from drivesim.world_model.optim import build_optimizer
from drivesim.world_model.train import build_trainer, checkpoint_step

logger = logging.getLogger(__name__)
SPEED = spec.MEASUREMENT_NAMES.index("speed_mps")


def waypoint_errors(predicted: Tensor, target: Tensor) -> dict[str, Tensor]:
    """L1 loss, ADE and FDE [m] of waypoints (..., K, 2) against targets of the same shape."""
    distance = torch.linalg.vector_norm(predicted - target, dim=-1)  # (..., K)
    return {
        "l1": (predicted - target).abs().mean(),
        "ade_m": distance.mean(),
        "fde_m": distance[..., -1].mean(),
    }


class BCModule(pl.LightningModule):
    """Behaviour cloning of waypoints on (optionally frozen) world-model features.

    Args:
        config: ``PolicyConfig`` as a plain dict.
        world_model_config: ``WorldModelConfig`` as a plain dict (the world model is part of the checkpoint).
    """

    def __init__(self, config: dict[str, Any], world_model_config: dict[str, Any]) -> None:
        super().__init__()
        self.save_hyperparameters({"config": config, "world_model_config": world_model_config})
        self.config = PolicyConfig.model_validate(config)
        self.world_model = WorldModel(WorldModelConfig.model_validate(world_model_config))
        self.finetune = self.config.bc.finetune_world_model
        self.world_model.requires_grad_(self.finetune)
        self.policy = WaypointPolicy(self.world_model.feature_size, self.config.inputs, self.config.actor)

    def waypoints(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """Predicted waypoints (B, T, K, 2) for a batch and the world-model loss terms (when fine-tuning)."""
        wm_metrics: dict[str, Tensor] = {}
        if self.finetune:
            wm_loss, wm_metrics, posterior = self.world_model.loss(batch)
            wm_metrics = {**wm_metrics, "wm_loss": wm_loss}
        else:
            with torch.no_grad():
                posterior, _, _ = self.world_model.observe(batch)
        features = self.world_model.features(posterior)
        inputs = self.policy.inputs(features, batch["route"], batch["measurements"][..., SPEED])
        return self.policy.bc_waypoints(inputs), wm_metrics

    def _common_step(self, batch: dict[str, Tensor], stage: str) -> Tensor:
        predicted, wm_metrics = self.waypoints(batch)
        burn_in = min(self.config.bc.burn_in_steps, predicted.shape[1] - 1)
        errors = waypoint_errors(predicted[:, burn_in:], batch["expert_waypoints"][:, burn_in:].float())
        loss = errors["l1"]
        if "wm_loss" in wm_metrics:
            loss = loss + self.config.bc.world_model_loss_scale * wm_metrics["wm_loss"]
        on_step = stage == "train"
        metrics = {f"{stage}/{name}": value for name, value in {**errors, **wm_metrics}.items()}
        self.log(
            f"{stage}/loss",
            loss,
            prog_bar=True,
            on_step=on_step,
            on_epoch=not on_step,
            batch_size=predicted.shape[0],
        )
        self.log_dict(metrics, on_step=on_step, on_epoch=not on_step, batch_size=predicted.shape[0])
        return loss

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        return self._common_step(batch, "train")

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        return self._common_step(batch, "val")

    def configure_optimizers(self) -> dict[str, Any]:
        params = [p for p in self.parameters() if p.requires_grad]
        optimizer, scheduler = build_optimizer(params, self.config.bc.optim)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def train_bc(
    config: PolicyConfig,
    world_model_path: str | Path,
    data_dir: str | Path,
    out_dir: str | Path,
    accelerator: str = "auto",
    devices: str | int = "auto",
    max_minutes: float | None = None,
    progress_bar: bool = True,
    resume: bool = False,
) -> Path:
    """Train the BC actor; returns the checkpoint folder (``last.ckpt`` and ``best-*.ckpt`` by val ADE).

    ``resume`` continues from ``out_dir/checkpoints/last.ckpt`` (weights, optimiser, step count).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dump_yaml(config, out_dir / "config.yaml")
    bc = config.bc
    pl.seed_everything(bc.seed, workers=True)
    world_model, wm_config = load_world_model(world_model_path)
    module = BCModule(config.model_dump(mode="json"), wm_config.model_dump(mode="json"))
    module.world_model.load_state_dict(world_model.state_dict())
    checkpoints = ModelCheckpoint(
        dirpath=str(out_dir / "checkpoints"),
        filename="best-{step}",
        monitor="val/ade_m",
        mode="min",
        save_top_k=1,
        save_last=True,
    )
    datamodule = build_datamodule(
        wm_config, data_dir, bc.window_steps, bc.batch_size, bc.num_workers, bc.val_fraction, bc.seed
    )
    ckpt_path = resume_path(out_dir, resume)
    trainer = build_trainer(
        out_dir,
        bc.precision,
        bc.max_steps,
        bc.log_every_steps,
        [checkpoints, SaveLastAtEnd(checkpoints)],
        accelerator,
        devices,
        max_minutes,
        progress_bar,
        val_every_steps=bc.val_every_steps,
        val_batches=bc.val_batches,
        resume_step=checkpoint_step(ckpt_path) if ckpt_path else None,
    )
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    scores = {k: float(v) for k, v in trainer.callback_metrics.items() if k in ("val/ade_m", "val/fde_m")}
    logger.info(
        "BC validation: %s", ", ".join(f"{k}={v:.3f}" for k, v in scores.items()) or "no validation run"
    )
    return out_dir / "checkpoints"
