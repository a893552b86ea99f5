"""CARLA Leaderboard 2.0 adapter: the stand-in's interface, input conversions, a policy driving a route."""

from __future__ import annotations

import inspect
import math
from pathlib import Path

import carla
import numpy as np
import pytest
import torch
import yaml

import carla_bridge.leaderboard.agent as agent_module
from carla_bridge.fake import FakeCarlaServer, FakeClient, commands, registry
from carla_bridge.fake.leaderboard import run_route
from carla_bridge.leaderboard.inputs import GeoFrame, RouteAhead, compass_to_yaw, measurement_vector
from carla_bridge.leaderboard.standin import StandInAutonomousAgent, Track, validate_sensors
from drivesim import spec
from drivesim.config import load_config
from drivesim.policy.bc import BCModule
from drivesim.policy.config import PolicyConfig
from drivesim.sim.maps import opendrive_source
from drivesim.world_model.config import WorldModelConfig
from tests.carla_bridge.conftest import free_port, small_sim_config

REPO = Path(__file__).resolve().parents[2]

# leaderboard/autoagents/autonomous_agent.py of carla-simulator/leaderboard (master, aec8131), read with ast:
# method -> (parameters without self, number of defaults, staticmethod).
AUTONOMOUS_AGENT = {
    "__init__": (("carla_host", "carla_port", "debug"), 1, False),
    "setup": (("path_to_conf_file",), 0, False),
    "sensors": ((), 0, False),
    "run_step": (("input_data", "timestamp"), 0, False),
    "destroy": ((), 0, False),
    "__call__": ((), 0, False),
    "get_ros_version": ((), 0, True),
    "set_global_plan": (("global_plan_gps", "global_plan_world_coord"), 0, False),
}
AGENT_ATTRIBUTES = ("track", "_global_plan", "_global_plan_world_coord", "sensor_interface", "wallclock_t0")
TRACKS = ("SENSORS", "MAP", "SENSORS_QUALIFIER", "MAP_QUALIFIER")


def _interface(cls: type) -> dict[str, tuple[tuple[str, ...], int, bool]]:
    members = {}
    for name in AUTONOMOUS_AGENT:
        raw = inspect.getattr_static(cls, name)
        parameters = list(inspect.signature(getattr(cls, name)).parameters.values())
        static = isinstance(raw, staticmethod)
        names = tuple(p.name for p in parameters if p.name != "self")
        members[name] = (names, sum(p.default is not inspect.Parameter.empty for p in parameters), static)
    return members


def test_the_stand_in_has_the_leaderboards_interface():
    assert _interface(StandInAutonomousAgent) == AUTONOMOUS_AGENT
    agent = StandInAutonomousAgent("localhost", 2000)
    assert all(hasattr(agent, name) for name in AGENT_ATTRIBUTES) and agent.track is Track.SENSORS
    assert [track.value for track in Track] == list(TRACKS)
    public = {name for name in vars(StandInAutonomousAgent) if not name.startswith("_")} | {"__init__", "__call__"}
    assert public <= set(AUTONOMOUS_AGENT)  # nothing the real class lacks
    assert agent_module.get_entry_point() == "DrivesimAgent"


def test_the_installed_leaderboard_has_the_recorded_interface():
    autonomous_agent = pytest.importorskip("leaderboard.autoagents.autonomous_agent")
    assert _interface(autonomous_agent.AutonomousAgent) == AUTONOMOUS_AGENT
    assert [track.value for track in autonomous_agent.Track] == list(TRACKS)
    assert issubclass(agent_module.DrivesimAgent, autonomous_agent.AutonomousAgent)


def test_sensor_rules():
    camera = {"type": "sensor.camera.rgb", "id": "front", "x": 1.5, "y": 0.0, "z": 2.4}
    validate_sensors([camera, {"type": "sensor.speedometer", "id": "speed"}], "SENSORS")
    with pytest.raises(ValueError, match="duplicated"):
        validate_sensors([camera, camera], "SENSORS")
    with pytest.raises(ValueError, match="3.0 m"):
        validate_sensors([{**camera, "z": 3.5}], "SENSORS")
    with pytest.raises(ValueError, match="not allowed on the SENSORS track"):
        validate_sensors([{"type": "sensor.opendrive_map", "id": "map"}], "SENSORS")
    validate_sensors([{"type": "sensor.opendrive_map", "id": "map"}], "MAP")
    with pytest.raises(ValueError, match="not allowed"):
        validate_sensors([{"type": "sensor.camera.depth", "id": "depth"}], "SENSORS")


