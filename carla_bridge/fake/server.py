"""Fake CARLA server: an in-process stand-in for a CARLA server, backed by the embedded simulator.

The map is a real ``carla.Map`` built from OpenDRIVE; the vehicle with role_name 'hero' is the embedded
``DrivingWorld``'s ego (kinematic bicycle under the applied ``VehicleControl``, or under drivesim's expert
when its autopilot is on: the fake Traffic Manager); autopilot vehicles are the world's NPC traffic (IDM,
junction yielding); other vehicles stay parked. Each ``tick()`` steps the world by the embedded config's
``dt_s`` and calls the sensors' ``listen`` callbacks with that frame's data: camera images drawn by the
embedded ``FrontCamera``, collision and lane-invasion events from the world's events.

It records what a test needs to check the bridge: every spawned and destroyed actor id, the current world
settings, the Traffic Manager states. ``kill()`` makes it stop answering (every call times out, as a real
client reports it) and ``start()`` restarts it fresh, as a restarted server.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any

import carla
import numpy as np

from carla_bridge.fake import registry
from carla_bridge.fake.actors import (
    FakeActor,
    FakeActorBlueprint,
    FakeActorSnapshot,
    FakeCollisionEvent,
    FakeGnssMeasurement,
    FakeImage,
    FakeIMUMeasurement,
    FakeLaneInvasionEvent,
    FakeSensor,
    FakeVehicle,
    FakeWorldSnapshot,
    copy_settings,
    default_blueprints,
)
from carla_bridge.fake.client import FakeWorld
from carla_bridge.fake.commands import FakeResponse, FakeSpawnActor
from drivesim.sensors.camera import FrontCamera
from drivesim.sensors.config import CameraConfig
from drivesim.sensors.geometry import box_corners
from drivesim.sim.config import SimConfig
from drivesim.sim.geometry import boxes_overlap
from drivesim.sim.maps import opendrive_source
from drivesim.sim.opendrive import BUILTIN_MAPS
from drivesim.sim.road import RoadNetwork
from drivesim.sim.vehicle import VehicleState
from drivesim.sim.world import DrivingWorld

HERO_ROUTE_M = 5000.0  # route the fake Traffic Manager drives the hero along [m]
SPAWN_COLLISION = "Spawn failed because of collision at spawn position"


class FakeCarlaServer:
    """An in-process fake CARLA server listening on (host, port) for ``FakeClient``s.

    Args:
        host: Address clients use.
        port: RPC port clients use.
        town: Map loaded at start (a key of ``maps``).
        maps: Town name -> OpenDRIVE XML; default: drivesim's built-in maps ('junction', 'straight', 'town').
        sim_config: Embedded simulator config backing the world (its ``dt_s`` is the tick length).
        seed: Seed of the fake's own randomness (NPC routes, hero route).
    """

    def __init__(
        self,
        host: str = "localhost",
        port: int = 2000,
        town: str = "junction",
        maps: dict[str, str] | None = None,
        sim_config: SimConfig | None = None,
        seed: int = 0,
    ) -> None:
        self.host, self.port = host, port
        self.maps = maps if maps is not None else {name: opendrive_source(name)[1] for name in BUILTIN_MAPS}
        self.sim_config = sim_config or SimConfig()
        self.version = carla.Client().get_client_version()
        self.blueprints = default_blueprints(self.sim_config)
        self.town = town
        self.seed = seed
        self.alive = False
        self.world_id = 0
        self.frame = 0
        self.epoch = 0  # incremented at every (re)start
        self.client_timeout_s = 5.0  # the last time-out a client of this address set
        self._hang = False
        self.start()

    # ----------------------------------------------------------------------------------------- lifetime
    def start(self) -> None:
        """(Re)start fresh: default settings, no actors, ``town`` loaded; clients at (host, port) get answers."""
        self.alive = True
        self._hang = False
        self.epoch += 1
        self.actors: dict[int, FakeActor] = {}
        self.spawned_ids: list[int] = []
        self.destroyed_ids: list[int] = []
        self.traffic_managers: dict[int, dict[str, Any]] = {}
        self.ticks = 0
        self._faults: list[list[Any]] = []
        self._injected_collisions: list[tuple[int, str, int]] = []
        self.batches = 0
        self._batch_faults: list[list[Any]] = []
        self._refused_spawns = 0
        self._sensor_delays: dict[str, list[float]] = {}
        self._next_id = 1
        self._rng = np.random.default_rng(self.seed)
        self._cameras: dict[tuple, FrontCamera] = {}
        registry.register(self.host, self.port, self)
        self._load(f"Carla/Maps/{self.town}", self.maps[self.town], reset_settings=True)

    def kill(self, hang: bool = False) -> None:
        """The server process dies: every later call times out until ``start()``.

        Args:
            hang: Calls first wait the client's time-out, as a real client does for a server that is gone
                (without it they fail at once).
        """
        self.alive = False
        self._hang = hang

    def shutdown(self) -> None:
        """Stop listening on (host, port) and free the Traffic Manager ports made for it (test teardown)."""
        self.alive = False
        registry.unregister(self.host, self.port)
        for port in registry.traffic_manager_ports(self):
            registry.release_traffic_manager(port)

    def __enter__(self) -> FakeCarlaServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()

    def fail_on_tick(self, ticks_from_now: int, error: BaseException | None = None) -> None:
        """Make the ``ticks_from_now``-th next tick raise ``error``; without one, the server dies then."""
        self._faults.append([self.ticks + ticks_from_now, error])

    def fail_on_batch(self, batches_from_now: int, error: BaseException | None = None) -> None:
        """Make the ``batches_from_now``-th next ``apply_batch(_sync)`` raise ``error``; without one, die then."""
        self._batch_faults.append([self.batches + batches_from_now, error])

    def refuse_spawns(self, count: int) -> None:
        """The next ``count`` vehicle spawns of a batch fail as if their place were taken."""
        self._refused_spawns += count

    def inject_collision(self, type_id: str, actor_id: int = 0, ticks_from_now: int = 1) -> None:
        """The hero's collision sensor reports a contact at the ``ticks_from_now``-th next tick.

        Args:
            type_id: The other actor's type, e.g. 'static.sidewalk' (a curb), 'static.pole', 'vehicle.audi.a2'.
            actor_id: An actor of this server (then its own type is reported), or 0, the static world.
            ticks_from_now: When.
        """
        self._injected_collisions.append((self.ticks + ticks_from_now, type_id, actor_id))

    def delay_sensor_data(self, type_id: str, delay_s: float, frames: int = 1) -> None:
        """The next ``frames`` frames of every sensor of ``type_id`` arrive ``delay_s`` after their tick."""
        self._sensor_delays.setdefault(type_id, []).extend([float(delay_s)] * frames)

    @property
    def settings(self) -> carla.WorldSettings:
        """The world settings now in effect."""
        return copy_settings(self._settings)

    def _check_alive(self) -> None:
        if not self.alive:
            if self._hang:
                time.sleep(self.client_timeout_s)
            raise RuntimeError(
                f"time-out of {int(self.client_timeout_s * 1000)}ms while waiting for the simulator, make sure "
                f"the simulator is ready and connected to {self.host}:{self.port}"
            )

    def _world_handle(self) -> FakeWorld:
        self._check_alive()
        return FakeWorld(self)

    # ----------------------------------------------------------------------------------------- map, settings
    def _load(self, map_name: str, xml: str, reset_settings: bool) -> None:
        for actor in list(self.actors.values()):
            self._remove(actor.id)
        self.map = carla.Map(map_name, xml)
        self.network = RoadNetwork(self.map, sample_m=self.sim_config.map.lane_sample_m)
        self.driving_world = DrivingWorld(self.network, self.sim_config)
        self._hero_id: int | None = None
        self._npc_of: dict[int, int] = {}  # actor id -> the world's NPC id
        self._stale = False
        self._cameras = {}
        if reset_settings or not hasattr(self, "_settings"):
            self._settings = carla.WorldSettings()
        self.world_id += 1
        self._elapsed_s = 0.0
        self._snapshot()

    def _get_settings(self) -> carla.WorldSettings:
        self._check_alive()
        return copy_settings(self._settings)

    def _apply_settings(self, settings: carla.WorldSettings) -> int:
        self._check_alive()
        self._settings = copy_settings(settings)
        return self.frame

    # ----------------------------------------------------------------------------------------- actors
    def _vehicle_boxes(self, exclude: int | None = None) -> tuple[list[int], np.ndarray]:
        """Ids and (N, 5) boxes (x, y, yaw [deg], length, width) of the vehicles."""
        ids, rows = [], []
        for actor in self.actors.values():
            if isinstance(actor, FakeVehicle) and actor.id != exclude:
                transform, extent = actor._transform, actor.bounding_box.extent
                ids.append(actor.id)
                rows.append(
                    (
                        transform.location.x,
                        transform.location.y,
                        transform.rotation.yaw,
                        2 * extent.x,
                        2 * extent.y,
                    )
                )
        return ids, np.array(rows, dtype=np.float64).reshape(-1, 5)

    def _spawn(
        self, blueprint: FakeActorBlueprint, transform: carla.Transform, parent: FakeActor | None
    ) -> tuple[FakeActor | None, str]:
        self._check_alive()
        actor_id = self._next_id
        if blueprint.id.startswith("sensor."):
            actor: FakeActor = FakeSensor(self, actor_id, blueprint, transform, parent)
        elif blueprint.id.startswith("vehicle."):
            extent = blueprint._extent
            _, boxes = self._vehicle_boxes()
            if len(boxes):
                mine = box_corners(
                    np.array(
                        [
                            [
                                transform.location.x,
                                transform.location.y,
                                transform.rotation.yaw,
                                2 * extent.x,
                                2 * extent.y,
                            ]
                        ]
                    )
                )[0]
                if boxes_overlap(mine, box_corners(boxes)).any():
                    return None, SPAWN_COLLISION
            on_ground = carla.Transform(
                carla.Location(x=transform.location.x, y=transform.location.y, z=0.0),
                carla.Rotation(yaw=transform.rotation.yaw),
            )
            actor = FakeVehicle(self, actor_id, blueprint, on_ground)
            actor._desired_mps = float(self._rng.uniform(*self.sim_config.traffic.desired_speed_mps))
        else:
            return None, f"the fake server cannot spawn {blueprint.id!r}"
        self._next_id += 1
        self.actors[actor_id] = actor
        self.spawned_ids.append(actor_id)
        if (
            isinstance(actor, FakeVehicle)
            and actor.attributes.get("role_name") == "hero"
            and self._hero_id is None
        ):
            self._hero_id = actor_id
            self._stale = True
        return actor, ""

    def _remove(self, actor_id: int) -> bool:
        actor = self.actors.pop(actor_id, None)
        if actor is None:
            return False
        actor.is_alive = False
        if isinstance(actor, FakeSensor):
            actor._callback = None
        if actor_id == self._hero_id:
            self._hero_id = None
        if self._npc_of.pop(actor_id, None) is not None:
            self._stale = True
        self.destroyed_ids.append(actor_id)
        return True

    def _destroy(self, actor_id: int) -> bool:
        self._check_alive()
        return self._remove(actor_id)

    def _set_autopilot(self, actor_id: int, enabled: bool, port: int) -> None:
        self._check_alive()
        vehicle = self.actors[actor_id]
        vehicle._autopilot_port = int(port) if enabled else None
        self._stale = True

    def _apply_batch(self, commands: list[Any], do_tick: bool) -> list[FakeResponse]:
        self._check_alive()
        self.batches += 1
        for fault in [f for f in self._batch_faults if f[0] == self.batches]:
            self._batch_faults.remove(fault)
            if fault[1] is None:
                self.kill()
                self._check_alive()
            raise fault[1]
        responses = []
        for command in commands:
            if isinstance(command, carla.command.SpawnActor):
                raise TypeError(
                    "the fake server needs carla_bridge.fake.commands.SpawnActor (the real one only takes server blueprints)"
                )
            if isinstance(command, FakeSpawnActor):
                if self._refused_spawns and command._blueprint.id.startswith("vehicle."):
                    self._refused_spawns -= 1
                    responses.append(FakeResponse(0, SPAWN_COLLISION))
                    continue
                parent = self.actors.get(command.parent_id) if command.parent_id else None
                actor, error = self._spawn(command._blueprint, command.transform, parent)
                if actor is None:
                    responses.append(FakeResponse(0, error))
                    continue
                for chained in command._then:
                    self._apply_command(chained, actor.id)
                responses.append(FakeResponse(actor.id))
            else:
                responses.append(self._apply_command(command, None))
        if do_tick:
            self._tick(10.0)
        return responses

    def _apply_command(self, command: Any, future_id: int | None) -> FakeResponse:
        actor_id = (
            command.actor_id
            if command.actor_id != carla.command.FutureActor or future_id is None
            else future_id
        )
        if isinstance(command, carla.command.DestroyActor):
            if self._remove(actor_id):
                return FakeResponse(actor_id)
            return FakeResponse(0, f"unable to destroy actor {actor_id}: not found")
        if actor_id not in self.actors:
            return FakeResponse(0, f"actor {actor_id} not found")
        if isinstance(command, carla.command.SetAutopilot):
            self._set_autopilot(actor_id, command.enabled, command.tm_port)
        elif isinstance(command, carla.command.ApplyVehicleControl):
            self.actors[actor_id].apply_control(command.control)
        else:
            return FakeResponse(0, f"the fake server does not execute {type(command).__name__}")
        return FakeResponse(actor_id)

    @staticmethod
    def _attached_transform(parent: carla.Transform, relative: carla.Transform) -> carla.Transform:
        yaw = math.radians(parent.rotation.yaw)
        x = parent.location.x + relative.location.x * math.cos(yaw) - relative.location.y * math.sin(yaw)
        y = parent.location.y + relative.location.x * math.sin(yaw) + relative.location.y * math.cos(yaw)
        return carla.Transform(
            carla.Location(x=x, y=y, z=parent.location.z + relative.location.z),
            carla.Rotation(
                pitch=relative.rotation.pitch,
                yaw=parent.rotation.yaw + relative.rotation.yaw,
                roll=relative.rotation.roll,
            ),
        )

    # ----------------------------------------------------------------------------------------- the world
    def _lane_position(self, transform: carla.Transform) -> tuple[int, float]:
        """(segment, arc length) of the lane sample nearest to ``transform`` with a similar heading."""
        network = self.network
        sample = network.nearest_sample(
            np.array([transform.location.x, transform.location.y]), math.radians(transform.rotation.yaw)
        )
        segment = int(network.segment_of[sample])
        return segment, float((sample - network.segment_start[segment]) * network.segment_spacing_m[segment])

    def _rebuild_world(self) -> None:
        """Reset the embedded world around the hero and re-place every autopilot vehicle as an NPC."""
        self._stale = False
        self._npc_of = {}
        if self._hero_id is None:
            return
        hero = self.actors[self._hero_id]
        location, yaw = hero._transform.location, math.radians(hero._transform.rotation.yaw)
        segment, s_m = self._lane_position(hero._transform)
        route = self.network.random_route(self._rng, HERO_ROUTE_M, segment, s_m)
        self.driving_world.reset(self._rng, route, 0, walkers=0, parked=0, blockers=0)
        speed = math.hypot(hero._velocity.x, hero._velocity.y)
        self.driving_world.ego = VehicleState(x_m=location.x, y_m=location.y, yaw_rad=yaw, speed_mps=speed)
        self.driving_world.tracker.reset(route, self.driving_world.ego.xy, yaw)
        for actor in self.actors.values():
            if (
                isinstance(actor, FakeVehicle)
                and actor.id != self._hero_id
                and actor._autopilot_port is not None
            ):
                segment, s_m = self._lane_position(actor._transform)
                speed = math.hypot(actor._velocity.x, actor._velocity.y)
                self._npc_of[actor.id] = self.driving_world.add_npc(segment, s_m, speed, actor._desired_mps)

    def _tick(self, seconds: float) -> int:
        self._check_alive()
        self.ticks += 1
        for fault in [f for f in self._faults if f[0] == self.ticks]:
            self._faults.remove(fault)
            if fault[1] is None:
                self.kill()
                self._check_alive()
            raise fault[1]
        if self._stale:
            self._rebuild_world()
        dt = self.sim_config.episode.dt_s
        events = self._step_world(dt) if self._hero_id is not None else None
        self.frame += 1
        self._elapsed_s += dt
        timestamp = carla.Timestamp(self.frame, self._elapsed_s, dt, time.time())
        self._snapshot(timestamp)
        injected = [item[1:] for item in self._injected_collisions if item[0] == self.ticks]
        self._injected_collisions = [item for item in self._injected_collisions if item[0] > self.ticks]
        delays = {type_id: queue.pop(0) for type_id, queue in self._sensor_delays.items() if queue}
        for sensor in [
            a for a in self.actors.values() if isinstance(a, FakeSensor) and a._callback is not None
        ]:
            for data in self._sensor_data(sensor, timestamp, events, injected):
                if sensor.type_id in delays:  # streamed late, from another thread, as a real server's data
                    timer = threading.Timer(delays[sensor.type_id], sensor._callback, (data,))
                    timer.daemon = True
                    timer.start()
                else:
                    sensor._callback(data)
        return self.frame

    def _step_world(self, dt: float) -> Any:
        world, hero = self.driving_world, self.actors[self._hero_id]
        if hero._autopilot_port is not None:  # the fake Traffic Manager: drivesim's expert drives the hero
            action = world.controller.control(world.expert_waypoints(), world.ego.speed_mps, dt)
            hero._control = carla.VehicleControl(
                throttle=float(action[0]), steer=float(action[1]), brake=float(action[2])
            )
        control = hero._control
        events = world.step(np.array([control.throttle, control.steer, control.brake]))
        ego = world.ego
        self._set_motion(hero, ego.x_m, ego.y_m, ego.yaw_rad, ego.speed_mps, ego.accel_mps2, ego.yaw_rate_rps)
        if not events.collision:  # parked vehicles are not part of the world's traffic: test them here
            ids, boxes = self._vehicle_boxes()
            parked = [
                row
                for row, actor_id in enumerate(ids)
                if actor_id != hero.id and actor_id not in self._npc_of
            ]
            if parked:
                hit = boxes_overlap(box_corners(boxes[ids.index(hero.id)])[0], box_corners(boxes[parked]))
                if hit.any():
                    events.collision = True
                    events.collision_actor = f"parked:{ids[parked[int(np.argmax(hit))]]}"
        traffic = world.traffic
        index_of = {int(npc_id): index for index, npc_id in enumerate(traffic.ids)}
        unclaimed = [npc for npc in index_of if npc not in set(self._npc_of.values())]
        for actor_id, npc_id in list(self._npc_of.items()):
            if npc_id not in index_of:  # the NPC reached a dead end and was respawned elsewhere
                if not unclaimed:
                    del self._npc_of[actor_id]
                    continue
                npc_id = self._npc_of[actor_id] = unclaimed.pop()
            index = index_of[npc_id]
            actor = self.actors[actor_id]
            previous_speed = math.hypot(actor._velocity.x, actor._velocity.y)
            previous_yaw = math.radians(actor._transform.rotation.yaw)
            yaw = float(traffic.yaw_rad[index])
            speed = float(traffic.speed_mps[index])
            yaw_rate = math.remainder(yaw - previous_yaw, math.tau) / dt
            self._set_motion(actor, *traffic.xy[index], yaw, speed, (speed - previous_speed) / dt, yaw_rate)
        return events

    @staticmethod
    def _set_motion(
        actor: FakeActor, x: float, y: float, yaw_rad: float, speed: float, accel: float, yaw_rate: float
    ) -> None:
        cos, sin = math.cos(yaw_rad), math.sin(yaw_rad)
        actor._transform = carla.Transform(
            carla.Location(x=float(x), y=float(y), z=0.0), carla.Rotation(yaw=math.degrees(yaw_rad))
        )
        actor._velocity = carla.Vector3D(speed * cos, speed * sin, 0.0)
        actor._acceleration = carla.Vector3D(accel * cos, accel * sin, 0.0)
        actor._angular_velocity = carla.Vector3D(0.0, 0.0, math.degrees(yaw_rate))

    def _snapshot(self, timestamp: carla.Timestamp | None = None) -> None:
        timestamp = timestamp or carla.Timestamp(self.frame, 0.0, 0.0, time.time())
        states = [
            FakeActorSnapshot(
                a.id, a.get_transform(), a.get_velocity(), a.get_acceleration(), a.get_angular_velocity()
            )
            for a in self.actors.values()
        ]
        self.snapshot = FakeWorldSnapshot(self.world_id, timestamp, states)

    # ----------------------------------------------------------------------------------------- sensors
    def _camera(self, sensor: FakeSensor) -> FrontCamera:
        mount = sensor._transform
        config = CameraConfig(
            width_px=int(sensor.attributes["image_size_x"]),
            height_px=int(sensor.attributes["image_size_y"]),
            fov_deg=float(sensor.attributes["fov"]),
            mount_x_m=mount.location.x,
            mount_y_m=mount.location.y,
            mount_z_m=mount.location.z,
            pitch_deg=mount.rotation.pitch,
        )
        key = tuple(sorted(config.model_dump().items()))
        if key not in self._cameras:
            self._cameras[key] = FrontCamera(self.network, config)
        return self._cameras[key]

    def _other_actor(self, collision_actor: str) -> FakeActor | None:
        """The actor behind the embedded world's ``collision_actor`` label ('parked:<actor id>', 'vehicle:<npc id>')."""
        kind, _, number = collision_actor.partition(":")
        if not number:
            return self._static_actor(f"static.{kind}")
        if kind == "parked":
            return self.actors.get(int(number))
        return next((self.actors[a] for a, n in self._npc_of.items() if n == int(number)), None)

    def _static_actor(self, type_id: str, actor_id: int = 0) -> FakeActor:
        """An actor handle for a part of the static world (id 0), as collision events report it."""
        return FakeActor(self, actor_id, FakeActorBlueprint(type_id, {}), carla.Transform())

    @staticmethod
    def _imu(parent: FakeActor, timestamp: carla.Timestamp, transform: carla.Transform) -> FakeIMUMeasurement:
        yaw = math.radians(parent._transform.rotation.yaw)
        accel = parent._acceleration
        forward = accel.x * math.cos(yaw) + accel.y * math.sin(yaw)
        right = -accel.x * math.sin(yaw) + accel.y * math.cos(yaw)
        return FakeIMUMeasurement(
            timestamp,
            transform,
            carla.Vector3D(forward, right, 9.81),
            carla.Vector3D(0.0, 0.0, math.radians(parent._angular_velocity.z)),
            (yaw + math.pi / 2.0) % math.tau,
        )

    def _sensor_data(
        self, sensor: FakeSensor, timestamp: carla.Timestamp, events: Any, injected: list[tuple[str, int]]
    ) -> list[Any]:
        parent = sensor.parent
        if parent is None or not parent.is_alive:
            return []
        transform = sensor.get_transform()
        if sensor.type_id == "sensor.camera.rgb":
            camera = self._camera(sensor)
            _, boxes = self._vehicle_boxes(exclude=parent.id)
            origin = parent._transform
            rgb = camera.render(np.array([origin.location.x, origin.location.y]), origin.rotation.yaw, boxes)
            bgra = np.concatenate([rgb[..., ::-1], np.full(rgb.shape[:2] + (1,), 255, np.uint8)], axis=-1)
            return [
                FakeImage(
                    timestamp, transform, camera.width_px, camera.height_px, camera.config.fov_deg, bgra.tobytes()
                )
            ]
        if sensor.type_id == "sensor.other.imu":
            return [self._imu(parent, timestamp, transform)]
        if sensor.type_id == "sensor.other.gnss":
            where = self.map.transform_to_geolocation(transform.location)
            return [FakeGnssMeasurement(timestamp, transform, where.latitude, where.longitude, where.altitude)]
        if events is None or parent.id != self._hero_id:
            return []
        if sensor.type_id == "sensor.other.collision":
            others = [self._other_actor(events.collision_actor)] if events.collision else []
            others += [self.actors.get(i) or self._static_actor(type_id, i) for type_id, i in injected]
            impulse = carla.Vector3D(1000.0, 0.0, 0.0)
            return [FakeCollisionEvent(timestamp, transform, parent, other, impulse) for other in others]
        if sensor.type_id == "sensor.other.lane_invasion" and events.lane_invasion:
            waypoint = self.map.get_waypoint(parent._transform.location)
            return [FakeLaneInvasionEvent(timestamp, transform, parent, [waypoint.left_lane_marking])]
        return []
