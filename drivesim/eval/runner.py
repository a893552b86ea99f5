"""Evaluation stage: closed-loop runner (parallel spawn workers, resumable, deterministic per route seed).

Each finished route is written atomically to ``OUT/routes/<route_id>.json``; a re-run skips those. Each
worker builds its agent once and one simulator per map (routes are dispatched grouped by map). A route's
result depends only on the suite entry, the agent and the config, never on the worker that ran it.
"""

from __future__ import annotations

import importlib
import json
import logging
import math
import multiprocessing
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing import util as mp_util
from pathlib import Path
from typing import Any

import numpy as np

from drivesim import spec
from drivesim.config import config_hash
from drivesim.eval.agents import (
    Agent,
    AgentFactory,
    ControlAdapter,
    RouteInfo,
    filter_observation,
    observation_keys_for,
    resolve_agent,
)
from drivesim.eval.config import OBS_EGO_POSE, EvalConfig
from drivesim.eval.metrics import route_metrics
from drivesim.eval.monitor import RouteMonitor, route_speed_limits, route_steps_limit
from drivesim.eval.report import build_results, write_report
from drivesim.eval.routes import RouteSpec, RouteSuite, check_route, load_network
from drivesim.sensors.config import SensorsConfig
from drivesim.sim.config import SimConfig
from drivesim.utils import atomic_write_json

logger = logging.getLogger(__name__)

# --sim name -> "module:attribute" of an env class taking keywords sim_config= and sensors_config=; any other
# "module:attribute" works too. Imported lazily: only the chosen simulator's dependencies are needed.
ENV_FACTORIES: dict[str, str] = {
    "embedded": "drivesim.sim.env:EmbeddedSimEnv",
    "carla": "carla_bridge.env:CarlaBridgeEnv",
    "fake": "drivesim.eval.testing:FakeRouteEnv",
    "dream": "drivesim.eval.dream_env:DreamRouteEnv",
}
ROUTES_DIR, EPISODES_DIR, MANIFEST_FILE = "routes", "episodes", "run.json"
# Extra simulator steps beyond the longest route timeout, so that the runner, not the env, times routes out.
ENV_STEP_MARGIN = 10
TRAFFIC_SPEED_INFO_KEY = "traffic_mean_speed_mps"  # optional info key: mean speed of the other vehicles [m/s]
SCENARIO_EVENTS_INFO_KEY = "scenario_events"  # optional info key: this step's scenario events (list of dicts)


class RunMismatchError(RuntimeError):
    """The output folder holds results of a different run (agent, suite, simulator or config)."""


def load_env_factory(sim: str) -> Callable[[SimConfig, SensorsConfig], Any]:
    """The simulator class for ``--sim`` (a name in ``ENV_FACTORIES`` or "module:attribute").

    Raises:
        RuntimeError: The simulator cannot be imported, with what is missing.
    """
    target = ENV_FACTORIES.get(sim, sim)
    module_name, _, attribute = target.partition(":")
    if not attribute:
        raise ValueError(f"unknown simulator {sim!r}: use one of {sorted(ENV_FACTORIES)} or 'module:Class'")
    try:
        return getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        hint = " (the CARLA bridge needs carla_bridge and a running CARLA server)" if sim == "carla" else ""
        raise RuntimeError(f"simulator {sim!r} ({target}) is not available{hint}: {error}") from None


@dataclass(frozen=True)
class RunSpec:
    """Everything a worker needs (picklable: sent to spawned processes)."""

    agent: str
    agent_factory: AgentFactory
    agent_argument: str | None
    sim: str
    config: dict[str, Any]
    out_dir: str
    record: bool
    env_max_steps: dict[tuple[str, int], int]
    world_model: str | None = None


def traffic_mean_speed(env: Any, info: dict[str, Any]) -> float:
    """Mean speed of the other vehicles [m/s] (MinimumSpeedRouteTest's reference), NaN when there are none.

    A simulator may report it as ``info["traffic_mean_speed_mps"]``; the embedded simulator's NPC traffic is read
    directly.
    """
    value = info.get(TRAFFIC_SPEED_INFO_KEY)
    if value is not None:
        return float(value)
    speeds = getattr(getattr(getattr(env, "world", None), "traffic", None), "speed_mps", None)
    return float(np.mean(speeds)) if speeds is not None and len(speeds) else float("nan")


def scenario_timeouts(scenario_events: list[dict[str, Any]]) -> int:
    """Scenarios that ended by timing out (ScenarioTimeoutTest): ``end`` events with detail ``timeout``."""
    return sum(1 for event in scenario_events if event.get("event") == "end" and event.get("detail") == "timeout")


