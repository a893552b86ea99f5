"""Fixtures of the CARLA bridge tests: a fake server on a free port and bridge envs connected to it."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator

import pytest

from carla_bridge import BridgeConfig
from carla_bridge.env import CarlaBridgeEnv
from carla_bridge.fake import FakeCarlaServer, FakeClient, commands
from drivesim.sensors.config import SensorsConfig
from drivesim.sim.config import SimConfig


def free_port() -> int:
    """A TCP port on 127.0.0.1 with nothing listening (bound and released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def small_sim_config(npcs: int = 6, max_steps: int = 60) -> SimConfig:
    return SimConfig.model_validate(
        {
            "map": {"name": "junction"},
            "traffic": {"npcs": npcs},
            "episode": {"route_length_m": [60.0, 90.0], "max_steps": max_steps},
        }
    )


@pytest.fixture
def closed_port() -> int:
    """A free local port: connecting there finds no server."""
    return free_port()


@pytest.fixture
def sim_config() -> SimConfig:
    return small_sim_config()


@pytest.fixture
def sensors_config() -> SensorsConfig:
    return SensorsConfig.model_validate({"bev": {"size_px": 32}, "camera": {"width_px": 32, "height_px": 24}})


@pytest.fixture
def fake_server(sim_config: SimConfig) -> Iterator[FakeCarlaServer]:
    with FakeCarlaServer(
        host="127.0.0.1", port=free_port(), town="junction", sim_config=sim_config
    ) as server:
        yield server


@pytest.fixture
def make_env(
    fake_server: FakeCarlaServer, sim_config: SimConfig, sensors_config: SensorsConfig
) -> Iterator[Callable[..., CarlaBridgeEnv]]:
    """Factory of bridge envs talking to ``fake_server``; every env is closed after the test."""
    envs: list[CarlaBridgeEnv] = []

    def make(sensors: SensorsConfig | None = sensors_config, **bridge: object) -> CarlaBridgeEnv:
        bridge.setdefault("traffic_manager_port", 8000)  # the free RPC port + 6000 may exceed 65535
        bridge.setdefault("timeout_s", 2.0)
        config = BridgeConfig(host=fake_server.host, port=fake_server.port, town="junction", **bridge)
        env = CarlaBridgeEnv(config, sim_config, sensors, client_factory=FakeClient, command_module=commands)
        envs.append(env)
        return env

    yield make
    for env in envs:
        env.close()
