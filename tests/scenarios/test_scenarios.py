"""Scenarios: each type triggers at its route distance and produces its situation; the clean expert copes and
the careless driver does not; entries are validated; runs are deterministic."""

from __future__ import annotations

import numpy as np
import pytest

from drivesim import spec
from drivesim.eval.scenario_suites import generate_scenario_suite
from drivesim.scenarios import SCENARIO_TYPES, ScenarioError
from drivesim.sim.config import SimConfig
from drivesim.sim.env import EmbeddedSimEnv


@pytest.fixture(scope="module")
def suite():
    return generate_scenario_suite("unit", 3, ["town:0"], draws=1)


@pytest.fixture(scope="module")
def env():
    config = SimConfig()
    config.map.name = "town"
    return EmbeddedSimEnv(config)


def run(env, route, driver="clean", watch=None):
    """Drive a suite route; returns (final info, scenario events, per-step records of ``watch(env)``)."""
    options = route.env_options()
    options["driver"] = driver
    _, info = env.reset(seed=route.seed, options=options)
    events, watched = list(info["scenario_events"]), []
    while True:
        obs, _, terminated, truncated, info = env.step(env.driver_action())
        events += info["scenario_events"]
        if watch is not None:
            watched.append(watch(env))
        if terminated or truncated:
            return info, events, watched


def route_of(suite, type_name):
    return next(route for route in suite.routes if route.scenarios[0].type == type_name)


@pytest.mark.parametrize("type_name", sorted(SCENARIO_TYPES))
def test_each_type_triggers_at_its_distance_and_the_expert_completes_it(suite, env, type_name):
    route = route_of(suite, type_name)
    info, events, _ = run(env, route)
    names = [event["event"] for event in events]
    assert names[0] == "setup" and "trigger" in names and names[-1] == "end", names
    trigger = next(event for event in events if event["event"] == "trigger")
    route_s = float(trigger["detail"].split("=")[1])
    assert route.scenarios[0].trigger_route_s <= route_s < route.scenarios[0].trigger_route_s + 1.0
    assert info["termination"] == "route_done" and info["collision_actor"] is None, (info["termination"], info["collision_actor"])


def test_hard_break_lead_stops_and_the_expert_brakes(suite, env):
    route = route_of(suite, "HardBreakRoute")
    info, events, speeds = run(env, route, watch=lambda e: (e.world.traffic.speed_mps.min(initial=99.0), e.world.ego.speed_mps))
    lead_min = min(lead for lead, _ in speeds)
    assert lead_min < 0.1 and min(ego for _, ego in speeds[20:]) < 1.0


def test_cut_in_car_enters_the_ego_lane(suite, env):
    route = route_of(suite, "StaticCutIn")
    _, events, _ = run(env, route)
    cut = next(event for event in events if event["event"] == "cut_in")
    car = int(cut["detail"].split(":")[1])
    index = env.world.traffic.index_of(car)
    assert env.world.traffic.lane_change_from[index] >= 0 or env.world.traffic.lane_change_t[index] == 1.0


@pytest.mark.parametrize("type_name", ["ParkedObstacle", "Accident", "ConstructionObstacle"])
def test_blocked_lane_is_passed_in_the_neighbour_lane(suite, env, type_name):
    route = route_of(suite, type_name)
    _, _, lateral = run(env, route, watch=lambda e: e.world.lateral is not None)
    assert any(lateral), "the expert planned a pass"


@pytest.mark.parametrize("type_name", ["DynamicObjectCrossing", "PedestrianCrossing"])
def test_walkers_cross_the_road_after_the_trigger(suite, env, type_name):
    route = route_of(suite, type_name)
    _, _, on_road = run(env, route, watch=lambda e: int(e.world.walkers.on_road().sum()))
    assert max(on_road) >= (3 if type_name == "PedestrianCrossing" else 1)


def test_control_loss_jerks_the_steering(suite, env):
    route = route_of(suite, "ControlLoss")
    options = route.env_options()
    env.reset(seed=route.seed, options=options)
    offsets = []
    for _ in range(2000):
        action = env.expert_action()
        offsets.append(abs(float(env.scenarios.control(action)[1] - action[1])))
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            break
    assert max(offsets) > 0.1


@pytest.mark.parametrize("type_name", ["OppositeVehicleRunningRedLight", "OppositeVehicleTakingPriority"])
def test_crossing_car_ignores_its_control(suite, env, type_name):
    route = route_of(suite, type_name)
    _, events, _ = run(env, route)
    spawned = [event for event in events if event["event"] == "spawn"]
    assert spawned and "vehicle:" in spawned[0]["detail"]


@pytest.mark.parametrize("type_name", ["SignalizedJunctionLeftTurn", "NonSignalizedJunctionLeftTurn"])
def test_left_turn_meets_an_oncoming_flow(suite, env, type_name):
    route = route_of(suite, type_name)
    _, events, _ = run(env, route)
    assert sum(event["event"] == "spawn" for event in events) >= 2, "a flow, not one car"


def test_careless_driver_fails_most_scenarios(suite, env):
    failures = 0
    for route in suite.routes:
        info, _, _ = run(env, route, driver="careless")
        failures += info["termination"] != "route_done" or info["collision_actor"] is not None
    assert failures >= len(suite.routes) // 2


def test_unknown_type_and_parameter_fail_clearly(env, suite):
    route = suite.routes[0]
    options = route.env_options()
    options["scenarios"] = [{"type": "FlyingCar", "trigger_route_s": 10.0}]
    with pytest.raises(ScenarioError, match="FlyingCar.*implemented: "):
        env.reset(seed=0, options=options)
    options["scenarios"] = [{"type": "HardBreakRoute", "trigger_route_s": 10.0, "params": {"sped": 3.0}}]
    with pytest.raises(ScenarioError, match="sped"):
        env.reset(seed=0, options=options)


def test_scenario_runs_are_deterministic(suite, env):
    route = route_of(suite, "SignalizedJunctionLeftTurn")
    first = run(env, route, watch=lambda e: e.world.ego.xy.copy())
    second = run(env, route, watch=lambda e: e.world.ego.xy.copy())
    assert first[1] == second[1]
    np.testing.assert_array_equal(np.array(first[2]), np.array(second[2]))


def test_suite_generation_is_deterministic_and_complete():
    one = generate_scenario_suite("a", 5, ["town:0"], types=["HardBreakRoute", "Accident"], draws=2)
    two = generate_scenario_suite("a", 5, ["town:0"], types=["HardBreakRoute", "Accident"], draws=2)
    assert one.model_dump() == two.model_dump() and len(one.routes) == 4
    assert spec.SCHEMA_VERSION >= 2
