"""CARLA Leaderboard 2.0 interface: the real ``AutonomousAgent`` when installed, else a stand-in; sensor rules.

The stand-in mirrors ``leaderboard/autoagents/autonomous_agent.py`` (carla-simulator/leaderboard, master
at aec8131): the same class, methods and parameters, and the ``Track`` enum. The sensor rules and the
conversion of sensor data to ``input_data`` mirror ``autoagents/agent_wrapper.py`` and
``envs/sensor_interface.py``. ``tests/carla_bridge/test_leaderboard.py`` checks both against the
interface recorded from that source (and against the real package where it is installed).
"""

from __future__ import annotations

import importlib
import math
import sys
import types
from enum import Enum, IntEnum
from pathlib import Path
from typing import Any

import numpy as np

MAX_ALLOWED_RADIUS_SENSOR_M = 3.0  # agent_wrapper.MAX_ALLOWED_RADIUS_SENSOR
SENSORS_LIMITS = {  # agent_wrapper.SENSORS_LIMITS: sensor type -> most instances
    "sensor.camera.rgb": 8,
    "sensor.lidar.ray_cast": 2,
    "sensor.other.radar": 4,
    "sensor.other.gnss": 1,
    "sensor.other.imu": 1,
    "sensor.opendrive_map": 1,
    "sensor.speedometer": 1,
}
PSEUDO_SENSORS = ("sensor.speedometer", "sensor.opendrive_map")  # computed by the Leaderboard, not spawned


class Track(Enum):
    """Stand-in of ``leaderboard.autoagents.autonomous_agent.Track``."""

    SENSORS = "SENSORS"
    MAP = "MAP"
    SENSORS_QUALIFIER = "SENSORS_QUALIFIER"
    MAP_QUALIFIER = "MAP_QUALIFIER"


class RoadOption(IntEnum):
    """Stand-in of CARLA's ``agents.navigation.local_planner.RoadOption`` (the plan's per-point manoeuvre)."""

    VOID = -1
    LEFT = 1
    RIGHT = 2
    STRAIGHT = 3
    LANEFOLLOW = 4
    CHANGELANELEFT = 5
    CHANGELANERIGHT = 6


class StandInAutonomousAgent:
    """Stand-in of ``leaderboard.autoagents.autonomous_agent.AutonomousAgent`` (used when it is not installed).

    The evaluator constructs it with the server's address, calls ``set_global_plan``, ``setup``, reads
    ``sensors()``, then calls ``run_step(input_data, timestamp)`` once per tick and ``destroy()`` at the end.
    """

    def __init__(self, carla_host: str, carla_port: int, debug: bool = False) -> None:
        self.track = Track.SENSORS
        self._global_plan: list[Any] | None = None
        self._global_plan_world_coord: list[Any] | None = None
        self.sensor_interface: Any = None
        self.wallclock_t0: Any = None

    def setup(self, path_to_conf_file: str) -> None:
        """Load the agent's configuration and set ``track``."""

    def sensors(self) -> list[dict[str, Any]]:
        """The sensor suite: dicts with 'type', 'id', and the mount ('x', 'y', 'z', 'roll', 'pitch', 'yaw')."""
        return []

    def run_step(self, input_data: dict[str, tuple[int, Any]], timestamp: float) -> Any:
        """One step: sensor id -> (frame, data) in, a ``carla.VehicleControl`` out."""
        raise NotImplementedError("run_step(input_data, timestamp) must return a carla.VehicleControl")

    def destroy(self) -> None:
        """Release what the agent holds."""

    def __call__(self) -> Any:
        raise NotImplementedError("the stand-in has no GameTime: evaluators call run_step directly")

    @staticmethod
    def get_ros_version() -> int:
        return -1

    def set_global_plan(self, global_plan_gps: list[Any], global_plan_world_coord: list[Any]) -> None:
        """The route as ((lat, lon, z) dicts, RoadOption) and (carla.Transform, RoadOption) pairs."""
        self._global_plan_world_coord = list(global_plan_world_coord)
        self._global_plan = list(global_plan_gps)


def autonomous_agent_class() -> tuple[type, type[Enum]]:
    """The Leaderboard's ``AutonomousAgent`` and ``Track`` when installed, else the stand-ins."""
    try:
        from leaderboard.autoagents.autonomous_agent import AutonomousAgent
        from leaderboard.autoagents.autonomous_agent import Track as LeaderboardTrack
    except ImportError:
        return StandInAutonomousAgent, Track
    return AutonomousAgent, LeaderboardTrack