def evaluate_route(
    env: Any,
    agent: Agent,
    route: RouteSpec,
    config: EvalConfig,
    adapter: ControlAdapter,
    recorder: Any | None = None,
) -> dict[str, Any]:
    """Drive one route to its end (the Leaderboard's route-ending rules) and compute its metrics.

    Args:
        env: A simulator following ``drivesim.sim.interface``, built for ``route``'s map.
        agent: The agent; privileged access is given only if ``agent.privileged``.
        route: The route.
        config: Evaluation config (dt, scoring rules, limits).
        adapter: Converts agent answers (control or waypoints) into controls.
        recorder: Optional ``EpisodeRecorder`` fed every step.

    Returns:
        The route's result: identity, steps, termination, ``metrics`` (``RouteMetrics.to_dict()``), the route's
        scenario types and the scenario events the simulator reported (``info["scenario_events"]``).
    """
    dt_s = config.sim.episode.dt_s
    keys = observation_keys_for(agent, config)
    started = time.perf_counter()
    options = route.env_options()
    if agent.driver_mode is not None:
        options["driver"] = agent.driver_mode
    obs, info = env.reset(seed=route.seed, options=options)
    plan = options["route"]
    agent.reset(
        RouteInfo(
            route.id, route.map, route.map_seed, route.seed, route.length_m, dt_s, env if agent.privileged else None, plan
        )
    )
    localised = OBS_EGO_POSE in keys
    adapter.reset()
    if recorder is not None:
        recorder.reset(obs, info)
    monitor = RouteMonitor(route.length_m, config, route_speed_limits(route, config))
    events, measurements, poses, actors = [obs[spec.OBS_EVENTS]], [obs[spec.OBS_MEASUREMENTS]], [info["ego_pose"]], [None]
    traffic_speed = [traffic_mean_speed(env, info)]
    scenario_events = [{"step": 0, **event} for event in info.get(SCENARIO_EVENTS_INFO_KEY) or ()]
    max_steps = int(math.ceil(monitor.time_limit_s() / dt_s)) + 1
    termination = None
    for step in range(1, max_steps + 1):
        speed_mps = float(obs[spec.OBS_MEASUREMENTS][0])
        seen = {**obs, OBS_EGO_POSE: np.asarray(info["ego_pose"], dtype=np.float32)} if localised else obs
        action = adapter(agent.act(filter_observation(seen, keys)), speed_mps)
        obs, reward, terminated, truncated, info = env.step(action)
        termination = monitor.update(obs, info.get("termination") if terminated else None)
        if termination is None and terminated:
            termination = info.get("termination")  # a simulator's own ending (e.g. a collision, if configured)
        if termination is None and (truncated or step == max_steps):
            termination = "route_timeout"
        if recorder is not None:
            ended = termination not in (None, "route_timeout")
            timed_out = termination == "route_timeout"
            recorder.step(action, obs, reward, terminated or ended, truncated or timed_out,
                          {**info, "termination": termination} if termination else info)
        events.append(obs[spec.OBS_EVENTS])
        measurements.append(obs[spec.OBS_MEASUREMENTS])
        poses.append(info["ego_pose"])
        actors.append(info.get("collision_actor"))
        traffic_speed.append(traffic_mean_speed(env, info))
        scenario_events += [{"step": step, **event} for event in info.get(SCENARIO_EVENTS_INFO_KEY) or ()]
        if termination is not None:
            break
    wall_s = time.perf_counter() - started
    types = [scenario.type for scenario in route.scenarios]
    metrics = route_metrics(
        np.stack(events),
        np.stack(measurements),
        np.stack(poses),
        termination,
        route.length_m,
        dt_s,
        actors,
        rules=config.scoring,
        traffic_speed_mps=np.array(traffic_speed),
        scenario_timeouts=scenario_timeouts(scenario_events),
        scenario_types=types,
    )
    return {
        "route_id": route.id,
        "map": route.map,
        "map_seed": route.map_seed,
        "seed": route.seed,
        "npcs": route.npcs,
        "scenario_types": types,
        "steps": len(events) - 1,
        "metrics": metrics.to_dict(),
        "scenario_events": scenario_events,
        "wall_time_s": wall_s,
        "steps_per_s": (len(events) - 1) / max(wall_s, 1e-9),
    }


