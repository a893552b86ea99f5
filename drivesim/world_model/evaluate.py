"""World model stage: open-loop evaluation on held-out episodes against simple baselines.

After ``context`` observed steps the prior is rolled forward with the recorded controls. Reported per horizon
(10, 20, 40 steps = 0.5, 1, 2 s at 20 Hz): image MSE/PSNR vs copy-last-frame, BEV vehicle IoU vs constant
position, progress MAE; and collision / off-road "within the next 1 s" AUROC/AP vs a speed-only score.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from drivesim.spec import BEV_CHANNELS
from drivesim.world_model.bench import autocast_context
from drivesim.world_model.losses import EVENT_COLLISION, EVENT_OFF_ROAD, EVENT_PROGRESS, MEASUREMENT_SPEED
from drivesim.world_model.metrics import auroc, average_precision, psnr
from drivesim.world_model.model import WorldModel
from drivesim.world_model.visualize import frames_to_rgb

logger = logging.getLogger(__name__)

HORIZONS_STEPS = (10, 20, 40)
EVENT_WINDOW_STEPS = 20  # "within the next 1 s" at 20 Hz
VEHICLES = BEV_CHANNELS.index("vehicles")


class _Accumulator:
    """Sums per-step statistics over batches (arrays indexed by imagined step)."""

    def __init__(self) -> None:
        self.sums: dict[str, np.ndarray] = {}
        self.lists: dict[str, list[np.ndarray]] = defaultdict(list)
        self.count = 0

    def add(self, name: str, value: np.ndarray) -> None:
        self.sums[name] = self.sums.get(name, 0) + value

    def extend(self, name: str, values: np.ndarray) -> None:
        self.lists[name].append(values)

    def stacked(self, name: str) -> np.ndarray:
        return np.concatenate(self.lists[name]) if self.lists[name] else np.zeros(0)


def _batch_statistics(
    model: WorldModel,
    batch: dict[str, Tensor],
    context: int,
    horizon: int,
    acc: _Accumulator,
    threshold: float,
) -> dict[str, np.ndarray]:
    generator = torch.Generator(device=batch["action"].device).manual_seed(0)
    imagination = model.open_loop(batch, context, horizon, generator=generator)
    future = slice(context, context + horizon)
    real = {k: v[:, future].float().cpu().numpy() for k, v in model.image_targets(batch).items()}
    last = {
        k: v[:, context - 1 : context].float().cpu().numpy() for k, v in model.image_targets(batch).items()
    }
    predicted = {k: v.float().cpu().numpy() for k, v in (imagination.images or {}).items()}
    acc.count += batch["action"].shape[0]
    if "camera" in real:
        acc.add("camera_mse", ((predicted["camera"] - real["camera"]) ** 2).mean((2, 3, 4)).sum(0))
        acc.add("camera_mse_copy_last", ((last["camera"] - real["camera"]) ** 2).mean((2, 3, 4)).sum(0))
    if "bev" in real:
        truth = real["bev"][:, :, VEHICLES] > 0.5
        for name, guess in (
            ("model", predicted["bev"][:, :, VEHICLES] > 0.5),
            ("const", last["bev"][:, :, VEHICLES] > 0.5),
        ):
            guess = np.broadcast_to(guess, truth.shape)
            acc.add(f"iou_inter_{name}", np.logical_and(guess, truth).sum((0, 2, 3)).astype(np.float64))
            acc.add(f"iou_union_{name}", np.logical_or(guess, truth).sum((0, 2, 3)).astype(np.float64))
    events = batch["events"][:, future].float().cpu().numpy()
    progress_true = np.cumsum(events[..., EVENT_PROGRESS], 1)
    progress_pred = np.cumsum(imagination.components["progress"].float().cpu().numpy(), 1)
    acc.add("progress_abs_error", np.abs(progress_pred - progress_true).sum(0))
    window = min(EVENT_WINDOW_STEPS, horizon)
    speed = batch["measurements"][:, context - 1, MEASUREMENT_SPEED].float().cpu().numpy()
    for name, index, probability in (
        ("collision", EVENT_COLLISION, imagination.components["collision"]),
        ("off_road", EVENT_OFF_ROAD, imagination.components["off_road"]),
    ):
        flags = events[:, :window, index] >= (0.5 if name == "collision" else threshold)
        p = probability[:, :window].float().cpu().numpy()
        acc.extend(f"{name}_label", flags.any(1))
        acc.extend(f"{name}_score", 1.0 - np.prod(1.0 - p, axis=1))
        acc.extend(f"{name}_speed_score", speed)
    return {"real": real, "predicted": predicted}


def _summary(acc: _Accumulator, horizon: int, has: set[str]) -> dict[str, Any]:
    report: dict[str, Any] = {"sequences": acc.count, "horizons": {}}
    for steps in (s for s in HORIZONS_STEPS if s <= horizon):
        index = steps - 1
        entry: dict[str, float] = {"seconds": steps * 0.05}
        if "camera" in has:
            mse = acc.sums["camera_mse"][index] / acc.count
            base = acc.sums["camera_mse_copy_last"][index] / acc.count
            entry.update(
                camera_mse=mse,
                camera_psnr=float(psnr(mse)),
                copy_last_mse=base,
                copy_last_psnr=float(psnr(base)),
            )
        if "bev" in has:
            for name, label in (("model", "bev_vehicle_iou"), ("const", "const_position_iou")):
                union = acc.sums[f"iou_union_{name}"][index]
                entry[label] = float(acc.sums[f"iou_inter_{name}"][index] / union) if union else 1.0
        entry["progress_mae_m"] = float(acc.sums["progress_abs_error"][index] / acc.count)
        report["horizons"][str(steps)] = {k: float(v) for k, v in entry.items()}
    for name in ("collision", "off_road"):
        labels = acc.stacked(f"{name}_label")
        report[f"{name}_within_1s"] = {
            "positives": int(labels.sum()),
            "count": int(labels.size),
            "auroc": auroc(labels, acc.stacked(f"{name}_score")),
            "ap": average_precision(labels, acc.stacked(f"{name}_score")),
            "speed_baseline_auroc": auroc(labels, acc.stacked(f"{name}_speed_score")),
            "speed_baseline_ap": average_precision(labels, acc.stacked(f"{name}_speed_score")),
        }
    curves = {k: (v / acc.count).tolist() for k, v in acc.sums.items() if k.startswith("camera_mse")}
    report["curves"] = curves
    return report


def _plot(report: dict[str, Any], acc: _Accumulator, out_dir: Path) -> list[Path]:
    from matplotlib.figure import Figure  # no pyplot: writing files must not switch the caller's backend

    paths = []
    if "camera_mse" in acc.sums:
        fig = Figure(figsize=(5, 3.5))
        ax = fig.subplots()
        steps = np.arange(1, len(acc.sums["camera_mse"]) + 1) * 0.05
        ax.plot(steps, acc.sums["camera_mse"] / acc.count, label="world model")
        ax.plot(steps, acc.sums["camera_mse_copy_last"] / acc.count, label="copy last frame", linestyle="--")
        ax.set(xlabel="prediction horizon [s]", ylabel="camera MSE", title="Open-loop camera prediction")
        ax.legend()
        fig.tight_layout()
        paths.append(out_dir / "camera_mse.png")
        fig.savefig(paths[-1], dpi=100)
    if "iou_union_model" in acc.sums:
        fig = Figure(figsize=(5, 3.5))
        ax = fig.subplots()
        steps = np.arange(1, len(acc.sums["iou_union_model"]) + 1) * 0.05
        for name, label in (("model", "world model"), ("const", "constant position")):
            ax.plot(
                steps,
                acc.sums[f"iou_inter_{name}"] / np.maximum(acc.sums[f"iou_union_{name}"], 1),
                label=label,
            )
        ax.set(xlabel="prediction horizon [s]", ylabel="vehicle IoU", title="Open-loop BEV vehicles")
        ax.legend()
        fig.tight_layout()
        paths.append(out_dir / "bev_vehicle_iou.png")
        fig.savefig(paths[-1], dpi=100)
    return paths


def _write_gif(sample: dict[str, dict[str, np.ndarray]], path: Path, sequences: int = 4) -> None:
    import imageio.v2 as imageio

    real = frames_to_rgb({k: v[:sequences] for k, v in sample["real"].items()})  # (N, H, h, w, 3)
    predicted = frames_to_rgb({k: v[:sequences] for k, v in sample["predicted"].items()})
    pairs = np.concatenate([real, predicted], axis=-3)  # real above predicted
    frames = np.concatenate(list(pairs), axis=-2)  # sequences side by side: (H, 2h, N*w, 3)
    frames = frames.repeat(2, axis=1).repeat(2, axis=2)
    imageio.mimsave(path, list(frames), duration=0.05, loop=0)


def heldout_loader(
    data_dir: str | Path,
    fields: list[str],
    window: int,
    batch_size: int,
    val_fraction: float,
    seed: int,
    all_episodes: bool = False,
    stride: int | None = None,
) -> torch.utils.data.DataLoader:
    """Windows of the episodes held out by the training split (same fraction and seed), in order.

    Windows start every ``stride`` steps (default: the window length). Overlapping windows (e.g. every
    10 steps) put the end of the context within 1 s before events, which the event AUROC needs. Falls back
    to every episode when ``all_episodes`` is set or the split holds out none.
    """
    from drivesim.data.dataset import WindowDataset, collate_windows, split_episodes
    from drivesim.data.episode import list_episodes

    episodes = list_episodes(data_dir)
    if not episodes:
        raise FileNotFoundError(f"no episodes in {data_dir}")
    _, held_out = split_episodes(episodes, val_fraction, seed) if val_fraction > 0 else ([], [])
    if all_episodes or not held_out:
        if not all_episodes:
            logger.warning(
                "no held-out episodes in %s; evaluating on all %d episodes", data_dir, len(episodes)
            )
        held_out = episodes
    dataset = WindowDataset(held_out, window, fields, stride=stride)
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_windows
    )


def evaluate_open_loop(
    model: WorldModel,
    batches: Iterable[dict[str, Tensor]],
    context: int,
    horizon: int,
    out_dir: str | Path,
    max_batches: int | None = None,
    device: str = "cpu",
    precision: str = "bf16-mixed",
) -> dict[str, Any]:
    """Evaluate open-loop predictions and write ``report.json``, PNG plots and ``sample.gif`` into ``out_dir``.

    Args:
        model: world model (put in eval mode here).
        batches: held-out windows of at least ``context + horizon`` steps.
        context: observed steps before the rollout.
        horizon: imagined steps.
        out_dir: output folder.
        max_batches: stop after this many batches.
        device: torch device.
        precision: autocast precision (``bf16-mixed`` or ``32-true``).

    Returns:
        The report dict (also in ``report.json``).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch_device = torch.device(device)
    model = model.to(torch_device).eval()
    acc = _Accumulator()
    sample = None
    threshold = model.config.heads.off_road_threshold
    with torch.no_grad(), autocast_context(torch_device, precision):
        for index, batch in enumerate(batches):
            if max_batches is not None and index >= max_batches:
                break
            batch = {k: v.to(torch_device) for k, v in batch.items() if isinstance(v, Tensor)}
            stats = _batch_statistics(model, batch, context, horizon, acc, threshold)
            sample = sample or stats
    if acc.count == 0:
        raise ValueError(f"no evaluation windows of {context + horizon} steps")
    report = _summary(acc, horizon, set(model.image_keys))
    report.update(context=context, horizon=horizon, plots=[p.name for p in _plot(report, acc, out_dir)])
    if sample is not None and sample["predicted"]:
        _write_gif(sample, out_dir / "sample.gif")
        report["gif"] = "sample.gif"
    (out_dir / "report.json").write_text(json.dumps(report, indent=2, allow_nan=True))
    logger.info("wrote %s", out_dir / "report.json")
    return report