@pytest.mark.parametrize("shape", ["curved", "east-west"])
def test_gnss_maps_back_to_the_world(shape):
    carla_map = carla.Map("junction", opendrive_source("junction")[1])
    t = np.linspace(0.0, 1.0, 50)
    xy = np.column_stack([200.0 * t - 40.0, 30.0 * np.sin(3 * t) if shape == "curved" else np.full_like(t, 12.0)])

    def gps(points: np.ndarray) -> np.ndarray:
        where = [carla_map.transform_to_geolocation(carla.Location(float(x), float(y), 0.0)) for x, y in points]
        return np.array([[w.latitude, w.longitude] for w in where])

    frame = GeoFrame(gps(xy), xy)
    probes = np.array([[10.0, 3.0], [-30.0, 25.0], [150.0, -8.0]])  # off the route, on both sides
    back = np.array([frame.to_xy(*latlon) for latlon in gps(probes)])
    np.testing.assert_allclose(back, probes, atol=0.05)


def test_compass_route_and_measurements():
    for yaw_deg in (-170.0, -90.0, 0.0, 45.0, 135.0):
        compass = (math.radians(yaw_deg) + math.pi / 2.0) % math.tau  # CARLA's IMU: 0 = North = -y
        assert compass_to_yaw(compass) == pytest.approx(math.radians(yaw_deg))
    route = RouteAhead(np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 40.0]]), 2.0, 16)
    ahead = route(np.array([0.2, 0.5]), 0.0)
    assert ahead.shape == (16, 2) and ahead.dtype == np.float32
    np.testing.assert_allclose(ahead[0], [1.8, -0.5], atol=1e-5)  # 2 m along the route from the projection
    np.testing.assert_allclose(ahead[-1], [9.8, 21.5], atol=1e-5)  # around the corner: x forward, y right
    imu = np.array([1.5, 0.1, 9.81, 0.0, 0.0, math.radians(12.0), 0.3])
    vector = measurement_vector(4.0, imu, (0.4, -0.1, 0.0))
    named = dict(zip(spec.MEASUREMENT_NAMES, vector.tolist(), strict=True))
    assert named == pytest.approx(
        {"speed_mps": 4.0, "accel_mps2": 1.5, "yaw_rate_dps": 12.0, "steer": -0.1, "throttle": 0.4, "brake": 0.0}
    )


@pytest.fixture(scope="module")
def camera_policy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random BC policy whose debug world model reads only the camera (what a Leaderboard agent sees)."""
    wm_config = load_config(WorldModelConfig, REPO / "configs/world_model/debug.yaml", ["encoder.image_keys=[camera]"])
    policy_config = load_config(PolicyConfig, REPO / "configs/policy/debug.yaml")
    torch.manual_seed(0)
    module = BCModule(policy_config.model_dump(mode="json"), wm_config.model_dump(mode="json"))
    folder = tmp_path_factory.mktemp("leaderboard_policy")
    torch.save({"hyper_parameters": dict(module.hparams), "state_dict": module.state_dict()}, folder / "bc.ckpt")
    (folder / "agent.yaml").write_text(yaml.safe_dump({"checkpoint": "bc.ckpt", "camera": {"fov_deg": 100.0}}))
    return folder / "agent.yaml"


PROBE_AGENT = '''
"""Test agent: the drivesim adapter, recording its observations next to the fake server's ground truth."""
from carla_bridge.fake import registry
from carla_bridge.leaderboard.agent import DrivesimAgent

RECORD = []


def get_entry_point():
    return "ProbeAgent"