def install_standin() -> bool:
    """Make ``import leaderboard.autoagents.autonomous_agent`` give the stand-ins when no Leaderboard is installed.

    Leaderboard agent modules import their base class from there; with the real package present nothing
    changes. Returns whether the stand-in was installed.
    """
    try:
        import leaderboard.autoagents.autonomous_agent  # noqa: F401
    except ImportError:
        pass
    else:
        return False
    names = ("leaderboard", "leaderboard.autoagents", "leaderboard.autoagents.autonomous_agent")
    modules = [types.ModuleType(name) for name in names]
    modules[-1].AutonomousAgent, modules[-1].Track = StandInAutonomousAgent, Track
    modules[-1].__doc__ = "Stand-in installed by carla_bridge.leaderboard.standin (no Leaderboard installed)."
    for parent, child, name in zip(modules, modules[1:], names[1:], strict=False):
        setattr(parent, name.rsplit(".", 1)[-1], child)
    for name, module in zip(names, modules, strict=True):
        module.__path__ = []  # a package, so that the submodule import resolves
        sys.modules.setdefault(name, module)
    return True


def load_agent_class(path: str | Path) -> type:
    """The agent class of a Leaderboard agent module, imported as ``LeaderboardEvaluator`` does.

    Raises:
        ValueError: The file is missing or has no ``get_entry_point()`` naming a class in it.
    """
    path = Path(path).resolve()
    if not path.is_file():
        raise ValueError(f"Leaderboard agent module not found: {path}")
    install_standin()
    sys.path.insert(0, str(path.parent))
    try:
        module = importlib.import_module(path.stem)
    finally:
        sys.path.remove(str(path.parent))
    entry = getattr(module, "get_entry_point", None)
    if entry is None or not hasattr(module, entry()):
        raise ValueError(f"{path}: a Leaderboard agent module needs get_entry_point() naming its agent class")
    return getattr(module, entry())


def validate_sensors(sensors: list[dict[str, Any]], track: str) -> None:
    """The checks of ``agent_wrapper.validate_sensor_configuration`` for ``track`` ('SENSORS' or 'MAP').

    Raises:
        ValueError: A duplicated id, a sensor not allowed on the track, a mount farther than 3 m from the
            ego's origin, or too many sensors of a type.
    """
    ids, counts = set(), {}
    for sensor in sensors:
        if sensor["id"] in ids:
            raise ValueError(f"duplicated sensor id {sensor['id']!r}")
        ids.add(sensor["id"])
        kind = sensor["type"]
        if kind not in SENSORS_LIMITS or (track.startswith("SENSORS") and kind == "sensor.opendrive_map"):
            raise ValueError(f"sensor {kind!r} is not allowed on the {track} track")
        if all(axis in sensor for axis in "xyz"):
            if math.sqrt(sensor["x"] ** 2 + sensor["y"] ** 2 + sensor["z"] ** 2) > MAX_ALLOWED_RADIUS_SENSOR_M:
                raise ValueError(f"sensor {sensor['id']!r} is mounted more than {MAX_ALLOWED_RADIUS_SENSOR_M} m away")
        counts[kind] = counts.get(kind, 0) + 1
        if counts[kind] > SENSORS_LIMITS[kind]:
            raise ValueError(f"more than {SENSORS_LIMITS[kind]} sensors of type {kind!r}")


def image_array(image: Any) -> np.ndarray:
    """``input_data`` of a camera: (H, W, 4) uint8 BGRA, as ``CallBack._parse_image_cb``."""
    return np.frombuffer(image.raw_data, dtype=np.uint8).copy().reshape(image.height, image.width, 4)


def imu_array(imu: Any) -> np.ndarray:
    """``input_data`` of the IMU: [accel x, y, z, gyro x, y, z, compass] float64, as ``_parse_imu_cb``."""
    accel, gyro = imu.accelerometer, imu.gyroscope
    return np.array([accel.x, accel.y, accel.z, gyro.x, gyro.y, gyro.z, imu.compass], dtype=np.float64)


def gnss_array(gnss: Any) -> np.ndarray:
    """``input_data`` of the GNSS: [latitude, longitude, altitude] float64, as ``_parse_gnss_cb``."""
    return np.array([gnss.latitude, gnss.longitude, gnss.altitude], dtype=np.float64)


def forward_speed(vehicle: Any) -> float:
    """The speedometer pseudo-sensor: velocity along the vehicle's heading, as ``SpeedometerReader``."""
    velocity, rotation = vehicle.get_velocity(), vehicle.get_transform().rotation
    pitch, yaw = math.radians(rotation.pitch), math.radians(rotation.yaw)
    return (
        velocity.x * math.cos(pitch) * math.cos(yaw)
        + velocity.y * math.cos(pitch) * math.sin(yaw)
        + velocity.z * math.sin(pitch)
    )
