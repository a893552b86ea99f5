"""World model stage: loss functions (pure, returning dicts of named terms).

DreamerV3 (dreamerv3/agent.py, rssm.py): prediction losses summed over heads, the dynamics loss
KL(sg(post) || prior) and representation loss KL(post || sg(prior)), each clipped below at 1 free nat.
"""

from __future__ import annotations

import torch
from torch import Tensor

from drivesim.world_model.config import HeadsConfig, LossConfig
from drivesim.world_model.distributions import (
    TwoHot,
    bernoulli_nll,
    categorical_entropy,
    categorical_kl,
    symlog,
)

EVENT_COLLISION, EVENT_OFF_ROAD, EVENT_PROGRESS = 0, 1, 3  # indices in drivesim.spec.EVENT_NAMES
MEASUREMENT_SPEED = 0  # index in drivesim.spec.MEASUREMENT_NAMES


def kl_losses(post_log_probs: Tensor, prior_log_probs: Tensor, free_nats: float) -> dict[str, Tensor]:
    """KL balancing with free bits.

    Args:
        post_log_probs: (..., G, C) posterior log-probabilities.
        prior_log_probs: (..., G, C) prior log-probabilities.
        free_nats: lower clip of each per-step KL [nats].

    Returns:
        ``dyn`` = max(free, KL(sg(post) || prior)) and ``rep`` = max(free, KL(post || sg(prior))), both (...,)
        (the values agree; the gradients differ), plus the unclipped ``kl``, ``prior_entropy`` and
        ``post_entropy`` (...,) for logging.
    """
    dyn = categorical_kl(post_log_probs.detach(), prior_log_probs)
    rep = categorical_kl(post_log_probs, prior_log_probs.detach())
    return {
        "dyn": torch.clamp(dyn, min=free_nats),
        "rep": torch.clamp(rep, min=free_nats),
        "kl": dyn.detach(),
        "prior_entropy": categorical_entropy(prior_log_probs.detach()),
        "post_entropy": categorical_entropy(post_log_probs.detach()),
    }


def _shift_back(x: Tensor, steps: int, fill: bool | float) -> Tensor:
    """x[:, t + steps] at position t, ``fill`` past the end; x is (B, T)."""
    pad = torch.full_like(x[:, :steps], fill)
    return torch.cat([x[:, steps:], pad], 1)


def future_event(
    flags: Tensor, is_first: Tensor, is_last: Tensor, horizon_steps: int
) -> tuple[Tensor, Tensor]:
    """Whether an event happens at step t or within the next ``horizon_steps`` steps of the same episode.

    Args:
        flags: (B, T) bool events per step.
        is_first: (B, T) bool episode starts (a later episode's events do not count).
        is_last: (B, T) bool episode ends (after which no more events can come).
        horizon_steps: k; 0 gives the step's own event.

    Returns:
        Targets (B, T) float and a validity mask (B, T) float that is 0 where the window ends before
        t + k inside a still-running episode (the target would be a guess).
    """
    target = flags.bool().clone()
    valid = torch.ones_like(target)
    running = torch.ones_like(target)
    ended = is_last.bool().clone()
    for offset in range(1, horizon_steps + 1):
        exists = _shift_back(torch.ones_like(target), offset, False)
        running = running & ~ended & exists & ~_shift_back(is_first.bool(), offset, True)
        target = target | (running & _shift_back(flags.bool(), offset, False))
        valid = valid & (exists | ended)
        ended = ended | _shift_back(is_last.bool(), offset, False)
    return target.float(), valid.float()


