"""Action controllability, simulator side: held-out states, counterfactual sequences from a restored snapshot."""

from __future__ import annotations

import numpy as np
import pytest

from drivesim import spec
from drivesim.eval.controllability import controllability_sim_config, simulate_cases
from drivesim.sim.config import SimConfig
from drivesim.sim.env import EmbeddedSimEnv
from drivesim.world_model.controllability import SEQUENCES, integrate_ego_motion

SPEED, YAW_RATE = spec.MEASUREMENT_NAMES.index("speed_mps"), spec.MEASUREMENT_NAMES.index("yaw_rate_dps")


@pytest.fixture(scope="module")
def cases():
    config = SimConfig()
    config.map.name = "town"
    env = EmbeddedSimEnv(controllability_sim_config(config))
    return list(simulate_cases(env, states=2, context_steps=4, horizon_steps=40, seed=123, image_keys=()))


def test_each_sequence_does_what_it_says_in_the_simulator(cases) -> None:
    for case in cases:
        assert set(case.poses) == set(SEQUENCES) and all(p.shape == (40, 3) for p in case.poses.values())
        assert case.context["measurements"].shape == (4, len(spec.MEASUREMENT_NAMES))
        np.testing.assert_array_equal(case.context["action"][-1], case.actions["recorded"][0])
        end = {name: poses[-1] for name, poses in case.poses.items()}
        assert end["hard_left"][2] < end["recorded"][2] - 10 and end["hard_right"][2] > end["recorded"][2] + 10
        assert end["hard_left"][1] < end["recorded"][1] < end["hard_right"][1]  # y is to the right
        assert end["full_brake"][0] < end["recorded"][0] < end["full_throttle"][0]
        assert np.all(case.actions["hard_left"][:, 1] == -1.0) and np.all(case.actions["full_brake"][:, 2] == 1.0)


def test_integrating_the_simulators_speed_and_yaw_rate_gives_its_poses(cases) -> None:
    """The world model's readout, fed the simulator's own measurements, reproduces the simulated trajectory."""
    rear = SimConfig().vehicle.rear_axle_to_centre_m
    for case in cases:
        for name in SEQUENCES:
            measured = case.measurements[name]
            if (measured[:, SPEED] == 0).all():
                continue
            poses = integrate_ego_motion(measured[:, SPEED], measured[:, YAW_RATE], 0.05, rear)
            np.testing.assert_allclose(poses, case.poses[name], atol=2e-3, err_msg=name)
