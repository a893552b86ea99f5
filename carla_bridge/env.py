"""``CarlaBridgeEnv``: the simulator contract (drivesim.sim.interface) on a real CARLA server.

Same observations, info keys, reward, route planner, expert and driver modes as ``EmbeddedSimEnv``: the
route, off-road share, progress and termination come from drivesim's ``EgoEventTracker`` on the map raster
of ``world.get_map()``; collisions come from the server's collision sensor, counted by the rules of the
Leaderboard's ``CollisionTest`` (``criteria.py``); lane invasions from the server's lane-invasion sensor;
the BEV is drawn by the shared ``BevRenderer`` from the actors' bounding boxes; the camera is CARLA's
``sensor.camera.rgb`` mounted like the embedded one.

Lifetime: the first ``reset()`` connects, loads the town and switches the server to synchronous mode;
each episode's actors are destroyed at the next ``reset()``; ``close()`` (and any exception or Ctrl-C
inside ``reset``/``step``) destroys them, sensors first, and restores the server's settings. When the
server dies or stops answering, ``ServerConnectionError`` is raised (the episode is lost) and the next
``reset()`` reconnects, at most ``max_reconnects`` times in a row without a finished episode. With
``carla_root`` the env starts the server itself (``ServerSupervisor``), restarts it before reconnecting
when it crashed or hangs, and stops it at ``close()``.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import carla
import gymnasium as gym
import numpy as np
from gymnasium import spaces

from carla_bridge.actors import (
    EpisodeActors,
    VehicleStates,
    ground_transform,
    read_ego,
    read_vehicles,
    spawn_ego,
    spawn_npcs,
    vehicle_from_physics,
)
from carla_bridge.config import BridgeConfig, as_bridge_config, bridge_config_for_map
from carla_bridge.connection import ClientFactory, ServerConnectionError, ServerSession
from carla_bridge.criteria import CollisionCriterion
from carla_bridge.sensors import SensorRig
from carla_bridge.supervisor import ServerSupervisor
from drivesim import spec
from drivesim.sensors.config import SensorsConfig
from drivesim.sim.config import SimConfig
from drivesim.sim.controller import WaypointController
from drivesim.sim.env import DRIVER_MODES, DriverNoise, default_reward, observation_space
from drivesim.sim.events import EgoEventTracker, StepEvents
from drivesim.sim.expert import ExpertPlanner
from drivesim.sim.gaps import VEHICLE_HALF_WIDTH_M, Paths, vehicle_gaps
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
from drivesim.sim.observation import build_observation, measurements, route_points
from drivesim.sim.road import Route

logger = logging.getLogger(__name__)

KEEP_CLEAR_M = 25.0  # no NPC spawns within the first metres of the ego's route (as the embedded world)
ROUTE_AHEAD_POINTS = 80  # route points drawn into the BEV
TM_PATH_SPACING_M = 10.0  # spacing of the route points handed to the Traffic Manager (its expert) [m]


class CarlaBridgeEnv(gym.Env):
    """The drivesim simulator contract on a real CARLA server (see the module docstring).

    ``reset(options=...)`` accepts ``route`` (``{"segments": [...], "start_s_m": s, "length_m": L}``),
    ``npcs`` (int) and ``driver`` ('clean', 'noisy' or 'careless'), like ``EmbeddedSimEnv``.

    Args:
        bridge_config: Server, town, Traffic Manager and ego settings (a ``BridgeConfig``, a dict, or a
            config model holding a subset of its fields). Called as ``CarlaBridgeEnv(sim_config,
            sensors_config)`` (the eval runner), the defaults are used with the town from ``sim_config.map.name``
            when that names a CARLA town or an .xodr file.
        sim_config: Step, traffic density, expert and episode limits (shared with the embedded simulator).
        sensors_config: BEV and camera; None for neither.
        client_factory: ``carla.Client`` or a stand-in taking (host, port), e.g. the fake server's.
        command_module: ``carla.command`` or a stand-in (the fake's, whose ``SpawnActor`` accepts its blueprints).
        render_mode: 'rgb_array' returns the last camera image from ``render()``.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(
        self,
        bridge_config: BridgeConfig | Any = None,
        sim_config: SimConfig | None = None,
        sensors_config: SensorsConfig | None = None,
        *,
        client_factory: ClientFactory = carla.Client,
        command_module: ModuleType = carla.command,
        render_mode: str | None = None,
    ) -> None:
        if isinstance(bridge_config, SimConfig):  # the eval runner's call: (sim_config, sensors_config)
            bridge_config, sim_config, sensors_config = (
                bridge_config_for_map(bridge_config.map.name),
                bridge_config,
                sim_config,
            )
        self.bridge_config = as_bridge_config(bridge_config)
        self.sim_config = sim_config or SimConfig()
        self.sensors_config = sensors_config
        self.render_mode = render_mode
        self.observation_space = observation_space(self.sim_config, sensors_config)
        self.action_space = spaces.Box(spec.ACTION_LOW, spec.ACTION_HIGH, dtype=np.float32)
        self._client_factory = client_factory
        self._commands = command_module
        self._session: ServerSession | None = None
        self._supervisor: ServerSupervisor | None = None
        self._lost = False  # the last session ended with a connection failure
        self._reconnects = 0  # reconnections since the last finished episode
        self._bev = None
        self._episode: contextlib.ExitStack | None = None
        self.driver_mode = "clean"
        self._seed: int | None = None
        self._cache: dict[str, Any] = {}

    # --------------------------------------------------------------------------------- gymnasium API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        super().reset(seed=seed)
        options = options or {}
        driver = options.get("driver", "clean")
        if driver not in DRIVER_MODES:
            raise ValueError(f"unknown driver mode {driver!r}; expected one of {DRIVER_MODES}")
        if self.bridge_config.expert == "traffic_manager" and driver != "clean":
            raise ValueError(
                f"driver {driver!r} needs expert 'planner': the Traffic Manager expert drives the ego itself"
            )
        if options.get("scenarios"):
            raise ValueError("route scenarios are not implemented on the CARLA bridge yet (the scenario actor API "
                             "runs on the embedded simulator only); evaluate scenario suites with --sim embedded")
        self._seed, self.driver_mode = seed, driver
        self._end_episode()
        with self._server_calls("reset"):
            self._ensure_session()
            return self._start_episode(options)

    def step(self, action: np.ndarray) -> tuple[dict, float, bool, bool, dict]:
        if self._episode is None:
            raise RuntimeError("call reset() before step()")
        action = spec.action_from_control(*np.asarray(action, dtype=np.float32).reshape(3))
        with self._server_calls(f"step {self._step_count + 1}"):
            return self._advance(action)

    def _advance(self, action: np.ndarray) -> tuple[dict, float, bool, bool, dict]:
        """Apply ``action``, tick once, and build the step's observation, reward and info."""
        session, cfg, bridge = self._session, self.sim_config, self.bridge_config
        if bridge.expert != "traffic_manager":
            throttle, steer, brake = (float(value) for value in action)
            self._ego.apply_control(carla.VehicleControl(throttle=throttle, steer=steer, brake=brake))
        before, before_s = self._state, self._step_count * cfg.episode.dt_s
        frame = session.sync.tick(bridge.timeout_s)
        sensed = self._read_sensors(frame)
        self._read_state(frame)
        self._step_count += 1
        events = StepEvents()
        for event in sensed.collisions:  # counted as the Leaderboard's CollisionTest counts (criteria.py)
            counted = self._collisions.count(event, before.xy, before.planar_speed_mps, before_s)
            if counted is not None and not events.collision:
                events.collision, events.collision_actor = True, counted.label
                events.collision_walker = counted.kind == "walker"
                events.collision_static = counted.kind == "static"
        self._collisions.update(self._state.xy, self._step_count * cfg.episode.dt_s)
        events = self._tracker.update(self._state.xy, self._state.yaw_rad, events)
        events.lane_invasion = bool(sensed.lane_invasions)  # the server's lane-invasion sensor
        if self._step_count % cfg.traffic.decision_interval_steps == 0:
            self._update_gap()
        termination = self._tracker.termination(events)
        truncated = termination is None and self._step_count >= cfg.episode.max_steps
        if termination is not None or truncated:
            self._reconnects = 0
        obs = self._observation(events, sensed.camera)
        info = self._info(termination or ("timeout" if truncated else None), events.collision_actor)
        return obs, default_reward(events), termination is not None, bool(truncated), info

    def expert_action(self) -> np.ndarray:
        return self._expert()[1]

    def driver_action(self) -> np.ndarray:
        if self.driver_mode == "careless":  # drives the expert's route but ignores every other vehicle
            if "careless" not in self._cache:
                waypoints = self._plan(ignore_traffic=True)
                controller = copy.copy(self._controller)  # the expert's speed integral is not advanced
                self._cache["careless"] = controller.control(
                    waypoints, self._state.speed_mps, self.sim_config.episode.dt_s
                )
            return self._cache["careless"]
        return self._noise.apply(self.expert_action())

    def episode_metadata(self) -> dict[str, Any]:
        session = self._session
        return {
            "simulator": "carla",
            "server_version": session.server_version if session else None,
            "client_version": session.client.get_client_version() if session else None,
            "town": self.bridge_config.town,
            "server_map": session.map.name if session else None,  # e.g. 'Carla/Maps/Town01_Opt'
            "map_name": session.network.name if session else None,
            "map_hash": session.network.map_hash() if session else None,
            "seed": self._seed,
            "driver": self.driver_mode,
            "expert": self.bridge_config.expert,
            "dt_s": self.sim_config.episode.dt_s,
            "route_length_m": self._route.length_m if self._episode is not None else None,
            "npcs": len(self._npc_ids) if self._episode is not None else None,
            "bridge_config": self.bridge_config.model_dump(mode="json"),
            "sim_config": self.sim_config.model_dump(mode="json"),
            "sensors_config": self.sensors_config.model_dump(mode="json") if self.sensors_config else None,
        }

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        return self._cache.get("camera")

    def close(self) -> None:
        """Destroy this episode's actors (sensors first), restore the server's settings; stop a started server."""
        try:
            self._close_session()
        finally:
            if self._supervisor is not None:
                self._supervisor.stop()

    # --------------------------------------------------------------------------------- connection
    @contextlib.contextmanager
    def _server_calls(self, what: str) -> Iterator[None]:
        """Run server calls; on any exception clean up (actors, settings), and report a lost server clearly."""
        try:
            yield
        except ServerConnectionError:
            self._lost = True
            self._close_session(server_failed=True)
            raise
        except RuntimeError as error:  # what the carla client raises on time-outs and lost connections
            self._lost = True
            self._close_session(server_failed=True)
            cfg = self.bridge_config
            left = max(cfg.max_reconnects - self._reconnects, 0)
            raise ServerConnectionError(
                f"the CARLA server at {cfg.host}:{cfg.port} failed during {what} ({error}); the episode is "
                f"discarded, the next reset() reconnects ({left} reconnections left)"
            ) from error
        except BaseException:  # Ctrl-C, invalid options, bugs: never leave actors or synchronous mode behind
            self._close_session()
            raise

    def _ensure_session(self) -> None:
        if self._session is not None:
            return
        cfg = self.bridge_config
        if self._lost:
            if self._reconnects >= cfg.max_reconnects:
                raise ServerConnectionError(
                    f"the CARLA server at {cfg.host}:{cfg.port} was lost and {self._reconnects} reconnections "
                    f"did not finish an episode (max_reconnects={cfg.max_reconnects}); giving up"
                )
            self._reconnects += 1
            logger.warning(
                "reconnecting to %s:%d (attempt %d of %d)",
                cfg.host,
                cfg.port,
                self._reconnects,
                cfg.max_reconnects,
            )
        if cfg.carla_root is not None:
            if self._supervisor is None:
                self._supervisor = ServerSupervisor(
                    cfg.carla_root,
                    cfg.port,
                    cfg.server_args,
                    self._client_factory,
                    cfg.host,
                    cfg.server_start_timeout_s,
                )
            if self._lost:
                self._supervisor.recover()
            else:
                self._supervisor.ensure_running()
        self._session = ServerSession(cfg, self.sim_config, self._client_factory)
        self._lost = False
        if self.sensors_config is not None and self.sensors_config.bev is not None:
            from drivesim.sensors.bev import BevRenderer

            self._bev = BevRenderer(self._session.network, self.sensors_config.bev)

    def _end_episode(self) -> None:
        episode, self._episode = self._episode, None
        if episode is not None:
            episode.close()

    def _close_session(self, server_failed: bool = False) -> None:
        """Destroy the episode's actors and restore the server; after a failure with short time-outs."""
        if server_failed and self._session is not None:
            self._session.expect_gone()
        try:
            self._end_episode()
        finally:
            session, self._session = self._session, None
            if session is not None:
                session.close()

    # --------------------------------------------------------------------------------- episodes
    def _pick_route(self, option: dict[str, Any] | None) -> Route:
        network, rng = self._session.network, self.np_random
        if option is not None:
            return network.route_through(
                list(option["segments"]), float(option["start_s_m"]), float(option["length_m"])
            )
        low, high = self.sim_config.episode.route_length_m
        return network.random_route(rng, float(rng.uniform(low, high)))

    def _spawn_ego(self, route_option: dict[str, Any] | None, actors: EpisodeActors) -> tuple[Route, Any]:
        session = self._session
        for _ in range(self.bridge_config.spawn_attempts):
            route = self._pick_route(route_option)
            transform = ground_transform(session.map, route.points[0], math.degrees(route.yaw_rad[0]))
            ego = spawn_ego(session.world, self.bridge_config.ego_blueprint, transform)
            if ego is not None:
                actors.add_vehicle(ego.id)
                return route, ego
            if route_option is not None:
                break  # a given route has one start
        raise ValueError(
            f"could not spawn the ego ({self.bridge_config.ego_blueprint}): the start of the route is taken "
            f"by another actor after {self.bridge_config.spawn_attempts} attempts"
        )

    def _start_episode(self, options: dict[str, Any]) -> tuple[dict, dict]:
        session, cfg, bridge = self._session, self.sim_config, self.bridge_config
        episode = contextlib.ExitStack()
        self._episode = episode
        actors = episode.enter_context(EpisodeActors(session.client, self._commands, session.cleanup))
        self._route, self._ego = self._spawn_ego(options.get("route"), actors)
        self._ego_box = self._ego.bounding_box
        camera = self.sensors_config.camera if self.sensors_config is not None else None
        self._rig = SensorRig(session.world, self._ego, camera, actors)
        keep_clear = self._route.points[: max(int(KEEP_CLEAR_M / self._route.spacing_m), 1)]
        self._npc_ids = spawn_npcs(
            session.client,
            self._commands,
            session.npc_blueprints,
            session.spawn_points,
            int(options.get("npcs", cfg.traffic.npcs)),
            keep_clear,
            cfg.traffic.min_spawn_gap_m,
            self.np_random,
            bridge.tm_port,
            bridge.spawn_attempts,
            actors,
        )
        if bridge.expert == "traffic_manager":
            self._ego.set_autopilot(True, bridge.tm_port)
            step = max(int(TM_PATH_SPACING_M / self._route.spacing_m), 1)
            path = [carla.Location(x=float(x), y=float(y)) for x, y in self._route.points[step::step]]
            session.traffic_manager.set_path(self._ego, path)
        frame = session.sync.tick(bridge.timeout_s)
        self._vehicle_boxes = {
            actor.id: actor.bounding_box
            for actor in session.world.get_actors().filter("vehicle.*")
            if actor.id != self._ego.id
        }
        sensed = self._read_sensors(frame)  # events of the spawn frame are not counted
        self._read_state(frame)
        # The tracker's footprint is the ego's real bounding box; the controller steers its real wheels.
        vehicle = vehicle_from_physics(self._ego, self._ego_box, cfg.vehicle)
        self._tracker = EgoEventTracker(session.raster, cfg.model_copy(update={"vehicle": vehicle}))
        self._tracker.reset(self._route, self._state.xy, self._state.yaw_rad)
        self._planner = ExpertPlanner(cfg.expert, cfg.traffic, cfg.num_waypoints, cfg.waypoint_dt_s)
        self._planner.set_route(self._route)
        self._controller = WaypointController(vehicle, cfg.waypoint_dt_s)
        self._noise = DriverNoise(cfg, self.np_random, self.driver_mode)
        self._collisions = CollisionCriterion()
        self._step_count = 0
        self._past_boxes: list[np.ndarray] = []
        self._update_gap()
        return self._observation(StepEvents(), sensed.camera), self._info(None, None)

    # --------------------------------------------------------------------------------- state
    def _read_sensors(self, frame: int) -> Any:
        """The sensors' data of ``frame``; a late camera image is waited for again while the server answers."""
        bridge = self.bridge_config
        return self._rig.read(
            frame, bridge.sensor_timeout_s, bridge.sensor_retries, self._session.client.get_server_version
        )

    def _read_state(self, frame: int) -> None:
        """Ego and other vehicles from the world snapshot of ``frame``."""
        snapshot = self._session.world.get_snapshot()
        if snapshot.frame != frame:
            logger.debug("snapshot frame %d differs from the tick's frame %d", snapshot.frame, frame)
        self._state = read_ego(snapshot, self._ego, self._ego_box)
        self._vehicles: VehicleStates = read_vehicles(snapshot, self._vehicle_boxes)
        self._cache = {}

    def _update_gap(self) -> None:
        """The expert's obstacle gap: ``vehicle_gaps`` over the ego's route path and nearby vehicles' lane paths."""
        others, ego, lane_paths = self._vehicles, self._state, self._session.lane_paths
        reach = lane_paths.distance_m[-1] + 2.0 * VEHICLE_HALF_WIDTH_M + 10.0
        near = (
            np.flatnonzero(np.hypot(*(others.xy - ego.xy).T) < reach) if len(others.ids) else np.zeros(0, int)
        )
        if len(near) == 0:
            self._gap = (math.inf, 0.0)
            return
        other_paths = lane_paths.paths(others.xy[near], others.yaw_rad[near])
        ego_points, ego_junction = self._tracker.path_ahead(lane_paths.distance_m)
        paths = Paths(
            np.concatenate([other_paths.points, ego_points[None]]),
            lane_paths.distance_m,
            np.concatenate([other_paths.in_junction, ego_junction[None]]),
        )
        gaps, obstacle_speed = vehicle_gaps(
            np.concatenate([others.xy[near], ego.xy[None]]),
            np.append(others.yaw_rad[near], ego.yaw_rad),
            np.append(others.speed_mps[near], max(ego.speed_mps, 0.0)),
            np.append(others.length_m[near], 2.0 * self._ego_box.extent.x),
            np.append(0.5 * others.width_m[near], self._ego_box.extent.y),
            paths,
        )
        self._gap = (float(gaps[-1]), float(obstacle_speed[-1]))

    # --------------------------------------------------------------------------------- expert
    def _plan(self, ignore_traffic: bool = False) -> np.ndarray:
        gap, obstacle_speed = (math.inf, 0.0) if ignore_traffic else self._gap
        ego = self._state
        return self._planner.plan(
            self._tracker.route_s_m, max(ego.speed_mps, 0.0), gap, obstacle_speed, ego.xy, ego.yaw_rad
        )

    def _expert(self) -> tuple[np.ndarray, np.ndarray]:
        if "expert" not in self._cache:
            waypoints = self._plan()
            if self.bridge_config.expert == "traffic_manager":
                action = self._state.control.copy()  # what the autopilot applied on the last tick
            else:
                action = self._controller.control(
                    waypoints, max(self._state.speed_mps, 0.0), self.sim_config.episode.dt_s
                )
            self._cache["expert"] = (waypoints, action)
        return self._cache["expert"]

    # --------------------------------------------------------------------------------- observation
    def _observation(self, events: StepEvents, camera: np.ndarray | None) -> dict[str, np.ndarray]:
        ego, cfg, tracker = self._state, self.sim_config, self._tracker
        sensors: dict[str, np.ndarray] = {}
        if self._bev is not None:
            boxes = self._vehicles.boxes()
            frames = self.sensors_config.bev.past_vehicle_frames
            ahead = self._route.points[tracker.route_index : tracker.route_index + ROUTE_AHEAD_POINTS]
            size = (2.0 * self._ego_box.extent.x, 2.0 * self._ego_box.extent.y)
            past = self._past_boxes[-frames:] if frames else None
            sensors[spec.OBS_BEV] = self._bev.render(
                ego.xy, math.degrees(ego.yaw_rad), size, ahead, boxes, past
            )
            if frames:
                self._past_boxes = (self._past_boxes + [boxes])[-frames:]
        if camera is not None:
            sensors[spec.OBS_CAMERA] = camera
            self._cache["camera"] = camera
        return build_observation(
            measurements(ego.speed_mps, ego.accel_mps2, ego.yaw_rate_rps, ego.control),
            route_points(self._route, tracker.route_index, ego.xy, ego.yaw_rad, cfg),
            self._expert()[0],
            events,
            sensors,
        )

    def _info(self, termination: str | None, collision_actor: str | None) -> dict[str, Any]:
        ego = self._state
        return {
            INFO_EGO_POSE: np.array([ego.xy[0], ego.xy[1], ego.z_m, math.degrees(ego.yaw_rad)]),
            INFO_EXPERT_ACTION: self.expert_action(),
            INFO_TERMINATION: termination,
            INFO_COLLISION_ACTOR: collision_actor,
            INFO_ROUTE_LENGTH: self._route.length_m,
            INFO_DISTANCE: self._tracker.distance_m,
            INFO_TIME: self._step_count * self.sim_config.episode.dt_s,
            INFO_SCENARIO_EVENTS: [],
        }
