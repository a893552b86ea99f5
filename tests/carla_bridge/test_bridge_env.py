"""CarlaBridgeEnv on the fake server: the embedded simulator's spec field by field, recording, experts."""

from __future__ import annotations

import math

import carla
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from carla_bridge import BridgeConfig
from carla_bridge.config import as_bridge_config
from carla_bridge.env import CarlaBridgeEnv
from carla_bridge.fake import FakeCarlaServer, FakeClient, commands
from drivesim import spec
from drivesim.data.collect import (
    EpisodeJob,
    SimulatorFactory,
    check_backend,
    collect_one,
    simulator_factories,
    worker_count,
)
from drivesim.data.config import CarlaConnection, CollectConfig
from drivesim.data.episode import read_episode
from drivesim.data.verify import verify_episode
from drivesim.sim.env import EmbeddedSimEnv
from drivesim.sim.interface import TERMINATION_REASONS, DrivingSimulator
from tests.carla_bridge.conftest import free_port


def _layout(value: object) -> object:
    """What the spec fixes about a value: shape and dtype of arrays, the type otherwise."""
    if isinstance(value, np.ndarray):
        return (value.shape, value.dtype)
    return type(value).__name__


def test_observations_and_info_match_the_embedded_simulator(make_env, sim_config, sensors_config):
    bridge = make_env()
    embedded = EmbeddedSimEnv(sim_config, sensors_config)
    assert isinstance(bridge, DrivingSimulator)
    assert bridge.observation_space == embedded.observation_space
    assert bridge.action_space == embedded.action_space
    pairs = [(bridge.reset(seed=3), embedded.reset(seed=3))]
    for _ in range(5):
        pairs.append((bridge.step(bridge.driver_action()), embedded.step(embedded.driver_action())))
    for bridge_result, embedded_result in pairs:
        bridge_obs, bridge_info = bridge_result[0], bridge_result[-1]
        embedded_obs, embedded_info = embedded_result[0], embedded_result[-1]
        assert bridge.observation_space.contains(bridge_obs)
        assert {k: _layout(v) for k, v in bridge_obs.items()} == {
            k: _layout(v) for k, v in embedded_obs.items()
        }
        assert bridge_info.keys() == embedded_info.keys()
        for key in ("ego_pose", "expert_action", "route_length_m", "distance_m", "time_s"):
            assert _layout(bridge_info[key]) == _layout(embedded_info[key]), key
        if len(bridge_result) == 5:
            assert [type(v) for v in bridge_result[1:4]] == [type(v) for v in embedded_result[1:4]]
    assert bridge.episode_metadata().keys() >= {
        "simulator",
        "map_name",
        "map_hash",
        "seed",
        "driver",
        "sim_config",
    }
    assert bridge.episode_metadata()["simulator"] == "carla"
    assert bridge.episode_metadata()["server_version"] == "0.9.16"


def test_a_recorded_episode_passes_verify(make_env, tmp_path):
    env = make_env()
    summary = collect_one(
        env,
        EpisodeJob(index=0, seed=11, driver="noisy"),
        tmp_path,
        {"max_steps": 200, "dt_s": 0.05, "config_hash": "test"},
    )
    episode = tmp_path / "ep_000000"
    assert verify_episode(episode) == []
    steps = read_episode(episode)
    assert set(spec.EPISODE_FIELDS) | {"bev", "camera"} <= set(steps)
    assert steps["camera"].shape[1:] == (24, 32, 3) and steps["bev"].shape[1:] == (len(spec.BEV_CHANNELS), 32, 32)
    assert summary.length == len(steps["reward"]) > 1
    assert summary.termination in (*TERMINATION_REASONS, None)


def test_the_ego_follows_its_route_and_the_world_moves(make_env, fake_server: FakeCarlaServer):
    env = make_env()
    obs, info = env.reset(seed=5, options={"npcs": 4})
    start = info["ego_pose"][:2].copy()
    npc_ids = [i for i in env._npc_ids]
    npc_start = {i: fake_server.actors[i].get_transform().location.x for i in npc_ids}
    for _ in range(40):
        obs, reward, terminated, truncated, info = env.step(env.driver_action())
        if terminated or truncated:
            break
    assert np.hypot(*(info["ego_pose"][:2] - start)) > 3.0
    assert obs["measurements"][0] > 1.0  # speed [m/s]
    assert obs["events"][3] >= 0.0 and 0.0 < obs["events"][4] <= 1.0
    assert np.linalg.norm(obs["route"][0]) < 5.0  # the next route point is just ahead
    assert any(fake_server.actors[i].get_transform().location.x != npc_start[i] for i in npc_ids)
    assert (
        fake_server.settings.synchronous_mode
        and fake_server.settings.fixed_delta_seconds == pytest.approx(0.05)
    )
    assert fake_server.traffic_managers[8000]["synchronous_mode"] is True