class ProbeAgent(DrivesimAgent):
    def run_step(self, input_data, timestamp):
        server = registry.lookup("localhost", PORT)
        hero = server.actors[server._hero_id]
        RECORD.append((self.observation(input_data), hero.get_transform(), hero.get_velocity()))
        return super().run_step(input_data, timestamp)
'''


def test_a_drivesim_policy_drives_a_leaderboard_route_on_the_fake_server(camera_policy, tmp_path):
    sim_config = small_sim_config(npcs=0)
    with FakeCarlaServer(host="localhost", port=free_port(), town="junction", sim_config=sim_config) as server:
        client = FakeClient("localhost", server.port)
        route = server.network.route_through([0], 1.0, 40.0)
        probe = tmp_path / "probe_agent.py"
        probe.write_text(PROBE_AGENT.replace("PORT", str(server.port)))
        result = run_route(probe, camera_policy, client, commands, route, max_steps=30)
        assert 1 <= result.steps <= 30 and 0.0 <= result.route_completion <= 1.0
        assert server.actors == {} and not server.settings.synchronous_mode  # cleaned up
        import probe_agent

        assert len(probe_agent.RECORD) == result.steps
        for observation, truth, velocity in probe_agent.RECORD:
            assert observation[spec.OBS_CAMERA].shape == (32, 32, 3)
            expected = route_points_from(route, truth)
            np.testing.assert_allclose(observation[spec.OBS_ROUTE], expected, atol=0.3)
            assert observation[spec.OBS_MEASUREMENTS][0] == pytest.approx(math.hypot(velocity.x, velocity.y), abs=1e-3)
        assert registry.lookup("localhost", server.port) is server


def route_points_from(route, transform: carla.Transform) -> np.ndarray:
    """drivesim's route observation for the true pose: 16 points every 2 m ahead of the projection."""
    xy = np.array([transform.location.x, transform.location.y])
    yaw = math.radians(transform.rotation.yaw)
    nearest = int(np.argmin(np.hypot(*(route.points - xy).T)))
    step = int(round(2.0 / route.spacing_m))
    index = np.minimum(nearest + step * np.arange(1, 17), len(route.points) - 1)
    offset = route.points[index] - xy
    return np.column_stack(
        [offset[:, 0] * math.cos(yaw) + offset[:, 1] * math.sin(yaw), -offset[:, 0] * math.sin(yaw) + offset[:, 1] * math.cos(yaw)]
    )


def test_a_policy_reading_the_bev_is_refused(tmp_path):
    wm_config = load_config(WorldModelConfig, REPO / "configs/world_model/debug.yaml")
    policy_config = load_config(PolicyConfig, REPO / "configs/policy/debug.yaml")
    module = BCModule(policy_config.model_dump(mode="json"), wm_config.model_dump(mode="json"))
    torch.save({"hyper_parameters": dict(module.hparams), "state_dict": module.state_dict()}, tmp_path / "bev.ckpt")
    agent = agent_module.DrivesimAgent("localhost", 2000)
    with pytest.raises(ValueError, match="BEV"):
        agent.setup(str(tmp_path / "bev.ckpt"))


@pytest.mark.carla_server
@pytest.mark.skipif("DRIVESIM_LEADERBOARD_POLICY" not in __import__("os").environ, reason="needs a camera policy")
def test_real_server_leaderboard_route():
    """DRIVESIM_LEADERBOARD_POLICY=agent.yaml (or .ckpt of a camera-only policy), CARLA_PORT, CARLA_TOWN."""
    import os

    from carla_bridge.connection import load_town, road_network

    client = carla.Client(os.environ.get("CARLA_HOST", "localhost"), int(os.environ.get("CARLA_PORT", "2000")))
    client.set_timeout(20.0)
    world = load_town(client, os.environ.get("CARLA_TOWN", "Town03"), 20.0)
    route = road_network(world.get_map(), 1.0).random_route(np.random.default_rng(0), 80.0)
    agent_path = Path(agent_module.__file__)
    result = run_route(
        agent_path, os.environ["DRIVESIM_LEADERBOARD_POLICY"], client, carla.command, route, "vehicle.lincoln.mkz_2020"
    )
    assert result.steps > 0 and 0.0 <= result.route_completion <= 1.0
