"""CARLA bridge: spawning the ego and NPC traffic (one batch, retried elsewhere), reading them, cleanup.

Other vehicles' look-ahead paths for the expert's obstacle gap are approximated by lane following: each
vehicle is snapped to its nearest lane sample (heading within ~70 deg) and continued along the straightest
successor segments (the Traffic Manager's routes are not exposed); vehicles farther than ``OFF_LANE_M``
from any lane are extrapolated straight along their heading.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType, TracebackType
from typing import Any

import carla
import numpy as np

from drivesim.sim.config import TrafficConfig, VehicleConfig
from drivesim.sim.gaps import Paths
from drivesim.sim.road import RoadNetwork
from drivesim.sim.traffic import CHAIN, chain_paths, straightest_chain

logger = logging.getLogger(__name__)

SPAWN_LIFT_M = 0.5  # spawn this far above the road, as CARLA's spawn points do [m]
OFF_LANE_M = 2.5  # a vehicle farther than this from every lane centre is extrapolated straight [m]


class CleanupCalls:
    """Cleanup calls on one server: after the first that fails (the server is gone), the rest are skipped.

    A dead server makes every call wait the client's time-out (20 s by default): cleaning up a dozen
    actors one call after the other would take minutes before the error reaches the user.
    """

    def __init__(self) -> None:
        self.server_gone = False

    def run(self, what: str, call: Callable[[], Any], always: bool = False) -> Any:
        """``call()``, or None when it raised the client's ``RuntimeError`` or the server is known gone.

        Args:
            what: Named in the log.
            call: The server call.
            always: Run it even when the server is gone (calls that mostly free local resources).
        """
        if self.server_gone and not always:
            logger.debug("skipped (server gone): %s", what)
            return None
        try:
            return call()
        except RuntimeError as error:
            if not self.server_gone:
                logger.warning("%s failed (%s); the server is gone: skipping the remaining cleanup calls", what, error)
            self.server_gone = True
            return None


class EpisodeActors:
    """Every actor the bridge spawned for one episode; ``close()`` destroys them, sensors first.

    Used as a context manager (or closed from an ``ExitStack``), so that cleanup also runs on exceptions
    and Ctrl-C. Errors while destroying (a server that is gone) are logged, not raised, and stop the
    remaining calls (``CleanupCalls``).
    """

    def __init__(self, client: Any, commands: ModuleType, cleanup: CleanupCalls | None = None) -> None:
        self.client = client
        self.commands = commands
        self.cleanup = cleanup or CleanupCalls()
        self.sensors: list[Any] = []
        self.vehicle_ids: list[int] = []

    def add_sensor(self, sensor: Any) -> Any:
        self.sensors.append(sensor)
        return sensor

    def add_vehicle(self, vehicle_id: int) -> None:
        self.vehicle_ids.append(int(vehicle_id))

    def close(self) -> None:
        """Stop and destroy the sensors, then destroy the vehicles in one batch."""
        sensors, self.sensors = self.sensors, []
        for sensor in reversed(sensors):
            if sensor.is_listening():
                self.cleanup.run(f"stopping sensor {sensor.id}", sensor.stop)
            self.cleanup.run(f"destroying sensor {sensor.id}", sensor.destroy)
        vehicle_ids, self.vehicle_ids = self.vehicle_ids, []
        if vehicle_ids:
            responses = self.cleanup.run(
                f"destroying {len(vehicle_ids)} vehicles",
                lambda: self.client.apply_batch_sync([self.commands.DestroyActor(i) for i in vehicle_ids], False),
            )
            failed = [r.error for r in responses or [] if r.has_error()]
            if failed:
                logger.warning("%d vehicles could not be destroyed: %s", len(failed), failed[:3])

    def __enter__(self) -> EpisodeActors:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


HERO_ROLE = "hero"  # role_name of the ego, as the Leaderboard and ScenarioRunner name it
SENSOR_ROLE = "drivesim"  # role_name of the bridge's sensors, to find them when their owner crashed


def destroy_leftovers(world: Any) -> int:
    """Destroy a crashed run's ego ('hero' vehicles) and sensors (attached to one, or the bridge's own).

    A client killed mid-episode leaves them on the server, its sensors still rendering, and a town that is
    already loaded is not reloaded: they would block the start of a route and a second 'hero' confuses
    every tool that looks the ego up by role. Sensors go first, as at every cleanup.

    Returns:
        How many actors were destroyed.
    """
    actors = world.get_actors()
    heroes = [a for a in actors.filter("vehicle.*") if a.attributes.get("role_name") == HERO_ROLE]
    hero_ids = {hero.id for hero in heroes}
    sensors = [
        sensor
        for sensor in actors.filter("sensor.*")
        if sensor.attributes.get("role_name") == SENSOR_ROLE
        or (sensor.parent is not None and sensor.parent.id in hero_ids)
    ]
    for sensor in sensors:
        if sensor.is_listening():
            sensor.stop()
        sensor.destroy()
    for hero in heroes:
        hero.destroy()
    if heroes or sensors:
        logger.warning(
            "destroyed %d leftover ego vehicles ('hero') and %d sensors on the server (a crashed run?)",
            len(heroes),
            len(sensors),
        )
    return len(heroes) + len(sensors)


def ground_transform(
    carla_map: carla.Map, xy: np.ndarray, yaw_deg: float, lift_m: float = SPAWN_LIFT_M
) -> carla.Transform:
    """Spawn transform at ``xy`` heading ``yaw_deg``, on the road surface (its height from the map) plus ``lift_m``."""
    location = carla.Location(x=float(xy[0]), y=float(xy[1]), z=0.0)
    waypoint = carla_map.get_waypoint(location)
    height = waypoint.transform.location.z if waypoint is not None else 0.0
    return carla.Transform(
        carla.Location(x=location.x, y=location.y, z=height + lift_m), carla.Rotation(yaw=float(yaw_deg))
    )


def spawn_ego(world: Any, blueprint_id: str, transform: carla.Transform) -> Any | None:
    """The ego vehicle (role_name 'hero') at ``transform``, or None when the place is taken."""
    blueprint = world.get_blueprint_library().find(blueprint_id)
    blueprint.set_attribute("role_name", HERO_ROLE)
    return world.try_spawn_actor(blueprint, transform)


def npc_blueprints(world: Any, wildcard: str) -> list[Any]:
    """Four-wheeled vehicle blueprints matching ``wildcard``."""
    blueprints = [
        bp
        for bp in world.get_blueprint_library().filter(wildcard)
        if not bp.has_attribute("number_of_wheels") or bp.get_attribute("number_of_wheels").as_int() == 4
    ]
    if not blueprints:
        raise ValueError(f"no four-wheeled vehicle blueprint matches {wildcard!r}")
    return blueprints


def spawn_candidates(carla_map: carla.Map, network: RoadNetwork, spacing_m: float) -> list[carla.Transform]:
    """The map's spawn points, or (for generated OpenDRIVE worlds without any) points along the lanes."""
    points = list(carla_map.get_spawn_points())
    if points:
        return points
    segments, offsets = network.spawn_candidates(spacing_m=spacing_m)
    xy, yaw = network.pose_at(segments, offsets)
    return [ground_transform(carla_map, p, math.degrees(a)) for p, a in zip(xy, yaw, strict=True)]


