"""Collection runner with the fake simulator: seeds and driver mix, resume, config check, workers."""

from __future__ import annotations

import functools
import json
import subprocess
from pathlib import Path

import pytest

from drivesim.data.collect import CollectError, check_backend, choose_driver, collect, plan_jobs
from drivesim.data.config import CollectConfig, DriverMix
from drivesim.data.episode import list_episodes, load_meta
from drivesim.data.synthetic import FakeDrivingEnv
from drivesim.utils import derive_seed


def _config(out: Path, episodes: int = 6, workers: int = 1, **collect: object) -> CollectConfig:
    return CollectConfig.model_validate(
        {
            "sensors": {"bev": {"size_px": 16}, "camera": {"width_px": 16, "height_px": 16}},
            "collect": {"sim": "fake", "episodes": episodes, "workers": workers, "seed": 5, "out": str(out), **collect},
        }
    )


def _factory(config: CollectConfig, **kwargs: object) -> functools.partial:
    return functools.partial(FakeDrivingEnv, config.sim, config.sensors, **kwargs)


def _snapshot(data_dir: Path) -> dict[str, object]:
    """Everything of every episode except the output folder recorded in the config."""
    result = {}
    for path in list_episodes(data_dir):
        meta = json.loads((path / "meta.json").read_text())
        meta["config"]["collect"].pop("out")
        meta["config"]["collect"].pop("workers")
        result[path.name] = (meta, {file.name: file.read_bytes() for file in sorted(path.glob("*.npy"))})
    return result


def test_driver_choice_is_seeded_and_follows_the_mix() -> None:
    mix = DriverMix(clean=0.5, noisy=0.3, careless=0.2)
    drivers = [choose_driver(mix, 0, index) for index in range(2000)]
    assert drivers == [choose_driver(mix, 0, index) for index in range(2000)]
    assert drivers[:50] != [choose_driver(mix, 1, index) for index in range(50)]
    for mode, share in mix.shares().items():
        assert drivers.count(mode) / len(drivers) == pytest.approx(share, abs=0.04)
    assert {choose_driver(DriverMix(clean=0, noisy=0, careless=1), 0, i) for i in range(20)} == {"careless"}


def test_collect_writes_seeded_episodes(tmp_path: Path) -> None:
    config = _config(tmp_path / "run")
    summary = collect(config, _factory(config))
    assert len(summary.collected) == 6 and not summary.interrupted and summary.skipped_existing == 0
    jobs = plan_jobs(config)
    for job, path in zip(jobs, list_episodes(tmp_path / "run"), strict=True):
        meta = load_meta(path)
        assert meta["seed"] == job.seed == derive_seed(5, job.index) and meta["driver"] == job.driver
        assert meta["simulator"] == "fake" and meta["map_name"] == "town" and meta["dt_s"] == 0.05
        assert meta["config"]["collect"]["seed"] == 5
    assert (tmp_path / "run" / "collect.yaml").is_file()


def test_interrupted_run_resumes_to_the_same_episodes(tmp_path: Path) -> None:
    reference = _config(tmp_path / "reference")
    collect(reference, _factory(reference))

    config = _config(tmp_path / "resumed")
    interrupted = collect(config, _factory(config, interrupt_after_resets=3))
    assert interrupted.interrupted and len(interrupted.collected) == 3
    # A writer killed mid-episode leaves a hidden temporary, cleaned up by the next run.
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = tmp_path / "resumed" / f".ep_000004.tmp-{dead.pid}"
    stale.mkdir()
    (stale / "reward.npy").write_bytes(b"partial")

    resumed = collect(config, _factory(config))
    assert resumed.skipped_existing == 3 and [item.index for item in resumed.collected] == [3, 4, 5]
    assert not stale.exists()
    assert _snapshot(tmp_path / "resumed") == _snapshot(tmp_path / "reference")
    assert collect(config, _factory(config)).collected == []


def test_other_config_in_the_folder_is_an_error(tmp_path: Path) -> None:
    config = _config(tmp_path / "run", episodes=2)
    collect(config, _factory(config))
    more = _config(tmp_path / "run", episodes=3, workers=2)  # more episodes / workers: same run
    assert collect(more, _factory(more)).skipped_existing == 2
    other = _config(tmp_path / "run", episodes=3, seed=6)
    with pytest.raises(CollectError, match="another config"):
        collect(other, _factory(other))


def test_parallel_workers_match_serial(tmp_path: Path) -> None:
    serial = _config(tmp_path / "serial", episodes=5)
    collect(serial, _factory(serial))
    parallel = _config(tmp_path / "parallel", episodes=5, workers=2)
    summary = collect(parallel, _factory(parallel))
    assert [item.index for item in summary.collected] == list(range(5))
    assert _snapshot(tmp_path / "parallel") == _snapshot(tmp_path / "serial")


def test_worker_failure_is_reported(tmp_path: Path) -> None:
    config = _config(tmp_path / "run", episodes=3, workers=2)
    broken = functools.partial(FakeDrivingEnv, config.sim, "not a sensors config")
    with pytest.raises(CollectError, match="worker failed"):
        collect(config, broken)


def test_missing_carla_bridge_is_a_clear_error(tmp_path: Path) -> None:
    try:
        from carla_bridge import CarlaBridgeEnv  # noqa: F401

        pytest.skip("carla_bridge is importable here")
    except ImportError:
        pass
    with pytest.raises(CollectError, match="--sim carla: cannot import the CARLA bridge"):
        check_backend(_config(tmp_path, sim="carla"))
