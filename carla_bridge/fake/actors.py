"""Fake CARLA server: actors, blueprints, actor lists and sensor data, mirroring the carla client classes.

Every public method and attribute here exists with the same parameters on the real class named in the
docstring (checked against the wheel's type stubs by tests/carla_bridge/test_fake_conformance.py). Values
are the real carla value types (Transform, Vector3D, BoundingBox, VehicleControl, Timestamp, ...).
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import carla

from drivesim.sim.config import SimConfig
from drivesim.sim.traffic import NPC_LENGTH_M, NPC_WIDTH_M

if TYPE_CHECKING:
    from carla_bridge.fake.server import FakeCarlaServer


class FakeActorAttribute:
    """Stands in for ``carla.ActorAttribute``."""

    def __init__(
        self,
        attribute_id: str,
        value: str,
        recommended_values: list[str] | None = None,
        is_modifiable: bool = True,
    ) -> None:
        self.id = attribute_id
        self._value = value
        self.recommended_values = list(recommended_values or [])
        self.is_modifiable = is_modifiable
        self.type = carla.ActorAttributeType.String

    def as_bool(self) -> bool:
        return self._value.lower() in ("true", "1")

    def as_float(self) -> float:
        return float(self._value)

    def as_int(self) -> int:
        return int(self._value)

    def as_str(self) -> str:
        return self._value

    def __str__(self) -> str:
        return f"ActorAttribute(id={self.id},value={self._value})"


class FakeActorBlueprint:
    """Stands in for ``carla.ActorBlueprint``: an id, tags and string attributes."""

    def __init__(
        self,
        blueprint_id: str,
        attributes: dict[str, FakeActorAttribute],
        extent: carla.Vector3D | None = None,
        wheels: tuple[float, float, float] | None = None,
    ) -> None:
        self.id = blueprint_id
        self.tags = blueprint_id.split(".")
        self._attributes = attributes
        self._extent = extent
        self._wheels = wheels  # vehicles: (max steer [deg], wheelbase [m], rear axle to box centre [m])

    def has_attribute(self, id: str) -> bool:  # noqa: A002 - the carla parameter name
        return id in self._attributes

    def has_tag(self, tag: str) -> bool:
        return tag in self.tags

    def match_tags(self, wildcard_pattern: str) -> bool:
        return any(fnmatch.fnmatch(tag, wildcard_pattern) for tag in self.tags)

    def get_attribute(self, id: str) -> FakeActorAttribute:  # noqa: A002
        if id not in self._attributes:
            raise IndexError(f"no attribute {id!r} in blueprint {self.id}")
        return self._attributes[id]

    def set_attribute(self, id: str, value: str) -> None:  # noqa: A002
        attribute = self.get_attribute(id)
        if not attribute.is_modifiable:
            raise RuntimeError(f"attribute {id!r} of {self.id} is not modifiable")
        attribute._value = str(value)

    def _copy(self) -> FakeActorBlueprint:
        """An independent copy (the real client copies a blueprint into every spawn request)."""
        attributes = {
            key: FakeActorAttribute(a.id, a.as_str(), a.recommended_values, a.is_modifiable)
            for key, a in self._attributes.items()
        }
        return FakeActorBlueprint(self.id, attributes, self._extent, self._wheels)

    def _values(self) -> dict[str, str]:
        return {key: attribute.as_str() for key, attribute in self._attributes.items()}

    def __iter__(self) -> Iterator[FakeActorAttribute]:
        return iter(self._attributes.values())

    def __len__(self) -> int:
        return len(self._attributes)

    def __str__(self) -> str:
        return f"ActorBlueprint(id={self.id},tags={self.tags})"


class FakeBlueprintLibrary:
    """Stands in for ``carla.BlueprintLibrary``."""

    def __init__(self, blueprints: list[FakeActorBlueprint]) -> None:
        self._blueprints = blueprints

    def find(self, id: str) -> FakeActorBlueprint:  # noqa: A002
        for blueprint in self._blueprints:
            if blueprint.id == id:
                return blueprint._copy()
        raise IndexError(f"blueprint {id!r} not found")

    def filter(self, wildcard_pattern: str) -> list[FakeActorBlueprint]:
        return [bp._copy() for bp in self._blueprints if fnmatch.fnmatch(bp.id, wildcard_pattern)]

    def filter_by_attribute(self, name: str, value: str) -> list[FakeActorBlueprint]:
        return [
            bp._copy()
            for bp in self._blueprints
            if bp.has_attribute(name) and bp.get_attribute(name).as_str() == value
        ]

    def __getitem__(self, pos: int) -> FakeActorBlueprint:
        return self._blueprints[pos]._copy()

    def __iter__(self) -> Iterator[FakeActorBlueprint]:
        return iter([bp._copy() for bp in self._blueprints])

    def __len__(self) -> int:
        return len(self._blueprints)


def _colour_attribute() -> FakeActorAttribute:
    colours = ["255,0,0", "0,0,255", "255,255,255", "30,30,30"]
    return FakeActorAttribute("color", colours[0], colours)


def vehicle_blueprint(
    blueprint_id: str,
    extent: tuple[float, float, float],
    wheels: int = 4,
    max_steer_deg: float = 70.0,
    wheelbase_m: float = 2.9,
    rear_axle_to_centre_m: float = 1.45,
) -> FakeActorBlueprint:
    """A vehicle blueprint whose actors get a bounding box of half-size ``extent`` [m] and these wheels.

    70 deg is what CARLA 0.9.16's cars report as their front wheels' ``max_steer_angle``.
    """
    attributes = {
        "number_of_wheels": FakeActorAttribute("number_of_wheels", str(wheels), is_modifiable=False),
        "role_name": FakeActorAttribute("role_name", "autopilot", ["autopilot", "scenario", "hero"]),
        "color": _colour_attribute(),
        "generation": FakeActorAttribute("generation", "2", is_modifiable=False),
    }
    return FakeActorBlueprint(
        blueprint_id, attributes, carla.Vector3D(*extent), (max_steer_deg, wheelbase_m, rear_axle_to_centre_m)
    )


def sensor_blueprint(blueprint_id: str, values: dict[str, str]) -> FakeActorBlueprint:
    attributes = {
        key: FakeActorAttribute(key, value) for key, value in {"role_name": "front", **values}.items()
    }
    return FakeActorBlueprint(blueprint_id, attributes)


class FakeActor:
    """Stands in for ``carla.Actor``: id, type, attributes, pose and motion held by the fake server."""

    def __init__(
        self,
        server: FakeCarlaServer,
        actor_id: int,
        blueprint: FakeActorBlueprint,
        transform: carla.Transform,
        parent: FakeActor | None = None,
    ) -> None:
        self._server = server
        self.id = actor_id
        self.type_id = blueprint.id
        self.attributes = blueprint._values()
        self.parent = parent
        self.semantic_tags: list[int] = []
        self.is_alive = True
        self._transform = transform  # world transform; relative to the parent for attached actors
        self._velocity = carla.Vector3D()
        self._acceleration = carla.Vector3D()
        self._angular_velocity = carla.Vector3D()
        extent = blueprint._extent
        self.bounding_box = (
            carla.BoundingBox(carla.Location(z=extent.z), extent)
            if extent is not None
            else carla.BoundingBox()
        )

    def get_transform(self) -> carla.Transform:
        self._server._check_alive()
        if self.parent is None:
            return carla.Transform(self._transform.location, self._transform.rotation)
        return self._server._attached_transform(self.parent.get_transform(), self._transform)

    def get_location(self) -> carla.Location:
        return self.get_transform().location

    def get_velocity(self) -> carla.Vector3D:
        self._server._check_alive()
        return carla.Vector3D(self._velocity.x, self._velocity.y, self._velocity.z)

    def get_acceleration(self) -> carla.Vector3D:
        self._server._check_alive()
        return carla.Vector3D(self._acceleration.x, self._acceleration.y, self._acceleration.z)

    def get_angular_velocity(self) -> carla.Vector3D:
        self._server._check_alive()
        return carla.Vector3D(self._angular_velocity.x, self._angular_velocity.y, self._angular_velocity.z)

    def get_world(self) -> Any:
        return self._server._world_handle()

    def destroy(self) -> bool:
        return self._server._destroy(self.id)

    def __str__(self) -> str:
        return f"Actor(id={self.id}, type={self.type_id})"


class FakeVehicle(FakeActor):
    """Stands in for ``carla.Vehicle``: the last applied control and the autopilot flag."""

    def __init__(
        self,
        server: FakeCarlaServer,
        actor_id: int,
        blueprint: FakeActorBlueprint,
        transform: carla.Transform,
        parent: FakeActor | None = None,
    ) -> None:
        super().__init__(server, actor_id, blueprint, transform, parent)
        self._control = carla.VehicleControl()
        self._autopilot_port: int | None = None
        self._wheels = blueprint._wheels

    def apply_control(self, control: carla.VehicleControl) -> None:
        self._server._check_alive()
        self._control = carla.VehicleControl(
            throttle=control.throttle,
            steer=control.steer,
            brake=control.brake,
            hand_brake=control.hand_brake,
            reverse=control.reverse,
            manual_gear_shift=control.manual_gear_shift,
            gear=control.gear,
        )

    def get_control(self) -> carla.VehicleControl:
        self._server._check_alive()
        return carla.VehicleControl(
            throttle=self._control.throttle, steer=self._control.steer, brake=self._control.brake
        )

    def get_physics_control(self) -> carla.VehiclePhysicsControl:
        """Four wheels (front left, front right, rear left, rear right) at their world positions [cm]."""
        self._server._check_alive()
        max_steer_deg, wheelbase_m, rear_m = self._wheels
        transform = self.get_transform()
        yaw = math.radians(transform.rotation.yaw)
        forward, right = (math.cos(yaw), math.sin(yaw)), (-math.sin(yaw), math.cos(yaw))
        centre = (transform.location.x, transform.location.y)  # the fake's boxes are centred on the actor
        half_track = 0.8
        wheels = []
        for along, steer in ((wheelbase_m - rear_m, max_steer_deg), (-rear_m, 0.0)):
            for side in (-half_track, half_track):
                x = centre[0] + along * forward[0] + side * right[0]
                y = centre[1] + along * forward[1] + side * right[1]
                position = carla.Vector3D(100.0 * x, 100.0 * y, 30.0)
                wheels.append(carla.WheelPhysicsControl(max_steer_angle=steer, position=position))
        return carla.VehiclePhysicsControl(wheels=wheels)

    def set_autopilot(self, enabled: bool = True, port: int = 8000) -> None:
        self._server._set_autopilot(self.id, enabled, port)

    def __str__(self) -> str:
        return f"Vehicle(id={self.id}, type={self.type_id})"


class FakeSensor(FakeActor):
    """Stands in for ``carla.Sensor``: ``listen`` registers the callback the server calls on each tick."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._callback: Callable[[Any], Any] | None = None

    def listen(self, callback: Callable[[Any], Any]) -> None:
        self._server._check_alive()
        self._callback = callback

    def is_listening(self) -> bool:
        return self._callback is not None

    def stop(self) -> None:
        self._server._check_alive()
        self._callback = None

    def __str__(self) -> str:
        return f"Sensor(id={self.id}, type={self.type_id})"


