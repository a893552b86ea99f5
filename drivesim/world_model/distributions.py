"""World model stage: symlog transforms, two-hot heads and the categorical/Bernoulli distributions.

Follows DreamerV3 (embodied/jax/outs.py): symlog squashing, symexp two-hot over 255 bins, one-hot categoricals
with a 1% uniform mixture and straight-through gradients, and KL/entropy summed over latent groups.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def symlog(x: Tensor) -> Tensor:
    """sign(x) * log(1 + |x|), elementwise."""
    return torch.sign(x) * torch.log1p(torch.abs(x))


def symexp(x: Tensor) -> Tensor:
    """Inverse of ``symlog``: sign(x) * (exp(|x|) - 1)."""
    return torch.sign(x) * torch.expm1(torch.abs(x))


class TwoHot:
    """Two-hot encoding on bins evenly spaced in symlog space (DreamerV3: 255 bins over [-20, 20]).

    Args:
        num_bins: number of bins K.
        low: lowest bin in symlog space.
        high: highest bin in symlog space.
    """

    def __init__(self, num_bins: int = 255, low: float = -20.0, high: float = 20.0) -> None:
        self.num_bins = num_bins
        self.low = low
        self.high = high

    def bins(self, device: torch.device | None = None) -> Tensor:
        """The bin centres in symlog space, (K,)."""
        return torch.linspace(self.low, self.high, self.num_bins, device=device)

    def encode(self, value: Tensor) -> Tensor:
        """Two-hot target of raw values.

        Args:
            value: (...,) raw (not squashed) values.

        Returns:
            (..., K) weights on the two neighbouring bins of symlog(value), summing to 1.
        """
        squashed = symlog(value.float()).clamp(self.low, self.high)
        position = (squashed - self.low) / (self.high - self.low) * (self.num_bins - 1)
        below = position.floor().clamp(0, self.num_bins - 2)
        weight_above = (position - below).unsqueeze(-1)
        below_index = below.long().unsqueeze(-1)
        target = torch.zeros(*value.shape, self.num_bins, device=value.device)
        target.scatter_(-1, below_index, 1.0 - weight_above)
        target.scatter_add_(-1, below_index + 1, weight_above)
        return target

    def decode(self, logits_or_probs: Tensor, are_logits: bool = True) -> Tensor:
        """Expected value in symlog space mapped back by symexp.

        Args:
            logits_or_probs: (..., K).
            are_logits: whether the input holds logits (softmax is applied) or probabilities.

        Returns:
            (...,) raw values.
        """
        probs = F.softmax(logits_or_probs.float(), -1) if are_logits else logits_or_probs.float()
        return symexp(probs @ self.bins(probs.device))

    def loss(self, logits: Tensor, value: Tensor) -> Tensor:
        """Cross-entropy of the two-hot target of ``value`` (...,) under ``logits`` (..., K); returns (...,)."""
        target = self.encode(value)
        return -(target * F.log_softmax(logits.float(), -1)).sum(-1)


def unimix_probs(logits: Tensor, unimix: float) -> Tensor:
    """softmax(logits) mixed with ``unimix`` of the uniform distribution (DreamerV3: 1%), float32 (..., C)."""
    probs = F.softmax(logits.float(), -1)
    if unimix > 0.0:
        probs = (1.0 - unimix) * probs + unimix / logits.shape[-1]
    return probs


def unimix_logits(logits: Tensor, unimix: float) -> Tensor:
    """Log-probabilities of ``unimix_probs``, (..., C)."""
    if unimix <= 0.0:
        return F.log_softmax(logits.float(), -1)
    return torch.log(unimix_probs(logits, unimix))


def _one_hot(index: Tensor, like: Tensor) -> Tensor:
    return torch.zeros_like(like).scatter_(-1, index.unsqueeze(-1), 1.0)


def _straight_through(one_hot: Tensor, probs: Tensor) -> Tensor:
    return one_hot + probs - probs.detach() if probs.requires_grad else one_hot


def group_uniforms(
    prefix: tuple[int, ...], groups: int, generator: torch.Generator | None = None, device: torch.device | str = "cpu"
) -> Tensor:
    """Uniform numbers (*prefix, G, 1) for ``sample_one_hot``: one per latent group.

    Drawn once before a time loop (prefix (T, B)) so that the per-step function has no random-number call
    (``torch.rand(generator=...)`` breaks a ``torch.compile`` graph).
    """
    return torch.rand((*prefix, groups, 1), device=device, generator=generator)


def sample_one_hot(
    probs: Tensor, generator: torch.Generator | None = None, uniform: Tensor | None = None
) -> Tensor:
    """Sample one-hot vectors with straight-through gradients.

    Sampling inverts the CDF with one uniform number per group (C times fewer random numbers than Gumbel-max).

    Args:
        probs: (..., C) probabilities (e.g. ``unimix_probs``).
        generator: optional torch generator for reproducible sampling (used when ``uniform`` is None).
        uniform: (..., 1) uniform numbers in [0, 1) drawn beforehand (``group_uniforms``).

    Returns:
        (..., C) one-hot samples whose gradient flows into ``probs`` (straight-through).
    """
    if uniform is None:
        uniform = torch.rand((*probs.shape[:-1], 1), device=probs.device, generator=generator)
    cdf = probs.detach().cumsum(-1)
    index = (cdf < uniform * cdf[..., -1:]).sum(-1).clamp_max(probs.shape[-1] - 1)
    return _straight_through(_one_hot(index, probs), probs)


def mode_one_hot(probs: Tensor) -> Tensor:
    """Most likely class of (..., C) probabilities as a one-hot, with straight-through gradients."""
    return _straight_through(_one_hot(probs.detach().argmax(-1), probs), probs)


def categorical_kl(log_probs_p: Tensor, log_probs_q: Tensor) -> Tensor:
    """KL(p || q) of grouped categoricals, summed over groups.

    Args:
        log_probs_p: (..., G, C) log-probabilities of p.
        log_probs_q: (..., G, C) log-probabilities of q.

    Returns:
        (...,) KL in nats.
    """
    return (log_probs_p.exp() * (log_probs_p - log_probs_q)).sum((-2, -1))


def categorical_entropy(log_probs: Tensor) -> Tensor:
    """Entropy of grouped categoricals (..., G, C), summed over groups, (...,)."""
    return -(log_probs.exp() * log_probs).sum((-2, -1))


def bernoulli_nll(logits: Tensor, target: Tensor) -> Tensor:
    """Negative log-likelihood of binary (or soft) targets under Bernoulli logits, elementwise."""
    return F.binary_cross_entropy_with_logits(logits.float(), target.float(), reduction="none")
