"""Closed-loop runner on the fake route simulator: scores, blocking, resume, determinism, observation access."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest

from drivesim import spec
from drivesim.eval.agents import Agent, ControlAdapter, filter_observation, make_agent, register_agent
from drivesim.eval.config import EvalConfig
from drivesim.eval.report import load_results
from drivesim.eval.routes import RouteSpec, RouteSuite
from drivesim.eval.runner import RunMismatchError, evaluate_route, run_suite
from drivesim.eval.testing import FakeRouteEnv


def _route(index: int, length_m: float = 60.0, npcs: int = 0) -> RouteSpec:
    return RouteSpec(
        id=f"r{index}",
        map="straight",
        seed=100 + index,
        npcs=npcs,
        start=(0.0, 0.0, 0.0),
        goal=(length_m, 0.0),
        segments=[0],
        start_s_m=0.0,
        length_m=length_m,
    )


def _suite(routes: int = 3, npcs: int = 0) -> RouteSuite:
    return RouteSuite(name="unit", routes=[_route(i, 60.0 + 10.0 * i, npcs) for i in range(routes)])


CONFIG = EvalConfig(check_routes=False, blocked_limit_s=2.0)


class StationaryAgent(Agent):
    """Brakes forever."""

    def act(self, observation: Mapping[str, np.ndarray]) -> np.ndarray:
        return spec.action_from_control(0.0, 0.0, 1.0)


class PeekingAgent(Agent):
    """Records which keys it was given."""

    observation_keys = (spec.OBS_MEASUREMENTS, spec.OBS_ROUTE)
    seen: set[str] = set()

    def act(self, observation: Mapping[str, np.ndarray]) -> np.ndarray:
        PeekingAgent.seen.update(observation)
        return spec.action_from_control(0.5, 0.0, 0.0)


class CheatingAgent(PeekingAgent):
    observation_keys = (spec.OBS_WAYPOINTS,)


def _stationary(argument: str | None, config: EvalConfig) -> Agent:
    return StationaryAgent()


def _broken(argument: str | None, config: EvalConfig) -> Agent:
    raise RuntimeError("broken agent")


register_agent("stationary", _stationary)
register_agent("broken", _broken)


def _run(tmp_path: Path, agent: str, name: str = "out", **kwargs) -> dict:
    kwargs.setdefault("show_progress", False)
    return run_suite(kwargs.pop("suite", _suite()), agent, tmp_path / name, CONFIG, sim="fake", **kwargs)


def test_expert_finishes_cleanly_with_ds_100(tmp_path: Path) -> None:
    results = _run(tmp_path, "expert", suite=_suite(npcs=0))
    for route in results["routes"]:
        assert route["metrics"]["status"] == "completed" and route["metrics"]["success"]
        assert route["metrics"]["driving_score"] == pytest.approx(100.0)
        assert route["scenario_types"] == [] and route["metrics"]["rules"] == "leaderboard-2.0"
    assert results["aggregate"]["collisions_per_km"] == 0.0 and results["aggregate"]["success_rate"] == 1.0
    assert {"driving_score", "route_completion", "infraction_penalty", "collisions_per_km"} <= set(results["aggregate"])
    assert set(results["by_scenario_type"]) == {"lane_following"} and results["by_ability"] == {}
    assert results["code_version"]["package"]
    for name in ("results.json", "results.md", "ds_per_route.png", "infractions.png", "ds_per_type.png", "routes/r0.json"):
        assert (tmp_path / "out" / name).is_file()


def test_expert_behind_traffic_pays_only_the_min_speed_term(tmp_path: Path) -> None:
    metrics = _run(tmp_path, "expert", suite=_suite(routes=1, npcs=2))["routes"][0]["metrics"]
    assert metrics["status"] == "completed" and metrics["collisions"] == 0
    assert len(metrics["min_speed_pct"]) == 4  # the Leaderboard's 4 checkpoints
    expected = np.prod([1.0 - 0.3 * (1.0 - value / 100.0) for value in metrics["min_speed_pct"] if value < 100.0])
    assert metrics["infraction_penalty"] == pytest.approx(expected)
    assert metrics["success"]  # Bench2Drive ignores min-speed infractions


def test_stationary_agent_is_blocked_with_rc_zero(tmp_path: Path) -> None:
    results = _run(tmp_path, "stationary", suite=_suite(routes=1))
    metrics = results["routes"][0]["metrics"]
    assert metrics["status"] == "failed_agent_blocked" and not metrics["success"]
    assert metrics["route_completion"] == pytest.approx(0.0, abs=0.5)
    assert metrics["infractions"]["agent_blocked"] == 1
    assert metrics["duration_s"] == pytest.approx(CONFIG.blocked_limit_s, abs=0.11)  # ActorBlockedTest: > 2 s


def test_collisions_do_not_end_the_route(tmp_path: Path) -> None:
    results = _run(tmp_path, "constant", suite=RouteSuite(name="crowded", routes=[_route(0, 400.0, npcs=4)]))
    metrics = results["routes"][0]["metrics"]
    assert metrics["infractions"]["collision_vehicle"] >= 1
    assert metrics["status"] == "completed"
    assert metrics["infraction_factors"]["collision_vehicle"] == pytest.approx(0.6 ** metrics["infractions"]["collision_vehicle"])
    assert metrics["driving_score"] == pytest.approx(100.0 * np.prod(list(metrics["infraction_factors"].values())))


def test_route_timeout_leaderboard_2_and_1(tmp_path: Path) -> None:
    # 2.0: 1 s to start with, then each metre passed adds the time to drive it at its speed limit: the expert
    # (8 m/s, below the 30 km/h default limit) falls behind.
    config = CONFIG.model_copy(update={"route_timeout_min_s": 1.0, "route_timeout_speed_share": 1.0})
    result = evaluate_route(FakeRouteEnv(config.sim), make_agent("expert", config), _route(0), config, ControlAdapter(config.sim))
    assert result["metrics"]["status"] == "failed_route_timeout"
    assert result["metrics"]["infractions"]["route_timeout"] == 1 and result["metrics"]["duration_s"] > 1.05  # grew
    # 1.0: int(0.01 s/m x 60 m + 1 s) = 1 s, whatever the progress: the route ends after 1.05 s (21 steps).
    config = CONFIG.model_copy(update={"scoring": "leaderboard-1.0", "route_timeout_s_per_m": 0.01,
                                       "route_timeout_initial_s": 1.0})
    result = evaluate_route(FakeRouteEnv(config.sim), make_agent("expert", config), _route(0), config, ControlAdapter(config.sim))
    assert result["metrics"]["status"] == "failed_route_timeout" and result["steps"] == 21


def test_route_deviation_ends_the_route(tmp_path: Path) -> None:
    results = _run(tmp_path, "constant:0.6,0.05", suite=RouteSuite(name="long", routes=[_route(0, 1000.0)]))
    metrics = results["routes"][0]["metrics"]
    assert metrics["status"] == "failed_route_deviation" and metrics["infractions"]["route_deviation"] == 1
    assert metrics["outside_route_lanes_pct"] > 0.0 and metrics["infractions"]["outside_route_lanes"] == 1
    assert metrics["infraction_factors"]["outside_route_lanes"] == pytest.approx(1.0 - metrics["outside_route_lanes_pct"] / 100.0)


@pytest.mark.parametrize("agent", ["careless", "noisy"])
def test_driver_agents_run_in_their_driver_mode(agent: str) -> None:
    class Recorder(FakeRouteEnv):
        def reset(self, *, seed=None, options=None):
            self.options = options
            return super().reset(seed=seed, options=options)

    env = Recorder(CONFIG.sim)
    result = evaluate_route(env, make_agent(agent, CONFIG), _route(0), CONFIG, ControlAdapter(CONFIG.sim))
    assert env.options["driver"] == agent and result["metrics"]["status"] == "completed"


def test_resume_skips_finished_routes(tmp_path: Path) -> None:
    _run(tmp_path, "random")
    routes_dir = tmp_path / "out" / "routes"
    kept = json.loads((routes_dir / "r0.json").read_text())
    kept["marker"] = "finished earlier"
    (routes_dir / "r0.json").write_text(json.dumps(kept))
    (routes_dir / "r1.json").unlink()
    results = _run(tmp_path, "random")
    assert results["routes"][0]["marker"] == "finished earlier"
    assert (routes_dir / "r1.json").is_file()
    with pytest.raises(RunMismatchError, match="agent"):
        _run(tmp_path, "expert")
    assert load_results(tmp_path / "out")["agent"] == "random"


def _scores(results: dict) -> list[dict]:
    return [{key: route[key] for key in ("route_id", "steps", "metrics")} for route in results["routes"]]


def test_same_seed_same_result_also_in_parallel(tmp_path: Path) -> None:
    suite = _suite(routes=2, npcs=2)
    serial = _run(tmp_path, "random", "a", suite=suite)
    again = _run(tmp_path, "random", "b", suite=suite)
    parallel = _run(tmp_path, "random", "c", suite=suite, workers=2)
    assert _scores(serial) == _scores(again) == _scores(parallel)


@pytest.mark.timeout(120)
def test_worker_errors_reach_the_parent(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="broken agent"):
        _run(tmp_path, "broken", workers=2)


def test_agents_see_only_granted_keys(tmp_path: Path) -> None:
    env = FakeRouteEnv(CONFIG.sim)
    adapter = ControlAdapter(CONFIG.sim)
    evaluate_route(env, PeekingAgent(), _route(0), CONFIG, adapter)
    assert PeekingAgent.seen == {spec.OBS_MEASUREMENTS, spec.OBS_ROUTE}
    with pytest.raises(ValueError, match="expert_waypoints"):
        evaluate_route(env, CheatingAgent(), _route(0), CONFIG, adapter)
    with pytest.raises(KeyError, match="bev"):
        filter_observation({spec.OBS_MEASUREMENTS: np.zeros(6)}, (spec.OBS_BEV,))


def test_control_adapter_passes_controls_and_rejects_bad_shapes() -> None:
    adapter = ControlAdapter(CONFIG.sim)
    np.testing.assert_allclose(adapter(np.array([2.0, -3.0, 0.5]), 0.0), [1.0, -1.0, 0.5])
    with pytest.raises(ValueError, match="shape"):
        adapter(np.zeros(4), 0.0)


class WaypointAgent(Agent):
    """Answers straight-ahead waypoints for 6 m/s (times (k+1) x 0.5 s)."""

    def act(self, observation: Mapping[str, np.ndarray]) -> np.ndarray:
        forward_m = (np.arange(8) + 1) * 0.5 * 6.0
        return np.stack([forward_m, np.zeros(8)], axis=1)


def test_waypoint_answers_go_through_the_shared_controller() -> None:
    pytest.importorskip("drivesim.sim.controller")
    result = evaluate_route(FakeRouteEnv(CONFIG.sim), WaypointAgent(), _route(0), CONFIG, ControlAdapter(CONFIG.sim))
    assert result["metrics"]["status"] == "completed"
    assert 3.0 < result["metrics"]["mean_speed_mps"] < 7.0


def test_unknown_agent_and_simulator(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown agent"):
        _run(tmp_path, "nobody")
    with pytest.raises(RuntimeError, match="not available"):
        run_suite(_suite(), "expert", tmp_path / "x", CONFIG, sim="no_such_module:Env", show_progress=False)


def test_record_writes_dataset_episodes(tmp_path: Path) -> None:
    episode = pytest.importorskip("drivesim.data.episode")
    results = _run(tmp_path, "expert", suite=_suite(routes=1), record=True)
    steps = episode.read_episode(tmp_path / "out" / results["routes"][0]["episode"])
    assert len(steps["reward"]) == results["routes"][0]["steps"] + 1
    assert steps["is_last"][-1]