def spawn_npcs(
    client: Any,
    commands: ModuleType,
    blueprints: list[Any],
    candidates: list[carla.Transform],
    count: int,
    keep_clear_xy: np.ndarray,
    keep_clear_m: float,
    rng: np.random.Generator,
    tm_port: int,
    attempts: int,
    actors: EpisodeActors,
) -> list[int]:
    """Spawn up to ``count`` autopilot NPCs in batches (``SpawnActor`` + ``SetAutopilot(FutureActor)``).

    Candidates closer than ``keep_clear_m`` to any ``keep_clear_xy`` point are skipped; spawn points that
    fail (taken by another actor) are replaced by untried ones for up to ``attempts`` rounds. Every
    batch's NPCs are added to ``actors`` as soon as it returns, so that a later batch failing (a server
    going away) does not leave them on the server.

    Returns:
        The ids of the spawned NPCs (fewer than ``count`` when the map runs out of free spawn points).
    """
    xy = np.array([[t.location.x, t.location.y] for t in candidates]).reshape(-1, 2)
    keep_clear_xy = np.asarray(keep_clear_xy, dtype=float).reshape(-1, 2)
    clear = np.ones(len(xy), dtype=bool)
    if len(keep_clear_xy) and len(xy):
        clear = (
            np.hypot(*(xy[:, None, :] - keep_clear_xy[None]).transpose(2, 0, 1)).min(axis=1) >= keep_clear_m
        )
    untried = [int(i) for i in rng.permutation(np.flatnonzero(clear))]
    spawned: list[int] = []
    for _ in range(attempts):
        wanted = count - len(spawned)
        if wanted <= 0 or not untried:
            break
        batch, untried = untried[:wanted], untried[wanted:]
        batch_commands = []
        for index in batch:
            blueprint = blueprints[int(rng.integers(len(blueprints)))]
            if blueprint.has_attribute("color"):
                colours = blueprint.get_attribute("color").recommended_values
                if colours:
                    blueprint.set_attribute("color", colours[int(rng.integers(len(colours)))])
            blueprint.set_attribute("role_name", "autopilot")
            batch_commands.append(
                commands.SpawnActor(blueprint, candidates[index]).then(
                    commands.SetAutopilot(commands.FutureActor, True, tm_port)
                )
            )
        responses = client.apply_batch_sync(batch_commands, False)
        for response in responses:
            if not response.has_error():
                actors.add_vehicle(response.actor_id)
                spawned.append(response.actor_id)
        failures = sum(r.has_error() for r in responses)
        if failures:
            logger.debug("%d NPC spawn points were taken; retrying elsewhere", failures)
    if len(spawned) < count:
        logger.warning("spawned %d of %d NPCs (no more free spawn points)", len(spawned), count)
    return spawned


