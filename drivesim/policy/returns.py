"""Policy stage: lambda-returns, imagination weights and percentile return normalisation (DreamerV3).

Conventions (dreamerv3/agent.py, ``ImagActorCritic`` / ``VFunction.score``): an imagined trajectory has states
s_0..s_H; ``reward[:, t]`` and ``cont[:, t]`` are predicted for arriving at s_{t+1}; values v_0..v_H.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from drivesim.policy.config import ReturnNormConfig


def lambda_returns(reward: Tensor, cont: Tensor, value: Tensor, discount: float, lam: float) -> Tensor:
    """TD(lambda) returns R_0..R_{H-1}, bootstrapped with v_H.

    R_t = r_{t+1} + gamma c_{t+1} ((1 - lambda) v_{t+1} + lambda R_{t+1}),  R_H = v_H.

    Args:
        reward: (B, H) rewards of arriving at s_1..s_H.
        cont: (B, H) continue probabilities (or flags) of s_1..s_H.
        value: (B, H + 1) values of s_0..s_H.
        discount: gamma (DreamerV3: 1 - 1/333).
        lam: lambda (DreamerV3: 0.95).

    Returns:
        (B, H) returns.
    """
    horizon = reward.shape[1]
    assert cont.shape == reward.shape and value.shape[1] == horizon + 1, (
        f"reward {tuple(reward.shape)}, cont {tuple(cont.shape)} must be (B, H) and value (B, H+1), got {tuple(value.shape)}"
    )
    disc = discount * cont
    interm = reward + disc * value[:, 1:] * (1.0 - lam)
    returns = [value[:, -1]]
    for t in reversed(range(horizon)):
        returns.append(interm[:, t] + disc[:, t] * lam * returns[-1])
    return torch.stack(returns[::-1][:-1], 1)


def trajectory_weights(cont: Tensor, discount: float) -> Tensor:
    """Loss weights (B, H) of s_0..s_{H-1}: the discounted probability of still being alive there.

    w_0 = 1 and w_t = prod_{i=1..t} gamma c_i (DreamerV3: ``cumprod(discount * cont) / discount``).

    Args:
        cont: (B, H) continue probabilities of s_1..s_H.
        discount: gamma.
    """
    disc = discount * cont[:, :-1]
    ones = torch.ones_like(cont[:, :1])
    return torch.cumprod(torch.cat([ones, disc], 1), 1)


class ReturnNormalizer(nn.Module):
    """EMA of the 5th and 95th return percentiles; scale = max(limit, high - low) (DreamerV3 ``Moments``).

    Buffers are saved in checkpoints. ``update`` then ``scale`` gives the divisor of the advantages.
    """

    def __init__(self, config: ReturnNormConfig) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("low", torch.zeros(()))
        self.register_buffer("high", torch.zeros(()))
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def update(self, returns: Tensor) -> None:
        """Move the EMAs toward the percentiles of a batch of returns (any shape)."""
        values = returns.detach().float().flatten()
        quantiles = torch.quantile(
            values,
            values.new_tensor([self.config.low_percentile / 100.0, self.config.high_percentile / 100.0]),
        )
        rate = self.config.rate
        # DreamerV3 starts its EMAs at zero (no bias correction); so do we.
        self.low.mul_(1.0 - rate).add_(rate * quantiles[0])
        self.high.mul_(1.0 - rate).add_(rate * quantiles[1])
        self.initialised.fill_(True)

    def scale(self) -> Tensor:
        """max(limit, high - low), a scalar tensor."""
        return torch.clamp(self.high - self.low, min=self.config.limit)

    def forward(self, returns: Tensor, update: bool = True) -> tuple[Tensor, Tensor]:
        """Update (optionally) and return (offset, scale) as DreamerV3's ``retnorm(ret)``."""
        if update:
            self.update(returns)
        return self.low.clone(), self.scale()
