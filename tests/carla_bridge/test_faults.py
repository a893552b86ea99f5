"""Fault handling: no server, errors and Ctrl-C mid-episode, a server that dies, reconnection, lost sensor frames."""

from __future__ import annotations

import time

import carla
import numpy as np
import pytest

from carla_bridge import BridgeConfig, ServerConnectionError
from carla_bridge.connection import TrafficManagerPortError
from carla_bridge.env import CarlaBridgeEnv
from carla_bridge.fake import FakeCarlaServer, FakeClient, commands, registry
from tests.carla_bridge.conftest import free_port


def _drive(env: CarlaBridgeEnv, steps: int) -> None:
    for _ in range(steps):
        env.step(env.driver_action())


def _customise_settings(server: FakeCarlaServer) -> carla.WorldSettings:
    """Another client's settings before the bridge connects (to check they come back unchanged)."""
    world = FakeClient(server.host, server.port).get_world()
    settings = world.get_settings()
    settings.fixed_delta_seconds = 0.1
    settings.max_substeps = 7
    world.apply_settings(settings)
    return world.get_settings()


def _assert_clean(server: FakeCarlaServer, original: carla.WorldSettings) -> None:
    assert server.actors == {}, "every spawned actor is destroyed"
    assert set(server.destroyed_ids) == set(server.spawned_ids)
    assert server.settings == original
    assert all(not state["synchronous_mode"] for state in server.traffic_managers.values())


def test_no_server_gives_a_clear_error_within_the_timeout(closed_port):
    port = closed_port
    env = CarlaBridgeEnv(
        BridgeConfig(host="127.0.0.1", port=port, timeout_s=1.0), client_factory=carla.Client
    )
    start = time.monotonic()
    with pytest.raises(ServerConnectionError) as raised:
        env.reset(seed=0)
    assert time.monotonic() - start < 5.0
    message = str(raised.value)
    assert (
        f"127.0.0.1:{port}" in message
        and "CarlaUE4.sh -RenderOffScreen" in message
        and f"-carla-rpc-port={port}" in message
    )
    env.close()


@pytest.mark.parametrize(
    "error", [KeyboardInterrupt(), ValueError("a bug in a callback")], ids=["ctrl-c", "exception"]
)
def test_an_error_mid_episode_destroys_every_actor_and_restores_the_settings(make_env, fake_server, error):
    original = _customise_settings(fake_server)
    env = make_env()
    env.reset(seed=0, options={"npcs": 5})
    assert len(fake_server.actors) == 1 + 3 + 5
    sensor_ids = [a.id for a in fake_server.actors.values() if a.type_id.startswith("sensor.")]
    fake_server.fail_on_tick(3, error)
    with pytest.raises(type(error)):
        _drive(env, 10)
    _assert_clean(fake_server, original)
    assert fake_server.destroyed_ids[: len(sensor_ids)] == sensor_ids[::-1], "sensors are destroyed first"


def test_close_restores_the_settings(make_env, fake_server):
    original = _customise_settings(fake_server)
    env = make_env()
    env.reset(seed=1)
    _drive(env, 3)
    env.close()
    env.close()  # idempotent
    _assert_clean(fake_server, original)


def test_a_dying_server_discards_the_episode_and_the_next_reset_reconnects(make_env, fake_server):
    env = make_env(max_reconnects=2)
    env.reset(seed=0)
    fake_server.fail_on_tick(4)  # the server dies during the 4th tick from now
    with pytest.raises(ServerConnectionError, match=rf"{fake_server.port}.*step 4.*discarded"):
        _drive(env, 10)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(3, np.float32))  # the episode is gone
    fake_server.start()  # restarted: fresh world, no actors
    obs, info = env.reset(seed=1)
    _drive(env, 3)
    assert len([a for a in fake_server.actors.values() if a.type_id.startswith("vehicle.")]) >= 1
    assert fake_server.settings.synchronous_mode


def test_reconnections_are_limited(make_env, fake_server):
    env = make_env(max_reconnects=1)
    env.reset(seed=0)
    fake_server.kill()
    with pytest.raises(ServerConnectionError, match="step 1"):
        _drive(env, 1)
    with pytest.raises(ServerConnectionError, match="no CARLA server answered"):
        env.reset(seed=1)  # reconnection 1 of 1 fails: still down
    fake_server.start()
    with pytest.raises(ServerConnectionError, match="giving up"):
        env.reset(seed=2)


def test_a_missing_camera_frame_is_a_clear_error(make_env, fake_server):
    env = make_env(sensor_timeout_s=0.2)
    env.reset(seed=0)
    camera = next(a for a in fake_server.actors.values() if a.type_id == "sensor.camera.rgb")
    camera._callback = None  # the server stops streaming images
    with pytest.raises(ServerConnectionError, match="front camera: no data for frame"):
        env.step(env.driver_action())
    assert fake_server.actors == {}


@pytest.mark.parametrize(
    ("bridge", "options", "error"),
    [
        ({"npc_blueprint_filter": "vehicle.nothing.*"}, {}, "no four-wheeled vehicle blueprint"),
        ({}, {"route": {"segments": [10_000], "start_s_m": 0.0, "length_m": 20.0}}, None),
    ],
    ids=["bad-npc-filter", "bad-route"],
)
def test_a_failure_during_setup_restores_the_settings(make_env, fake_server, bridge, options, error):
    original = _customise_settings(fake_server)
    env = make_env(**bridge)
    with pytest.raises(Exception, match=error):
        env.reset(seed=0, options=options)
    _assert_clean(fake_server, original)
    env.close()
    _assert_clean(fake_server, original)


