"""A CARLA Leaderboard 2.0 agent module as a drivesim evaluation agent: ``--agent leaderboard:AGENT.py[,CONF]``.

Each route builds a fresh agent as ``leaderboard_evaluator.py`` does (``get_entry_point()`` class, built with
the server's address, ``set_global_plan``, ``setup(CONF)``, ``sensors()`` checked by the Leaderboard's
rules) and calls ``run_step(input_data, timestamp)`` every step, with ``input_data`` made from drivesim's
observation in the Leaderboard's formats: the camera as (H, W, 4) BGRA, GNSS [lat, lon, alt] from the
ego's pose through the map's geo-reference (``carla.Map.transform_to_geolocation``), IMU [accel, gyro,
compass] and the speedometer. The global plan is the route drivesim builds, dense, in GPS and world
coordinates. What drivesim's simulators cannot give is refused in ``reset``: LiDAR, radar, more than one
camera, a camera other than the eval config's (``sensors.camera``), the OpenDRIVE map sensor.

The agent's steer is meant for a CARLA car (front wheels at ~70 deg at full steer); it is rescaled to the
simulated car's ``max_steer_deg`` so that the wheels turn by the angle the agent asked for.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import carla
import numpy as np

from carla_bridge.leaderboard.standin import RoadOption, load_agent_class, validate_sensors
from drivesim import spec
from drivesim.eval.agents import Agent, RouteInfo, register_agent
from drivesim.eval.config import OBS_EGO_POSE, EvalConfig
from drivesim.eval.routes import load_network

LEADERBOARD_MAX_STEER_DEG = 70.0  # front-wheel max_steer_angle of CARLA's cars (physics control)
SUPPORTED_SENSORS = ("sensor.camera.rgb", "sensor.other.gnss", "sensor.other.imu", "sensor.speedometer")
GRAVITY_MPS2 = 9.81
SPEED = spec.MEASUREMENT_NAMES.index("speed_mps")
ACCEL = spec.MEASUREMENT_NAMES.index("accel_mps2")
YAW_RATE = spec.MEASUREMENT_NAMES.index("yaw_rate_dps")


class LeaderboardEvalAgent(Agent):
    """Runs a Leaderboard agent module on drivesim's simulators (see the module docstring).

    Args:
        module_path: The agent module (``get_entry_point()`` names its ``AutonomousAgent`` subclass).
        agent_config: What ``setup()`` receives (``--agent-config`` of the Leaderboard), or "".
        config: The evaluation config: its camera must be the agent's camera.
    """

    def __init__(self, module_path: str | Path, agent_config: str, config: EvalConfig) -> None:
        self.agent_class = load_agent_class(module_path)
        self.agent_config = agent_config
        self.config = config
        self.agent: Any = None
        camera = (spec.OBS_CAMERA,) if config.sensors.camera is not None else ()
        self.observation_keys = (spec.OBS_MEASUREMENTS, OBS_EGO_POSE, *camera)
        self._ids: dict[str, str] = {}
        self._steer_gain = LEADERBOARD_MAX_STEER_DEG / config.sim.vehicle.max_steer_deg

    def reset(self, route_info: RouteInfo) -> None:
        if route_info.plan is None:
            raise ValueError("a Leaderboard agent needs the route's global plan (RouteInfo.plan)")
        self.close()
        network = load_network(route_info.map_name, route_info.map_seed)
        self._map = network.map
        plan = route_info.plan
        route = network.route_through(list(plan["segments"]), float(plan["start_s_m"]), float(plan["length_m"]))
        gps, world = [], []
        for (x, y), yaw in zip(route.points, route.yaw_rad, strict=True):
            location = carla.Location(x=float(x), y=float(y))
            where = self._map.transform_to_geolocation(location)
            gps.append(({"lat": where.latitude, "lon": where.longitude, "z": where.altitude}, RoadOption.LANEFOLLOW))
            world.append((carla.Transform(location, carla.Rotation(yaw=math.degrees(float(yaw)))), RoadOption.LANEFOLLOW))
        self.agent = self.agent_class("localhost", 2000, False)
        self.agent.set_global_plan(gps, world)
        self.agent.setup(self.agent_config)
        self._ids = self._check_sensors(self.agent.sensors())
        self._dt_s, self._step = route_info.dt_s, 0

    def _check_sensors(self, sensors: list[dict[str, Any]]) -> dict[str, str]:
        """Sensor id -> type; raises ``ValueError`` for what drivesim cannot simulate."""
        validate_sensors(sensors, "SENSORS")
        unsupported = [s["type"] for s in sensors if s["type"] not in SUPPORTED_SENSORS]
        cameras = [s for s in sensors if s["type"] == "sensor.camera.rgb"]
        if unsupported or len(cameras) > 1:
            raise ValueError(
                f"drivesim simulates one RGB camera, GNSS, IMU and the speedometer; the agent asks for "
                f"{unsupported + [c['id'] for c in cameras[1:]]}"
            )
        if cameras:
            self._check_camera(cameras[0])
        return {s["id"]: s["type"] for s in sensors}

    def _check_camera(self, sensor: Mapping[str, Any]) -> None:
        camera = self.config.sensors.camera
        wanted = {
            "width_px": sensor["width"],
            "height_px": sensor["height"],
            "fov_deg": sensor["fov"],
            "mount_x_m": sensor["x"],
            "mount_y_m": sensor["y"],
            "mount_z_m": sensor["z"],
            "pitch_deg": sensor["pitch"],
        }
        if camera is None or any(not math.isclose(getattr(camera, k), float(v), abs_tol=1e-6) for k, v in wanted.items()):
            overrides = " ".join(f"sensors.camera.{k}={v}" for k, v in wanted.items())
            raise ValueError(f"the agent's camera {sensor['id']!r} is not the eval config's camera: give {overrides}")
        if abs(sensor.get("roll", 0.0)) > 1e-6 or abs(sensor.get("yaw", 0.0)) > 1e-6:
            raise ValueError(f"camera {sensor['id']!r}: drivesim's camera looks straight ahead (roll = yaw = 0)")

    def input_data(self, observation: Mapping[str, np.ndarray]) -> dict[str, tuple[int, Any]]:
        """The step's ``input_data`` (sensor id -> (frame, data)) from drivesim's observation."""
        x, y, z, yaw_deg = (float(value) for value in observation[OBS_EGO_POSE])
        measurements = observation[spec.OBS_MEASUREMENTS]
        frame, data = self._step, {}
        for sensor_id, kind in self._ids.items():
            if kind == "sensor.camera.rgb":
                rgb = np.asarray(observation[spec.OBS_CAMERA])
                data[sensor_id] = np.concatenate([rgb[..., ::-1], np.full(rgb.shape[:2] + (1,), 255, np.uint8)], -1)
            elif kind == "sensor.other.gnss":
                where = self._map.transform_to_geolocation(carla.Location(x=x, y=y, z=z))
                data[sensor_id] = np.array([where.latitude, where.longitude, where.altitude], dtype=np.float64)
            elif kind == "sensor.other.imu":
                compass = (math.radians(yaw_deg) + math.pi / 2.0) % math.tau
                data[sensor_id] = np.array(
                    [measurements[ACCEL], 0.0, GRAVITY_MPS2, 0.0, 0.0, math.radians(measurements[YAW_RATE]), compass],
                    dtype=np.float64,
                )
            else:
                data[sensor_id] = {"speed": float(measurements[SPEED])}
        return {sensor_id: (frame, value) for sensor_id, value in data.items()}

    def act(self, observation: Mapping[str, np.ndarray]) -> np.ndarray:
        if self.agent is None:
            raise RuntimeError("LeaderboardEvalAgent.act() before reset()")
        control = self.agent.run_step(self.input_data(observation), self._step * self._dt_s)
        self._step += 1
        steer = min(max(float(control.steer) * self._steer_gain, -1.0), 1.0)
        return spec.action_from_control(float(control.throttle), steer, float(control.brake))

    def close(self) -> None:
        if self.agent is not None:
            self.agent.destroy()
            self.agent = None


def _leaderboard_factory(argument: str | None, config: EvalConfig) -> Agent:
    """``leaderboard:AGENT.py`` or ``leaderboard:AGENT.py,CONF`` (CONF is what the agent's setup() reads)."""
    if not argument:
        raise ValueError("the leaderboard agent needs a module: --agent leaderboard:my_agent.py[,my_config]")
    module, _, agent_config = argument.partition(",")
    return LeaderboardEvalAgent(module, agent_config, config)


register_agent("leaderboard", _leaderboard_factory, overwrite=True)
