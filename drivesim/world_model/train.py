"""World model stage: the Lightning training run (trainer, data, checkpoints, loggers, image callback)."""

from __future__ import annotations

import csv
import io
import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, RichProgressBar
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.utilities import rank_zero_only

from drivesim.config import dump_yaml
from drivesim.utils import atomic_write_bytes
from drivesim.world_model.config import WorldModelConfig
from drivesim.world_model.lightning_module import WorldModelModule
from drivesim.world_model.visualize import open_loop_grid

logger = logging.getLogger(__name__)

BASE_FIELDS = ("measurements", "events", "action", "is_first", "is_last", "is_terminal")
WARMUP_WARN_SHARE = 0.25  # warn when the learning-rate warm-up takes more than this share of max_steps


def model_fields(config: WorldModelConfig) -> list[str]:
    """Episode fields the world model reads (the base fields plus its image inputs)."""
    return [*BASE_FIELDS, *config.encoder.image_keys]


class OpenLoopImages(Callback):
    """Every N steps, log a grid of real frames vs open-loop predictions from the current training batch.

    Args:
        every_steps: logging interval [steps].
        context: posterior (observed) steps before the prior rollout.
        sequences: number of sequences (rows) in the grid.
        max_horizon: longest rollout shown.
    """

    def __init__(self, every_steps: int, context: int, sequences: int = 4, max_horizon: int = 24) -> None:
        self.every_steps = every_steps
        self.context = context
        self.sequences = sequences
        self.max_horizon = max_horizon

    @rank_zero_only
    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: dict, batch_idx: int
    ) -> None:
        step = trainer.global_step
        if self.every_steps <= 0 or step % self.every_steps or not pl_module.model.image_keys:
            return
        steps = batch["action"].shape[1]
        horizon = min(self.max_horizon, steps - self.context)
        if horizon <= 0:
            return
        sub = {k: v[: self.sequences, : self.context + horizon] for k, v in batch.items()}
        was_training = pl_module.training
        pl_module.eval()
        generator = torch.Generator(device=pl_module.device).manual_seed(0)
        with torch.autocast(pl_module.device.type, enabled=False):
            imagination = pl_module.model.open_loop(sub, self.context, horizon, generator)
        pl_module.train(was_training)
        real = {k: v.float().cpu().numpy() for k, v in pl_module.model.image_targets(sub).items()}
        predicted = {k: v.float().cpu().numpy() for k, v in (imagination.images or {}).items()}
        grid = open_loop_grid(real, predicted, self.context)
        for run_logger in trainer.loggers:
            if isinstance(run_logger, TensorBoardLogger):
                run_logger.experiment.add_image("open_loop/real_vs_predicted", grid, step, dataformats="HWC")


def build_datamodule(
    config: WorldModelConfig, data_dir: str | Path, window: int | None = None
) -> pl.LightningDataModule:
    """The dataset's ``EpisodeDataModule`` configured for this model (imported lazily)."""
    from drivesim.data.dataset import EpisodeDataModule

    train = config.train
    return EpisodeDataModule(
        str(data_dir),  # the DataModule's hyper-parameters go into checkpoints: keep them plain types
        window=window or train.window_steps,
        batch_size=train.batch_size,
        num_workers=train.num_workers,
        val_fraction=train.val_fraction,
        seed=train.seed,
        oversample_events=train.oversample_events,
        fields=model_fields(config),
        random_offsets=train.random_offsets,
        oversample_road_users=train.oversample_road_users,
    )


class DatasetMismatchError(ValueError):
    """The dataset's images do not fit the world model's config; the message names both sizes."""


