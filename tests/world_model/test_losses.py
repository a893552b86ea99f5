"""KL balancing with free bits, event targets, loss scaling and the optimiser."""

from __future__ import annotations

import math

import pytest
import torch

from drivesim import spec
from drivesim.config import apply_overrides
from drivesim.world_model.config import LossConfig, OptimConfig, WorldModelConfig
from drivesim.world_model.losses import future_event, image_losses, kl_losses, total_loss
from drivesim.world_model.model import WorldModel
from drivesim.world_model.optim import LaPropAGC, adaptive_gradient_clip_, build_optimizer


def _kl(p: list[float], q: list[float]) -> float:
    return sum(a * math.log(a / b) for a, b in zip(p, q, strict=True))


def test_kl_balancing_values_gradients_and_free_bits() -> None:
    post_probs, prior_probs = [0.9, 0.1], [0.2, 0.8]
    post_logits = torch.tensor([[post_probs]]).log().requires_grad_()  # (1, G=1, C=2)
    prior_logits = torch.tensor([[prior_probs]]).log().requires_grad_()
    expected = _kl(post_probs, prior_probs)  # about 1.146 nats, above 1 free nat
    losses = kl_losses(torch.log_softmax(post_logits, -1), torch.log_softmax(prior_logits, -1), free_nats=1.0)
    assert losses["dyn"].item() == pytest.approx(expected, rel=1e-5)
    assert losses["rep"].item() == pytest.approx(expected, rel=1e-5)
    # Balancing: dyn trains only the prior, rep only the posterior.
    (1.0 * losses["dyn"]).sum().backward(retain_graph=True)
    assert post_logits.grad is None or post_logits.grad.abs().sum() == 0
    assert prior_logits.grad.abs().sum() > 0
    prior_logits.grad = None
    (0.1 * losses["rep"]).sum().backward()
    assert prior_logits.grad is None or prior_logits.grad.abs().sum() == 0
    assert post_logits.grad.abs().sum() > 0


def test_free_bits_clip_small_kl_and_stop_its_gradient() -> None:
    post = torch.tensor([[[0.6, 0.4]]]).log().requires_grad_()
    prior = torch.tensor([[[0.5, 0.5]]]).log().requires_grad_()
    raw = _kl([0.6, 0.4], [0.5, 0.5])  # about 0.02 nats
    losses = kl_losses(post, prior, free_nats=1.0)
    assert losses["dyn"].item() == pytest.approx(1.0)
    assert losses["rep"].item() == pytest.approx(1.0)
    assert losses["kl"].item() == pytest.approx(raw, rel=1e-4)
    (losses["dyn"] + losses["rep"]).sum().backward()
    assert post.grad.abs().sum() == 0 and prior.grad.abs().sum() == 0


def test_total_loss_applies_scales() -> None:
    terms = {
        "camera": torch.full((4,), 2.0),
        "bev": torch.full((4,), 1.0),
        "dyn": torch.ones(4),
        "rep": torch.ones(4),
    }
    scales = LossConfig(camera=0.5, bev=0.25, dyn=1.0, rep=0.1)
    loss, means = total_loss(terms, scales)
    assert loss.item() == pytest.approx(0.5 * 2.0 + 0.25 * 1.0 + 1.0 + 0.1)
    assert means["camera"].item() == pytest.approx(2.0)


def test_bev_channel_weights_scale_each_channels_gradient() -> None:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(3, len(spec.BEV_CHANNELS), 8, 8, generator=generator)
    target = (torch.rand(logits.shape, generator=generator) < 0.1).float()

    def channel_gradients(weights: torch.Tensor | None) -> torch.Tensor:
        leaf = logits.clone().requires_grad_()
        losses = image_losses({"bev_logits": leaf}, {"bev": target}, weights)
        losses["bev"].sum().backward()
        return leaf.grad.abs().sum((0, 2, 3))

    weights = torch.tensor(LossConfig().bev_channels.as_list())
    plain, weighted = channel_gradients(None), channel_gradients(weights)
    assert torch.allclose(weighted, plain * weights, rtol=1e-5)
    assert weighted[spec.BEV_CHANNELS.index("ego")] == 0
    vehicles, drivable = spec.BEV_CHANNELS.index("vehicles"), spec.BEV_CHANNELS.index("drivable")
    moving = [spec.BEV_CHANNELS.index(name) for name in spec.BEV_CHANNELS if name.startswith("traffic_light")]
    moving += [vehicles, spec.BEV_CHANNELS.index("walkers")]
    assert weighted[moving].sum() / weighted.sum() > 1.5 * plain[moving].sum() / plain.sum()
    assert weights[vehicles] > weights[drivable]
    per_channel = image_losses({"bev_logits": logits}, {"bev": target}, weights)["bev_channels"]
    assert per_channel.shape == (3, len(spec.BEV_CHANNELS))  # unweighted, for logging