class RouteEvaluator:
    """One worker's state: the agent (built once) and the simulator of the current map."""

    def __init__(self, run: RunSpec) -> None:
        self.run = run
        self.config = EvalConfig.model_validate(run.config)
        self.agent = run.agent_factory(run.agent_argument, self.config)
        self.adapter = ControlAdapter(self.config.sim)
        self.env_factory = load_env_factory(run.sim)
        self.env: Any = None
        self.env_key: tuple[str, int] | None = None

    def _env_for(self, route: RouteSpec) -> Any:
        if self.env_key != route.map_key:
            self.close()
            sim_config = self.config.route_sim_config(route.map, route.map_seed, self.run.env_max_steps[route.map_key])
            self.env = self.env_factory(sim_config=sim_config, sensors_config=self.config.sensors, **self._env_kwargs())
            self.env_key = route.map_key
        return self.env

    def _env_kwargs(self) -> dict[str, Any]:
        """Simulator-specific constructor arguments (the learned simulator's model, the CARLA bridge's server)."""
        if self.run.sim == "dream":
            return {"world_model_path": self.run.world_model, "dream_config": self.config.dream}
        if self.run.sim != "carla" or not self.config.carla_bridge:
            return {}
        from carla_bridge.config import BridgeConfig

        return {"bridge_config": BridgeConfig.model_validate(self.config.carla_bridge)}

    def __call__(self, index: int, route_data: dict[str, Any]) -> dict[str, Any]:
        """Evaluate one route, write its result file (and episode) and return the result."""
        route_data = dict(route_data)
        replanned = bool(route_data.pop("_replanned", False))
        route = RouteSpec.model_validate(route_data)
        env = self._env_for(route)
        out_dir = Path(self.run.out_dir)
        recorder = _make_recorder() if self.run.record else None
        result = evaluate_route(env, self.agent, route, self.config, self.adapter, recorder)
        result.update(index=index, agent=self.run.agent, replanned=replanned)
        if recorder is not None:
            result["episode"] = _write_route_episode(out_dir / EPISODES_DIR, index, recorder, env, route, self.run.agent)
        atomic_write_json(out_dir / ROUTES_DIR / f"{route.id}.json", result)
        return result

    def close(self) -> None:
        """Release the simulator."""
        if self.env is not None:
            self.env.close()
        self.env, self.env_key = None, None


def _make_recorder() -> Any:
    try:
        from drivesim.data.recorder import EpisodeRecorder
    except ImportError as error:
        raise RuntimeError(f"--record needs drivesim.data.recorder.EpisodeRecorder: {error}") from None
    return EpisodeRecorder()


def _write_route_episode(episodes_dir: Path, index: int, recorder: Any, env: Any, route: RouteSpec, agent: str) -> str:
    from drivesim.data.episode import episode_name, write_episode

    stale = episodes_dir / episode_name(index)
    if stale.exists():  # left by an interrupted run that did not write the route result
        shutil.rmtree(stale)
    metadata = {**env.episode_metadata(), "route_id": route.id, "route_seed": route.seed, "agent": agent}
    path = write_episode(episodes_dir, index, recorder.finish(), metadata)
    return str(path.relative_to(episodes_dir.parent))


_WORKER_RUN: RunSpec | None = None
_WORKER: RouteEvaluator | None = None


def _init_worker(run: RunSpec) -> None:
    """Pool initializer: only store the run (an exception here would make the pool respawn workers forever)."""
    global _WORKER_RUN
    logging.basicConfig(level=logging.WARNING)
    _WORKER_RUN = run


def _run_in_worker(task: tuple[int, dict[str, Any]]) -> dict[str, Any]:
    """Evaluate one route in a worker; the evaluator is built by the first task so that errors reach the parent."""
    global _WORKER
    if _WORKER is None:
        assert _WORKER_RUN is not None, "worker not initialised"
        _WORKER = RouteEvaluator(_WORKER_RUN)
        mp_util.Finalize(_WORKER, _WORKER.close, exitpriority=10)
    return _WORKER(*task)


def _prepare(
    suite: RouteSuite, out_dir: Path, manifest: dict[str, Any], overwrite: bool
) -> dict[str, dict[str, Any]]:
    """Check the output folder belongs to this run; return the finished routes' results by id."""
    routes_dir = out_dir / ROUTES_DIR
    manifest_path = out_dir / MANIFEST_FILE
    if overwrite:
        for name in (ROUTES_DIR, EPISODES_DIR):
            shutil.rmtree(out_dir / name, ignore_errors=True)
    elif manifest_path.is_file():
        previous = json.loads(manifest_path.read_text())
        changed = [key for key in manifest if previous.get(key) != manifest[key]]
        if changed:
            raise RunMismatchError(
                f"{out_dir} holds results of another run (different {', '.join(changed)}); "
                "use a new output folder or overwrite"
            )
    routes_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(manifest_path, manifest)
    finished = {}
    for route in suite.routes:
        path = routes_dir / f"{route.id}.json"
        if path.is_file():
            try:
                finished[route.id] = json.loads(path.read_text())
            except json.JSONDecodeError:
                logger.warning("ignoring unreadable result %s; the route runs again", path)
    return finished


