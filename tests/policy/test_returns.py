"""lambda-returns on a hand-computed example, trajectory weights and percentile return normalisation."""

from __future__ import annotations

import pytest
import torch

from drivesim.policy.config import ReturnNormConfig
from drivesim.policy.returns import ReturnNormalizer, lambda_returns, trajectory_weights


def test_lambda_returns_hand_computed() -> None:
    reward = torch.tensor([[1.0, 2.0]])
    cont = torch.tensor([[1.0, 0.5]])
    value = torch.tensor([[10.0, 20.0, 30.0]])
    gamma, lam = 0.9, 0.5
    # R_2 = v_2 = 30
    # R_1 = r_2 + gamma c_2 ((1 - lam) v_2 + lam R_2) = 2 + 0.45 * 30 = 15.5
    # R_0 = r_1 + gamma c_1 ((1 - lam) v_1 + lam R_1) = 1 + 0.9 * (10 + 7.75) = 16.975
    returns = lambda_returns(reward, cont, value, gamma, lam)
    assert returns.tolist() == [pytest.approx([16.975, 15.5])]


def test_lambda_returns_limits() -> None:
    reward = torch.rand(3, 5)
    cont = torch.ones(3, 5)
    value = torch.rand(3, 6)
    gamma = 0.99
    td0 = lambda_returns(reward, cont, value, gamma, 0.0)
    torch.testing.assert_close(td0, reward + gamma * value[:, 1:])
    monte_carlo = lambda_returns(reward, cont, value, gamma, 1.0)
    expected = value[:, -1].clone()
    for t in reversed(range(5)):
        expected = reward[:, t] + gamma * expected
    torch.testing.assert_close(monte_carlo[:, 0], expected)


def test_trajectory_weights() -> None:
    weights = trajectory_weights(torch.tensor([[1.0, 0.5, 0.0]]), 0.9)
    torch.testing.assert_close(weights, torch.tensor([[1.0, 0.9, 0.9 * 0.45]]))


def test_return_normalizer_percentile_ema_and_floor() -> None:
    norm = ReturnNormalizer(ReturnNormConfig(rate=0.5))
    returns = torch.linspace(0.0, 100.0, 1001)  # P5 = 5, P95 = 95
    offset, scale = norm(returns)
    assert float(norm.low) == pytest.approx(2.5) and float(norm.high) == pytest.approx(47.5)
    assert float(scale) == pytest.approx(45.0) and float(offset) == pytest.approx(2.5)
    norm(returns)
    assert float(norm.scale()) == pytest.approx(67.5)
    small = ReturnNormalizer(ReturnNormConfig())
    _, scale = small(torch.linspace(0.0, 0.1, 100))
    assert float(scale) == 1.0  # floor: small returns are not scaled up
    assert set(small.state_dict()) == {"low", "high", "initialised"}