def check_dataset(config: WorldModelConfig, data_dir: str | Path) -> None:
    """Fail at once when the dataset's camera / BEV sizes or BEV channels differ from what the model expects.

    Reads only the first episode's ``meta.json`` (every episode of a collection shares the sensor config).

    Raises:
        FileNotFoundError: no episodes in ``data_dir``.
        DatasetMismatchError: an image key is missing or has another size, naming both sizes and the fixes.
    """
    from drivesim.data.episode import EpisodeReader, list_episodes
    from drivesim.spec import BEV_CHANNELS, OBS_CAMERA

    episodes = list_episodes(data_dir)
    if not episodes:
        raise FileNotFoundError(f"no episodes in {data_dir} (run `drivesim collect` first)")
    reader = EpisodeReader(episodes[0])
    size = config.encoder.image_size_px
    for key in config.encoder.image_keys:
        if key not in reader.fields:
            raise DatasetMismatchError(
                f"{reader.path}: no {key!r} field, but the world model reads {key} (encoder.image_keys="
                f"{list(config.encoder.image_keys)}); collect with the {key} on or set encoder.image_keys"
            )
        shape = reader.shape(key)
        if key == OBS_CAMERA:
            height, width = shape[1], shape[2]
            fix = f"sensors.camera.width_px={size} sensors.camera.height_px={size}"
        else:
            height, width = shape[2], shape[3]
            fix = f"sensors.bev.size_px={size}"
            if shape[1] != len(BEV_CHANNELS):
                raise DatasetMismatchError(
                    f"{reader.path}: the BEV has {shape[1]} channels, the world model reads {len(BEV_CHANNELS)} "
                    f"({', '.join(BEV_CHANNELS)}); collect with sensors.bev.past_vehicle_frames=0"
                )
        if (height, width) != (size, size):
            raise DatasetMismatchError(
                f"{reader.path}: {key} images are {height}x{width} px, the world model expects {size}x{size} "
                f"(encoder.image_size_px={size}); train with encoder.image_size_px={height} if the images are square "
                f"and it is a multiple of {2 ** len(config.encoder.cnn_mults)}, or collect with {fix}"
            )


def initial_batch(datamodule: pl.LightningDataModule, windows: int = 32) -> dict[str, torch.Tensor] | None:
    """Up to ``windows`` training windows spread over the training set (no workers), or None if it has none."""
    from drivesim.data.dataset import collate_windows

    datamodule.setup("fit")
    dataset = getattr(datamodule, "train_dataset", None)
    if dataset is None or len(dataset) == 0:
        return None
    indices = np.linspace(0, len(dataset) - 1, min(windows, len(dataset))).round().astype(int).tolist()
    return collate_windows(dataset.__getitems__(indices))


class _AppendingWriter(ExperimentWriter):
    """Keeps an existing ``metrics.csv``: its rows before ``resume_step`` stay, new rows are appended.

    Lightning's writer deletes the file when the folder exists; a resumed run would lose its history.
    Rows at or after the resumed step (logged after the last checkpoint by the interrupted run) are
    dropped, since the resumed run logs those steps again.
    """

    def __init__(self, log_dir: str, resume_step: int) -> None:
        self.resume_step = resume_step
        super().__init__(log_dir=log_dir)

    def _check_log_dir_exists(self) -> None:
        path = Path(self.metrics_file_path)
        if not path.is_file():
            return
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            keys = list(reader.fieldnames or [])
            rows = [row for row in reader if not row.get("step") or int(float(row["step"])) < self.resume_step]
        self.metrics_keys = sorted(keys)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=self.metrics_keys)
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_bytes(path, buffer.getvalue().encode())


class RunCSVLogger(CSVLogger):
    """``CSVLogger`` that, when resuming from ``resume_step``, appends to the run's ``metrics.csv``."""

    def __init__(self, save_dir: str, resume_step: int | None = None) -> None:
        super().__init__(save_dir, name="csv", version="")
        self.resume_step = resume_step

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            if self.resume_step is None:
                self._experiment = ExperimentWriter(log_dir=self.log_dir)
            else:
                self._experiment = _AppendingWriter(self.log_dir, self.resume_step)
        return self._experiment


def checkpoint_step(path: str | Path) -> int:
    """The global step stored in a Lightning checkpoint."""
    return int(torch.load(path, map_location="cpu", weights_only=True)["global_step"])


def build_trainer(
    out_dir: Path,
    precision: str,
    max_steps: int,
    log_every_steps: int,
    callbacks: list[Callback],
    accelerator: str = "auto",
    devices: str | int = "auto",
    max_minutes: float | None = None,
    progress_bar: bool = True,
    val_every_steps: int | None = None,
    val_batches: int = 0,
    num_nodes: int = 1,
    resume_step: int | None = None,
) -> pl.Trainer:
    """The one Lightning trainer set-up: TensorBoard + CSV loggers, optional rich progress, DDP on several devices.

    ``resume_step`` (the checkpoint's global step when resuming) keeps both logs of the run: the CSV rows
    before that step stay and new ones are appended; TensorBoard adds an event file to the same folder.
    """
    if progress_bar:
        callbacks = [*callbacks, RichProgressBar()]
    return pl.Trainer(
        accelerator=accelerator,
        devices=devices,
        num_nodes=num_nodes,
        strategy="ddp" if _multi_device(devices, num_nodes) else "auto",
        precision=precision,
        max_steps=max_steps,
        max_time=timedelta(minutes=max_minutes) if max_minutes else None,
        val_check_interval=val_every_steps,
        check_val_every_n_epoch=None if val_every_steps else 1,
        limit_val_batches=val_batches,
        log_every_n_steps=log_every_steps,
        logger=[
            TensorBoardLogger(str(out_dir), name="tensorboard", version=""),
            RunCSVLogger(str(out_dir), resume_step),
        ],
        callbacks=callbacks,
        enable_progress_bar=progress_bar,
        default_root_dir=str(out_dir),
        num_sanity_val_steps=0,
    )