class FakeActorList:
    """Stands in for ``carla.ActorList``."""

    def __init__(self, actors: list[FakeActor]) -> None:
        self._actors = actors

    def filter(self, wildcard_pattern: str) -> FakeActorList:
        return FakeActorList([a for a in self._actors if fnmatch.fnmatch(a.type_id, wildcard_pattern)])

    def find(self, actor_id: int) -> FakeActor | None:
        return next((a for a in self._actors if a.id == actor_id), None)

    def __getitem__(self, pos: int) -> FakeActor:
        return self._actors[pos]

    def __iter__(self) -> Iterator[FakeActor]:
        return iter(self._actors)

    def __len__(self) -> int:
        return len(self._actors)


class _FakeSensorData:
    """Fields of ``carla.SensorData``: frame, timestamp (a real ``carla.Timestamp``), sensor transform."""

    def __init__(self, timestamp: carla.Timestamp, transform: carla.Transform) -> None:
        self.frame = timestamp.frame
        self.timestamp = timestamp
        self.transform = transform


class FakeImage(_FakeSensorData):
    """Stands in for ``carla.Image``: BGRA bytes in ``raw_data``."""

    def __init__(
        self,
        timestamp: carla.Timestamp,
        transform: carla.Transform,
        width: int,
        height: int,
        fov: float,
        raw_data: bytes,
    ) -> None:
        super().__init__(timestamp, transform)
        self.width, self.height, self.fov = width, height, fov
        self.raw_data = raw_data

    def __len__(self) -> int:
        return self.width * self.height


