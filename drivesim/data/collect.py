"""Data stage: the resumable, parallel episode collection runner behind ``drivesim collect``.

The runner talks to simulators only through the contract of ``drivesim.sim.interface`` and builds them
with a picklable ``env_factory`` (one simulator per worker process, reused for many episodes).
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import queue
import signal
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from drivesim.data.config import DRIVER_MODES, CollectConfig, DriverMix, episode_config_hash
from drivesim.data.episode import (
    EpisodeError,
    EpisodeRecorder,
    event_flags,
    list_episodes,
    load_meta,
    remove_stale_temporaries,
    write_episode,
)
from drivesim.sim.interface import INFO_DISTANCE, INFO_ROUTE_LENGTH, INFO_TIME, DrivingSimulator
from drivesim.utils import SimulatorLostError, atomic_write_bytes, derive_seed

logger = logging.getLogger(__name__)

EnvFactory = Callable[[], DrivingSimulator]
ProgressCallback = Callable[[int, "EpisodeSummary | None"], None]
RUN_CONFIG_FILE = "collect.yaml"
STEP_REPORT_EVERY = 50  # steps between progress messages from a worker


class CollectError(RuntimeError):
    """Collection cannot start or an episode failed; the message says why."""


class _Stopped(Exception):
    """Raised inside a worker when the run is being stopped."""


@dataclass(frozen=True)
class EpisodeJob:
    """One episode to collect: its index, seed and driver mode."""

    index: int
    seed: int
    driver: str


@dataclass
class EpisodeSummary:
    """What a finished episode reports back for progress and the run summary."""

    index: int
    length: int
    driver: str
    termination: str | None
    collision: bool
    off_road: bool


@dataclass
class CollectSummary:
    """Outcome of a collection run."""

    out: str
    requested: int
    skipped_existing: int
    collected: list[EpisodeSummary] = field(default_factory=list)
    interrupted: bool = False
    redone: list[int] = field(default_factory=list)  # indices of episodes lost with their simulator and redone

    @property
    def frames(self) -> int:
        return sum(item.length for item in self.collected)

    def to_dict(self) -> dict[str, Any]:
        return {
            "out": self.out,
            "requested": self.requested,
            "skipped_existing": self.skipped_existing,
            "collected": len(self.collected),
            "frames": self.frames,
            "collision_episodes": sum(item.collision for item in self.collected),
            "off_road_episodes": sum(item.off_road for item in self.collected),
            "interrupted": self.interrupted,
            "redone_episodes": len(self.redone),
        }


def choose_driver(mix: DriverMix, run_seed: int, index: int) -> str:
    """Driver mode of episode ``index``, drawn from the mix with a seed derived from (run seed, index)."""
    draw = derive_seed(run_seed, index, "driver") / 2**31
    cumulative = np.cumsum(list(mix.shares().values()))
    return DRIVER_MODES[min(int(np.searchsorted(cumulative, draw, side="right")), len(DRIVER_MODES) - 1)]


def plan_jobs(config: CollectConfig) -> list[EpisodeJob]:
    """Every episode of the run with its derived seed and driver."""
    collect = config.collect
    return [
        EpisodeJob(index, derive_seed(collect.seed, index), choose_driver(collect.driver_mix, collect.seed, index))
        for index in range(collect.episodes)
    ]


@dataclass(frozen=True)
class SimulatorFactory:
    """Picklable factory of the configured simulator (imported lazily in the process that builds it).

    ``server`` picks the CARLA server of this worker (``collect.carla.ports[server]``).
    """

    config: CollectConfig
    server: int = 0

    def __call__(self) -> DrivingSimulator:
        backend = self.config.collect.sim
        if backend == "embedded":
            from drivesim.sim.env import EmbeddedSimEnv

            return EmbeddedSimEnv(self.config.sim, self.config.sensors)
        if backend == "carla":
            from carla_bridge import CarlaBridgeEnv

            bridge = self.config.collect.carla.for_server(self.server)
            return CarlaBridgeEnv(bridge, self.config.sim, self.config.sensors)
        from drivesim.data.synthetic import FakeDrivingEnv

        return FakeDrivingEnv(self.config.sim, self.config.sensors)


def check_backend(config: CollectConfig) -> None:
    """Import the configured simulator now, so a missing one fails with a clear message before any work."""
    backend = config.collect.sim
    try:
        if backend == "embedded":
            from drivesim.sim.env import EmbeddedSimEnv  # noqa: F401
        elif backend == "carla":
            from carla_bridge import CarlaBridgeEnv  # noqa: F401
    except ImportError as error:
        what = "the embedded simulator (drivesim.sim.env)" if backend == "embedded" else (
            "the CARLA bridge (carla_bridge, which needs the carla client package and a running server)"
        )
        raise CollectError(f"--sim {backend}: cannot import {what}: {error}") from error


def worker_count(config: CollectConfig) -> int:
    """Worker processes of the run: ``collect.workers``, or with ``sim: carla`` one per server.

    Raises:
        CollectError: Several workers for fewer CARLA servers: each would tick the same synchronous world.
    """
    collect = config.collect
    if collect.sim != "carla":
        return collect.workers
    ports = collect.carla.server_ports()
    if collect.workers not in (1, len(ports)):
        given = f"{len(ports)} server" + ("s" if len(ports) > 1 else "")
        raise CollectError(
            f"--workers {collect.workers} --sim carla: the bridge drives its server in synchronous mode, so "
            f"every worker needs its own CARLA server, and {given} {'are' if len(ports) > 1 else 'is'} given "
            f"({', '.join(f'{collect.carla.host}:{port}' for port in ports)}); give one port per worker "
            f"(--port 2000,2010,...) and the workers follow"
        )
    return len(ports)


def simulator_factories(config: CollectConfig, workers: int) -> list[EnvFactory]:
    """One factory per worker: the same simulator, or with ``sim: carla`` worker i's own server."""
    if config.collect.sim == "carla":
        return [SimulatorFactory(config, server) for server in range(workers)]
    return [SimulatorFactory(config)] * workers