def test_loss_scales_set_the_decoders_gradient_share(debug_config, synthetic_batch) -> None:
    """Camera / BEV scales and channel weights move the gradient on the decoder's output rows as set."""
    batch = synthetic_batch(2, 6)

    def output_gradients(*overrides: str) -> torch.Tensor:
        config = WorldModelConfig.model_validate(apply_overrides(debug_config.model_dump(mode="json"), overrides))
        torch.manual_seed(0)
        model = WorldModel(config)
        loss, _, _ = model.loss(batch, generator=torch.Generator().manual_seed(1))
        loss.backward()
        last = model.heads.image.layers[-1]  # ConvTranspose2d: weight (in, out, k, k), out = 3 RGB + BEV
        return last.weight.grad.transpose(0, 1).flatten(1).norm(dim=1)

    channels = {name: 3 + index for index, name in enumerate(spec.BEV_CHANNELS)}
    unit = [f"loss.bev_channels.{name}=1.0" for name in spec.BEV_CHANNELS]
    base = output_gradients("loss.camera=1.0", "loss.bev=1.0", *unit)
    tuned = output_gradients("loss.camera=2.0", "loss.bev=0.1", *unit, "loss.bev_channels.vehicles=10.0",
                             "loss.bev_channels.ego=0.0")  # fmt: skip
    assert torch.allclose(tuned[:3], 2.0 * base[:3], rtol=1e-4)
    assert torch.allclose(tuned[channels["vehicles"]], 1.0 * base[channels["vehicles"]], rtol=1e-4)
    assert torch.allclose(tuned[channels["drivable"]], 0.1 * base[channels["drivable"]], rtol=1e-4)
    assert tuned[channels["ego"]] == 0
    camera_share = lambda grads: grads[:3].sum() / grads.sum()  # noqa: E731
    assert camera_share(tuned) > camera_share(base)


def test_legacy_single_image_scale_loads() -> None:
    legacy = LossConfig.model_validate({"image": 0.5, "dyn": 1.0})
    assert legacy.camera == legacy.bev == 0.5
    assert legacy.bev_channels.as_list() == [1.0] * len(spec.BEV_CHANNELS)


def test_future_event_window_respects_episode_bounds() -> None:
    flags = torch.tensor([[0, 0, 0, 1, 0, 0, 0, 0]], dtype=torch.bool)
    is_first = torch.tensor([[1, 0, 0, 0, 0, 1, 0, 0]], dtype=torch.bool)
    is_last = torch.tensor([[0, 0, 0, 0, 1, 0, 0, 0]], dtype=torch.bool)
    same_step, valid = future_event(flags, is_first, is_last, 0)
    assert same_step.tolist() == [[0, 0, 0, 1, 0, 0, 0, 0]] and valid.min() == 1
    target, valid = future_event(flags, is_first, is_last, 2)
    assert target.tolist() == [[0, 1, 1, 1, 0, 0, 0, 0]]
    # Rows 6 and 7 cannot see two steps ahead inside the window in a running episode.
    assert valid.tolist() == [[1, 1, 1, 1, 1, 1, 0, 0]]


def test_adaptive_gradient_clipping() -> None:
    weight = torch.nn.Parameter(torch.ones(4))  # norm 2
    weight.grad = torch.full((4,), 10.0)  # norm 20 > 0.3 * 2
    adaptive_gradient_clip_([weight], ratio=0.3)
    assert weight.grad.norm().item() == pytest.approx(0.6, rel=1e-5)
    small = torch.nn.Parameter(torch.ones(4))
    small.grad = torch.full((4,), 0.1)  # norm 0.2 < 0.6: untouched
    adaptive_gradient_clip_([small], ratio=0.3)
    assert small.grad.norm().item() == pytest.approx(0.2, rel=1e-5)


def test_laprop_first_step_is_signed_lr_and_warmup_scales() -> None:
    weight = torch.nn.Parameter(torch.tensor([1.0, -2.0, 3.0]))
    optimizer = LaPropAGC([weight], lr=0.1, agc=0.0)
    weight.grad = torch.tensor([0.5, -4.0, 0.0])
    optimizer.step()
    # Bias-corrected: v = g^2, m = g / |g|; zero gradient gives 0 / (0 + eps) = 0.
    assert torch.allclose(weight.detach(), torch.tensor([0.9, -1.9, 3.0]))
    layer = torch.nn.Linear(2, 2)
    optimizer, scheduler = build_optimizer(layer.parameters(), OptimConfig(lr=1.0, warmup_steps=4))
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.25)
    for _ in range(5):
        optimizer.step()
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1.0)


def test_adam_variant_matches_torch_adam() -> None:
    torch.manual_seed(0)
    ours = torch.nn.Parameter(torch.randn(5))
    reference = torch.nn.Parameter(ours.detach().clone())
    mine = LaPropAGC([ours], lr=0.01, eps=1e-8, agc=0.0, laprop=False)
    adam = torch.optim.Adam([reference], lr=0.01, eps=1e-8)
    for step in range(3):
        grad = torch.randn(5, generator=torch.Generator().manual_seed(step))
        ours.grad, reference.grad = grad.clone(), grad.clone()
        mine.step()
        adam.step()
    assert torch.allclose(ours, reference, atol=1e-6)
