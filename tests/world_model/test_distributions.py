"""Symlog, two-hot and categorical sampling."""

from __future__ import annotations

import math

import pytest
import torch

from drivesim.world_model.distributions import (
    TwoHot,
    categorical_entropy,
    categorical_kl,
    mode_one_hot,
    sample_one_hot,
    symexp,
    symlog,
    unimix_logits,
    unimix_probs,
)


def test_symlog_symexp_round_trip() -> None:
    x = torch.tensor([-1e6, -100.0, -1.0, -1e-3, 0.0, 1e-3, 0.5, 1.0, 100.0, 1e6], dtype=torch.float64)
    assert torch.allclose(symexp(symlog(x)), x, rtol=1e-9)
    assert symlog(torch.tensor(math.e - 1)).item() == pytest.approx(1.0)
    assert symlog(torch.tensor(-(math.e - 1))).item() == pytest.approx(-1.0)


def test_two_hot_round_trip_and_weights() -> None:
    twohot = TwoHot(255)
    values = torch.tensor([-500.0, -3.2, -0.01, 0.0, 0.37, 1.0, 12.5, 4000.0])
    target = twohot.encode(values)
    assert target.shape == (8, 255)
    assert torch.allclose(target.sum(-1), torch.ones(8))
    assert ((target > 0).sum(-1) <= 2).all()
    decoded = twohot.decode(target, are_logits=False)
    assert torch.allclose(decoded, values, rtol=1e-4, atol=1e-5)
    # The loss is minimised (at the target's entropy) by logits that reproduce the target.
    logits = torch.log(target.clamp_min(1e-12))
    assert torch.allclose(twohot.loss(logits, values), -(target * logits).sum(-1), atol=1e-4)


def test_unimix_is_normalised_and_floors_probabilities() -> None:
    logits = torch.tensor([[100.0, 0.0, 0.0, -100.0]])
    probs = unimix_logits(logits, 0.01).exp()
    assert probs.sum().item() == pytest.approx(1.0, abs=1e-6)
    assert probs.min().item() == pytest.approx(0.01 / 4, rel=1e-3)


def test_one_hot_sample_is_straight_through_and_seeded() -> None:
    logits = torch.randn(64, 4, 8, requires_grad=True)
    probs = unimix_probs(logits, 0.01)
    first = sample_one_hot(probs, torch.Generator().manual_seed(3))
    second = sample_one_hot(probs, torch.Generator().manual_seed(3))
    assert torch.equal(first, second)
    assert torch.allclose(first.detach().sum(-1), torch.ones(64, 4))
    (first * torch.arange(8.0)).sum().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_one_hot_samples_follow_the_probabilities() -> None:
    probs = torch.tensor([0.1, 0.6, 0.0, 0.3]).expand(20000, 4)
    counts = sample_one_hot(probs, torch.Generator().manual_seed(0)).mean(0)
    assert torch.allclose(counts, probs[0], atol=0.015)
    assert mode_one_hot(probs[:1]).tolist() == [[0.0, 1.0, 0.0, 0.0]]


def test_categorical_kl_and_entropy_match_hand_values() -> None:
    p = torch.tensor([[0.5, 0.5], [0.9, 0.1]]).log()  # 2 groups x 2 classes
    q = torch.tensor([[0.25, 0.75], [0.5, 0.5]]).log()
    expected = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    expected += 0.9 * math.log(0.9 / 0.5) + 0.1 * math.log(0.1 / 0.5)
    assert categorical_kl(p, q).item() == pytest.approx(expected, rel=1e-5)
    entropy = -(2 * 0.5 * math.log(0.5)) - (0.9 * math.log(0.9) + 0.1 * math.log(0.1))
    assert categorical_entropy(p).item() == pytest.approx(entropy, rel=1e-5)
