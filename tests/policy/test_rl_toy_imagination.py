"""Sign test of the actor-critic: in a toy imagination whose reward is hand-made, the delta head's MEAN residual
moves toward the reward's optimum (and the opposite way for the opposite reward). It fails if the mean stays at 0.

The toy is the real pipeline (BC + delta waypoints -> batched controller -> a random ``debug`` world model's
prior), decisions held for ``decision_every_steps`` steps, with the world model's reward replaced by a function of
the applied control: ``sign x (throttle - brake)``. Speeding up needs the first waypoint further ahead
(a positive forward residual), slowing down a negative one.
"""

from __future__ import annotations

import pytest
import torch

from drivesim.dream.driver import DriveState, LatentDriver, StepPrediction
from drivesim.dream.rollout import imagine_policy
from drivesim.policy.config import PolicyConfig
from drivesim.policy.rl import RLModule
from drivesim.world_model.model import WorldModel


class HandMadeReward(LatentDriver):
    """A latent driver whose reward is ``sign x (throttle - brake)`` of the applied control, never terminating."""

    def __init__(self, driver: LatentDriver, sign: float) -> None:
        self.__dict__.update(driver.__dict__)
        self.sign = sign

    def step(self, state: DriveState, control: torch.Tensor, *args, **kwargs) -> tuple[DriveState, StepPrediction]:
        new_state, prediction = super().step(state, control, *args, **kwargs)
        control = control.clamp(0.0, 1.0)
        prediction.reward = self.sign * (control[:, 0] - control[:, 2])
        prediction.components = {**prediction.components, "cont": torch.ones_like(prediction.reward)}
        return new_state, prediction


def train_toy(world_model: WorldModel, config: PolicyConfig, sign: float, updates: int = 40) -> tuple[float, float]:
    """Mean forward residual of the first waypoint [m] before and after ``updates`` actor-critic updates."""
    torch.manual_seed(0)
    module = RLModule(config.model_dump(mode="json"), world_model.config.model_dump(mode="json"))
    with torch.no_grad():  # a BC actor that keeps the speed: waypoints every 0.5 s at 5 m/s straight ahead
        module.policy.actor.out.weight.zero_()
        plan = torch.stack([2.5 * torch.arange(1.0, 9.0), torch.zeros(8)], -1)
        module.policy.actor.out.bias.copy_(plan.flatten())
    driver = HandMadeReward(module.driver, sign)
    optimizer = module.configure_optimizers()["optimizer"]
    generator = torch.Generator().manual_seed(0)
    count = 64
    start = DriveState(
        latent=world_model.initial(count),
        route=torch.stack([torch.arange(2.0, 34.0, 2.0), torch.zeros(16)], -1).expand(count, 16, 2),
        expert_waypoints=torch.zeros(count, 8, 2),
        speed_mps=torch.full((count,), 5.0),
        integral=torch.zeros(count),
        pose=torch.zeros(count, 3),
        route_completion=torch.zeros(count),
    )

    def mean_forward_residual() -> float:
        with torch.no_grad():
            inputs = module.policy.inputs(world_model.features(start.latent), start.route, start.speed_mps)
            _, u = module.policy.act(inputs, sample=False)
        return float(module.policy.delta.residual(u)[:, 0, 0].mean())

    before = mean_forward_residual()
    imagination = config.imagination
    for _ in range(updates):
        rollout = imagine_policy(driver, module.policy, start, imagination.horizon, imagination.decision_every_steps,
                                 generator=generator)
        actor_loss, critic_loss, _ = module.actor_critic_losses(rollout)
        optimizer.zero_grad()
        (actor_loss + critic_loss).backward()
        optimizer.step()
        module.slow_critic.update(module.critic, config.critic.slow_rate)
    return before, mean_forward_residual()


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_mean_residual_moves_toward_the_hand_made_optimum(
    world_model: WorldModel, policy_config: PolicyConfig, sign: float
) -> None:
    before, after = train_toy(world_model, policy_config, sign)
    assert before == 0.0  # zero-initialised mean: the BC waypoints
    assert sign * after > 0.1, f"the mean forward residual should move {'up' if sign > 0 else 'down'}: {after:+.3f} m"