class FakeCollisionEvent(_FakeSensorData):
    """Stands in for ``carla.CollisionEvent``."""

    def __init__(
        self,
        timestamp: carla.Timestamp,
        transform: carla.Transform,
        actor: FakeActor,
        other_actor: FakeActor | None,
        normal_impulse: carla.Vector3D,
    ) -> None:
        super().__init__(timestamp, transform)
        self.actor, self.other_actor, self.normal_impulse = actor, other_actor, normal_impulse


class FakeLaneInvasionEvent(_FakeSensorData):
    """Stands in for ``carla.LaneInvasionEvent``; ``crossed_lane_markings`` are real ``carla.LaneMarking``s."""

    def __init__(
        self,
        timestamp: carla.Timestamp,
        transform: carla.Transform,
        actor: FakeActor,
        crossed_lane_markings: list[carla.LaneMarking],
    ) -> None:
        super().__init__(timestamp, transform)
        self.actor, self.crossed_lane_markings = actor, crossed_lane_markings


class FakeIMUMeasurement(_FakeSensorData):
    """Stands in for ``carla.IMUMeasurement``: accelerometer [m/s^2] and gyroscope [rad/s] in the sensor frame,
    compass [rad] (0 = North = -y, as CARLA's IMU: the heading's yaw + pi/2)."""

    def __init__(
        self,
        timestamp: carla.Timestamp,
        transform: carla.Transform,
        accelerometer: carla.Vector3D,
        gyroscope: carla.Vector3D,
        compass: float,
    ) -> None:
        super().__init__(timestamp, transform)
        self.accelerometer, self.gyroscope, self.compass = accelerometer, gyroscope, compass


