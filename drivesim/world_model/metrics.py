"""World model stage: evaluation metrics in NumPy (AUROC, average precision, PSNR, IoU), no sklearn."""

from __future__ import annotations

import numpy as np


def auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve via the rank statistic (ties get their average rank).

    Args:
        labels: (N,) binary labels.
        scores: (N,) scores, higher = more likely positive.

    Returns:
        AUROC in [0, 1]; NaN when only one class is present.
    """
    labels = np.asarray(labels).astype(bool).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if positives == 0 or negatives == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    ranks = np.empty(len(scores), dtype=np.float64)
    # Average ranks over ties: positions of each unique value's run.
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    average = first + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(average, counts)
    return float((ranks[labels].sum() - positives * (positives + 1) / 2.0) / (positives * negatives))


def average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """Average precision (area under the precision-recall curve as a step sum, like sklearn's).

    Ties in ``scores`` are treated as one threshold. NaN when there is no positive.
    """
    labels = np.asarray(labels).astype(bool).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    positives = int(labels.sum())
    if positives == 0:
        return float("nan")
    order = np.argsort(-scores, kind="mergesort")
    sorted_scores, sorted_labels = scores[order], labels[order]
    true_positives = np.cumsum(sorted_labels)
    # Keep the last index of each run of equal scores (one threshold per distinct score).
    last_of_run = np.r_[np.diff(sorted_scores) != 0, True]
    tp = true_positives[last_of_run].astype(np.float64)
    predicted = (np.nonzero(last_of_run)[0] + 1).astype(np.float64)
    precision = tp / predicted
    recall = tp / positives
    recall_steps = np.diff(np.r_[0.0, recall])
    return float((recall_steps * precision).sum())


def psnr(mse: np.ndarray | float, max_value: float = 1.0) -> np.ndarray | float:
    """Peak signal-to-noise ratio [dB] of a mean squared error on [0, max_value] pixels."""
    return 10.0 * np.log10(max_value**2 / np.maximum(mse, 1e-12))


def iou(prediction: np.ndarray, target: np.ndarray) -> float:
    """Intersection over union of two boolean masks (any shape); 1.0 when both are empty."""
    prediction, target = np.asarray(prediction, bool), np.asarray(target, bool)
    union = np.logical_or(prediction, target).sum()
    if union == 0:
        return 1.0
    return float(np.logical_and(prediction, target).sum() / union)
