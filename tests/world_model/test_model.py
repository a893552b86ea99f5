"""WorldModel shapes for every preset, observe / img_step / imagine, determinism and the reward."""

from __future__ import annotations

import pytest
import torch

from drivesim import spec
from drivesim.world_model.model import WorldModel, shift_actions
from drivesim.world_model.rssm import LatentState

PRESETS = ("debug", "small", "dreamerv3_torch_small", "12m", "25m", "50m", "100m", "200m")


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_builds_with_expected_sizes(name: str, preset) -> None:
    config = preset(name)
    with torch.device("meta"):  # no memory, no initialisation cost: 200m builds in milliseconds
        model = WorldModel(config)
    rssm = config.rssm
    assert model.feature_size == rssm.deter_size + rssm.stoch_groups * rssm.stoch_classes
    params = sum(p.numel() for p in model.parameters())
    expected_range = {
        "debug": (1e4, 1e6),
        "small": (5e6, 1.2e7),
        "dreamerv3_torch_small": (5e6, 1.2e7),
        "12m": (8e6, 3e7),
        "25m": (1.8e7, 6e7),
        "50m": (3.5e7, 1.2e8),
        "100m": (7e7, 2.4e8),
        "200m": (1.4e8, 4.5e8),
    }[name]
    assert expected_range[0] <= params <= expected_range[1], f"{name}: {params / 1e6:.1f}M parameters"


def test_shift_actions_zeroes_episode_starts() -> None:
    action = torch.arange(12.0).reshape(1, 4, 3)
    is_first = torch.tensor([[True, False, True, False]])
    shifted = shift_actions(action, is_first)
    assert shifted[0, 0].tolist() == [0, 0, 0]
    assert shifted[0, 1].tolist() == action[0, 0].tolist()
    assert shifted[0, 2].tolist() == [0, 0, 0]
    assert shifted[0, 3].tolist() == action[0, 2].tolist()


def test_loss_observe_and_imagine_shapes(debug_config, synthetic_batch) -> None:
    torch.manual_seed(0)
    model = WorldModel(debug_config)
    batch = synthetic_batch(3, 10, collisions=True)
    loss, metrics, posterior = model.loss(batch)
    loss.backward()
    assert torch.isfinite(loss)
    rssm = debug_config.rssm
    groups, classes = rssm.stoch_groups, rssm.stoch_classes
    assert posterior.deter.shape == (3, 10, rssm.deter_size)
    assert posterior.stoch.shape == (3, 10, groups, classes)
    for name in (
        "loss/camera",
        "loss/bev",
        "loss/collision",
        "loss/progress",
        "loss/dyn",
        "latent/prior_entropy",
    ):
        assert name in metrics
    assert all(p.grad is not None for p in model.rssm.parameters())

    with torch.no_grad():
        _, _, last = model.observe(batch)
        state = model.img_step(last, torch.zeros(3, 3))
        assert state.deter.shape == (3, rssm.deter_size) and state.stoch.shape == (3, groups, classes)
        rollout = model.imagine(last, torch.rand(3, 5, 3), horizon=5, decode_images=True)
    assert rollout.features.shape == (3, 5, model.feature_size)
    assert rollout.reward.shape == (3, 5)
    assert set(rollout.components) >= {"progress", "collision", "off_road", "speed", "cont"}
    assert rollout.images["camera"].shape == (3, 5, 32, 32, 3)
    assert rollout.images["bev"].shape == (3, 5, len(spec.BEV_CHANNELS), 32, 32)
    assert rollout.measurements.shape == (3, 5, 6)


def test_imagination_is_deterministic_under_a_seed_and_accepts_a_policy(debug_config) -> None:
    torch.manual_seed(0)
    model = WorldModel(debug_config).eval()
    start = LatentState(torch.randn(16, debug_config.rssm.deter_size), model.initial(16).stoch)
    calls = []

    def policy(features: torch.Tensor, state: LatentState) -> torch.Tensor:
        calls.append(features.shape)
        return torch.tanh(features[:, :3])

    def rollout(seed: int):
        with torch.no_grad():
            return model.imagine(start, policy, horizon=7, generator=torch.Generator().manual_seed(seed))

    first, second, other = rollout(1), rollout(1), rollout(2)
    assert torch.equal(first.features, second.features)
    assert torch.equal(first.reward, second.reward)
    assert not torch.equal(first.features, other.features)
    assert calls[0] == (16, model.feature_size) and len(calls) == 21
    assert first.actions.shape == (16, 7, 3)


def test_reward_is_a_configurable_weighted_sum(debug_config) -> None:
    model = WorldModel(debug_config)
    components = {
        "progress": torch.tensor([1.0, 2.0]),
        "collision": torch.tensor([0.0, 0.5]),
        "off_road": torch.tensor([0.5, 0.0]),
        "speed": torch.tensor([3.0, 4.0]),
        "cont": torch.ones(2),
    }
    assert model.heads.reward(components).tolist() == pytest.approx([1.0 - 1.0, 2.0 - 5.0])
    assert model.heads.reward(components, {"speed": 0.5}).tolist() == pytest.approx([1.5, 2.0])


def test_progress_and_speed_heads_start_at_zero(debug_config) -> None:
    model = WorldModel(debug_config)
    predictions = model.predict(torch.randn(4, model.feature_size))
    assert torch.allclose(predictions["components"]["progress"], torch.zeros(4), atol=1e-5)
    assert torch.allclose(predictions["components"]["speed"], torch.zeros(4), atol=1e-5)


def test_output_biases_start_at_the_batch_pixel_means(debug_config, synthetic_batch) -> None:
    torch.manual_seed(0)
    model = WorldModel(debug_config)
    batch = synthetic_batch(2, 4)
    batch["bev"][:] = 0
    batch["bev"][:, :, spec.BEV_CHANNELS.index("drivable")] = 1
    before, _, _ = model.loss(batch, generator=torch.Generator().manual_seed(0))
    probs = model.init_output_biases(batch)
    bias = torch.sigmoid(model.heads.image.output_bias.detach())
    camera_mean = batch["camera"].float().mean((0, 1, 2, 3)) / 255
    assert torch.allclose(bias[:3], camera_mean, atol=1e-5) and probs[:3] == pytest.approx(camera_mean.tolist(), abs=1e-5)
    bev_bias = bias[3:].tolist()
    assert bev_bias[spec.BEV_CHANNELS.index("drivable")] == pytest.approx(1 - 1e-3, abs=1e-6)
    assert bev_bias[spec.BEV_CHANNELS.index("vehicles")] == pytest.approx(1e-3, abs=1e-6)
    after, metrics, _ = model.loss(batch, generator=torch.Generator().manual_seed(0))
    assert metrics["loss_bev/vehicles"] < 0.2 * 32 * 32 * 0.69  # far below p = 0.5 everywhere
    assert after < before
