"""Dream stage: imagined rollouts of a waypoint policy, deciding every N simulator steps (RL's imagination).

A waypoint set is a plan, not a per-tick control: the policy answers every ``decision_every`` steps and the
controller follows the held waypoints in between (at the current predicted speed), exactly as the evaluation
agent holds its answer in the real simulator (``drivesim.policy.agent``). The actor-critic works on decisions:
a decision's reward is the reward of its steps (each counted while the episode is still alive) and its
continue probability the product of theirs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from drivesim.dream.driver import DriveState, LatentDriver


class RolloutPolicy(Protocol):
    """What a rollout needs from a policy (``drivesim.policy.actor.WaypointPolicy`` is one)."""

    def inputs(self, features: Tensor, route: Tensor | None, speed_mps: Tensor | None) -> Tensor:
        """The policy's input vector (N, I)."""
        ...

    def act(
        self, inputs: Tensor, sample: bool = False, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """Waypoints (N, K, 2) and the sample behind them (N, S) (None for a policy without one)."""
        ...


@dataclass
class PolicyRollout:
    """An imagined rollout: N start states, D decisions of ``decision_every`` steps each (no gradients).

    Attributes:
        inputs: (N, D + 1, I) policy inputs at the decision states s_0..s_D.
        samples: (N, D, S) the policy's samples u_0..u_{D-1} (empty S for a policy without a delta head).
        waypoints: (N, D, K, 2) the decided waypoints.
        controls: (N, D x decision_every, 3) the controller's outputs, every simulator step.
        reward: (N, D) reward of each decision: its steps' rewards, each weighted by the probability that
            the episode was still running before that step.
        cont: (N, D) probability that the episode continues through a decision (product over its steps).
        components: (N, D x decision_every) each reward component, every simulator step.
        decision_every: simulator steps per decision.
    """

    inputs: Tensor
    samples: Tensor
    waypoints: Tensor
    controls: Tensor
    reward: Tensor
    cont: Tensor
    components: dict[str, Tensor]
    decision_every: int = 1


def aggregate_decisions(reward: Tensor, cont: Tensor, every: int) -> tuple[Tensor, Tensor]:
    """Per-step rewards and continue probabilities (B, D x every) -> per-decision ones (B, D).

    A decision's reward adds its steps' rewards, each weighted by the probability that the episode was still
    running before that step; its continue probability is the product of its steps'.
    """
    batch, steps = reward.shape
    assert cont.shape == reward.shape and steps % every == 0, (
        f"reward {tuple(reward.shape)} and cont {tuple(cont.shape)} must be (B, D x {every})"
    )
    reward, cont = reward.reshape(batch, -1, every).float(), cont.reshape(batch, -1, every).float()
    alive_before = torch.cumprod(torch.cat([torch.ones_like(cont[..., :1]), cont[..., :-1]], -1), -1)
    return (alive_before * reward).sum(-1), cont.prod(-1)


@torch.no_grad()
def imagine_policy(
    driver: LatentDriver,
    policy: RolloutPolicy,
    start: DriveState,
    decisions: int,
    decision_every: int = 1,
    generator: torch.Generator | None = None,
    sample_latents: bool = True,
    sample_actions: bool = True,
) -> PolicyRollout:
    """Roll ``policy`` for ``decisions`` x ``decision_every`` simulator steps from ``start``.

    Per step: the held waypoints -> controller (predicted speed, PID state carried) -> control -> prior step.
    """
    assert decisions >= 1 and decision_every >= 1, f"need decisions, decision_every >= 1, got {decisions}, {decision_every}"
    state = start
    inputs, samples, plans, controls, rewards = [], [], [], [], []
    step_components: list[dict[str, Tensor]] = []
    for _ in range(decisions):
        decision_inputs = policy.inputs(driver.world_model.features(state.latent), state.route, state.speed_mps)
        waypoints, sample = policy.act(decision_inputs, sample=sample_actions, generator=generator)
        for _ in range(decision_every):
            control, integral = driver.controls(state, waypoints)
            state, prediction = driver.step(state, control, integral, generator, sample_latents)
            controls.append(control)
            rewards.append(prediction.reward.float())
            step_components.append(prediction.components)
        inputs.append(decision_inputs)
        samples.append(sample if sample is not None else waypoints.new_zeros(waypoints.shape[0], 0))
        plans.append(waypoints)
    inputs.append(policy.inputs(driver.world_model.features(state.latent), state.route, state.speed_mps))
    components = {name: torch.stack([c[name] for c in step_components], 1).float() for name in step_components[0]}
    reward, cont = aggregate_decisions(torch.stack(rewards, 1), components["cont"], decision_every)
    return PolicyRollout(
        inputs=torch.stack(inputs, 1),
        samples=torch.stack(samples, 1),
        waypoints=torch.stack(plans, 1),
        controls=torch.stack(controls, 1),
        reward=reward,
        cont=cont,
        components=components,
        decision_every=decision_every,
    )
