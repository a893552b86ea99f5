"""Policy stage: the waypoint actor (behaviour cloning) and the RL delta head (a bounded Normal residual).

Both read the world-model features [h_t, z_t] plus, optionally, the route points and the speed (symlog, as
DreamerV3 squashes vector inputs). The actor outputs K ego-frame waypoints; the delta head outputs a residual
``bound_k * clip(u, -1, 1)`` with ``u ~ Normal(tanh(mean), std)``, std in [min_std, max_std] (DreamerV3 bounded
normal, dreamerv3/configs.yaml ``actor.minstd/maxstd``) and ``bound_k`` growing with waypoint k's time
(``DeltaConfig``). Final waypoints = BC + residual.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.distributions import Independent, Normal

from drivesim.policy.config import ActorConfig, DeltaConfig, InputConfig
from drivesim.world_model.distributions import symlog
from drivesim.world_model.networks import MLP, zero_init_


def input_size(feature_size: int, config: InputConfig) -> int:
    """Size of the vector built by ``policy_inputs``."""
    return (
        feature_size
        + (2 * config.num_route_points if config.use_route else 0)
        + (1 if config.use_speed else 0)
    )


def policy_inputs(
    features: Tensor, route: Tensor | None, speed_mps: Tensor | None, config: InputConfig
) -> Tensor:
    """Concatenate features (..., F), symlog route (..., R, 2) and symlog speed (...,) as configured."""
    parts = [features.float()]
    if config.use_route:
        assert route is not None and route.shape[-2:] == (config.num_route_points, 2), (
            f"the policy reads route points (..., {config.num_route_points}, 2), got "
            f"{None if route is None else tuple(route.shape)}"
        )
        parts.append(symlog(route.float().flatten(-2)))
    if config.use_speed:
        assert speed_mps is not None, "the policy reads the speed; pass speed_mps (...,)"
        parts.append(symlog(speed_mps.float()).unsqueeze(-1))
    return torch.cat(parts, -1)


class WaypointActor(nn.Module):
    """BC actor: inputs (..., I) -> waypoints (..., K, 2) in the ego frame [m]."""

    def __init__(self, in_size: int, config: ActorConfig) -> None:
        super().__init__()
        self.num_waypoints = config.num_waypoints
        self.mlp = MLP(in_size, config.units, config.layers)
        self.out = nn.Linear(config.units, 2 * config.num_waypoints)

    def forward(self, inputs: Tensor) -> Tensor:
        out = self.out(self.mlp(inputs)).float()
        return out.reshape(*out.shape[:-1], self.num_waypoints, 2)


class DeltaHead(nn.Module):
    """Residual head: inputs (..., I) and BC waypoints (..., K, 2) -> a Normal over u (..., 2K).

    The output layer is zero-initialised: the mean is tanh(0) = 0 and the std is ``init_std`` at start.
    """

    def __init__(self, in_size: int, num_waypoints: int, config: DeltaConfig, waypoint_dt_s: float = 0.5) -> None:
        super().__init__()
        self.config = config
        self.size = 2 * num_waypoints
        times_s = waypoint_dt_s * torch.arange(1, num_waypoints + 1, dtype=torch.float32)
        rates = torch.tensor([config.longitudinal_mps, config.lateral_mps])
        self.register_buffer("bound_m", times_s[:, None] * rates, persistent=False)  # (K, 2)
        self.mlp = MLP(in_size + self.size, config.units, config.layers)
        self.out = zero_init_(nn.Linear(config.units, 2 * self.size))
        share = (config.init_std - config.min_std) / (config.max_std - config.min_std)
        self.std_offset = math.log(share / (1.0 - share))  # sigmoid(0 + offset) gives init_std

    def forward(self, inputs: Tensor, bc_waypoints: Tensor) -> Independent:
        x = torch.cat([inputs, symlog(bc_waypoints.detach().float().flatten(-2))], -1)
        mean, std = self.out(self.mlp(x)).float().chunk(2, -1)
        c = self.config
        std = c.min_std + (c.max_std - c.min_std) * torch.sigmoid(std + self.std_offset)
        return Independent(Normal(torch.tanh(mean), std), 1)

    def residual(self, u: Tensor) -> Tensor:
        """Residual waypoints (..., K, 2) [m] for unit-scale samples u (..., 2K)."""
        unit = u.clamp(-1.0, 1.0)
        return unit.reshape(*unit.shape[:-1], self.size // 2, 2) * self.bound_m


class WaypointPolicy(nn.Module):
    """BC actor plus (for RL) the delta head.

    Args:
        feature_size: world-model feature size F.
        inputs: which extra inputs to read.
        actor: BC actor config.
        delta: delta-head config; None builds a BC-only policy.
    """

    def __init__(
        self, feature_size: int, inputs: InputConfig, actor: ActorConfig, delta: DeltaConfig | None = None
    ) -> None:
        super().__init__()
        self.input_config = inputs
        size = input_size(feature_size, inputs)
        self.actor = WaypointActor(size, actor)
        self.delta = (
            DeltaHead(size, actor.num_waypoints, delta, actor.waypoint_dt_s) if delta is not None else None
        )

    def inputs(self, features: Tensor, route: Tensor | None, speed_mps: Tensor | None) -> Tensor:
        """The input vector (..., I) of features (..., F), route (..., R, 2) and speed (...,)."""
        return policy_inputs(features, route, speed_mps, self.input_config)

    def bc_waypoints(self, inputs: Tensor) -> Tensor:
        """BC waypoints (..., K, 2)."""
        return self.actor(inputs)

    def distribution(self, inputs: Tensor, bc_waypoints: Tensor) -> Independent:
        """The delta head's distribution over u (..., 2K)."""
        assert self.delta is not None, (
            "this policy has no delta head (a BC checkpoint); build it with a DeltaConfig"
        )
        return self.delta(inputs, bc_waypoints)

    def act(
        self, inputs: Tensor, sample: bool = False, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """Final waypoints (..., K, 2) and the unit-scale sample u (..., 2K) (None without a delta head).

        Args:
            inputs: (..., I) from ``inputs``.
            sample: sample u (RL exploration) or take its mean (evaluation).
            generator: optional generator for reproducible sampling.
        """
        bc = self.bc_waypoints(inputs)
        if self.delta is None:
            return bc, None
        dist = self.distribution(inputs, bc)
        mean, std = dist.base_dist.loc, dist.base_dist.scale
        if sample:
            noise = torch.randn(mean.shape, device=mean.device, generator=generator)
            u = (mean + std * noise).detach()
        else:
            u = mean
        return bc + self.delta.residual(u), u