def test_route_option_and_episode_cleanup_between_resets(make_env, fake_server: FakeCarlaServer):
    env = make_env(sensors=None)
    route = {"segments": [0], "start_s_m": 1.0, "length_m": 20.0}
    env.reset(seed=0, options={"route": route, "npcs": 2})
    first = set(fake_server.actors)
    assert len(first) == 1 + 2 + 2  # ego, collision and lane-invasion sensors, NPCs
    assert env.episode_metadata()["route_length_m"] == pytest.approx(20.0)
    env.reset(seed=1, options={"npcs": 0})
    assert first.isdisjoint(fake_server.actors)
    assert len(fake_server.actors) == 3


def test_careless_driver_and_invalid_options(make_env):
    env = make_env(sensors=None)
    env.reset(seed=2, options={"driver": "careless"})
    action = env.driver_action()
    assert action.shape == (3,) and action.dtype == np.float32
    with pytest.raises(ValueError, match="driver mode"):
        env.reset(seed=2, options={"driver": "reckless"})


def test_obstacle_gap_slows_the_expert_behind_a_vehicle(make_env):
    env = make_env(sensors=None)
    env.reset(seed=4, options={"route": {"segments": [0], "start_s_m": 1.0, "length_m": 40.0}, "npcs": 0})
    free_plan = env._plan().copy()
    env._gap = (6.0, 0.0)  # a standing vehicle 6 m ahead
    env._cache = {}
    assert np.linalg.norm(env._plan()[-1]) < np.linalg.norm(free_plan[-1])


def test_lane_following_paths_follow_lanes(make_env):
    env = make_env(sensors=None)
    env.reset(seed=6, options={"npcs": 0})
    network = env._session.network
    paths = env._session.lane_paths.paths(network.points[[10]], network.yaw_rad[[10]])
    assert paths.points.shape == (1, env.sim_config.traffic.path_points, 2)
    nearest = np.min(
        np.hypot(*(paths.points[0][:, None, :] - network.points[None]).transpose(2, 0, 1)), axis=1
    )
    assert nearest.max() < 1.0  # every path point lies on a lane centre line
    off_lane = env._session.lane_paths.paths(np.array([[1e4, 1e4]]), np.array([0.0]))
    assert np.allclose(off_lane.points[0, :, 1], 1e4) and off_lane.points[0, -1, 0] > 1e4


def test_traffic_manager_expert_drives_the_ego(make_env, fake_server: FakeCarlaServer):
    env = make_env(sensors=None, expert="traffic_manager")
    with pytest.raises(ValueError, match="needs expert 'planner'"):
        env.reset(seed=1, options={"driver": "noisy"})
    obs, info = env.reset(seed=1, options={"npcs": 0})
    ego_id = env._ego.id
    assert fake_server.actors[ego_id]._autopilot_port == 8000
    assert fake_server.traffic_managers[8000]["paths"][ego_id]
    for _ in range(20):
        obs, *_, info = env.step(np.zeros(3, np.float32))  # the autopilot drives; the action is not applied
    assert obs["measurements"][0] > 0.5
    np.testing.assert_allclose(info["expert_action"], obs["measurements"][[4, 3, 5]])


def test_bridge_config_accepts_the_collectors_connection_section():
    config = as_bridge_config(CarlaConnection(host="carla-host", port=3000, town="Town01").for_server(0))
    assert (config.host, config.port, config.town, config.expert) == ("carla-host", 3000, "Town01", "planner")
    assert as_bridge_config(None) == BridgeConfig()
    several = CarlaConnection(ports=[2000, 2010, 2020], traffic_manager_port=9000, carla_root="/opt/carla")
    configs = [as_bridge_config(several.for_server(i)) for i in range(3)]
    assert [(c.port, c.tm_port) for c in configs] == [(2000, 9000), (2010, 9001), (2020, 9002)]
    assert str(configs[2].carla_root) == "/opt/carla"
    defaults = [as_bridge_config(CarlaConnection(ports=[2000, 2010]).for_server(i)).tm_port for i in range(2)]
    assert defaults == [8000, 8010]


def _park_vehicle_ahead(server: FakeCarlaServer, env, distance_m: float) -> int:
    """Another client parks a car on the ego's route ``distance_m`` ahead; returns its id."""
    route = env._route
    index = int(distance_m / route.spacing_m)
    world = FakeClient(server.host, server.port).get_world()
    blueprint = world.get_blueprint_library().find("vehicle.audi.a2")
    blueprint.set_attribute("role_name", "scenario")
    location = carla.Location(x=float(route.points[index, 0]), y=float(route.points[index, 1]))
    parked = world.spawn_actor(
        blueprint, carla.Transform(location, carla.Rotation(yaw=math.degrees(route.yaw_rad[index])))
    )
    env._vehicle_boxes[parked.id] = parked.bounding_box  # the bridge refreshes its vehicle list at reset
    return parked.id


