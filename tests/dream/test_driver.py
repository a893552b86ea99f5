"""Dead reckoning of route points in imagination, and policy rollouts' shapes."""

from __future__ import annotations

import math

import pytest
import torch

from drivesim.dream.driver import DriveState, LatentDriver, advance_ego_frame
from drivesim.dream.rollout import imagine_policy
from drivesim.policy.actor import WaypointPolicy
from drivesim.policy.config import PolicyConfig
from drivesim.world_model.model import WorldModel


def test_advance_ego_frame_straight_and_turning() -> None:
    points = torch.tensor([[[10.0, 0.0], [0.0, 5.0]]])
    moved, shift, turn = advance_ego_frame(points, torch.tensor([10.0]), torch.tensor([0.0]), 0.1)
    torch.testing.assert_close(moved, torch.tensor([[[9.0, 0.0], [-1.0, 5.0]]]))
    # standing still, turning right by 90 degrees: a point on the right is now straight ahead
    moved, _, turn = advance_ego_frame(points, torch.tensor([0.0]), torch.tensor([90.0]), 1.0)
    assert float(turn) == pytest.approx(math.pi / 2)
    torch.testing.assert_close(moved[0, 1], torch.tensor([5.0, 0.0]), atol=1e-5, rtol=0)
    torch.testing.assert_close(moved[0, 0], torch.tensor([0.0, -10.0]), atol=1e-5, rtol=0)


def test_imagine_policy_shapes(world_model: WorldModel, policy_config: PolicyConfig) -> None:
    driver = LatentDriver(world_model, policy_config.controller)
    policy = WaypointPolicy(
        world_model.feature_size, policy_config.inputs, policy_config.actor, policy_config.delta
    )
    count, horizon = 6, 3
    latent = world_model.initial(count)
    start = DriveState(
        latent=latent,
        route=torch.randn(count, 16, 2),
        expert_waypoints=torch.zeros(count, 8, 2),
        speed_mps=torch.full((count,), 5.0),
        integral=torch.zeros(count),
        pose=torch.zeros(count, 3),
        route_completion=torch.zeros(count),
    )
    generator = torch.Generator().manual_seed(0)
    rollout = imagine_policy(driver, policy, start, horizon, generator=generator)
    assert rollout.inputs.shape[:2] == (count, horizon + 1)
    assert rollout.samples.shape == (count, horizon, 16) and rollout.waypoints.shape == (count, horizon, 8, 2)
    assert rollout.controls.shape == (count, horizon, 3) and rollout.reward.shape == (count, horizon)
    assert set(rollout.components) >= {"progress", "collision", "off_road", "cont", "speed"}
    assert bool(((rollout.controls >= torch.tensor([0.0, -1.0, 0.0])) & (rollout.controls <= 1.0)).all())
    again = imagine_policy(driver, policy, start, horizon, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(again.reward, rollout.reward)  # seeded: reproducible