def train_world_model(
    config: WorldModelConfig,
    data_dir: str | Path,
    out_dir: str | Path,
    accelerator: str = "auto",
    devices: str | int = "auto",
    num_nodes: int = 1,
    resume: bool = False,
    max_minutes: float | None = None,
    progress_bar: bool = True,
    datamodule: pl.LightningDataModule | None = None,
) -> Path:
    """Train (or resume) a world model; returns the folder holding ``checkpoints/last.ckpt``.

    Args:
        config: resolved config (written to ``out_dir/config.yaml`` and into every checkpoint).
        data_dir: dataset folder (ignored when ``datamodule`` is given).
        out_dir: run folder: checkpoints, TensorBoard and CSV logs.
        accelerator: Lightning accelerator (``cpu``, ``gpu``, ``auto``).
        devices: Lightning devices; several use DDP.
        num_nodes: nodes for multi-node DDP.
        resume: continue from ``checkpoints/last.ckpt`` (model, optimiser, schedule, loops and step count).
        max_minutes: optional wall-clock budget.
        progress_bar: show Lightning's rich progress bar.
        datamodule: use this DataModule instead of building one (tests).
    """
    if datamodule is None:  # a dataset that does not fit fails here, before anything is built or written
        check_dataset(config, data_dir)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dump_yaml(config, out_dir / "config.yaml")
    pl.seed_everything(config.train.seed, workers=True)
    train = config.train
    if config.optim.warmup_steps > WARMUP_WARN_SHARE * train.max_steps:
        logger.warning(
            "optim.warmup_steps=%d is %.0f%% of train.max_steps=%d: most of the run stays below the set "
            "learning rate; size the warm-up to the run (about 5-10%% of it)",
            config.optim.warmup_steps, 100 * config.optim.warmup_steps / train.max_steps, train.max_steps,
        )  # fmt: skip
    module = WorldModelModule(config.model_dump(mode="json"))
    checkpoints = ModelCheckpoint(
        dirpath=str(out_dir / "checkpoints"),  # plain str: checkpoints must load with weights_only=True
        filename="best-{step}",
        monitor="val/loss",
        mode="min",
        save_top_k=1,
        save_last=True,  # written after each validation, with the best one (resume point)
    )
    callbacks: list[Callback] = [checkpoints]
    if train.image_log_every_steps > 0:
        callbacks.append(OpenLoopImages(train.image_log_every_steps, train.image_log_context_steps))
    ckpt_path = None
    if resume:
        last = out_dir / "checkpoints" / "last.ckpt"
        if not last.is_file():
            raise FileNotFoundError(f"--resume: no checkpoint at {last}")
        ckpt_path = str(last)
    trainer = build_trainer(
        out_dir, train.precision, train.max_steps, train.log_every_steps, callbacks, accelerator, devices,
        max_minutes, progress_bar, train.val_every_steps, train.val_batches, num_nodes,
        checkpoint_step(ckpt_path) if ckpt_path else None,
    )
    if datamodule is None:
        datamodule = build_datamodule(config, data_dir)
    if not resume:
        sample = initial_batch(datamodule)
        if sample is not None:
            probs = module.model.init_output_biases(sample)
            logger.info("decoder output biases start at pixel means %s", [round(p, 4) for p in probs])
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    # ModelCheckpoint writes last.ckpt after each validation; also keep the steps after the last one.
    trainer.save_checkpoint(out_dir / "checkpoints" / "last.ckpt")
    return out_dir / "checkpoints"


def _multi_device(devices: str | int, num_nodes: int) -> bool:
    if num_nodes > 1:
        return True
    if isinstance(devices, int):
        return devices > 1
    if devices.isdigit():
        return int(devices) > 1
    return "," in devices or devices == "-1"