class FakeGnssMeasurement(_FakeSensorData):
    """Stands in for ``carla.GnssMeasurement``: the sensor's geolocation [deg, deg, m]."""

    def __init__(
        self, timestamp: carla.Timestamp, transform: carla.Transform, latitude: float, longitude: float, altitude: float
    ) -> None:
        super().__init__(timestamp, transform)
        self.latitude, self.longitude, self.altitude = latitude, longitude, altitude


class FakeActorSnapshot:
    """Stands in for ``carla.ActorSnapshot``: one actor's state at a frame."""

    def __init__(
        self,
        actor_id: int,
        transform: carla.Transform,
        velocity: carla.Vector3D,
        acceleration: carla.Vector3D,
        angular_velocity: carla.Vector3D,
    ) -> None:
        self.id = actor_id
        self._state = (transform, velocity, acceleration, angular_velocity)

    def get_transform(self) -> carla.Transform:
        return self._state[0]

    def get_velocity(self) -> carla.Vector3D:
        return self._state[1]

    def get_acceleration(self) -> carla.Vector3D:
        return self._state[2]

    def get_angular_velocity(self) -> carla.Vector3D:
        return self._state[3]


class FakeWorldSnapshot:
    """Stands in for ``carla.WorldSnapshot``: every actor's state at one frame."""

    def __init__(self, world_id: int, timestamp: carla.Timestamp, actors: list[FakeActorSnapshot]) -> None:
        self.id = world_id
        self.frame = timestamp.frame
        self.timestamp = timestamp
        self._actors = {snapshot.id: snapshot for snapshot in actors}

    def find(self, actor_id: int) -> FakeActorSnapshot | None:
        return self._actors.get(actor_id)

    def has_actor(self, actor_id: int) -> bool:
        return actor_id in self._actors

    def __iter__(self) -> Iterator[FakeActorSnapshot]:
        return iter(list(self._actors.values()))

    def __len__(self) -> int:
        return len(self._actors)


SETTING_NAMES = (
    "synchronous_mode",
    "no_rendering_mode",
    "fixed_delta_seconds",
    "substepping",
    "max_substep_delta_time",
    "max_substeps",
    "max_culling_distance",
    "deterministic_ragdolls",
    "tile_stream_distance",
    "actor_active_distance",
    "spectator_as_ego",
)


def copy_settings(settings: carla.WorldSettings) -> carla.WorldSettings:
    """An independent copy of a ``carla.WorldSettings``."""
    copied = carla.WorldSettings()
    for name in SETTING_NAMES:
        setattr(copied, name, getattr(settings, name))
    return copied


def default_blueprints(sim: SimConfig) -> list[FakeActorBlueprint]:
    """The fake's library: an ego-sized Tesla, NPC-sized cars, a motorbike, and the bridge's three sensors."""
    npc = (NPC_LENGTH_M / 2.0, NPC_WIDTH_M / 2.0, 0.75)
    return [
        vehicle_blueprint(  # the ego: the embedded world's car, which the fake's hero drives as
            "vehicle.tesla.model3",
            (sim.vehicle.length_m / 2.0, sim.vehicle.width_m / 2.0, 0.75),
            max_steer_deg=sim.vehicle.max_steer_deg,
            wheelbase_m=sim.vehicle.wheelbase_m,
            rear_axle_to_centre_m=sim.vehicle.rear_axle_to_centre_m,
        ),
        vehicle_blueprint("vehicle.audi.a2", npc),
        vehicle_blueprint("vehicle.lincoln.mkz_2020", npc),
        vehicle_blueprint("vehicle.toyota.prius", npc),
        vehicle_blueprint("vehicle.kawasaki.ninja", (1.0, 0.4, 0.6), wheels=2),
        sensor_blueprint(
            "sensor.camera.rgb",
            {"image_size_x": "800", "image_size_y": "600", "fov": "90", "sensor_tick": "0.0"},
        ),
        sensor_blueprint("sensor.other.collision", {}),
        sensor_blueprint("sensor.other.lane_invasion", {}),
        sensor_blueprint(  # noise attributes as the Leaderboard sets them; the fake's data are noise-free
            "sensor.other.imu",
            {f"noise_{kind}_stddev_{axis}": "0.0" for kind in ("accel", "gyro") for axis in "xyz"},
        ),
        sensor_blueprint(
            "sensor.other.gnss",
            {f"noise_{what}_{field}": "0.0" for what in ("alt", "lat", "lon") for field in ("stddev", "bias")},
        ),
    ]