def _pending_tasks(suite: RouteSuite, finished: dict[str, Any], config: EvalConfig) -> list[tuple[int, dict[str, Any]]]:
    """Unfinished routes (checked against their maps if configured), grouped by map."""
    tasks = []
    for index, route in enumerate(suite.routes):
        if route.id in finished:
            continue
        data = route.model_dump(mode="json")
        if config.check_routes:
            checked = check_route(load_network(route.map, route.map_seed, config.sim.map.lane_sample_m), route)
            data = {**checked.model_dump(mode="json"), "_replanned": checked is not route}
        tasks.append((index, data))
    return sorted(tasks, key=lambda task: (task[1]["map"], task[1]["map_seed"], task[0]))


def _execute(run: RunSpec, tasks: list[tuple[int, dict[str, Any]]], workers: int) -> Iterator[dict[str, Any]]:
    if workers <= 1 or len(tasks) <= 1:
        evaluator = RouteEvaluator(run)
        try:
            for task in tasks:
                yield evaluator(*task)
        finally:
            evaluator.close()
        return
    context = multiprocessing.get_context("spawn")
    with context.Pool(min(workers, len(tasks)), initializer=_init_worker, initargs=(run,)) as pool:
        yield from pool.imap_unordered(_run_in_worker, tasks)
        pool.close()
        pool.join()


def run_suite(
    suite: RouteSuite,
    agent: str,
    out_dir: str | Path,
    config: EvalConfig | None = None,
    sim: str = "embedded",
    workers: int = 1,
    record: bool = False,
    overwrite: bool = False,
    show_progress: bool = True,
    suite_path: str | None = None,
    world_model: str | Path | None = None,
) -> dict[str, Any]:
    """Evaluate ``agent`` on every route of ``suite`` and write the report into ``out_dir``.

    Args:
        suite: The route suite.
        agent: Agent spec ("expert", "random", "constant", "policy:PATH", ...).
        out_dir: Output folder: ``routes/``, ``episodes/`` (with ``record``), results.json/.md, plots.
        config: Evaluation config (defaults when None).
        sim: Simulator: "embedded", "carla", "dream" (needs ``world_model``), "fake" or "module:Class".
        workers: Parallel worker processes (spawned; each builds its own simulator).
        record: Also write each route as a dataset episode.
        overwrite: Discard previous results in ``out_dir`` instead of resuming.
        show_progress: Show a rich progress bar on stderr.
        suite_path: Where the suite was read from (stored in the results).
        world_model: World-model checkpoint of ``sim="dream"`` (``drivesim.eval.dream_env``).

    Returns:
        The results dict written to ``results.json``.

    Raises:
        RunMismatchError: ``out_dir`` holds results of a different run and ``overwrite`` is off.
    """
    config = config or EvalConfig()
    out_dir = Path(out_dir)
    factory, argument = resolve_agent(agent)
    load_env_factory(sim)  # fail early, before any worker starts
    if sim == "dream" and (world_model is None or not Path(world_model).is_file()):
        raise ValueError(f"--sim dream needs a world-model checkpoint (--wm), got {world_model}")
    manifest = {"agent": agent, "sim": sim, "suite": suite.fingerprint(), "config": config_hash(config)}
    if world_model is not None:
        manifest["world_model"] = str(world_model)
    finished = _prepare(suite, out_dir, manifest, overwrite)
    tasks = _pending_tasks(suite, finished, config)
    env_max_steps: dict[tuple[str, int], int] = {}
    for route in suite.routes:
        limit = route_steps_limit(route, config) + ENV_STEP_MARGIN
        env_max_steps[route.map_key] = max(env_max_steps.get(route.map_key, 0), limit)
    run = RunSpec(agent, factory, argument, sim, config.model_dump(mode="json"), str(out_dir), record, env_max_steps,
                  None if world_model is None else str(world_model))
    logger.info("%s on %s: %d routes, %d already done", agent, suite.name, len(suite.routes), len(finished))
    results = dict(finished)
    for result in _track(_execute(run, tasks, workers), len(suite.routes), len(finished), show_progress, agent):
        results[result["route_id"]] = result
    ordered = [results[route.id] for route in suite.routes]
    report = build_results(ordered, suite, agent, sim, config, suite_path)
    if world_model is not None:
        report["world_model"] = str(world_model)
    write_report(report, out_dir)
    return report


def _track(
    results: Iterator[dict[str, Any]], total: int, done: int, show: bool, agent: str
) -> Iterator[dict[str, Any]]:
    """Pass results through, advancing a rich progress bar."""
    if not show:
        yield from results
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
               TextColumn("{task.fields[last]}"))
    with Progress(*columns, console=Console(stderr=True)) as progress:
        task = progress.add_task(f"eval {agent}", total=total, completed=done, last="")
        for result in results:
            metrics = result["metrics"]
            last = f"{result['route_id']}: DS {metrics['driving_score']:.1f} ({metrics['status']})"
            progress.update(task, advance=1, last=last)
            yield result