@pytest.mark.parametrize("driver", ["clean", "careless"])
def test_expert_stops_behind_a_parked_car_and_careless_driver_hits_it(
    make_env, fake_server, sim_config, driver
):
    sim_config.episode.max_steps = 300
    env = make_env(sensors=None)
    env.reset(
        seed=0,
        options={
            "route": {"segments": [12], "start_s_m": 1.0, "length_m": 60.0},
            "npcs": 0,
            "driver": driver,
        },
    )
    parked_id = _park_vehicle_ahead(fake_server, env, 25.0)
    info, terminated = {}, False
    for _ in range(300):
        _, reward, terminated, truncated, info = env.step(env.driver_action())
        if terminated or truncated:
            break
    if driver == "careless":
        assert terminated and info["termination"] == "collision"
        assert info["collision_actor"] == f"vehicle:{parked_id}" and reward < -5.0
    else:
        assert info["termination"] != "collision"
        gap = np.hypot(
            *(
                fake_server.actors[parked_id].get_transform().location.x - info["ego_pose"][0],
                fake_server.actors[parked_id].get_transform().location.y - info["ego_pose"][1],
            )
        )
        assert 4.0 < gap < 15.0  # stopped behind it


def test_eval_runner_call_with_sim_and_sensors_configs(sim_config, sensors_config):
    sim_config.map.name = "Town01"
    env = CarlaBridgeEnv(sim_config, sensors_config)
    assert (
        env.bridge_config.town == "Town01"
        and env.sensors_config is sensors_config
        and env.sim_config is sim_config
    )
    sim_config.map.name = "town"  # an embedded map: the bridge keeps its default town
    assert CarlaBridgeEnv(sim_config, None).bridge_config.town == BridgeConfig().town


def test_the_collectors_factory_builds_the_bridge():
    config = CollectConfig.model_validate(
        {
            "collect": {
                "sim": "carla",
                "carla": {"host": "h", "port": 2100, "town": "Town05", "traffic_manager_port": 8100},
            }
        }
    )
    check_backend(config)
    env = SimulatorFactory(config)()  # connects only at reset()
    bridge = env.bridge_config
    assert (bridge.host, bridge.port, bridge.town, bridge.tm_port) == ("h", 2100, "Town05", 8100)
    assert env.observation_space == EmbeddedSimEnv(config.sim, config.sensors).observation_space
    config.collect.carla.ports = [2000, 2010, 2020]
    assert worker_count(config) == 3
    envs = [factory() for factory in simulator_factories(config, worker_count(config))]
    assert [(e.bridge_config.port, e.bridge_config.tm_port) for e in envs] == [(2000, 8100), (2010, 8101), (2020, 8102)]


def test_gymnasium_env_checker_passes(make_env):
    check_env(make_env(), skip_render_check=True)


def _cross_track_m(route_points: np.ndarray, xy: np.ndarray) -> float:
    """Distance from ``xy`` to the route polyline [m]."""
    start, end = route_points[:-1], route_points[1:]
    along = end - start
    t = np.clip(
        np.einsum("ij,ij->i", xy - start, along) / np.maximum(np.einsum("ij,ij->i", along, along), 1e-9), 0, 1
    )
    return float(np.hypot(*(start + t[:, None] * along - xy).T).min())


def test_the_controller_steers_with_the_server_cars_wheels(sim_config):
    """A CARLA car's front wheels turn 70 deg at full steer: the embedded car's 35 would double every command."""
    sim_config.episode.route_length_m = (120.0, 160.0)
    sim_config.episode.max_steps = 300
    server_config = sim_config.model_copy(deep=True)
    server_config.vehicle.max_steer_deg, server_config.vehicle.wheelbase_m = 70.0, 2.875
    with FakeCarlaServer(host="127.0.0.1", port=free_port(), town="town", sim_config=server_config) as server:
        config = BridgeConfig(host=server.host, port=server.port, town="town", traffic_manager_port=8000)
        env = CarlaBridgeEnv(config, sim_config, None, client_factory=FakeClient, command_module=commands)
        worst = []
        for seed in (0, 2, 5):  # routes with curves
            _, info = env.reset(seed=seed, options={"npcs": 0})
            vehicle = env._controller.vehicle
            assert vehicle.max_steer_deg == pytest.approx(70.0)
            assert vehicle.wheelbase_m == pytest.approx(2.875)
            errors = []
            for _ in range(sim_config.episode.max_steps):
                _, _, terminated, truncated, info = env.step(env.expert_action())
                errors.append(_cross_track_m(env._route.points, info["ego_pose"][:2]))
                if terminated or truncated:
                    break
            worst.append(max(errors))
        env.close()
    assert max(worst) < 0.45, worst  # 0.40 m; 0.64 m when steering for 35 deg
