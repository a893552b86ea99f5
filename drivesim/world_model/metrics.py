"""World model stage: open-loop evaluation metrics, accumulated over batches with torchmetrics.

Camera: MSE, PSNR (of the mean squared error) and SSIM. BEV: per-channel F1 and IoU at threshold 0.5
(torchmetrics' multilabel F1 score and Jaccard index over pixels) and at the best of a threshold sweep.
Events: AUROC, average precision and expected calibration error, refused below ``MIN_POSITIVES`` positives.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.classification import (
    BinaryAUROC,
    BinaryAveragePrecision,
    BinaryCalibrationError,
    MultilabelF1Score,
    MultilabelJaccardIndex,
)
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure
from torchmetrics.regression import MeanSquaredError

MIN_POSITIVES = 20  # fewer positive windows than this: no AUROC / AP is reported (too noisy to rank models)
# Thresholds of the BEV sweep: dense at low probabilities, where a blurred small object's pixels lie.
SWEEP_THRESHOLDS = (0.01, 0.02, 0.03, 0.05, 0.07, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


class ThresholdSweep(Metric):
    """Per-channel pixel counts binned by predicted probability, split by truth: F1 / IoU at every threshold.

    A pixel counts as predicted positive at threshold t when its probability is >= t. IoU follows from F1
    (IoU = F1 / (2 - F1) on the same counts), so both peak at the same threshold.

    Args:
        num_channels: C.
        thresholds: increasing thresholds in (0, 1).
    """

    full_state_update = False

    def __init__(self, num_channels: int, thresholds: tuple[float, ...] = SWEEP_THRESHOLDS) -> None:
        super().__init__()
        self.num_channels = num_channels
        self.register_buffer("thresholds", torch.tensor(thresholds, dtype=torch.float32), persistent=False)
        bins = len(thresholds) + 1
        self.add_state("counts", torch.zeros(num_channels, 2, bins, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, probs: Tensor, target: Tensor) -> None:
        """probs (N, C, H, W) in [0, 1], target (N, C, H, W) in {0, 1}."""
        assert probs.shape == target.shape and probs.shape[1] == self.num_channels, (probs.shape, target.shape)
        bins = torch.bucketize(probs.float().contiguous(), self.thresholds, right=True)  # thresholds <= p
        channel = torch.arange(self.num_channels, device=probs.device).view(1, -1, *([1] * (probs.dim() - 2)))
        size = self.counts.shape[-1]
        index = (channel * 2 + target.long()) * size + bins
        self.counts += torch.bincount(index.flatten(), minlength=self.counts.numel()).view_as(self.counts)

    def compute(self) -> dict[str, Tensor]:
        """``positives`` (C,), ``f1`` and ``iou`` (C, K) at each threshold; 0 where nothing is predicted or true."""
        negatives, positives = self.counts[:, 0].double(), self.counts[:, 1].double()
        # predicted positive at threshold k <=> bin >= k + 1: reverse cumulative sums from bin k + 1 on.
        true_pos = positives.flip(-1).cumsum(-1).flip(-1)[:, 1:]
        false_pos = negatives.flip(-1).cumsum(-1).flip(-1)[:, 1:]
        total = positives.sum(-1, keepdim=True)
        false_neg = total - true_pos
        f1 = 2 * true_pos / (2 * true_pos + false_pos + false_neg).clamp_min(1)
        iou = true_pos / (true_pos + false_pos + false_neg).clamp_min(1)
        return {"positives": total.squeeze(-1), "f1": f1, "iou": iou}


class CameraScores:
    """MSE, PSNR and SSIM of predicted against real camera frames (N, S, S, 3) in [0, 1]."""

    def __init__(self) -> None:
        self.mse = MeanSquaredError()
        self.psnr = PeakSignalNoiseRatio(data_range=1.0)
        self.ssim = StructuralSimilarityIndexMeasure(data_range=1.0)

    def update(self, predicted: Tensor, real: Tensor) -> None:
        predicted, real = predicted.float().cpu().clamp(0, 1).contiguous(), real.float().cpu().contiguous()
        with torch.autocast("cpu", enabled=False):  # SSIM's convolutions in bf16 cancel its variances away
            self.mse.update(predicted, real)
            self.psnr.update(predicted, real)
            self.ssim.update(predicted.permute(0, 3, 1, 2), real.permute(0, 3, 1, 2))

    def compute(self) -> dict[str, float]:
        return {
            "mse": float(self.mse.compute()),
            "psnr": float(self.psnr.compute()),
            "ssim": float(self.ssim.compute()),
        }


class BevScores:
    """Per-channel F1 / IoU at 0.5 and at the best swept threshold of BEV probabilities (N, C, S, S)."""

    def __init__(self, channel_names: tuple[str, ...]) -> None:
        self.names = channel_names
        count = len(channel_names)
        self.f1 = MultilabelF1Score(num_labels=count, threshold=0.5, average=None, validate_args=False)
        self.iou = MultilabelJaccardIndex(num_labels=count, threshold=0.5, average=None, validate_args=False)
        self.sweep = ThresholdSweep(count)

    def update(self, probs: Tensor, target: Tensor) -> None:
        probs, target = probs.float().cpu().contiguous(), (target.cpu() > 0.5).long()
        with torch.autocast("cpu", enabled=False):
            self.f1.update(probs, target)
            self.iou.update(probs, target)
            self.sweep.update(probs, target)

    def compute(self) -> dict[str, dict[str, Any]]:
        """Per channel: ``positives`` (true pixels) and, when there are any, f1 / iou at 0.5 and best."""
        f1, iou = self.f1.compute().reshape(-1), self.iou.compute().reshape(-1)  # torchmetrics squeezes C = 1
        sweep = {k: v.reshape(len(self.names), -1) for k, v in self.sweep.compute().items()}
        report: dict[str, dict[str, Any]] = {}
        for index, name in enumerate(self.names):
            positives = int(sweep["positives"][index, 0])
            if positives == 0:
                report[name] = {"positives": 0}
                continue
            best = int(sweep["f1"][index].argmax())
            report[name] = {
                "positives": positives,
                "f1": float(f1[index]),
                "iou": float(iou[index]),
                "f1_best": float(sweep["f1"][index, best]),
                "iou_best": float(sweep["iou"][index, best]),
                "threshold_best": float(self.sweep.thresholds[best]),
            }
        return report


class EventScores:
    """AUROC, AP and calibration error of several scorers of one binary event label, per window."""

    def __init__(self, scorers: tuple[str, ...], min_positives: int = MIN_POSITIVES) -> None:
        self.min_positives = min_positives
        self.metrics = {
            name: (BinaryAUROC(), BinaryAveragePrecision(), BinaryCalibrationError(n_bins=10, norm="l1"))
            for name in scorers
        }
        self.positives = 0
        self.windows = 0

    def update(self, labels: Tensor, scores: dict[str, Tensor]) -> None:
        """labels (N,) bool, scores name -> (N,) probabilities in [0, 1]."""
        labels = labels.cpu().long()
        self.positives += int(labels.sum())
        self.windows += int(labels.numel())
        for name, metrics in self.metrics.items():
            values = scores[name].float().cpu().clamp(0, 1)
            with torch.autocast("cpu", enabled=False):
                for metric in metrics:
                    metric.update(values, labels)

    def compute(self) -> dict[str, Any]:
        """``positives``, ``windows``, per scorer ``auroc`` / ``ap`` (None when refused) and ``calibration_error``."""
        report: dict[str, Any] = {"positives": self.positives, "windows": self.windows}
        enough = self.positives >= self.min_positives and self.windows - self.positives >= self.min_positives
        if not enough:
            report["refused"] = (
                f"{self.positives} positive and {self.windows - self.positives} negative windows "
                f"(< {self.min_positives}): no AUROC or AP reported"
            )
        for name, (auroc, average_precision, calibration) in self.metrics.items():
            entry: dict[str, float | None] = {"auroc": None, "ap": None}
            if self.windows:
                entry["calibration_error"] = float(calibration.compute())
            if enough:
                entry["auroc"] = float(auroc.compute())
                entry["ap"] = float(average_precision.compute())
            report[name] = entry
        return report
