"""Connection (versions, towns, synchronous mode), frame-keyed sensor queues and batch spawning."""

from __future__ import annotations

import gc
import logging
import os
import weakref
from pathlib import Path

import carla
import numpy as np
import pytest

from carla_bridge import BridgeConfig
from carla_bridge.actors import EpisodeActors, spawn_npcs
from carla_bridge.connection import SynchronousMode, connect, load_town
from carla_bridge.fake import FakeCarlaServer, FakeClient, commands
from carla_bridge.fake.actors import FakeImage
from carla_bridge.sensors import SensorQueue, SensorTimeoutError, image_to_rgb
from drivesim.sim.maps import opendrive_source
from tests.carla_bridge.conftest import free_port


def _config(server, **fields) -> BridgeConfig:
    return BridgeConfig(host=server.host, port=server.port, timeout_s=1.0, **fields)


def test_version_mismatch_is_a_warning(fake_server, caplog):
    fake_server.version = "0.9.15"
    with caplog.at_level(logging.WARNING):
        _, version = connect(_config(fake_server), FakeClient)
    assert version == "0.9.15"
    assert "0.9.16" in caplog.text and "0.9.15" in caplog.text


def test_town_loading(fake_server, tmp_path):
    client, _ = connect(_config(fake_server), FakeClient)
    world_id = client.get_world().id
    assert load_town(client, "junction", 1.0).id == world_id  # already loaded: kept
    assert load_town(client, "straight", 1.0).get_map().name == "Carla/Maps/straight"
    with pytest.raises(ValueError, match=r"no town 'Town99'.*junction"):
        load_town(client, "Town99", 1.0)
    xodr = tmp_path / "custom.xodr"
    xodr.write_text(opendrive_source("junction")[1])
    assert load_town(client, str(xodr), 1.0).get_map().name == "Carla/Maps/OpenDriveMap"
    with pytest.raises(ValueError, match="not found"):
        load_town(client, str(tmp_path / "missing.xodr"), 1.0)


def test_synchronous_mode_restores_the_settings_after_an_exception(fake_server):
    client, _ = connect(_config(fake_server, hybrid_physics=True, seed=7), FakeClient)
    world = client.get_world()
    before = world.get_settings()
    with (
        pytest.raises(KeyError),
        SynchronousMode(world, client.get_trafficmanager(8000), 0.05, _config(fake_server)) as sync,
    ):
        assert (
            world.get_settings().synchronous_mode
            and world.get_settings().fixed_delta_seconds == pytest.approx(0.05)
        )
        assert sync.tick(1.0) == fake_server.frame
        raise KeyError("boom")
    assert world.get_settings() == before
    assert fake_server.traffic_managers[8000]["synchronous_mode"] is False


class _Data:
    def __init__(self, frame: int) -> None:
        self.frame = frame


class _Sensor:
    def listen(self, callback) -> None:
        self.callback = callback


def test_sensor_queue_returns_exactly_the_frame_and_drains_events():
    sensor = _Sensor()
    frames = SensorQueue(sensor, "camera")
    for frame in (3, 4, 5):
        sensor.callback(_Data(frame))
    assert frames.frame(4, 0.1).frame == 4  # frame 3 is stale and dropped
    with pytest.raises(SensorTimeoutError, match="frame 4 is missing"):
        frames.frame(4, 0.1)  # the next item is frame 5
    assert frames.frame(5, 0.1).frame == 5
    with pytest.raises(SensorTimeoutError, match="no data for frame 6"):
        frames.frame(6, 0.05)
    events = SensorQueue(sensor, "collision")
    for frame in (7, 8, 8, 10):
        sensor.callback(_Data(frame))
    assert [e.frame for e in events.drain(8)] == [7, 8, 8]
    assert events.drain(9) == []
    assert [e.frame for e in events.drain(10)] == [10]


def test_sensor_callbacks_hold_only_a_weak_reference():
    sensor = _Sensor()
    owner = weakref.ref(SensorQueue(sensor, "camera"))
    gc.collect()
    assert owner() is None  # the sensor's callback does not keep its queue alive
    sensor.callback(_Data(1))  # and does nothing once the owner is gone


def test_bgra_image_becomes_rgb():
    bgra = np.zeros((2, 3, 4), np.uint8)
    bgra[..., 0], bgra[..., 1], bgra[..., 2], bgra[..., 3] = 10, 20, 30, 255
    image = FakeImage(carla.Timestamp(1, 0.0, 0.05, 0.0), carla.Transform(), 3, 2, 90.0, bgra.tobytes())
    rgb = image_to_rgb(image)
    assert rgb.shape == (2, 3, 3) and rgb.dtype == np.uint8
    assert rgb[0, 0].tolist() == [30, 20, 10]