@dataclass
class VehicleStates:
    """Other vehicles at one frame: ids (N,), bounding-box centres (N, 2) [m], yaw (N,) [rad], speed, size."""

    ids: np.ndarray
    xy: np.ndarray
    yaw_rad: np.ndarray
    speed_mps: np.ndarray
    length_m: np.ndarray
    width_m: np.ndarray

    def boxes(self) -> np.ndarray:
        """(N, 5): x, y, yaw [deg], length, width: the sensors' input."""
        return np.column_stack([self.xy, np.degrees(self.yaw_rad), self.length_m, self.width_m]).reshape(
            -1, 5
        )


def box_centre(transform: carla.Transform, bounding_box: carla.BoundingBox) -> np.ndarray:
    """World (x, y) of a bounding box's centre (its location is relative to the actor's origin)."""
    yaw = math.radians(transform.rotation.yaw)
    offset_x, offset_y = bounding_box.location.x, bounding_box.location.y
    return np.array(
        [
            transform.location.x + offset_x * math.cos(yaw) - offset_y * math.sin(yaw),
            transform.location.y + offset_x * math.sin(yaw) + offset_y * math.cos(yaw),
        ]
    )


def read_vehicles(snapshot: Any, boxes: dict[int, carla.BoundingBox]) -> VehicleStates:
    """States of the vehicles in ``boxes`` (id -> bounding box) present in the world ``snapshot``."""
    rows = []
    for actor_id, box in boxes.items():
        state = snapshot.find(actor_id)
        if state is None:
            continue
        transform = state.get_transform()
        velocity = state.get_velocity()
        yaw = math.radians(transform.rotation.yaw)
        centre = box_centre(transform, box)
        speed = velocity.x * math.cos(yaw) + velocity.y * math.sin(yaw)
        rows.append(
            (actor_id, centre[0], centre[1], yaw, max(speed, 0.0), 2.0 * box.extent.x, 2.0 * box.extent.y)
        )
    table = np.array(rows, dtype=np.float64).reshape(-1, 7)
    return VehicleStates(
        table[:, 0].astype(np.int64), table[:, 1:3], table[:, 3], table[:, 4], table[:, 5], table[:, 6]
    )


