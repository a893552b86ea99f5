"""Fake CARLA server: a Leaderboard-style route run, following ``leaderboard_evaluator.py``'s sequence.

``run_route`` loads an agent module as the evaluator does (``get_entry_point()`` names the class), builds
it with the server's address, hands it the route (``set_global_plan`` with GPS and world coordinates),
calls ``setup(conf)``, validates ``sensors()`` with the Leaderboard's rules, spawns them on the ego
('hero'), and then ticks the synchronous world, giving the agent ``input_data`` (sensor id -> (frame,
data), converted as the Leaderboard's sensor interface does) and applying its control. It scores route
completion and collisions (``CollisionTest`` rules) and always cleans up. For tests: the official
evaluator runs real agents on real servers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import carla
import numpy as np

from carla_bridge.actors import EpisodeActors, ground_transform, spawn_ego
from carla_bridge.criteria import CollisionCriterion
from carla_bridge.leaderboard.standin import (
    PSEUDO_SENSORS,
    RoadOption,
    forward_speed,
    gnss_array,
    image_array,
    imu_array,
    load_agent_class,
    validate_sensors,
)
from carla_bridge.sensors import SensorQueue
from drivesim.sim.road import Route

FRAME_RATE_HZ = 20.0  # LeaderboardEvaluator.frame_rate
SENSOR_TIMEOUT_S = 2.0
ROUTE_DONE_M = 2.0


@dataclass
class RouteResult:
    """What a route run scored: route completion [0, 1], counted collisions, ticks driven."""

    route_completion: float
    collisions: list[str]
    steps: int


def _plan(carla_map: carla.Map, route: Route) -> tuple[list[Any], list[Any]]:
    """The route as the Leaderboard gives it: ((lat, lon, z) dict, RoadOption) and (Transform, RoadOption)."""
    gps, world = [], []
    for (x, y), yaw in zip(route.points, route.yaw_rad, strict=True):
        location = carla.Location(x=float(x), y=float(y))
        where = carla_map.transform_to_geolocation(location)
        gps.append(({"lat": where.latitude, "lon": where.longitude, "z": where.altitude}, RoadOption.LANEFOLLOW))
        world.append((carla.Transform(location, carla.Rotation(yaw=math.degrees(float(yaw)))), RoadOption.LANEFOLLOW))
    return gps, world


def _spawn_sensor(world: Any, ego: Any, spec: dict[str, Any], actors: EpisodeActors) -> SensorQueue:
    """A sensor of the agent's spec on the ego, with the attributes ``AgentWrapper`` sets."""
    blueprint = world.get_blueprint_library().find(spec["type"])
    if spec["type"] == "sensor.camera.rgb":
        for name, key in (("image_size_x", "width"), ("image_size_y", "height"), ("fov", "fov")):
            blueprint.set_attribute(name, str(spec[key]))
    location = carla.Location(x=spec.get("x", 0.0), y=spec.get("y", 0.0), z=spec.get("z", 0.0))
    rotation = carla.Rotation(pitch=spec.get("pitch", 0.0), roll=spec.get("roll", 0.0), yaw=spec.get("yaw", 0.0))
    sensor = actors.add_sensor(world.spawn_actor(blueprint, carla.Transform(location, rotation), attach_to=ego))
    return SensorQueue(sensor, spec["id"])


def run_route(
    agent_path: str | Path,
    agent_config: str | Path,
    client: Any,
    commands: Any,
    route: Route,
    ego_blueprint: str = "vehicle.tesla.model3",
    max_steps: int = 400,
    track: str = "SENSORS",
) -> RouteResult:
    """Run one route with the agent module at ``agent_path`` on the server of ``client`` (module docstring)."""
    world = client.get_world()
    original = world.get_settings()
    settings = world.get_settings()
    settings.synchronous_mode, settings.fixed_delta_seconds = True, 1.0 / FRAME_RATE_HZ
    world.apply_settings(settings)
    agent = None
    actors = EpisodeActors(client, commands)
    try:
        carla_map = world.get_map()
        ego = spawn_ego(world, ego_blueprint, ground_transform(carla_map, route.points[0], math.degrees(route.yaw_rad[0])))
        if ego is None:
            raise RuntimeError("the start of the route is taken")
        actors.add_vehicle(ego.id)
        agent = load_agent_class(agent_path)("localhost", 2000, False)
        agent.set_global_plan(*_plan(carla_map, route))
        agent.setup(str(agent_config))
        sensors = agent.sensors()
        validate_sensors(sensors, track)
        queues = {s["id"]: _spawn_sensor(world, ego, s, actors) for s in sensors if s["type"] not in PSEUDO_SENSORS}
        speedometers = [s["id"] for s in sensors if s["type"] == "sensor.speedometer"]
        collisions = SensorQueue(
            actors.add_sensor(
                world.spawn_actor(world.get_blueprint_library().find("sensor.other.collision"), carla.Transform(), attach_to=ego)
            ),
            "collision test",
        )
        criterion, counted, best = CollisionCriterion(), [], 0
        frame = world.tick()
        for step in range(max_steps):
            snapshot = world.get_snapshot().find(ego.id).get_transform()
            ego_xy = np.array([snapshot.location.x, snapshot.location.y])
            speed = forward_speed(ego)
            input_data: dict[str, tuple[int, Any]] = {}
            for sensor_id, sensor_queue in queues.items():
                data = sensor_queue.frame(frame, SENSOR_TIMEOUT_S)
                kind = sensor_queue.sensor.type_id
                parse = image_array if kind == "sensor.camera.rgb" else imu_array if kind == "sensor.other.imu" else gnss_array
                input_data[sensor_id] = (frame, parse(data))
            for sensor_id in speedometers:
                input_data[sensor_id] = (frame, {"speed": speed})
            control = agent.run_step(input_data, step / FRAME_RATE_HZ)
            control.manual_gear_shift = False
            ego.apply_control(control)
            frame = world.tick()
            for event in collisions.drain(frame):
                hit = criterion.count(event, ego_xy, abs(speed), step / FRAME_RATE_HZ)
                if hit is not None:
                    counted.append(hit.label)
            location = world.get_snapshot().find(ego.id).get_transform().location
            criterion.update(np.array([location.x, location.y]), (step + 1) / FRAME_RATE_HZ)
            distance = np.hypot(*(route.points - np.array([location.x, location.y])).T)
            window = slice(best, min(best + 40, len(route.points)))
            best = max(best, window.start + int(np.argmin(distance[window])))
            if route.length_m - best * route.spacing_m < ROUTE_DONE_M:
                break
        completion = min(best * route.spacing_m / max(route.length_m, 1e-6), 1.0)
        return RouteResult(completion, counted, step + 1)
    finally:
        if agent is not None:
            agent.destroy()
        actors.close()
        world.apply_settings(original)
