"""Policy stage: the critic (symlog two-hot value, zero-initialised output) and its slow EMA target.

DreamerV3 (dreamerv3/agent.py ``VFunction``; configs.yaml ``critic``, ``slow_critic_fraction: 0.02``,
``critic_slowreg``): the value distribution is a two-hot over 255 symexp-spaced bins, trained toward the
lambda-returns plus a regulariser toward the slow critic's prediction.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from drivesim.policy.config import CriticConfig
from drivesim.world_model.distributions import TwoHot
from drivesim.world_model.networks import MLP, zero_init_


class Critic(nn.Module):
    """Value network: inputs (..., I) -> two-hot logits (..., K) over symlog-spaced bins."""

    def __init__(self, in_size: int, config: CriticConfig) -> None:
        super().__init__()
        self.config = config
        self.twohot = TwoHot(config.twohot_bins)
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
