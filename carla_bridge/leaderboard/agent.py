"""A drivesim policy checkpoint as a CARLA Leaderboard 2.0 agent (the module ``leaderboard_evaluator.py`` loads).

    python leaderboard/leaderboard_evaluator.py --agent .../carla_bridge/leaderboard/agent.py \\
        --agent-config policy.yaml --routes ... --track SENSORS

``--agent-config`` is a policy checkpoint (``.ckpt``) or a YAML file with the fields of ``AgentConfig``.
The sensor rig follows the policy's observation spec: one front RGB camera at the world model's image
size, mounted as drivesim's camera, plus GNSS, IMU and the speedometer from which ``inputs.py`` rebuilds
``measurements`` and ``route``. The policy's waypoints go through drivesim's waypoint controller (with the
CARLA car's steering limit) to a ``carla.VehicleControl``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import carla
import numpy as np
import yaml
from pydantic import Field

from carla_bridge.leaderboard.inputs import (
    GeoFrame,
    RouteAhead,
    bgra_to_rgb,
    compass_to_yaw,
    measurement_vector,
)
from carla_bridge.leaderboard.standin import autonomous_agent_class
from drivesim import spec
from drivesim.config import Section
from drivesim.eval.config import EvalConfig
from drivesim.sensors.config import CameraConfig
from drivesim.sim.config import VehicleConfig

AutonomousAgent, Track = autonomous_agent_class()
FRAME_RATE_HZ = 20.0  # LeaderboardEvaluator.frame_rate
CAMERA_ID, GNSS_ID, IMU_ID, SPEED_ID = "drivesim_camera", "drivesim_gnss", "drivesim_imu", "drivesim_speed"


def get_entry_point() -> str:
    return "DrivesimAgent"


class AgentConfig(Section):
    """``--agent-config`` of the drivesim Leaderboard agent."""

    checkpoint: Path = Field(..., description="BC or BC+RL policy checkpoint (drivesim train-bc / train-rl).")
    device: str = Field("cpu", description="Torch device of the world model and policy.")
    camera: CameraConfig = Field(
        default_factory=CameraConfig,
        description="Mount and field of view of the camera the policy was trained with (its size is the "
        "world model's image size).",
    )
    vehicle: VehicleConfig = Field(
        default_factory=lambda: VehicleConfig(max_steer_deg=70.0, wheelbase_m=2.875),
        description="Steering geometry of the controller: the Leaderboard's car (lincoln.mkz_2020, ~70 deg).",
    )


def load_agent_config(path: str | Path) -> AgentConfig:
    """A checkpoint path, or a YAML file of ``AgentConfig`` fields (relative paths from its folder)."""
    path = Path(path)
    if path.suffix in (".ckpt", ".pt"):
        return AgentConfig(checkpoint=path)
    data = yaml.safe_load(path.read_text()) or {}
    config = AgentConfig.model_validate(data)
    if not config.checkpoint.is_absolute():
        config.checkpoint = path.parent / config.checkpoint
    return config


class DrivesimAgent(AutonomousAgent):
    """Drives the Leaderboard's route with a drivesim policy (see the module docstring)."""

    def __init__(self, carla_host: str, carla_port: int, debug: bool = False) -> None:
        super().__init__(carla_host, carla_port, debug)
        self._geo: GeoFrame | None = None
        self._plan_xy = np.zeros((0, 2))
        self._route: RouteAhead | None = None
        self._control = np.zeros(3, dtype=np.float32)
        self._yaw_rad = 0.0

    def setup(self, path_to_conf_file: str) -> None:
        from drivesim.policy.agent import PolicyAgent

        self.track = Track.SENSORS
        self.config = load_agent_config(path_to_conf_file)
        eval_config = EvalConfig()
        eval_config.sim.vehicle = self.config.vehicle
        eval_config.sim.episode.dt_s = 1.0 / FRAME_RATE_HZ
        self.sim_config = eval_config.sim
        self.policy = PolicyAgent(self.config.checkpoint, eval_config, self.config.device)
        if spec.OBS_BEV in self.policy.image_keys:
            raise ValueError(
                f"{self.config.checkpoint}: the policy's world model reads the BEV, which the Leaderboard does "
                "not give an agent (it is privileged); use a policy whose world model reads only the camera"
            )
        size = self.policy.image_size
        self.camera = self.config.camera.model_copy(update={"width_px": size, "height_px": size})
        self.policy.reset(None)

    def set_global_plan(self, global_plan_gps: list[Any], global_plan_world_coord: list[Any]) -> None:
        """Keep the dense plan (the base class keeps a copy downsampled to ~200 m for its own bookkeeping)."""
        super().set_global_plan(global_plan_gps, global_plan_world_coord)
        latlon = np.array([[point["lat"], point["lon"]] for point, _ in global_plan_gps], dtype=np.float64)
        xy = np.array([[t.location.x, t.location.y] for t, _ in global_plan_world_coord], dtype=np.float64)
        self._geo = GeoFrame(latlon, xy)
        self._plan_xy = xy
        self._route = None

    def sensors(self) -> list[dict[str, Any]]:
        camera = self.camera
        return [
            {
                "type": "sensor.camera.rgb",
                "id": CAMERA_ID,
                "x": camera.mount_x_m,
                "y": camera.mount_y_m,
                "z": camera.mount_z_m,
                "roll": 0.0,
                "pitch": camera.pitch_deg,
                "yaw": 0.0,
                "width": camera.width_px,
                "height": camera.height_px,
                "fov": camera.fov_deg,
            },
            {"type": "sensor.other.gnss", "id": GNSS_ID, "x": 0.0, "y": 0.0, "z": 0.0},
            {"type": "sensor.other.imu", "id": IMU_ID, "x": 0.0, "y": 0.0, "z": 0.0, "roll": 0.0, "pitch": 0.0, "yaw": 0.0},
            {"type": "sensor.speedometer", "id": SPEED_ID, "reading_frequency": FRAME_RATE_HZ},
        ]

    def observation(self, input_data: dict[str, tuple[int, Any]]) -> dict[str, np.ndarray]:
        """drivesim's observation (``measurements``, ``route``, ``camera``) from one step's ``input_data``."""
        if self._geo is None:
            raise RuntimeError("set_global_plan() must come before run_step()")
        imu = np.asarray(input_data[IMU_ID][1], dtype=np.float64)
        if np.isfinite(imu[6]):  # the compass can be NaN on the first frames of a real server
            self._yaw_rad = compass_to_yaw(float(imu[6]))
        latitude, longitude = np.asarray(input_data[GNSS_ID][1], dtype=np.float64)[:2]
        ego_xy = self._geo.to_xy(latitude, longitude)
        if self._route is None:
            self._route = RouteAhead(self._plan_xy, self.sim_config.route_spacing_m, self.sim_config.num_route_points)
        speed = float(input_data[SPEED_ID][1]["speed"] or 0.0)
        return {
            spec.OBS_MEASUREMENTS: measurement_vector(speed, imu, self._control),
            spec.OBS_ROUTE: self._route(ego_xy, self._yaw_rad),
            spec.OBS_CAMERA: bgra_to_rgb(input_data[CAMERA_ID][1]),
        }

    def run_step(self, input_data: dict[str, tuple[int, Any]], timestamp: float) -> carla.VehicleControl:
        self.policy.act(self.observation(input_data))
        self._control = np.clip(self.policy.previous_action, spec.ACTION_LOW, spec.ACTION_HIGH).astype(np.float32)
        throttle, steer, brake = (float(value) for value in self._control)
        return carla.VehicleControl(throttle=throttle, steer=steer, brake=brake)

    def destroy(self) -> None:
        self.policy = None
