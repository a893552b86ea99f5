"""State save/restore of the embedded simulator: a restored env replays the same future, step for step."""

from __future__ import annotations

import numpy as np

from drivesim.eval.scenario_suites import generate_scenario_suite
from drivesim.sensors.config import BevConfig, CameraConfig, SensorsConfig
from drivesim.sim.config import SimConfig
from drivesim.sim.env import EmbeddedSimEnv


def make_env() -> EmbeddedSimEnv:
    config = SimConfig()
    config.map.name = "town"
    return EmbeddedSimEnv(config, SensorsConfig(bev=BevConfig(size_px=32), camera=CameraConfig(width_px=32, height_px=32)))


def drive(env: EmbeddedSimEnv, steps: int, action=None) -> list[tuple[dict, float, bool, bool, dict]]:
    """``steps`` steps with the data-collection driver (noise from the episode's generator) or a fixed action."""
    out = []
    for _ in range(steps):
        out.append(env.step(env.driver_action() if action is None else np.asarray(action, np.float32)))
        if out[-1][2] or out[-1][3]:
            break
    return out


def assert_same(first, second) -> None:
    assert len(first) == len(second)
    for step, ((obs_a, reward_a, term_a, trunc_a, info_a), (obs_b, reward_b, term_b, trunc_b, info_b)) in enumerate(
        zip(first, second, strict=True)
    ):
        assert obs_a.keys() == obs_b.keys()
        for key in obs_a:
            np.testing.assert_array_equal(obs_a[key], obs_b[key], err_msg=f"step {step}: obs {key}")
        assert (reward_a, term_a, trunc_a) == (reward_b, term_b, trunc_b), step
        assert info_a.keys() == info_b.keys()
        for key in info_a:
            if isinstance(info_a[key], np.ndarray):
                np.testing.assert_array_equal(info_a[key], info_b[key], err_msg=f"step {step}: info {key}")
            else:
                assert info_a[key] == info_b[key], (step, key)


def test_restore_replays_the_same_future_step_for_step() -> None:
    env = make_env()
    env.reset(seed=5, options={"driver": "noisy", "npcs": 20, "walkers": 20, "parked": 6})
    drive(env, 60)
    snapshot = env.snapshot()
    npcs_at_snapshot = env.world.traffic.xy.copy()
    future = drive(env, 80)
    assert len(future) == 80
    assert not np.array_equal(env.world.traffic.xy, npcs_at_snapshot)  # the world moved on
    env.restore(snapshot)
    np.testing.assert_array_equal(env.world.traffic.xy, npcs_at_snapshot)
    assert_same(drive(env, 80), future)
    env.restore(snapshot)  # a snapshot restores again, after a different future was driven
    braked = drive(env, 40, action=[0.0, 0.0, 1.0])
    assert not np.array_equal(braked[-1][4]["ego_pose"], future[39][4]["ego_pose"])
    env.restore(snapshot)
    assert_same(drive(env, 80), future)


def test_restore_replays_a_running_scenario() -> None:
    env = make_env()
    suite = generate_scenario_suite("unit", 3, ["town:0"], draws=1)
    route = next(route for route in suite.routes if route.scenarios[0].type == "HardBreakRoute")
    options = route.env_options()
    _, info = env.reset(seed=route.seed, options=options)
    events = []
    while not any(event["event"] == "trigger" for event in events):  # up to the scenario's trigger
        events += drive(env, 1)[0][4]["scenario_events"]
    snapshot = env.snapshot()
    future = drive(env, 120)
    assert any(step[4]["scenario_events"] for step in future)  # the scenario acts in this future
    env.restore(snapshot)
    assert_same(drive(env, 120), future)