def test_synchronous_settings_left_by_a_crashed_run_are_not_taken_as_original(make_env, fake_server):
    world = FakeClient(fake_server.host, fake_server.port).get_world()
    left_over = world.get_settings()
    left_over.synchronous_mode, left_over.fixed_delta_seconds = True, 0.05  # a run killed with SIGKILL
    world.apply_settings(left_over)
    env = make_env()
    env.reset(seed=0)
    env.close()
    settings = fake_server.settings
    assert not settings.synchronous_mode and settings.fixed_delta_seconds is None
    assert settings.max_substeps == left_over.max_substeps  # the rest is kept


def test_close_shuts_the_traffic_manager_down(make_env, fake_server):
    env = make_env(traffic_manager_port=8123)
    env.reset(seed=0)
    assert registry.traffic_manager_ports(fake_server) == [8123]
    env.close()
    assert registry.traffic_manager_ports() == []  # the port is free again in this process
    assert fake_server.traffic_managers[8123] == {**fake_server.traffic_managers[8123], "shut_down": True}


def test_two_servers_on_one_host_need_their_own_traffic_manager_ports(make_env, fake_server, sim_config):
    original = fake_server.settings
    first = make_env(traffic_manager_port=8000)
    first.reset(seed=0)
    with FakeCarlaServer(host="127.0.0.1", port=free_port(), town="junction", sim_config=sim_config) as other:
        second = CarlaBridgeEnv(
            BridgeConfig(host=other.host, port=other.port, town="junction", traffic_manager_port=8000),
            sim_config,
            client_factory=FakeClient,
            command_module=commands,
        )
        with pytest.raises(TrafficManagerPortError, match=r"port 8000 is taken.*--tm-port"):
            second.reset(seed=0)
        assert not other.settings.synchronous_mode and other.actors == {}
        second.bridge_config.traffic_manager_port = 8010
        second.reset(seed=0)
        _drive(second, 3)
        _drive(first, 3)
        second.close()
    first.close()
    _assert_clean(fake_server, original)


def test_the_default_traffic_manager_port_follows_the_rpc_port():
    assert BridgeConfig().tm_port == 8000 and BridgeConfig(port=2010).tm_port == 8010
    assert BridgeConfig(port=2010, traffic_manager_port=9000).tm_port == 9000
    with pytest.raises(ValueError, match="traffic_manager_port"):
        _ = BridgeConfig(port=60000).tm_port


def test_one_slow_camera_frame_is_waited_for(make_env, fake_server):
    env = make_env(sensor_timeout_s=0.2)
    env.reset(seed=0)
    _drive(env, 2)
    fake_server.delay_sensor_data("sensor.camera.rgb", delay_s=0.5)  # the next image comes after 0.5 s
    obs, *_ = env.step(env.driver_action())
    assert obs["camera"].shape == (24, 32, 3)
    _drive(env, 2)
    assert len(fake_server.actors) > 0  # the session goes on


def test_leftovers_of_a_crashed_run_are_destroyed_before_reuse(make_env, fake_server):
    crashed = make_env()
    crashed.reset(seed=0, options={"npcs": 2})
    ego_and_sensors = {crashed._ego.id} | {
        a.id for a in fake_server.actors.values() if a.type_id.startswith("sensor.")
    }
    crashed._session = crashed._episode = None  # the process was killed: nothing was cleaned up
    registry.release_traffic_manager(8000)
    env = make_env()
    _, info = env.reset(seed=1, options={"npcs": 0})
    assert ego_and_sensors.isdisjoint(fake_server.actors)
    heroes = [a for a in fake_server.actors.values() if a.attributes.get("role_name") == "hero"]
    assert [hero.id for hero in heroes] == [env._ego.id]
    start = info["ego_pose"][:2].copy()
    for _ in range(40):
        *_, info = env.step(env.driver_action())
    assert np.hypot(*(info["ego_pose"][:2] - start)) > 2.0  # the new ego is the one that drives


def test_npcs_spawned_before_a_failing_batch_are_destroyed(make_env, fake_server):
    original = _customise_settings(fake_server)
    env = make_env(sensors=None)
    fake_server.refuse_spawns(2)  # two spawn points of the first NPC batch are taken: a second batch follows
    fake_server.fail_on_batch(2, RuntimeError("rpc::rpc_error during call"))
    with pytest.raises(ServerConnectionError, match="reset"):
        env.reset(seed=0, options={"npcs": 5})
    assert len(fake_server.spawned_ids) > 1 + 2  # the ego, its sensors and the first batch's NPCs
    _assert_clean(fake_server, original)


def test_cleanup_after_the_server_died_does_not_wait_the_time_out_per_call(make_env, fake_server):
    env = make_env(timeout_s=0.3)
    env.reset(seed=0, options={"npcs": 5})  # 3 sensors, 6 vehicles, settings and Traffic Manager to restore
    fake_server.kill(hang=True)  # every call now waits the client's time-out, as with a real dead server
    start = time.monotonic()
    with pytest.raises(ServerConnectionError, match="step 1"):
        env.step(env.driver_action())
    assert time.monotonic() - start < 1.5  # the tick's time-out and a few more, not one per cleanup call
    assert registry.traffic_manager_ports() == []  # the local Traffic Manager is still shut down
    env.close()