class LaneFollowingPaths:
    """Look-ahead paths of other vehicles, assuming they follow their lane (see the module docstring).

    The same lane-chain paths as the embedded simulator's NPCs (``drivesim.sim.traffic.chain_paths``).
    """

    def __init__(self, network: RoadNetwork, config: TrafficConfig) -> None:
        self.network = network
        self.config = config
        self.distance_m = np.linspace(
            config.lookahead_m / config.path_points, config.lookahead_m, config.path_points
        )

    def paths(self, xy: np.ndarray, yaw_rad: np.ndarray) -> Paths:
        """Paths (V, P, 2) for vehicles at ``xy`` (V, 2) heading ``yaw_rad`` (V,)."""
        cfg, network = self.config, self.network
        count = len(xy)
        points = (
            xy[:, None, :]
            + self.distance_m[None, :, None] * np.stack([np.cos(yaw_rad), np.sin(yaw_rad)], -1)[:, None, :]
        )
        in_junction = np.zeros((count, cfg.path_points), dtype=bool)
        chains, s_values, on_lane = [], [], []
        for index in range(count):
            sample = network.nearest_sample(xy[index], float(yaw_rad[index]))
            if math.hypot(*(network.points[sample] - xy[index])) > OFF_LANE_M:
                continue
            segment = int(network.segment_of[sample])
            on_lane.append(index)
            chains.append(straightest_chain(network, segment, CHAIN))
            s_values.append((sample - network.segment_start[segment]) * network.segment_spacing_m[segment])
        if on_lane:
            lane_paths = chain_paths(network, np.stack(chains), np.asarray(s_values, dtype=np.float64),
                                     cfg.path_points, cfg.lookahead_m)
            points[on_lane] = lane_paths.points
            in_junction[on_lane] = lane_paths.in_junction
        return Paths(points, self.distance_m, in_junction)


def vehicle_from_physics(vehicle: Any, bounding_box: carla.BoundingBox, base: VehicleConfig) -> VehicleConfig:
    """``base`` with the server vehicle's size, front-wheel steer limit, wheelbase and rear-axle offset.

    The waypoint controller turns a wheel angle into steer = angle / max steer angle: a CARLA car reports
    ~70 deg in its physics control (the embedded car has 35), so using the embedded value would double
    every steering command. Wheel positions are world coordinates in centimetres (front wheels first).
    """
    update: dict[str, float] = {"length_m": 2.0 * bounding_box.extent.x, "width_m": 2.0 * bounding_box.extent.y}
    wheels = list(vehicle.get_physics_control().wheels)
    if len(wheels) < 4:
        logger.warning("vehicle %s reports %d wheels; keeping the configured steering geometry", vehicle.id, len(wheels))
        return base.model_copy(update=update)
    front, rear = wheels[:2], wheels[2:]
    update["max_steer_deg"] = max(abs(wheel.max_steer_angle) for wheel in front)
    transform = vehicle.get_transform()
    yaw = math.radians(transform.rotation.yaw)
    forward = np.array([math.cos(yaw), math.sin(yaw)])
    front_xy = np.mean([[w.position.x, w.position.y] for w in front], axis=0) / 100.0
    rear_xy = np.mean([[w.position.x, w.position.y] for w in rear], axis=0) / 100.0
    wheelbase = float(np.dot(front_xy - rear_xy, forward))
    if 0.5 < wheelbase < 10.0:
        update["wheelbase_m"] = wheelbase
        update["rear_axle_to_centre_m"] = max(float(np.dot(box_centre(transform, bounding_box) - rear_xy, forward)), 0.0)
    return base.model_copy(update=update)


@dataclass
class EgoState:
    """The ego at one frame: bounding-box centre, pose, motion along its heading, applied control."""

    xy: np.ndarray
    z_m: float
    yaw_rad: float
    speed_mps: float
    accel_mps2: float
    yaw_rate_rps: float
    control: np.ndarray  # applied (throttle, steer, brake)
    planar_speed_mps: float = 0.0  # |velocity| in the ground plane, as ScenarioRunner's criteria read it


def read_ego(snapshot: Any, ego: Any, bounding_box: carla.BoundingBox) -> EgoState:
    """The ego's state in a world ``snapshot`` (the applied control from the actor).

    Raises:
        RuntimeError: The ego is not in the snapshot (destroyed by someone else).
    """
    state = snapshot.find(ego.id)
    if state is None:
        raise RuntimeError(f"the ego vehicle (actor {ego.id}) is gone from the server")
    transform = state.get_transform()
    yaw = math.radians(transform.rotation.yaw)
    forward = (math.cos(yaw), math.sin(yaw))
    velocity, acceleration = state.get_velocity(), state.get_acceleration()
    control = ego.get_control()
    return EgoState(
        xy=box_centre(transform, bounding_box),
        z_m=transform.location.z,
        yaw_rad=yaw,
        speed_mps=velocity.x * forward[0] + velocity.y * forward[1],
        accel_mps2=acceleration.x * forward[0] + acceleration.y * forward[1],
        yaw_rate_rps=math.radians(state.get_angular_velocity().z),  # deg/s, positive = turning right
        control=np.array([control.throttle, control.steer, control.brake], dtype=np.float32),
        planar_speed_mps=math.hypot(velocity.x, velocity.y),
    )
