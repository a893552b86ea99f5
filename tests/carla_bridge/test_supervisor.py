"""Server supervisor and many-server collection, on fake servers whose server process is a real subprocess."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

from carla_bridge.fake.process import FakeServerEnvFactory, ProcessClientFactory
from carla_bridge.supervisor import ServerStartError, ServerSupervisor
from drivesim.data.collect import collect
from drivesim.data.config import CollectConfig
from drivesim.data.episode import list_episodes, load_meta
from drivesim.data.verify import verify_dataset
from tests.carla_bridge.conftest import free_port, small_sim_config

REPO = Path(__file__).resolve().parents[2]


def _carla_root(folder: Path, script: str | None = None) -> Path:
    """A folder with a ``CarlaUE4.sh`` that logs each start to ``starts.log`` and runs the fake's server process."""
    folder.mkdir(parents=True, exist_ok=True)
    body = script or (
        f'echo "$$ $*" >> "{folder}/starts.log"\n'
        f'PYTHONPATH="{REPO}" exec "{sys.executable}" -m carla_bridge.fake.process "$@"\n'
    )
    path = folder / "CarlaUE4.sh"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return folder


def _starts(root: Path) -> list[str]:
    log = root / "starts.log"
    return log.read_text().splitlines() if log.exists() else []


@pytest.fixture
def clients() -> ProcessClientFactory:
    return ProcessClientFactory(town="junction", sim_config=small_sim_config())


def test_the_supervisor_starts_watches_and_restarts_a_server(tmp_path, clients):
    root, port = _carla_root(tmp_path / "carla"), free_port()
    supervisor = ServerSupervisor(root, port, ["-RenderOffScreen"], clients, start_timeout_s=20.0)
    try:
        supervisor.ensure_running()
        assert supervisor.running() and supervisor.answering()
        assert _starts(root) == [f"{supervisor.process.pid} -carla-rpc-port={port} -RenderOffScreen"]
        supervisor.ensure_running()  # running: nothing to do
        assert supervisor.starts == 1
        os.kill(supervisor.process.pid, signal.SIGKILL)  # the server crashes
        supervisor.process.wait()
        assert not supervisor.answering(timeout_s=0.2)
        supervisor.recover()
        assert supervisor.starts == 2 and supervisor.answering() and len(_starts(root)) == 2
        with pytest.raises(ServerStartError, match="already answers"):
            ServerSupervisor(root, port, [], clients, start_timeout_s=5.0).start()
    finally:
        supervisor.stop()
    assert not supervisor.running() and not supervisor.answering(timeout_s=0.2)


def test_a_server_that_does_not_start_is_a_clear_error(tmp_path, clients):
    with pytest.raises(ServerStartError, match="CarlaUE4.sh"):
        ServerSupervisor(tmp_path, free_port(), [], clients).start()
    root = _carla_root(tmp_path / "broken", "echo 'GPU not found' >&2\nexit 3\n")
    supervisor = ServerSupervisor(root, free_port(), [], clients, log_path=tmp_path / "server.log")
    with pytest.raises(ServerStartError, match=r"status 3(.|\n)*GPU not found"):
        supervisor.start()


def _collect_config(out: Path, ports: list[int], root: Path, episodes: int) -> CollectConfig:
    config = CollectConfig.model_validate(
        {
            "sensors": {"bev": {"size_px": 16}, "camera": None},
            "collect": {
                "sim": "carla",
                "episodes": episodes,
                "seed": 3,
                "out": str(out),
                "carla": {"ports": ports, "town": "junction", "carla_root": str(root), "timeout_s": 2.0},
            },
        }
    )
    config.collect.carla.traffic_manager_port = free_port()
    config.sim = small_sim_config(npcs=3, max_steps=40)
    return config


def test_a_server_killed_mid_collection_is_restarted_and_the_lost_episode_redone(tmp_path):
    root, port = _carla_root(tmp_path / "carla"), free_port()
    config = _collect_config(tmp_path / "data", [port], root, episodes=3)
    config.collect.carla.port, config.collect.carla.ports = port, []
    # Each episode is one spawn tick and at most 40 steps: tick 60 is in the middle of episode 1.
    clients = ProcessClientFactory(town="junction", sim_config=config.sim, kill_at_ticks={port: (60,)})
    summary = collect(config, [FakeServerEnvFactory(config, 0, clients)])
    assert [episode.index for episode in summary.collected] == [0, 1, 2] and summary.redone == [1]
    assert len(_starts(root)) == 2  # started once, restarted once after the crash
    report = verify_dataset(tmp_path / "data")
    assert report.checked == 3 and not report.bad and not report.stale_temporaries
    assert [load_meta(path)["index"] for path in list_episodes(tmp_path / "data")] == [0, 1, 2]


def test_one_worker_per_server_each_with_its_own_traffic_manager(tmp_path):
    root, ports = _carla_root(tmp_path / "carla"), [free_port(), free_port()]
    config = _collect_config(tmp_path / "data", ports, root, episodes=4)
    clients = ProcessClientFactory(town="junction", sim_config=config.sim, kill_at_ticks={ports[1]: (20,)})
    factories = [FakeServerEnvFactory(config, server, clients) for server in range(2)]
    summary = collect(config, factories)
    assert sorted(episode.index for episode in summary.collected) == [0, 1, 2, 3] and len(summary.redone) == 1
    starts = _starts(root)
    assert sorted(line.split()[1] for line in starts) == sorted(
        [f"-carla-rpc-port={ports[0]}"] + [f"-carla-rpc-port={ports[1]}"] * 2
    )
    assert verify_dataset(tmp_path / "data").checked == 4
    servers = {load_meta(path)["env"]["bridge_config"]["port"] for path in list_episodes(tmp_path / "data")}
    tm_ports = {load_meta(path)["env"]["bridge_config"]["traffic_manager_port"] for path in list_episodes(tmp_path / "data")}
    assert servers == set(ports) and len(tm_ports) == 2
