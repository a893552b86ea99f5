"""``EmbeddedSimEnv``: the server-free simulator behind the common simulator contract (gymnasium API)."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from drivesim import spec
from drivesim.sensors.config import SensorsConfig
from drivesim.sensors.weather import DEFAULT_WEATHER, camera_weather
from drivesim.sim.config import SimConfig
from drivesim.sim.events import StepEvents
from drivesim.sim.interface import (
    INFO_COLLISION_ACTOR,
    INFO_DISTANCE,
    INFO_EGO_POSE,
    INFO_EXPERT_ACTION,
    INFO_ROUTE_LENGTH,
    INFO_SCENARIO_EVENTS,
    INFO_TERMINATION,
    INFO_TIME,
)
from drivesim.sim.maps import load_road_network
from drivesim.sim.observation import build_observation, measurements, route_points
from drivesim.sim.world import DrivingWorld

DRIVER_MODES = ("clean", "noisy", "careless")
REWARD_WEIGHTS = {"progress_m": 1.0, "collision": -10.0, "off_road": -2.0}


def default_reward(events: StepEvents) -> float:
    """progress - 10 collision - 2 off-road (the world model's default reward weights)."""
    return (
        REWARD_WEIGHTS["progress_m"] * events.progress_m
        + REWARD_WEIGHTS["collision"] * float(events.collision)
        + REWARD_WEIGHTS["off_road"] * events.off_road
    )


def observation_space(sim: SimConfig, sensors: SensorsConfig | None) -> spaces.Dict:
    """The observation spec (drivesim.spec) as a gymnasium space."""
    big = np.float32(1e6)
    items: dict[str, spaces.Space] = {
        spec.OBS_MEASUREMENTS: spaces.Box(-big, big, (len(spec.MEASUREMENT_NAMES),), np.float32),
        spec.OBS_ROUTE: spaces.Box(-big, big, (sim.num_route_points, 2), np.float32),
        spec.OBS_WAYPOINTS: spaces.Box(-big, big, (sim.num_waypoints, 2), np.float32),
        spec.OBS_EVENTS: spaces.Box(-big, big, (len(spec.EVENT_NAMES),), np.float32),
    }
    if sensors is not None and sensors.bev is not None:
        channels = len(spec.BEV_CHANNELS) + sensors.bev.past_vehicle_frames
        items[spec.OBS_BEV] = spaces.Box(0, 1, (channels, sensors.bev.size_px, sensors.bev.size_px), np.uint8)
    if sensors is not None and sensors.camera is not None:
        items[spec.OBS_CAMERA] = spaces.Box(0, 255, (sensors.camera.height_px, sensors.camera.width_px, 3), np.uint8)
    return spaces.Dict(items)


class DriverNoise:
    """Noise of the data-collection driver: steer bursts (with the expert recovering) in 'noisy' episodes."""

    def __init__(self, sim: SimConfig, rng: np.random.Generator, mode: str) -> None:
        self.config = sim.expert
        self.dt_s = sim.episode.dt_s
        self.rng = rng
        self.mode = mode
        self.remaining_s = 0.0
        self.offset = np.zeros(3, dtype=np.float32)

    def apply(self, action: np.ndarray) -> np.ndarray:
        if self.mode != "noisy":
            return action
        if self.remaining_s <= 0.0 and self.rng.random() < self.dt_s / self.config.noise_every_s:
            low, high = self.config.noise_burst_s
            self.remaining_s = float(self.rng.uniform(low, high))
            steer = float(self.rng.uniform(-1.0, 1.0) * self.config.noise_steer)
            self.offset = np.array([self.rng.uniform(0.0, 0.3), steer, 0.0], dtype=np.float32)
        if self.remaining_s > 0.0:
            self.remaining_s -= self.dt_s
            return spec.action_from_control(*(action + self.offset))
        return action


# What changes while an episode runs: the env attributes a snapshot copies (the world holds ego, NPCs, walkers,
# statics, lights, route progress, the expert's plan and the infraction monitors; the generator is the episode's,
# shared by world, traffic, walkers, lights and driver noise).
SNAPSHOT_ATTRIBUTES = ("world", "_np_random", "_np_random_seed", "_noise", "_seed", "driver_mode", "weather",
                       "scenarios", "_past_boxes", "_cache")
# Parts of the world that never change after construction: shared by every snapshot, never copied.
STATIC_WORLD_ATTRIBUTES = ("network", "config", "raster", "layout", "control", "walker_network", "buildings",
                           "heading_layer", "_stop_lines", "_stop_pole")


@dataclass(frozen=True)
class EnvSnapshot:
    """A saved state of an ``EmbeddedSimEnv`` (``snapshot()``), restorable any number of times (``restore()``)."""

    state: dict[str, Any]


class EmbeddedSimEnv(gym.Env):
    """Embedded simulator on CARLA's road engine: no server, same contract as the CARLA bridge.

    ``reset(options=...)`` accepts ``route`` (``{"segments": [...], "start_s_m": s, "length_m": L}``),
    ``npcs``, ``walkers``, ``parked`` and ``blockers`` (counts; default from the config), ``driver`` ('clean',
    'noisy' or 'careless'), ``weather`` (a CARLA preset name for the camera, default ``ClearNoon``) and
    ``scenarios`` (``drivesim.scenarios.spec.ScenarioSpec`` entries; ``info["scenario_events"]`` reports them).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(self, sim_config: SimConfig | None = None, sensors_config: SensorsConfig | None = None,
                 render_mode: str | None = None) -> None:
        self.sim_config = sim_config or SimConfig()
        self.sensors_config = sensors_config
        self.render_mode = render_mode
        self.network = load_road_network(self.sim_config.map)
        self.world = DrivingWorld(self.network, self.sim_config)
        self.observation_space = observation_space(self.sim_config, sensors_config)
        self.action_space = spaces.Box(spec.ACTION_LOW, spec.ACTION_HIGH, dtype=np.float32)
        self.bev = self.camera = None
        if sensors_config is not None and sensors_config.bev is not None:
            from drivesim.sensors.bev import BevRenderer

            self.bev = BevRenderer(self.network, sensors_config.bev)
        if sensors_config is not None and sensors_config.camera is not None:
            from drivesim.sensors.camera import FrontCamera

            buildings = self.world.buildings
            self.camera = FrontCamera(self.network, sensors_config.camera,
                                      None if buildings is None else (buildings.boxes, buildings.height_m))
        self.driver_mode = "clean"
        self._noise: DriverNoise | None = None
        self._seed: int | None = None
        self.weather = DEFAULT_WEATHER
        self.scenarios = None
        self._past_boxes: list[np.ndarray] = []
        self._cache: dict[str, Any] = {}

    # --------------------------------------------------------------------------------- gymnasium API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        super().reset(seed=seed)
        options = options or {}
        self._seed = seed
        rng = self.np_random
        cfg = self.sim_config
        route_option = options.get("route")
        if route_option is not None:
            route = self.network.route_through(list(route_option["segments"]), float(route_option["start_s_m"]), float(route_option["length_m"]))
        else:
            low, high = cfg.episode.route_length_m
            route = self.network.random_route(rng, float(rng.uniform(low, high)))
        self.driver_mode = options.get("driver", "clean")
        if self.driver_mode not in DRIVER_MODES:
            raise ValueError(f"unknown driver mode {self.driver_mode!r}; expected one of {DRIVER_MODES}")
        self.weather = options.get("weather") or DEFAULT_WEATHER
        camera_weather(self.weather)  # an unknown preset fails here, naming the known ones
        counts = {key: int(options[key]) for key in ("walkers", "parked", "blockers") if options.get(key) is not None}
        if options.get("scenarios"):
            counts.setdefault("blockers", 0)  # the scenario is the situation: no random lane blockers besides it
        self.world.reset(rng, route, int(options.get("npcs", cfg.traffic.npcs)), **counts)
        self.scenarios = None
        scenario_events: list[dict] = []
        if options.get("scenarios"):
            from drivesim.scenarios import ScenarioManager
            from drivesim.scenarios.actors import EmbeddedActors

            self.scenarios = ScenarioManager(list(options["scenarios"]), EmbeddedActors(self.world), int(rng.integers(2**31)))
            scenario_events = self.scenarios.reset()
        self._noise = DriverNoise(cfg, rng, self.driver_mode)
        self._past_boxes = []
        self._cache = {}
        obs = self._observation(StepEvents())
        info = self._info(None, None)
        info[INFO_SCENARIO_EVENTS] = scenario_events
        return obs, info

    def step(self, action: np.ndarray) -> tuple[dict, float, bool, bool, dict]:
        action = spec.action_from_control(*np.asarray(action, dtype=np.float32).reshape(3))
        if self.scenarios is not None:
            action = self.scenarios.control(action)
        events = self.world.step(action)
        scenario_events = self.scenarios.step() if self.scenarios is not None else []
        self._cache = {}
        termination = self.world.tracker.termination(events)
        truncated = termination is None and self.world.step_count >= self.time_limit_steps()
        obs = self._observation(events)
        info = self._info(termination if termination else ("timeout" if truncated else None), events.collision_actor)
        info[INFO_SCENARIO_EVENTS] = scenario_events
        return obs, default_reward(events), termination is not None, bool(truncated), info

    def time_limit_steps(self) -> int:
        """Steps this episode may last: the route's Leaderboard-style time limit, capped at ``max_steps``."""
        episode = self.sim_config.episode
        route_s = episode.timeout_s_per_m * self.world.route.length_m + episode.timeout_initial_s
        return min(episode.max_steps, int(math.ceil(route_s / episode.dt_s)))

    def expert_action(self) -> np.ndarray:
        return self._expert()[1]

    def driver_action(self) -> np.ndarray:
        if self.driver_mode == "careless":  # drives the expert's route but ignores every other vehicle
            if "careless" not in self._cache:
                waypoints = self.world.expert_waypoints(ignore_traffic=True)
                controller = copy.copy(self.world.controller)  # the expert's speed integral is not advanced
                self._cache["careless"] = controller.control(waypoints, self.world.ego.speed_mps, self.sim_config.episode.dt_s)
            return self._cache["careless"]
        return self._noise.apply(self.expert_action())

    def episode_metadata(self) -> dict[str, Any]:
        return {
            "simulator": "embedded",
            "map_name": self.network.name,
            "map_hash": self.network.map_hash(),
            "seed": self._seed,
            "driver": self.driver_mode,
            "weather": self.weather,
            "dt_s": self.sim_config.episode.dt_s,
            "route_length_m": self.world.route.length_m if self.world.route is not None else None,
            "sim_config": self.sim_config.model_dump(mode="json"),
            "sensors_config": self.sensors_config.model_dump(mode="json") if self.sensors_config else None,
        }

    def snapshot(self) -> EnvSnapshot:
        """The whole episode state, deep-copied: stepping on does not change it.

        Copies the world (ego, NPCs, walkers, static actors, lights, route progress, expert plan, event and
        infraction monitors, decision caches), the episode's random generator (shared by all of them, so the
        copy shares one generator too), the driver noise, the scenario manager and the sensor history. The
        road network, map raster, signal layout and configs never change and are shared, not copied.
        """
        return EnvSnapshot(self._copy_state({name: getattr(self, name) for name in SNAPSHOT_ATTRIBUTES}))

    def restore(self, snapshot: EnvSnapshot) -> None:
        """Put the env back into a snapshot's state: the same actions then give the same observations and infos.

        The snapshot itself stays unchanged (a fresh copy is restored), so it can be restored again.
        ``self.world`` is a new object afterwards: do not keep references to the old one.
        """
        for name, value in self._copy_state(snapshot.state).items():
            setattr(self, name, value)

    def _copy_state(self, state: dict[str, Any]) -> dict[str, Any]:
        world = state["world"]
        shared = [getattr(world, name) for name in STATIC_WORLD_ATTRIBUTES]
        memo = {id(value): value for value in (*shared, self.sim_config, self.sensors_config) if value is not None}
        return copy.deepcopy(state, memo)

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        return self._cache.get("camera")

    # --------------------------------------------------------------------------------- internals
    def _expert(self) -> tuple[np.ndarray, np.ndarray]:
        if "expert" not in self._cache:
            waypoints = self.world.expert_waypoints()
            control = self.world.controller.control(waypoints, self.world.ego.speed_mps, self.sim_config.episode.dt_s)
            self._cache["expert"] = (waypoints, control)
        return self._cache["expert"]

    def _observation(self, events: StepEvents) -> dict[str, np.ndarray]:
        world, ego, cfg = self.world, self.world.ego, self.sim_config
        tracker = world.tracker
        sensors: dict[str, np.ndarray] = {}
        if self.bev is not None or self.camera is not None:
            scene = world.scene()
            boxes = scene.vehicles
            if self.bev is not None:
                frames = self.sensors_config.bev.past_vehicle_frames
                ahead = world.route.points[tracker.route_index : tracker.route_index + 80]
                past = self._past_boxes[::-1] if frames else None  # most recent first
                sensors[spec.OBS_BEV] = self.bev.render(
                    ego.xy, math.degrees(ego.yaw_rad), (cfg.vehicle.length_m, cfg.vehicle.width_m), ahead, scene, past
                )
                if frames:
                    self._past_boxes = (self._past_boxes + [boxes])[-frames:]
            if self.camera is not None:
                sensors[spec.OBS_CAMERA] = self.camera.render(ego.xy, math.degrees(ego.yaw_rad), scene, self.weather)
                self._cache["camera"] = sensors[spec.OBS_CAMERA]
        return build_observation(
            measurements(ego.speed_mps, ego.accel_mps2, ego.yaw_rate_rps, [ego.throttle, ego.steer, ego.brake]),
            route_points(world.route, tracker.route_index, ego.xy, ego.yaw_rad, cfg),
            self._expert()[0],
            events,
            sensors,
        )

    def _info(self, termination: str | None, collision_actor: str | None) -> dict[str, Any]:
        ego, world = self.world.ego, self.world
        return {
            INFO_EGO_POSE: np.array([ego.x_m, ego.y_m, 0.0, math.degrees(ego.yaw_rad)]),
            INFO_EXPERT_ACTION: self.expert_action(),
            INFO_TERMINATION: termination,
            INFO_COLLISION_ACTOR: collision_actor,
            INFO_ROUTE_LENGTH: world.route.length_m,
            INFO_DISTANCE: world.tracker.distance_m,
            INFO_TIME: world.step_count * self.sim_config.episode.dt_s,
        }
