"""KL balancing with free bits, event targets, loss scaling and the optimiser."""

from __future__ import annotations

import math

import pytest
import torch

from drivesim.world_model.config import LossConfig, OptimConfig
from drivesim.world_model.losses import future_event, kl_losses, total_loss
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
    scales = LossConfig(image=0.5, dyn=1.0, rep=0.1)
    loss, means = total_loss(terms, scales)
    assert loss.item() == pytest.approx(0.5 * 3.0 + 1.0 + 0.1)
    assert means["camera"].item() == pytest.approx(2.0)


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
