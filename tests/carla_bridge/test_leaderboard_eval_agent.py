"""A Leaderboard agent module evaluated by ``drivesim eval run`` on the embedded simulator."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from carla_bridge.leaderboard.eval_agent import LeaderboardEvalAgent
from drivesim.eval.agents import RouteInfo, make_agent
from drivesim.eval.config import EvalConfig
from drivesim.eval.routes import RouteSuite, generate_suite, load_network, save_suite

REPO = Path(__file__).resolve().parents[2]
CAMERA = {"width_px": 32, "height_px": 32, "fov_deg": 90.0, "mount_x_m": 1.5, "mount_y_m": 0.0, "mount_z_m": 2.4, "pitch_deg": -10.0}

# A Leaderboard-style agent as users write them: it imports the Leaderboard's base class, follows the global
# plan with GNSS + IMU (pure pursuit for a CARLA car's 70 deg steering) and holds the speed given in its config.
PLAN_FOLLOWER = '''
import math

import carla
import numpy as np
from leaderboard.autoagents.autonomous_agent import AutonomousAgent, Track

from carla_bridge.leaderboard.inputs import GeoFrame, compass_to_yaw


def get_entry_point():
    return "PlanFollower"


class PlanFollower(AutonomousAgent):
    def setup(self, path_to_conf_file):
        self.track = Track.SENSORS
        self.target_mps = float(path_to_conf_file)

    def set_global_plan(self, global_plan_gps, global_plan_world_coord):
        super().set_global_plan(global_plan_gps, global_plan_world_coord)
        latlon = np.array([[p["lat"], p["lon"]] for p, _ in global_plan_gps])
        self.plan = np.array([[t.location.x, t.location.y] for t, _ in global_plan_world_coord])
        self.geo = GeoFrame(latlon, self.plan)

    def sensors(self):
        return [
            {"type": "sensor.camera.rgb", "id": "Center", "x": 1.5, "y": 0.0, "z": 2.4, "roll": 0.0, "pitch": -10.0,
             "yaw": 0.0, "width": 32, "height": 32, "fov": 90},
            {"type": "sensor.other.gnss", "id": "GPS", "x": 0.0, "y": 0.0, "z": 0.0},
            {"type": "sensor.other.imu", "id": "IMU", "x": 0.0, "y": 0.0, "z": 0.0, "roll": 0.0, "pitch": 0.0, "yaw": 0.0},
            {"type": "sensor.speedometer", "id": "SPEED", "reading_frequency": 20},
        ]

    def run_step(self, input_data, timestamp):
        assert input_data["Center"][1].shape == (32, 32, 4)
        latitude, longitude, _ = input_data["GPS"][1]
        xy = self.geo.to_xy(latitude, longitude)
        yaw = compass_to_yaw(input_data["IMU"][1][6])
        nearest = int(np.argmin(np.hypot(*(self.plan - xy).T)))
        target = self.plan[min(nearest + 6, len(self.plan) - 1)] - xy
        ahead = target[0] * math.cos(yaw) + target[1] * math.sin(yaw)
        right = -target[0] * math.sin(yaw) + target[1] * math.cos(yaw)
        alpha = math.atan2(right, max(ahead, 1e-3))
        wheel = math.atan2(2.0 * 2.9 * math.sin(alpha), max(math.hypot(ahead, right), 1.0))
        error = self.target_mps - input_data["SPEED"][1]["speed"]
        return carla.VehicleControl(
            throttle=min(max(0.3 * error, 0.0), 0.7), steer=max(min(wheel / math.radians(70.0), 1.0), -1.0),
            brake=min(max(-0.3 * error, 0.0), 1.0),
        )
'''


@pytest.fixture(scope="module")
def agent_module(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("leaderboard_agent") / "plan_follower.py"
    path.write_text(PLAN_FOLLOWER)
    return path


@pytest.fixture(scope="module")
def curved_suite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One 60 m route of the town map with a 90 deg turn."""
    suite = generate_suite("tiny", 3, ["town:0"], 1, length_range_m=(60.0, 120.0), npcs_per_km=(0.0, 0.0))
    route = suite.routes[0]
    points = load_network("town", 0).route_through(route.segments, route.start_s_m, 60.0)
    assert abs(np.degrees(np.unwrap(points.yaw_rad)[-1] - points.yaw_rad[0])) == pytest.approx(90.0, abs=1.0)
    path = tmp_path_factory.mktemp("suite") / "tiny.yaml"
    route = route.model_copy(update={"length_m": 60.0, "goal": tuple(points.points[-1])})
    save_suite(RouteSuite(name="tiny", routes=[route]), path)
    return path


