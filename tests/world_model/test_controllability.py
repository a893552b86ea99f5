"""Action controllability, model side: the readout, the ignore-actions baseline and toy predictors."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from drivesim.spec import BEV_CHANNELS
from drivesim.world_model.controllability import (
    SEQUENCES,
    ControllabilityScores,
    WorldModelEgoPredictor,
    counterfactual_actions,
    evaluate_controllability,
    integrate_ego_motion,
    poses_in_anchor_frame,
    summary_lines,
)
from drivesim.world_model.model import WorldModel

HORIZON = 40


def test_readout_integrates_straight_and_circular_motion() -> None:
    straight = integrate_ego_motion(np.full(HORIZON, 10.0), np.zeros(HORIZON), 0.05)
    np.testing.assert_allclose(straight[:, 0], 0.5 * np.arange(1, HORIZON + 1), atol=1e-9)
    assert np.all(straight[:, 1:] == 0)
    # 90 deg/s at 5 m/s for 1 s: a quarter circle to the right; the rear axle moves on a circle of r = v / w.
    turn = integrate_ego_motion(np.full(20, 5.0), np.full(20, 90.0), 0.05, rear_axle_to_centre_m=0.0)
    radius = 5.0 / np.radians(90.0)
    assert turn[-1, 2] == pytest.approx(90.0)
    np.testing.assert_allclose(turn[-1, :2], [radius, radius], rtol=0.05)  # semi-implicit Euler, 20 steps


def test_poses_in_the_anchor_frame() -> None:
    anchor = np.array([10.0, 5.0, 0.0, 90.0])  # facing +y in the world
    poses = poses_in_anchor_frame(np.array([[10.0, 8.0, 0.0, 100.0], [7.0, 5.0, 0.0, -170.0]]), anchor)
    np.testing.assert_allclose(poses, [[3.0, 0.0, 10.0], [0.0, 3.0, 100.0]], atol=1e-9)  # ahead; to the right


def _toy_case(seed: int) -> SimpleNamespace:
    """A hand-made state whose 'simulator' is the readout itself on per-sequence speeds and yaw rates."""
    rng = np.random.default_rng(seed)
    recorded = np.tile(np.array([0.4, 0.0, 0.0], np.float32), (HORIZON, 1))
    actions = counterfactual_actions(recorded)
    motion = {"recorded": (8.0, 0.0), "hard_left": (7.0, -40.0), "hard_right": (7.0, 40.0), "full_brake": (3.0, 0.0),
              "full_throttle": (11.0, 0.0)}
    poses = {name: integrate_ego_motion(np.full(HORIZON, v + rng.uniform(-1, 1)), np.full(HORIZON, w), 0.05)
             for name, (v, w) in motion.items()}
    context = {"measurements": np.zeros((4, 6), np.float32)}
    return SimpleNamespace(context=context, actions=actions, poses=poses)


def test_a_predictor_that_ignores_the_actions_scores_the_baseline_and_an_exact_one_zero() -> None:
    cases = [_toy_case(seed) for seed in range(3)]
    upcoming = iter(cases)

    def exact(context, actions):  # knows the simulator's outcome of each sequence it is given
        case = next(upcoming)
        assert all(np.array_equal(case.actions[name], given) for name, given in zip(SEQUENCES, actions, strict=True))
        return np.stack([case.poses[name] for name in SEQUENCES])

    def ignoring(context, actions):  # whatever the actions, the same future: a straight drive at 8 m/s
        return np.repeat(integrate_ego_motion(np.full(HORIZON, 8.0), np.zeros(HORIZON), 0.05)[None], len(actions), 0)

    exact_report = evaluate_controllability(exact, cases)
    ignoring_report = evaluate_controllability(ignoring, cases)
    for label in ("1", "2"):
        assert exact_report["counterfactual"][label]["position_error_m"] == 0.0
        assert exact_report["counterfactual"][label]["position_error_ratio"] == 0.0
        entry = ignoring_report["counterfactual"][label]
        assert entry["position_error_m"] == entry["baseline_position_error_m"] > 1.0
        assert entry["heading_error_deg"] == entry["baseline_heading_error_deg"] > 10.0
        assert entry["position_error_ratio"] == 1.0
        for name in SEQUENCES:
            values = ignoring_report["sequences"][name][label]
            assert values["position_error_m"] == values["baseline_position_error_m"]
    assert ignoring_report["states"] == 3
    assert any("ratio 1.00" in line for line in summary_lines(ignoring_report))


class _DeafWorldModel(WorldModel):
    """A world model that imagines every rollout under zero actions: it ignores the actions it is given."""

    def imagine(self, start, actions_or_policy, horizon, *args, **kwargs):
        return super().imagine(start, torch.zeros_like(actions_or_policy), horizon, *args, **kwargs)


def test_world_model_predictor_reads_out_poses_and_a_deaf_model_scores_the_baseline(debug_config) -> None:
    torch.manual_seed(0)
    case = _toy_case(0)
    generator = torch.Generator().manual_seed(0)
    steps = 6
    case.context = {
        "camera": torch.randint(0, 256, (steps, 32, 32, 3), generator=generator, dtype=torch.uint8).numpy(),
        "bev": torch.randint(0, 2, (steps, len(BEV_CHANNELS), 32, 32), generator=generator, dtype=torch.uint8).numpy(),
        "measurements": np.tile(np.array([8.0, 0.0, 0.0, 0.0, 0.4, 0.0], np.float32), (steps, 1)),
        "action": np.tile(np.array([0.4, 0.0, 0.0], np.float32), (steps, 1)),
        "is_first": np.zeros(steps, dtype=bool),
    }
    model = WorldModel(debug_config)
    deaf = _DeafWorldModel(debug_config)
    deaf.load_state_dict(model.state_dict())
    listening = evaluate_controllability(WorldModelEgoPredictor(model), [case])
    ignoring = evaluate_controllability(WorldModelEgoPredictor(deaf), [case])
    for label in ("1", "2"):
        entry = ignoring["counterfactual"][label]
        assert entry["position_error_m"] == pytest.approx(entry["baseline_position_error_m"], abs=1e-9)
        assert entry["position_error_ratio"] == pytest.approx(1.0)
        assert listening["counterfactual"][label]["position_error_ratio"] != pytest.approx(1.0)
    no_yaw = debug_config.model_copy(deep=True)
    no_yaw.encoder.measurement_names = ["speed_mps"]
    with pytest.raises(ValueError, match="yaw_rate_dps"):
        WorldModelEgoPredictor(WorldModel(no_yaw))


def test_scores_refuse_a_horizon_longer_than_the_sequences() -> None:
    case = _toy_case(0)
    with pytest.raises(ValueError, match="horizon 2 s needs 40 steps"):
        ControllabilityScores().update({k: v[:30] for k, v in case.poses.items()}, case.poses)
