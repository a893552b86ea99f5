"""The delta head at initialisation reproduces the BC waypoints; bounded residuals; critic starts at zero."""

from __future__ import annotations

import torch

from drivesim.policy.actor import WaypointPolicy, input_size
from drivesim.policy.config import PolicyConfig
from drivesim.policy.critic import Critic, SlowCritic


def make_inputs(policy: WaypointPolicy, batch: int, feature_size: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(batch, feature_size, generator=generator)
    route = torch.randn(batch, 16, 2, generator=generator) * 10
    speed = torch.rand(batch, generator=generator) * 10
    return policy.inputs(features, route, speed)


def test_delta_head_at_init_reproduces_bc(policy_config: PolicyConfig) -> None:
    torch.manual_seed(0)
    policy = WaypointPolicy(40, policy_config.inputs, policy_config.actor, policy_config.delta)
    inputs = make_inputs(policy, 256, 40)
    assert inputs.shape == (256, input_size(40, policy_config.inputs))
    bc = policy.bc_waypoints(inputs)
    mean_waypoints, u = policy.act(inputs, sample=False)
    torch.testing.assert_close(mean_waypoints, bc)  # zero-initialised mean: exactly the BC waypoints
    assert u is not None and float(u.detach().abs().max()) == 0.0
    sampled, u = policy.act(inputs, sample=True, generator=torch.Generator().manual_seed(1))
    delta = policy_config.delta
    bound = policy.delta.bound_m  # (K, 2): grows with the waypoint's time
    assert float(bound[0, 0]) == 0.5 * delta.longitudinal_mps and float(bound[-1, 1]) == 4.0 * delta.lateral_mps
    assert bool(((sampled - bc).abs() <= bound + 1e-6).all())  # bounded residual, per waypoint and axis
    # DreamerV3's exploration: a unit-scale std near 0.9, so most samples move the waypoints visibly
    assert float(((sampled - bc).abs() / bound).mean()) > 0.4
    dist = policy.distribution(inputs, bc)
    torch.testing.assert_close(dist.base_dist.scale, torch.full_like(dist.base_dist.scale, delta.init_std))
    log_prob = dist.log_prob(u)
    assert log_prob.shape == (256,) and bool(torch.isfinite(log_prob).all())


def test_bc_policy_without_delta(policy_config: PolicyConfig) -> None:
    policy = WaypointPolicy(40, policy_config.inputs, policy_config.actor)
    inputs = make_inputs(policy, 4, 40)
    waypoints, u = policy.act(inputs)
    assert waypoints.shape == (4, 8, 2) and u is None


def test_critic_zero_init_and_slow_target(policy_config: PolicyConfig) -> None:
    critic = Critic(10, policy_config.critic)
    inputs = torch.randn(5, 10)
    torch.testing.assert_close(critic.value(inputs), torch.zeros(5))
    slow = SlowCritic(critic)
    with torch.no_grad():
        critic.out.bias.fill_(1.0)
    slow.update(critic, 0.02)
    torch.testing.assert_close(slow.critic.out.bias, torch.full_like(slow.critic.out.bias, 0.02))
    assert not any(p.requires_grad for p in slow.parameters())
    loss = critic.loss(inputs, torch.full((5,), 3.0))
    assert loss.shape == (5,)
