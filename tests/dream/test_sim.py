"""DreamSim: gymnasium's env checker, determinism under a seed, batched stepping == single-env stepping."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from gymnasium.utils.env_checker import check_env

from drivesim import spec
from drivesim.dream.context import ContextSource
from drivesim.dream.sim import DreamSimEnv, DreamSimVectorEnv, make_dreamsim
from drivesim.policy.config import PolicyConfig
from drivesim.world_model.model import WorldModel
from drivesim.world_model.train import model_fields


def make_contexts(dataset: Path, world_model: WorldModel, steps: int) -> ContextSource:
    return ContextSource(dataset, model_fields(world_model.config), steps, val_only=False)


def rollout(env: DreamSimEnv, seed: int, steps: int) -> list[dict[str, np.ndarray]]:
    observation, _ = env.reset(seed=seed)
    frames = [observation]
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        observation, reward, terminated, truncated, info = env.step(rng.uniform(0, 1, 3).astype(np.float32))
        frames.append({**observation, "reward": np.float32(reward)})
        if terminated or truncated:
            break
    return frames


def test_check_env_and_seeded_determinism(
    dataset: Path, wm_checkpoint: Path, policy_config: PolicyConfig
) -> None:
    env = make_dreamsim(wm_checkpoint, dataset, policy_config.dreamsim)
    check_env(env, skip_render_check=True)
    first, second = rollout(env, 3, 5), rollout(env, 3, 5)
    assert len(first) == len(second)
    for a, b in zip(first, second, strict=True):
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    other = rollout(env, 4, 5)
    assert any(
        not np.array_equal(a[spec.OBS_CAMERA], b[spec.OBS_CAMERA]) for a, b in zip(first, other, strict=False)
    )
    observation, info = env.reset(seed=0)
    assert observation[spec.OBS_CAMERA].shape == (32, 32, 3) and observation[spec.OBS_BEV].shape == (
        len(spec.BEV_CHANNELS),
        32,
        32,
    )
    assert info["ego_pose"].shape == (4,)


def test_batched_matches_single_env(
    dataset: Path, world_model: WorldModel, policy_config: PolicyConfig
) -> None:
    config = policy_config.dreamsim.model_copy(update={"sample_latents": False, "max_episode_steps": 50})
    contexts = make_contexts(dataset, world_model, config.context_steps)
    windows = [0, 2, 1]
    vector = DreamSimVectorEnv(world_model, contexts, len(windows), config)
    batch_obs, _ = vector.reset(seed=0, window_indices=windows)
    controls = torch.rand(4, len(windows), 3, generator=torch.Generator().manual_seed(0))
    batched = [batch_obs]
    rewards = []
    for control in controls:
        observation, reward, terminated, truncated, _ = vector.step(control, autoreset=False)
        batched.append(observation)
        rewards.append(reward)
    for env_index, window in enumerate(windows):
        env = DreamSimEnv(world_model, contexts, config)
        observation, _ = env.reset(seed=0, options={"window_index": window})
        singles = [observation]
        single_rewards = []
        for control in controls:
            observation, reward, *_ = env.step(control[env_index].numpy())
            singles.append(observation)
            single_rewards.append(reward)
        for step, (batch_step, single) in enumerate(zip(batched, singles, strict=True)):
            for key, value in single.items():
                got = batch_step[key][env_index].numpy()
                if value.dtype == np.uint8:  # thresholded frames: allow rare flips from float round-off
                    assert np.mean(got != value) < 0.01, (key, step)
                else:
                    np.testing.assert_allclose(got, value, atol=1e-4, err_msg=f"{key} step {step}")
        np.testing.assert_allclose([float(r[env_index]) for r in rewards], single_rewards, atol=1e-4)


def test_vector_autoreset(dataset: Path, world_model: WorldModel, policy_config: PolicyConfig) -> None:
    config = policy_config.dreamsim.model_copy(update={"max_episode_steps": 2, "decode_images": False})
    vector = DreamSimVectorEnv(
        world_model, make_contexts(dataset, world_model, config.context_steps), 5, config
    )
    vector.reset(seed=1)
    truncations = 0
    for _ in range(4):
        _, reward, terminated, truncated, info = vector.step(torch.full((5, 3), 0.3))
        truncations += int(truncated.sum())
        assert reward.shape == (5,) and bool(((info["steps"] == 0) | (info["steps"] <= 2)).all())
    assert truncations > 0 and bool((vector.steps <= 2).all())