def test_npc_batch_retries_taken_spawn_points(fake_server):
    client, _ = connect(_config(fake_server), FakeClient)
    world = client.get_world()
    network = fake_server.network
    blueprints = world.get_blueprint_library().filter("vehicle.audi.*")
    segments, offsets = network.spawn_candidates(spacing_m=20.0)
    xy, yaw = network.pose_at(segments, offsets)
    candidates = [
        carla.Transform(
            carla.Location(x=float(p[0]), y=float(p[1])), carla.Rotation(yaw=float(np.degrees(a)))
        )
        for p, a in zip(xy, yaw, strict=True)
    ]
    duplicated = candidates[:4] * 3  # the same four places three times over: 8 of 12 spawns collide
    actors = EpisodeActors(client, commands)
    rng = np.random.default_rng(0)
    ids = spawn_npcs(client, commands, blueprints, duplicated, 6, np.zeros((0, 2)), 10.0, rng, 8000, 5, actors)
    assert len(ids) == 4 and actors.vehicle_ids == ids
    assert all(fake_server.actors[i]._autopilot_port == 8000 for i in ids)
    actors.close()
    assert fake_server.actors == {}


@pytest.mark.carla_server
def test_real_server_smoke(sim_config, sensors_config):
    """A short episode on a real server: CARLA_HOST / CARLA_PORT / CARLA_TOWN (run with -m carla_server)."""
    from carla_bridge.env import CarlaBridgeEnv

    config = _real_server_config()
    sim_config.map.name = "town"  # unused by the bridge (the server's map is used)
    env = CarlaBridgeEnv(config, sim_config, sensors_config)
    try:
        obs, _ = env.reset(seed=0, options={"npcs": 10})
        for _ in range(40):
            obs, *_ = env.step(env.driver_action())
        assert env.observation_space.contains(obs)
    finally:
        env.close()


def _real_server_config(**fields) -> BridgeConfig:
    return BridgeConfig(
        host=os.environ.get("CARLA_HOST", "localhost"),
        port=int(os.environ.get("CARLA_PORT", "2000")),
        town=os.environ.get("CARLA_TOWN", "Town03"),
        **fields,
    )


@pytest.mark.carla_server
def test_real_server_is_left_as_it_was_found(sim_config, sensors_config):
    """Settings restored, no ego left, the Traffic Manager port free again for the next run."""
    from carla_bridge.env import CarlaBridgeEnv

    config = _real_server_config()
    world = carla.Client(config.host, config.port).get_world()
    before = world.get_settings()
    for seed in (0, 1):  # the second run needs the Traffic Manager port the first one freed
        env = CarlaBridgeEnv(config, sim_config, sensors_config)
        try:
            env.reset(seed=seed, options={"npcs": 5, "driver": "careless"})
            for _ in range(20):
                env.step(env.driver_action())
            assert env._controller.vehicle.max_steer_deg > 50.0  # CARLA cars steer ~70 deg
        finally:
            env.close()
    after = world.get_settings()
    assert after.synchronous_mode == before.synchronous_mode is False
    assert not [a for a in world.get_actors().filter("vehicle.*") if a.attributes.get("role_name") == "hero"]


@pytest.mark.carla_server
@pytest.mark.skipif("CARLA_ROOT" not in os.environ, reason="CARLA_ROOT: the CARLA folder, to start servers")
def test_real_supervisor_restarts_a_killed_server():
    """CARLA_ROOT=~/carla CARLA_SUPERVISED_PORT=2040: starts a server there, kills it, restarts it."""
    import signal

    from carla_bridge.supervisor import ServerSupervisor

    port = int(os.environ.get("CARLA_SUPERVISED_PORT", "2040"))
    supervisor = ServerSupervisor(
        Path(os.environ["CARLA_ROOT"]), port, ["-RenderOffScreen", "-nosound"], carla.Client, start_timeout_s=180.0
    )
    try:
        supervisor.ensure_running()
        assert supervisor.answering()
        os.killpg(supervisor.process.pid, signal.SIGKILL)
        supervisor.process.wait()
        supervisor.recover()
        assert supervisor.starts == 2 and supervisor.answering()
    finally:
        supervisor.stop()


def test_default_yaml_matches_the_config_defaults():
    from drivesim.config import load_config

    path = Path(__file__).resolve().parents[2] / "configs" / "carla" / "default.yaml"
    assert load_config(BridgeConfig, path) == BridgeConfig()


def test_layered_and_plain_towns_stay_distinct(sim_config):
    xml = opendrive_source("junction")[1]
    maps = {"Town01": xml, "Town01_Opt": xml, "Town10HD_Opt": xml}
    with FakeCarlaServer(
        host="127.0.0.1", port=free_port(), town="Town01_Opt", maps=maps, sim_config=sim_config
    ) as server:
        client, _ = connect(_config(server), FakeClient)
        layered = client.get_world().id
        assert load_town(client, "Town01_Opt", 1.0).id == layered  # already loaded: kept
        plain = load_town(client, "Town01", 1.0)
        assert plain.get_map().name == "Carla/Maps/Town01" and plain.id != layered
        assert load_town(client, "Town01", 1.0).id == plain.id
        assert load_town(client, "Town10HD", 1.0).get_map().name == "Carla/Maps/Town10HD_Opt"  # only layered
        with pytest.raises(ValueError, match=r"no town 'Town02'.*Town01_Opt"):
            load_town(client, "Town02", 1.0)
