"""The REINFORCE update moves the delta head toward rewarded residuals; the critic learns the returns."""

from __future__ import annotations

import torch

from drivesim.dream.rollout import PolicyRollout
from drivesim.policy.config import PolicyConfig
from drivesim.policy.rl import RLModule
from drivesim.world_model.model import WorldModel


def synthetic_rollout(module: RLModule, inputs: torch.Tensor, generator: torch.Generator) -> PolicyRollout:
    """A rollout whose reward is the first residual coordinate of each step's sample."""
    policy = module.policy
    with torch.no_grad():
        _, samples = policy.act(inputs[:, :-1], sample=True, generator=generator)
    reward = samples[..., 0]
    cont = torch.ones_like(reward)
    return PolicyRollout(inputs, samples, None, None, reward, cont, {"progress": reward, "cont": cont})


def test_reinforce_moves_delta_toward_reward(world_model: WorldModel, policy_config: PolicyConfig) -> None:
    torch.manual_seed(0)
    config = policy_config.model_copy(deep=True)
    config.delta.init_std = 0.3
    module = RLModule(config.model_dump(mode="json"), world_model.config.model_dump(mode="json"))
    size = module.critic.mlp[0].linear.in_features
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(64, config.imagination.horizon + 1, size, generator=generator)
    optimizer = torch.optim.Adam([p for p in module.parameters() if p.requires_grad], lr=3e-3)

    def mean_first() -> float:
        with torch.no_grad():
            _, u = module.policy.act(inputs, sample=False)
        return float(u[..., 0].mean())

    before = mean_first()
    critic_losses = []
    for _ in range(30):
        actor_loss, critic_loss, metrics = module.actor_critic_losses(
            synthetic_rollout(module, inputs, generator)
        )
        optimizer.zero_grad()
        (actor_loss + critic_loss).backward()
        optimizer.step()
        module.slow_critic.update(module.critic, config.critic.slow_rate)
        critic_losses.append(float(critic_loss.detach()))
        assert torch.isfinite(metrics["imagined/return"])
    assert mean_first() > before + 0.1
    assert critic_losses[-1] < critic_losses[0]
    assert not any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.policy.actor.parameters())