def test_a_leaderboard_agent_drives_the_embedded_simulator(agent_module, curved_suite, tmp_path):
    overrides = [f"sensors.camera={json.dumps(CAMERA)}", "check_routes=false"]
    command = [sys.executable, "-m", "drivesim.cli.main", "eval", "run", "--agent", f"leaderboard:{agent_module},5.0"]
    command += ["--routes", str(curved_suite), "--sim", "embedded", "--out", str(tmp_path / "run"), "--no-progress"]
    result = subprocess.run([*command, *overrides], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    aggregate = results["aggregate"]
    assert aggregate["route_completion"] > 90.0, aggregate
    # The stand-in follows its GNSS plan blind to lights: a red light it meets is its only allowed infraction.
    infractions = {name for route in results["routes"] for name, count in route["metrics"]["infractions"].items() if count}
    assert infractions <= {"red_light", "stop_sign"}, infractions
    assert aggregate["mean_abs_yaw_rate_dps"] > 1.0  # it turned


def _route_info(suite_path: Path) -> RouteInfo:
    from drivesim.eval.routes import load_suite

    route = load_suite(suite_path).routes[0]
    return RouteInfo(route.id, route.map, route.map_seed, route.seed, route.length_m, 0.05, None, route.env_options()["route"])


def test_sensors_drivesim_cannot_simulate_are_refused(agent_module, curved_suite, tmp_path):
    config = EvalConfig.model_validate({"sensors": {"camera": CAMERA}})
    agent = make_agent(f"leaderboard:{agent_module},5.0", config)
    assert isinstance(agent, LeaderboardEvalAgent) and "ego_pose" in agent.observation_keys
    agent.reset(_route_info(curved_suite))  # the agent's camera is the config's: fine
    other = EvalConfig.model_validate({"sensors": {"camera": {**CAMERA, "fov_deg": 100.0}}})
    with pytest.raises(ValueError, match=r"sensors.camera.fov_deg=90"):
        make_agent(f"leaderboard:{agent_module},5.0", other).reset(_route_info(curved_suite))
    lidar = tmp_path / "lidar_agent.py"
    lidar.write_text(
        PLAN_FOLLOWER.replace(
            '{"type": "sensor.other.gnss"', '{"type": "sensor.lidar.ray_cast", "id": "LIDAR", "x": 0.0, "y": 0.0, "z": 2.0},\n{"type": "sensor.other.gnss"'
        ).replace("PlanFollower", "LidarFollower")
    )
    with pytest.raises(ValueError, match="LIDAR|lidar"):
        make_agent(f"leaderboard:{lidar},5.0", config).reset(_route_info(curved_suite))
    with pytest.raises(ValueError, match="not found"):
        make_agent(f"leaderboard:{tmp_path / 'missing.py'}", config)


def test_steer_is_rescaled_to_the_simulated_cars_wheels(agent_module, curved_suite):
    import carla

    config = EvalConfig.model_validate({"sensors": {"camera": CAMERA}})
    agent = make_agent(f"leaderboard:{agent_module},5.0", config)
    agent.reset(_route_info(curved_suite))
    agent.agent.run_step = lambda input_data, timestamp: carla.VehicleControl(throttle=0.5, steer=0.3, brake=0.0)
    observation = {
        "measurements": np.zeros(6, np.float32),
        "ego_pose": np.zeros(4, np.float32),
        "camera": np.zeros((32, 32, 3), np.uint8),
    }
    throttle, steer, brake = agent.act(observation)
    assert config.sim.vehicle.max_steer_deg == 35.0
    assert (throttle, brake) == (0.5, 0.0) and steer == pytest.approx(0.3 * 70.0 / 35.0)  # the same wheel angle