def _to_json(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"metadata value {value!r} is not JSON-serialisable")


def run_episode(
    env: DrivingSimulator,
    job: EpisodeJob,
    max_steps: int,
    stop: Callable[[], bool] | None = None,
    on_steps: Callable[[int], None] | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Drive one episode with ``env.driver_action()`` and return (steps, episode metadata from the run).

    Args:
        env: A simulator following ``drivesim.sim.interface``.
        job: Index, seed and driver mode.
        max_steps: Hard limit of steps (the simulator normally truncates earlier).
        stop: Polled every step; when it returns True the episode is abandoned (``_Stopped``).
        on_steps: Called with the number of new steps every ``STEP_REPORT_EVERY`` steps.
    """
    recorder = EpisodeRecorder()
    obs, info = env.reset(seed=job.seed, options={"driver": job.driver})
    recorder.reset(obs, info)
    reported = 0
    while not recorder.done and recorder.length <= max_steps:
        if stop is not None and stop():
            raise _Stopped
        action = env.driver_action()
        recorder.step(action, *env.step(action))
        if on_steps is not None and recorder.length - reported >= STEP_REPORT_EVERY:
            on_steps(recorder.length - reported)
            reported = recorder.length
    if on_steps is not None and recorder.length > reported:
        on_steps(recorder.length - reported)
    env_meta = json.loads(json.dumps(env.episode_metadata(), default=_to_json))
    last = recorder.last_info
    metadata = {
        "simulator": env_meta.get("simulator"),
        "map_name": env_meta.get("map_name", env_meta.get("map")),
        "map_hash": env_meta.get("map_hash"),
        "seed": job.seed,
        "driver": job.driver,
        "termination": recorder.termination,
        "truncated": recorder.truncated,
        "distance_m": float(last.get(INFO_DISTANCE) or 0.0),
        "route_length_m": float(last.get(INFO_ROUTE_LENGTH) or 0.0),
        "time_s": float(last.get(INFO_TIME) or 0.0),
        "env": env_meta,
    }
    return recorder.finish(), metadata


def collect_one(
    env: DrivingSimulator,
    job: EpisodeJob,
    out_dir: Path,
    run_metadata: dict[str, Any],
    stop: Callable[[], bool] | None = None,
    on_steps: Callable[[int], None] | None = None,
) -> EpisodeSummary:
    """Run one episode and write it atomically into ``out_dir``.

    Args:
        env: The simulator (reused across episodes).
        job: Index, seed and driver mode.
        out_dir: Dataset folder.
        run_metadata: Run-level metadata merged into the episode's meta (needs ``max_steps``).
        stop: Polled every step; True abandons the episode.
        on_steps: Progress callback with the number of new steps.
    """
    steps, metadata = run_episode(env, job, run_metadata["max_steps"], stop, on_steps)
    write_episode(out_dir, job.index, steps, {**metadata, **run_metadata})
    flags = event_flags(steps["events"])
    return EpisodeSummary(
        job.index, len(steps["reward"]), job.driver, metadata["termination"], bool(flags[:, 0].any()), bool(flags[:, 1].any())
    )


def collect_with_retries(
    env: DrivingSimulator,
    job: EpisodeJob,
    out_dir: Path,
    run_metadata: dict[str, Any],
    retries: int,
    stop: Callable[[], bool] | None = None,
    on_steps: Callable[[int], None] | None = None,
    on_redo: Callable[[int], None] | None = None,
) -> EpisodeSummary:
    """``collect_one``, redoing the episode when its simulator was lost (``SimulatorLostError``).

    The lost episode's steps were never written; the env's next ``reset()`` reconnects (and restarts a
    supervised CARLA server). At most ``retries`` redos, then the error propagates.
    """
    for attempt in range(retries + 1):
        try:
            return collect_one(env, job, out_dir, run_metadata, stop, on_steps)
        except SimulatorLostError as error:
            if attempt == retries:
                raise
            logger.warning(
                "episode %d lost with its simulator (%s); discarded, redoing it (%d of %d)",
                job.index,
                error,
                attempt + 1,
                retries,
            )
            if on_redo is not None:
                on_redo(job.index)
    raise AssertionError("unreachable")


def _worker_main(
    env_factory: EnvFactory,
    out_dir: Path,
    run_metadata: dict[str, Any],
    retries: int,
    jobs: Any,
    results: Any,
    stop_event: Any,
) -> None:
    """Worker process: build one simulator, then collect jobs until the queue is drained or the run stops."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and sets stop_event
    env = None
    try:
        try:
            env = env_factory()
        except Exception as error:
            results.put(("error", f"cannot start the simulator: {type(error).__name__}: {error}"))
            return
        while not stop_event.is_set():
            job = jobs.get()
            if job is None:
                break
            try:
                summary = collect_with_retries(
                    env,
                    job,
                    out_dir,
                    run_metadata,
                    retries,
                    stop_event.is_set,
                    lambda n: results.put(("steps", n)),
                    lambda index: results.put(("redo", index)),
                )
            except _Stopped:
                break
            results.put(("done", asdict(summary)))
    except BaseException:
        results.put(("error", traceback.format_exc()))
    finally:
        if env is not None:
            env.close()
        results.put(("exit", None))


def _check_existing(out_dir: Path, expected_hash: str) -> set[int]:
    """Indices of finished episodes; raises if any was collected with a different config."""
    finished = set()
    for path in list_episodes(out_dir):
        try:
            meta = load_meta(path)
        except EpisodeError as error:
            raise CollectError(f"{error}\nRun `drivesim data verify {out_dir} --quarantine` first.") from None
        if meta.get("config_hash") != expected_hash:
            raise CollectError(
                f"{path} was collected with another config (config_hash {meta.get('config_hash')}, this run "
                f"{expected_hash}); use a different output folder or the same config to resume"
            )
        finished.add(int(meta["index"]))
    return finished


def _run_serial(
    env_factory: EnvFactory,
    jobs: list[EpisodeJob],
    out_dir: Path,
    run_metadata: dict[str, Any],
    retries: int,
    summary: CollectSummary,
    progress: ProgressCallback,
) -> None:
    """Collect ``jobs`` in this process with one simulator; Ctrl-C marks the summary interrupted."""
    try:
        env = env_factory()
    except Exception as error:
        raise CollectError(f"cannot start the simulator: {type(error).__name__}: {error}") from error
    try:
        for job in jobs:
            result = collect_with_retries(
                env, job, out_dir, run_metadata, retries, None, lambda n: progress(n, None), summary.redone.append
            )
            summary.collected.append(result)
            progress(0, result)
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        env.close()


def _drain_finished(results: Any, summary: CollectSummary) -> None:
    """Record episodes that workers finished after the parent stopped listening (e.g. after Ctrl-C)."""
    while True:
        try:
            kind, payload = results.get(timeout=0.1)
        except (queue.Empty, OSError, EOFError):
            return
        if kind == "done":
            summary.collected.append(EpisodeSummary(**payload))


def _run_parallel(
    env_factories: list[EnvFactory],
    jobs: list[EpisodeJob],
    out_dir: Path,
    run_metadata: dict[str, Any],
    retries: int,
    summary: CollectSummary,
    progress: ProgressCallback,
) -> None:
    """Collect ``jobs`` in one spawned process per factory; Ctrl-C stops them after their current step."""
    context = multiprocessing.get_context("spawn")
    job_queue, results, stop_event = context.Queue(), context.Queue(), context.Event()
    workers = len(env_factories)
    for job in jobs:
        job_queue.put(job)
    for _ in range(workers):
        job_queue.put(None)
    processes = [
        context.Process(
            target=_worker_main, args=(factory, out_dir, run_metadata, retries, job_queue, results, stop_event), daemon=True
        )
        for factory in env_factories
    ]
    for process in processes:
        process.start()
    errors: list[str] = []
    running = workers
    try:
        while running:
            try:
                kind, payload = results.get(timeout=0.5)
            except queue.Empty:
                if not any(process.is_alive() for process in processes):
                    errors.append("worker processes died without reporting (killed?)")
                    break
                continue
            if kind == "steps":
                progress(payload, None)
            elif kind == "redo":
                summary.redone.append(payload)
            elif kind == "done":
                result = EpisodeSummary(**payload)
                summary.collected.append(result)
                progress(0, result)
            elif kind == "error":
                errors.append(payload)
                stop_event.set()
            else:
                running -= 1
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        stop_event.set()
        for process in processes:
            process.join(timeout=10.0)
            if process.is_alive():
                process.terminate()
                process.join()
        _drain_finished(results, summary)
    if errors:
        raise CollectError("a collection worker failed:\n" + "\n".join(errors))


def collect(
    config: CollectConfig,
    env_factory: EnvFactory | Sequence[EnvFactory] | None = None,
    progress: ProgressCallback | None = None,
) -> CollectSummary:
    """Collect ``config.collect.episodes`` episodes into ``config.collect.out``, resuming a previous run.

    Finished episodes are skipped; temporaries of dead writers are removed and redone. Episodes of a
    different config in the folder are an error. Ctrl-C stops cleanly (``summary.interrupted``); only the
    episodes in progress are lost. An episode whose simulator was lost is redone (``collect.retries``).

    Args:
        config: The run's config.
        env_factory: Picklable callable building one simulator, or one per worker; default
            ``simulator_factories(config, workers)`` (with ``sim: carla`` one per server).
        progress: Called as ``progress(new_steps, finished_episode_or_None)`` from the calling process.

    Returns:
        The run summary.
    """
    collect_section = config.collect
    out_dir = Path(collect_section.out)
    workers = worker_count(config)
    if env_factory is None:
        check_backend(config)
        factories = simulator_factories(config, workers)
    elif callable(env_factory):
        factories = [env_factory] * workers
    else:
        factories = list(env_factory)
    expected_hash = episode_config_hash(config)
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out_dir)
    finished = _check_existing(out_dir, expected_hash)
    atomic_write_bytes(out_dir / RUN_CONFIG_FILE, yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False).encode())
    jobs = [job for job in plan_jobs(config) if job.index not in finished]
    summary = CollectSummary(str(out_dir), collect_section.episodes, collect_section.episodes - len(jobs))
    if summary.skipped_existing:
        logger.info("%s: %d episodes already there, %d to collect", out_dir, summary.skipped_existing, len(jobs))
    run_metadata = {
        "config_hash": expected_hash,
        "config": config.model_dump(mode="json"),
        "run_seed": collect_section.seed,
        "dt_s": config.sim.episode.dt_s,
        "max_steps": config.sim.episode.max_steps,
    }
    progress = progress or (lambda steps, episode: None)
    factories = factories[: len(jobs)]
    if len(factories) > 1:
        _run_parallel(factories, jobs, out_dir, run_metadata, collect_section.retries, summary, progress)
    elif jobs:
        _run_serial(factories[0], jobs, out_dir, run_metadata, collect_section.retries, summary, progress)
    summary.collected.sort(key=lambda item: item.index)
    return summary

