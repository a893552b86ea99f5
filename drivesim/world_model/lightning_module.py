"""World model stage: the LightningModule that trains a ``WorldModel`` (thin: the model computes the losses)."""

from __future__ import annotations

import time
from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor

from drivesim.world_model.config import WorldModelConfig
from drivesim.world_model.model import WorldModel
from drivesim.world_model.optim import build_optimizer


class NonFiniteLossError(FloatingPointError):
    """A loss term became NaN or Inf; the message names the step and the terms."""


def check_finite(loss: Tensor, metrics: dict[str, Tensor], step: int, stage: str) -> None:
    """Raise ``NonFiniteLossError`` naming the step and every non-finite term when ``loss`` is not finite."""
    if bool(torch.isfinite(loss)):
        return
    bad = {name: float(value) for name, value in metrics.items() if not bool(torch.isfinite(value))}
    raise NonFiniteLossError(
        f"{stage} loss is {float(loss)} at step {step}; non-finite terms: {bad or 'none (overflow in the sum)'}. "
        "Try precision=32-true, a lower optim.lr or a longer optim.warmup_steps."
    )


class WorldModelModule(pl.LightningModule):
    """Trains the world model; hyper-parameters hold only ``config`` as a plain dict (``weights_only`` loading).

    Args:
        config: a ``WorldModelConfig`` as a plain dict (``config.model_dump(mode="json")``).
    """

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.save_hyperparameters({"config": config})
        self.config = WorldModelConfig.model_validate(config)
        self.model = WorldModel(self.config)
        self._last_batch_end_s: float | None = None

    def on_fit_start(self) -> None:
        """Compile once the module is on its device (CUDA graphs on a GPU); see ``WorldModel.compile_modules``."""
        train = self.config.train
        if train.compile and not self.model.rssm.compiled:
            self.model.compile_modules(cnns=train.compile_cnns, device=self.device)

    def _common_step(self, batch: dict[str, Tensor], stage: str) -> Tensor:
        loss, metrics, _ = self.model.loss(batch)
        check_finite(loss, metrics, self.global_step, stage)
        batch_size = batch["action"].shape[0]
        on_step = stage == "train"
        # The loss is averaged over processes also per step (one scalar all-reduce): under DDP the logged
        # curve is that of the global batch, comparable to one process at the summed batch size.
        self.log(
            f"{stage}/loss",
            loss,
            prog_bar=True,
            on_step=on_step,
            on_epoch=not on_step,
            batch_size=batch_size,
            sync_dist=True,
        )
        self.log_dict(
            {f"{stage}/{name}": value for name, value in metrics.items()},
            on_step=on_step,
            on_epoch=not on_step,
            batch_size=batch_size,
            sync_dist=not on_step,
        )
        return loss

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        return self._common_step(batch, "train")

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        return self._common_step(batch, "val")

    def on_train_batch_end(self, outputs: Any, batch: dict[str, Tensor], batch_idx: int) -> None:
        """Log throughput from the wall-clock time between consecutive steps (data loading included)."""
        now = time.perf_counter()
        last, self._last_batch_end_s = self._last_batch_end_s, now
        if last is None:
            return
        elapsed = max(now - last, 1e-9)
        frames = batch["action"].shape[0] * batch["action"].shape[1] * self.trainer.world_size
        self.log("train/frames_per_s", frames / elapsed, prog_bar=True, on_step=True, batch_size=1)
        self.log("train/steps_per_s", 1.0 / elapsed, on_step=True, batch_size=1)

    def on_validation_end(self) -> None:
        self._last_batch_end_s = None  # do not count validation time as a slow training step

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.global_step % self.trainer.log_every_n_steps:
            return
        grads = [p.grad for p in self.parameters() if p.grad is not None]
        if grads:
            norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
            self.log("train/grad_norm", norm, on_step=True, batch_size=1)
        self.log("train/lr", optimizer.param_groups[0]["lr"], on_step=True, batch_size=1)

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer, scheduler = build_optimizer(self.parameters(), self.config.optim)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
