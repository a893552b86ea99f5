"""World model stage: open-loop evaluation on held-out episodes against simple baselines.

For each window the model observes ``context`` steps; then, per horizon h (10 / 20 / 40 / 80 steps = 0.5 / 1 /
2 / 4 s at 20 Hz), the frame of row ``context - 1 + h`` is compared with:

- the **posterior reconstruction** (the whole window observed, latent mode): can the model encode it?
- the **prior rollout** with the recorded controls, from the latent **mode** and from **samples**: can it
  predict it?
- baselines: copy-last frame (camera), constant position and constant velocity (BEV).

Events within 1 s after the context (collision, off-road) are scored by the rollouts' event heads and by a
speed-and-distance baseline. Metrics: ``drivesim.world_model.metrics`` (torchmetrics).

Windows may run past their episode's end (``drivesim.data.dataset.AnchoredWindowDataset``: collisions and
off-road end episodes, so the anchors just before them need that); a batch's ``valid`` (B, T) marks the rows
inside the episode, and every figure of a horizon h counts only the windows whose row ``context - 1 + h`` is
valid. The event label of a window is read from its valid rows of the next 1 s; a window whose episode goes on
for less than 1 s counts when the episode was terminated (nothing happens after its end) or the event was seen
in it, not when a truncated episode simply stopped (unknown). The event heads are read on the valid imagined
steps only.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from drivesim.spec import BEV_CHANNELS, OBS_BEV
from drivesim.utils import atomic_write_json
from drivesim.world_model.baselines import constant_velocity_bev, speed_distance_score
from drivesim.world_model.bench import autocast_context
from drivesim.world_model.eval_report import write_gif, write_plots
from drivesim.world_model.losses import EVENT_COLLISION, EVENT_OFF_ROAD, EVENT_PROGRESS, MEASUREMENT_SPEED
from drivesim.world_model.metrics import BevScores, CameraScores, EventScores
from drivesim.world_model.model import WorldModel
from drivesim.world_model.rssm import LatentState

logger = logging.getLogger(__name__)

DT_S = 0.05  # [s] per step (20 Hz)
HORIZONS_STEPS = (10, 20, 40, 80)
EVENT_WINDOW_STEPS = 20  # "within the next 1 s"
ROLLOUTS = ("mode", "sample")
CAMERA_PREDICTORS = ("posterior", *ROLLOUTS, "copy_last")
BEV_PREDICTORS = ("posterior", *ROLLOUTS, "constant_position", "constant_velocity")
EVENTS = {"collision": EVENT_COLLISION, "off_road": EVENT_OFF_ROAD}  # event heads and their spec columns
EVENT_SCORERS = (*ROLLOUTS, "speed_distance")
DECODE_CHUNK_STEPS = 8  # imagined steps decoded at once (bounds memory on long horizons)
GIF_SEQUENCES = 4


class OpenLoopEvaluator:
    """Accumulates open-loop metrics over batches; ``report()`` gives the summary dict.

    Args:
        model: world model in eval mode.
        context: observed steps before the rollout.
        horizon: imagined steps (horizons longer than this are left out).
        bev_m_per_px: BEV resolution [m/px] of the data (for the speed-and-distance baseline).
        velocity_gap_steps: steps between the two observed BEVs the constant-velocity baseline compares.
        seed: seed of the sampled rollouts.
        images: score the decoded frames (False: events and progress only, no frames decoded,
            for dense event evaluations).
    """

    def __init__(
        self,
        model: WorldModel,
        context: int,
        horizon: int,
        bev_m_per_px: float = 0.5,
        velocity_gap_steps: int = 4,
        seed: int = 0,
        images: bool = True,
    ) -> None:
        if context < 2:
            raise ValueError(f"context must be >= 2 steps (the constant-velocity baseline needs two), got {context}")
        self.model = model
        self.context = context
        self.horizon = horizon
        self.horizons = [steps for steps in HORIZONS_STEPS if steps <= horizon]
        self.bev_m_per_px = bev_m_per_px
        self.velocity_gap = min(velocity_gap_steps, context - 1)
        self.seed = seed
        self.keys = set(model.image_keys) if images else set()
        self.camera = {(h, p): CameraScores() for h in self.horizons for p in CAMERA_PREDICTORS}
        self.bev = {(h, p): BevScores(BEV_CHANNELS) for h in self.horizons for p in BEV_PREDICTORS}
        self.events = {name: EventScores(EVENT_SCORERS) for name in EVENTS}
        self.curves: dict[str, np.ndarray] = {}
        self.curve_counts: dict[str, np.ndarray] = {}
        self.progress_error = {rollout: np.zeros(len(self.horizons)) for rollout in ROLLOUTS}
        self.horizon_windows = np.zeros(len(self.horizons), dtype=np.int64)
        self.sequences = 0
        self.sample: dict[str, dict[str, np.ndarray]] | None = None
        self.valid: Tensor | None = None  # (B, T) rows inside the episode, of the batch being added

    # ------------------------------------------------------------------------------------- batches
    def add(self, batch: dict[str, Tensor]) -> None:
        """Evaluate one batch of windows (B, >= context + horizon, ...)."""
        steps = batch["action"].shape[1]
        if steps < self.context + self.horizon:
            raise ValueError(f"window of {steps} steps < context {self.context} + horizon {self.horizon}")
        model, context = self.model, self.context
        valid = batch.get("valid")
        self.valid = (
            torch.ones(batch["action"].shape[:2], dtype=torch.bool, device=batch["action"].device)
            if valid is None
            else valid.bool()
        )
        images = model.image_targets(batch)
        embed = model.embed(batch, images)
        posterior, _, _ = model.observe(batch, sample=False, embed=embed)
        generator = torch.Generator(device=batch["action"].device).manual_seed(self.seed + self.sequences)
        context_batch = {k: v[:, :context] for k, v in batch.items()}
        _, _, sampled_last = model.observe(context_batch, generator=generator, embed=embed[:, :context])
        starts = {
            "mode": LatentState(posterior.deter[:, context - 1], posterior.stoch[:, context - 1]),
            "sample": sampled_last,
        }
        actions = batch["action"][:, context - 1 : context - 1 + self.horizon].float()
        rows = [context - 1 + h for h in self.horizons]
        self._posterior(posterior, images, rows)
        event_scores: dict[str, dict[str, Tensor]] = {name: {} for name in EVENTS}
        for rollout in ROLLOUTS:
            imagination = model.imagine(
                starts[rollout], actions, self.horizon, generator=generator, sample=rollout == "sample"
            )
            self._rollout(rollout, imagination.features, images)
            self._progress(rollout, imagination.components["progress"], batch)
            for name, score in self._event_scores(imagination.components).items():
                event_scores[name][rollout] = score
        if self.keys:
            self._baselines(images, rows)
        self._events(batch, event_scores)
        self.horizon_windows += self.valid[:, rows].sum(0).cpu().numpy()
        self.sequences += batch["action"].shape[0]

    def _decode(self, features: Tensor) -> dict[str, Tensor]:
        """Frames for features (B, n, F): ``camera`` (B, n, S, S, 3) and/or ``bev`` (B, n, C, S, S)."""
        batch, steps = features.shape[:2]
        outputs = self.model.heads(features.flatten(0, 1), decode_images=True)
        frames = self.model.heads.split_images(outputs["image_logits"])
        return {k: v.reshape(batch, steps, *v.shape[1:]) for k, v in frames.items()}

    def _posterior(self, posterior: LatentState, images: dict[str, Tensor], rows: list[int]) -> None:
        if not self.keys:
            return
        features = self.model.features(posterior)[:, rows]
        frames = self._decode(features)
        for index, steps in enumerate(self.horizons):
            self._update_images("posterior", steps, frames, index, images, rows[index])

    def _rollout(self, rollout: str, features: Tensor, images: dict[str, Tensor]) -> None:
        if not self.keys:
            return
        context = self.context
        curve = np.zeros(self.horizon)
        keep: list[np.ndarray] = []
        for start in range(0, self.horizon, DECODE_CHUNK_STEPS):
            stop = min(start + DECODE_CHUNK_STEPS, self.horizon)
            frames = self._decode(features[:, start:stop])
            if "camera" in frames:
                real = images["camera"][:, context + start : context + stop].float()
                mask = self.valid[:, context + start : context + stop].float()
                error = (frames["camera"] - real).square().mean((2, 3, 4))
                curve[start:stop] = (error * mask).sum(0).cpu().numpy()
            for steps in self.horizons:
                if start <= steps - 1 < stop:
                    self._update_images(rollout, steps, frames, steps - 1 - start, images, context - 1 + steps)
            if rollout == "mode" and self.sample is None:
                keep.append({k: v[:GIF_SEQUENCES].float().cpu().numpy() for k, v in frames.items()})
        if "camera" in self.keys:
            self._add_curve(f"camera_mse_{rollout}", curve, self.valid[:, context : context + self.horizon])
        if keep:
            future = slice(context, context + self.horizon)
            self.sample = {
                "real": {k: v[:GIF_SEQUENCES, future].float().cpu().numpy() for k, v in images.items()},
                "predicted": {k: np.concatenate([part[k] for part in keep], 1) for k in keep[0]},
            }

    def _update_images(
        self, predictor: str, steps: int, frames: dict[str, Tensor], index: int, images: dict[str, Tensor], row: int
    ) -> None:
        """Score ``frames[key][:, index]`` against ``images[key][:, row]`` on the windows where ``row`` is valid."""
        mask = self.valid[:, row]
        if not mask.any():
            return
        if "camera" in frames:
            self.camera[(steps, predictor)].update(frames["camera"][mask, index], images["camera"][mask, row])
        if "bev" in frames:
            self.bev[(steps, predictor)].update(frames["bev"][mask, index], images["bev"][mask, row])

    def _baselines(self, images: dict[str, Tensor], rows: list[int]) -> None:
        last = self.context - 1
        future_valid = self.valid[:, last + 1 : last + 1 + self.horizon]
        if "camera" in images:
            camera = images["camera"]
            future = camera[:, last + 1 : last + 1 + self.horizon].float()
            error = (camera[:, last : last + 1].float() - future).square().mean((2, 3, 4))
            self._add_curve("camera_mse_copy_last", (error * future_valid.float()).sum(0).cpu().numpy(), future_valid)
            for steps, row in zip(self.horizons, rows, strict=True):
                self._update_images("copy_last", steps, {"camera": camera[:, last : last + 1]}, 0, images, row)
        if "bev" in images:
            bev = images["bev"]
            earlier = bev[:, last - self.velocity_gap].cpu().numpy()
            velocity = constant_velocity_bev(earlier, bev[:, last].cpu().numpy(), self.velocity_gap, self.horizons)
            velocity_tensor = torch.from_numpy(velocity).float().to(bev.device)
            for index, (steps, row) in enumerate(zip(self.horizons, rows, strict=True)):
                self._update_images("constant_position", steps, {"bev": bev[:, last : last + 1]}, 0, images, row)
                self._update_images("constant_velocity", steps, {"bev": velocity_tensor}, index, images, row)

    def _add_curve(self, name: str, values: np.ndarray, valid: Tensor) -> None:
        """Add per-step sums ``values`` (H,) over a batch whose valid rows per step are ``valid`` (B, H)."""
        self.curves[name] = self.curves.get(name, 0) + values
        self.curve_counts[name] = self.curve_counts.get(name, 0) + valid.sum(0).cpu().numpy()

    def _progress(self, rollout: str, predicted: Tensor, batch: dict[str, Tensor]) -> None:
        future = slice(self.context, self.context + self.horizon)
        truth = batch["events"][:, future, EVENT_PROGRESS].float().cumsum(1)
        error = (predicted.float().cumsum(1) - truth).abs() * self.valid[:, future].float()
        self.progress_error[rollout] += error.sum(0).cpu().numpy()[[steps - 1 for steps in self.horizons]]

    def _event_window(self) -> int:
        return min(EVENT_WINDOW_STEPS, self.horizon)

    def _event_scores(self, components: dict[str, Tensor]) -> dict[str, Tensor]:
        """Per event, (B,) probability that it happens within the event window, from one rollout's heads.

        Imagined steps past the episode's end (invalid rows) count as no event.
        """
        window = self._event_window()
        lead = self.model.config.heads.event_horizon_steps
        inside = self.valid[:, self.context : self.context + window].float()
        scores = {}
        for name in EVENTS:
            probs = components[name][:, :window].float().clamp(0, 1) * inside
            if lead == 0:  # per-step heads: chance of at least one event in the window
                scores[name] = 1.0 - torch.prod(1.0 - probs, dim=1)
            else:  # each head already looks `lead` steps ahead
                scores[name] = probs[:, : max(1, window - lead)].amax(1)
        return scores

    def _events(self, batch: dict[str, Tensor], model_scores: dict[str, dict[str, Tensor]]) -> None:
        window = self._event_window()
        future = slice(self.context, self.context + window)
        inside = self.valid[:, future]
        events = batch["events"][:, future].float()
        terminal = batch["is_terminal"][:, future].bool() & inside if "is_terminal" in batch else torch.zeros_like(inside)
        known = inside.all(1) | terminal.any(1)  # a full second seen, or the episode was terminated within it
        threshold = self.model.config.heads.off_road_threshold
        last = self.context - 1
        speed = batch["measurements"][:, last, MEASUREMENT_SPEED].float().cpu().numpy()
        bev = batch[OBS_BEV][:, last, : len(BEV_CHANNELS)].float().cpu().numpy() if OBS_BEV in batch else None
        for name, column in EVENTS.items():
            labels = ((events[..., column] >= (0.5 if name == "collision" else threshold)) & inside).any(1)
            keep = (known | labels).cpu()  # a truncated episode's last second: only a seen event is known
            if not keep.any():
                continue
            scores = dict(model_scores[name])
            if bev is not None:
                baseline = speed_distance_score(bev, speed, name, window * DT_S, self.bev_m_per_px)
                scores["speed_distance"] = torch.from_numpy(baseline)
            else:  # no BEV in the data: the baseline has no distance to measure
                scores["speed_distance"] = torch.zeros(len(labels))
            self.events[name].update(labels.cpu()[keep], {key: value.cpu()[keep] for key, value in scores.items()})

    # -------------------------------------------------------------------------------------- report
    def report(self) -> dict[str, Any]:
        """The summary: per-horizon camera / BEV / progress figures, events, curves."""
        if self.sequences == 0:
            raise ValueError(f"no evaluation windows of {self.context + self.horizon} steps")
        horizons: dict[str, Any] = {}
        for index, steps in enumerate(self.horizons):
            entry: dict[str, Any] = {"seconds": steps * DT_S, "windows": int(self.horizon_windows[index])}
            if "camera" in self.keys:
                entry["camera"] = {p: self.camera[(steps, p)].compute() for p in CAMERA_PREDICTORS}
            if "bev" in self.keys:
                per_predictor = {p: self.bev[(steps, p)].compute() for p in BEV_PREDICTORS}
                entry["bev"] = {
                    name: {p: per_predictor[p][name] for p in BEV_PREDICTORS} for name in BEV_CHANNELS
                }
            count = max(int(self.horizon_windows[index]), 1)
            entry["progress_mae_m"] = {r: float(self.progress_error[r][index] / count) for r in ROLLOUTS}
            horizons[str(steps)] = entry
        return {
            "sequences": self.sequences,
            "context": self.context,
            "horizon": self.horizon,
            "dt_s": DT_S,
            "horizons": horizons,
            "events_within_1s": {name: scores.compute() for name, scores in self.events.items()},
            "curves": {
                name: (values / np.maximum(self.curve_counts[name], 1)).tolist() for name, values in self.curves.items()
            },
        }


def heldout_loader(
    data_dir: str | Path,
    fields: list[str],
    window: int,
    batch_size: int,
    val_fraction: float,
    seed: int,
    all_episodes: bool = False,
    stride: int | None = None,
    context: int | None = None,
) -> torch.utils.data.DataLoader:
    """Windows of the episodes held out by the training split (same fraction and seed), in order.

    Windows start every ``stride`` steps (default: the window length). Overlapping windows (e.g. every
    10 steps) put the end of the context within 1 s before events, which the event AUROC needs. With
    ``context``, windows are anchored (``AnchoredWindowDataset``): anchors every ``stride`` steps up to the
    episode's second-to-last step, rows past the end padded and marked in ``valid``, so the last second before
    a collision that ended an episode is evaluated too. Falls back to every episode when ``all_episodes`` is
    set or the split holds out none. ``bev`` is loaded too when the episodes hold it (the BEV baselines read it).
    """
    from drivesim.data.dataset import AnchoredWindowDataset, WindowDataset, collate_windows, split_episodes
    from drivesim.data.episode import EpisodeReader, list_episodes

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
    if OBS_BEV not in fields and OBS_BEV in EpisodeReader(held_out[0]).fields:
        fields = [*fields, OBS_BEV]
    if context is None:
        dataset = WindowDataset(held_out, window, fields, stride=stride)
    else:
        dataset = AnchoredWindowDataset(held_out, context, window - context, fields, stride=stride)
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_windows
    )


def bev_resolution(data_dir: str | Path, default: float = 0.5) -> float:
    """The BEV's metres per pixel recorded in the first episode's config (``default`` when absent)."""
    from drivesim.data.episode import list_episodes, load_meta

    episodes = list_episodes(data_dir)
    if not episodes:
        return default
    sensors = load_meta(episodes[0]).get("config", {}).get("sensors") or {}
    return float((sensors.get("bev") or {}).get("m_per_px", default))


def evaluate_open_loop(
    model: WorldModel,
    batches: Iterable[dict[str, Tensor]],
    context: int,
    horizon: int,
    out_dir: str | Path,
    max_batches: int | None = None,
    device: str = "cpu",
    precision: str = "bf16-mixed",
    bev_m_per_px: float = 0.5,
    images: bool = True,
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
        bev_m_per_px: BEV resolution of the data [m/px] (``bev_resolution(data_dir)``).
        images: score decoded frames; False scores events and progress only (no decoding).

    Returns:
        The report dict (also in ``report.json``); ``drivesim.world_model.eval_report.summary_lines`` prints it.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch_device = torch.device(device)
    model = model.to(torch_device).eval()
    evaluator = OpenLoopEvaluator(model, context, horizon, bev_m_per_px, images=images)
    with torch.no_grad(), autocast_context(torch_device, precision):
        for index, batch in enumerate(batches):
            if max_batches is not None and index >= max_batches:
                break
            evaluator.add({k: v.to(torch_device) for k, v in batch.items() if isinstance(v, Tensor)})
    report = evaluator.report()
    report["plots"] = [path.name for path in write_plots(report, out_dir)]
    if evaluator.sample is not None:
        write_gif(evaluator.sample, out_dir / "sample.gif", GIF_SEQUENCES)
        report["gif"] = "sample.gif"
    atomic_write_json(out_dir / "report.json", report)
    logger.info("wrote %s", out_dir / "report.json")
    return report
