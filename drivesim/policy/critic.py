"""Policy stage: the critic (symexp two-hot value, zero-initialised output) and its slow EMA target.

DreamerV3 (dreamerv3/agent.py ``VFunction``; configs.yaml ``critic``, ``slow_critic_fraction: 0.02``,
``critic_slowreg``): the value distribution is a two-hot over 255 symexp-spaced bins, trained toward the
lambda-returns plus a regulariser toward the slow critic's prediction. As current DreamerV3
(embodied/jax/outs.py ``TwoHot``), the bins are ``symexp(linspace(-20, 20))`` and both the two-hot target and
the expected value are taken in value space (the older dreamerv3-torch interpolated and averaged in symlog
space, which biases the mean of wide distributions toward zero).
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from drivesim.policy.config import CriticConfig
from drivesim.world_model.distributions import symexp
from drivesim.world_model.networks import MLP, zero_init_


class SymexpTwoHot:
    """Two-hot over symexp-spaced bins, interpolated in value space (current DreamerV3).

    Args:
        num_bins: number of bins K (odd keeps a bin at exactly 0).
        low, high: range of the bins in symlog space.
    """

    def __init__(self, num_bins: int = 255, low: float = -20.0, high: float = 20.0) -> None:
        self.num_bins = num_bins
        self.low = low
        self.high = high

    def bins(self, device: torch.device | str | None = None) -> Tensor:
        """Bin values (K,) in value space, increasing."""
        return symexp(torch.linspace(self.low, self.high, self.num_bins, device=device, dtype=torch.float64)).float()

    def encode(self, value: Tensor) -> Tensor:
        """Two-hot target (..., K) of raw values (...,): weights on the two neighbouring bins, linear in value."""
        bins = self.bins(value.device)
        value = value.float().clamp(float(bins[0]), float(bins[-1]))
        above = torch.searchsorted(bins, value.contiguous(), right=True).clamp(1, self.num_bins - 1)
        below = above - 1
        low, high = bins[below], bins[above]
        weight_above = ((value - low) / (high - low)).clamp(0.0, 1.0)
        target = torch.zeros(*value.shape, self.num_bins, device=value.device)
        target.scatter_(-1, below.unsqueeze(-1), (1.0 - weight_above).unsqueeze(-1))
        target.scatter_add_(-1, above.unsqueeze(-1), weight_above.unsqueeze(-1))
        return target

    def decode(self, logits: Tensor) -> Tensor:
        """Expected value (...,) of the distribution given by ``logits`` (..., K), in value space.

        As DreamerV3, the bins mirrored about the middle are added pairwise before summing, so that the huge
        outer bins (symexp(20) = 4.9e8) cancel instead of drowning small values in float32 rounding.
        """
        probs = torch.softmax(logits.float(), -1)
        weighted = probs * self.bins(logits.device)
        middle = self.num_bins // 2
        below, above = weighted[..., :middle].flip(-1), weighted[..., self.num_bins - middle :]
        centre = weighted[..., middle : self.num_bins - middle].sum(-1)
        return centre + (below + above).sum(-1)

    def loss(self, logits: Tensor, value: Tensor) -> Tensor:
        """Cross-entropy (...,) of the two-hot target of ``value`` under ``logits``."""
        return -(self.encode(value) * torch.log_softmax(logits.float(), -1)).sum(-1)


class Critic(nn.Module):
    """Value network: inputs (..., I) -> two-hot logits (..., K) over symexp-spaced bins."""

    def __init__(self, in_size: int, config: CriticConfig) -> None:
        super().__init__()
        self.config = config
        self.twohot = SymexpTwoHot(config.twohot_bins)
        self.mlp = MLP(in_size, config.units, config.layers)
        self.out = zero_init_(nn.Linear(config.units, config.twohot_bins))

    def forward(self, inputs: Tensor) -> Tensor:
        return self.out(self.mlp(inputs))

    def value(self, inputs: Tensor) -> Tensor:
        """Expected value (...,) in reward units."""
        return self.twohot.decode(self(inputs))

    def loss(self, inputs: Tensor, target: Tensor) -> Tensor:
        """Two-hot cross-entropy (...,) of ``target`` (...,) under the predicted distribution."""
        return self.twohot.loss(self(inputs), target.detach())


class SlowCritic(nn.Module):
    """A frozen copy of a critic updated as an exponential moving average (rate ``slow_rate``)."""

    def __init__(self, critic: Critic) -> None:
        super().__init__()
        self.critic = copy.deepcopy(critic)
        self.critic.requires_grad_(False)

    @torch.no_grad()
    def update(self, online: Critic, rate: float) -> None:
        """target <- (1 - rate) target + rate online."""
        target_params = list(self.critic.parameters())
        online_params = [p.detach() for p in online.parameters()]
        torch._foreach_lerp_(target_params, online_params, rate)

    @torch.no_grad()
    def value(self, inputs: Tensor) -> Tensor:
        """The slow critic's expected value (...,)."""
        return self.critic.value(inputs)