def make_targets(
    batch: dict[str, Tensor], heads: HeadsConfig, measurement_index: list[int]
) -> dict[str, Tensor]:
    """Head targets from a batch (see docs/ARCHITECTURE.md, row t = o_t and the events of arriving there).

    Returns:
        ``collision``, ``off_road`` (B, T) {0, 1}, ``event_mask`` (B, T), ``progress`` (B, T) [m],
        ``speed`` (B, T) [m/s], ``cont`` (B, T) = 1 - is_terminal, ``measurements`` (B, T, M) in symlog space.
    """
    events = batch["events"].float()
    is_first, is_last = batch["is_first"], batch["is_last"]
    collision, mask = future_event(
        events[..., EVENT_COLLISION] > 0.5, is_first, is_last, heads.event_horizon_steps
    )
    off_road, _ = future_event(
        events[..., EVENT_OFF_ROAD] >= heads.off_road_threshold, is_first, is_last, heads.event_horizon_steps
    )
    measurements = batch["measurements"].float()
    return {
        "collision": collision,
        "off_road": off_road,
        "event_mask": mask,
        "progress": events[..., EVENT_PROGRESS],
        "speed": measurements[..., MEASUREMENT_SPEED],
        "cont": 1.0 - batch["is_terminal"].float(),
        "measurements": symlog(measurements[..., measurement_index]),
    }


def image_losses(
    image_predictions: dict[str, Tensor],
    image_targets: dict[str, Tensor],
    bev_channel_weights: Tensor | None = None,
) -> dict[str, Tensor]:
    """Per-step image losses summed over pixels and channels (DreamerV3 sums over the image).

    Args:
        image_predictions: ``camera`` (N, S, S, 3) in [0, 1] (compared by MSE) and/or ``bev_logits``
            (N, C, S, S) (binary cross-entropy).
        image_targets: ``camera`` (N, S, S, 3) in [0, 1] and/or ``bev`` (N, C, S, S) in {0, 1}.
        bev_channel_weights: (C,) weight of each BEV channel's summed cross-entropy; None weighs all 1.

    Returns:
        ``camera`` and/or ``bev`` (the weighted sum) losses of shape (N,), and with the BEV its unweighted
        per-channel sums ``bev_channels`` (N, C) for logging.
    """
    losses = {}
    if "camera" in image_targets:
        losses["camera"] = (image_predictions["camera"] - image_targets["camera"]).square().sum((1, 2, 3))
    if "bev" in image_targets:
        per_channel = bernoulli_nll(image_predictions["bev_logits"], image_targets["bev"]).sum((2, 3))
        weights = torch.ones_like(per_channel[0]) if bev_channel_weights is None else bev_channel_weights
        assert weights.shape == per_channel.shape[1:], (
            f"{weights.shape[0]} BEV channel weights for {per_channel.shape[1]} BEV channels"
        )
        losses["bev"] = (per_channel * weights.to(per_channel.dtype)).sum(-1)
        losses["bev_channels"] = per_channel.detach()
    return losses


def head_losses(outputs: dict[str, Tensor], targets: dict[str, Tensor], twohot: TwoHot) -> dict[str, Tensor]:
    """Per-step losses (...,) of the scalar and measurement heads (outputs as ``WorldModelHeads.forward``)."""
    mask = targets["event_mask"]
    losses = {
        "collision": bernoulli_nll(outputs["collision"], targets["collision"]) * mask,
        "off_road": bernoulli_nll(outputs["off_road"], targets["off_road"]) * mask,
        "cont": bernoulli_nll(outputs["cont"], targets["cont"]),
        "progress": twohot.loss(outputs["progress"], targets["progress"]),
        "speed": twohot.loss(outputs["speed"], targets["speed"]),
    }
    if "measurements" in outputs:
        losses["measurements"] = (outputs["measurements"].float() - targets["measurements"]).square().sum(-1)
    return losses


def total_loss(terms: dict[str, Tensor], scales: LossConfig) -> tuple[Tensor, dict[str, Tensor]]:
    """Scaled sum of mean loss terms.

    Args:
        terms: per-step losses named ``camera``, ``bev``, ``measurements``, ``collision``, ``off_road``,
            ``progress``, ``speed``, ``cont``, ``dyn``, ``rep`` (each scaled by the field of that name);
            any shape.
        scales: loss scales.

    Returns:
        The scalar loss and the mean of each term (unscaled) for logging.
    """
    means = {name: value.float().mean() for name, value in terms.items()}
    loss = torch.zeros((), device=next(iter(means.values())).device)
    for name, value in means.items():
        loss = loss + getattr(scales, name) * value
    return loss, means
