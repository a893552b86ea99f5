"""The embedded world: ego + NPC traffic on a road network, stepped at a fixed rate, with per-step events.

``DrivingWorld`` holds the state and the physics; ``EmbeddedSimEnv`` (env.py) wraps it in the gymnasium
simulator contract and adds sensors. Kept apart so the CARLA bridge's fake server can drive a world
without the env layer.
"""

from __future__ import annotations

import math

import numpy as np

from drivesim.sensors.geometry import box_corners
from drivesim.sensors.map_raster import MapRaster, render_map_raster
from drivesim.sim.config import SimConfig
from drivesim.sim.controller import WaypointController
from drivesim.sim.events import EgoEventTracker, StepEvents
from drivesim.sim.expert import ExpertPlanner
from drivesim.sim.geometry import boxes_overlap
from drivesim.sim.road import RoadNetwork, Route
from drivesim.sim.traffic import (
    NPC_LENGTH_M,
    NPC_WIDTH_M,
    NpcTraffic,
    Paths,
    curvature_speed_limit,
    idm_acceleration,
    obstacle_gaps,
)
from drivesim.sim.vehicle import VehicleState, step_vehicle


class DrivingWorld:
    """Ego vehicle, NPC traffic, route, expert and events on one road network."""

    def __init__(self, network: RoadNetwork, config: SimConfig) -> None:
        self.network = network
        self.config = config
        self.raster: MapRaster = render_map_raster(network, config.map.raster_m_per_px)
        self.controller = WaypointController(config.vehicle, config.waypoint_dt_s)
        self.planner = ExpertPlanner(config.expert, config.traffic, config.num_waypoints, config.waypoint_dt_s)
        self.rng = np.random.default_rng(0)
        self.traffic = NpcTraffic(network, config.traffic, self.rng)
        self.ego: VehicleState | None = None
        self.route: Route | None = None
        self.tracker = EgoEventTracker(self.raster, config)
        self.step_count = 0
        self._npc_accel = np.zeros(0)
        self._ego_gap = (math.inf, 0.0)

    # ----------------------------------------------------------------------------------------- set-up
    def reset(self, rng: np.random.Generator, route: Route, npcs: int) -> None:
        """Place the ego at the start of ``route`` and ``npcs`` NPCs elsewhere."""
        self.rng = rng
        self.route = route
        start_yaw = float(route.yaw_rad[0])
        self.ego = VehicleState(x_m=float(route.points[0, 0]), y_m=float(route.points[0, 1]), yaw_rad=start_yaw)
        self.tracker.reset(route, self.ego.xy, start_yaw)
        self.planner.set_route(route)
        self.controller.reset()
        self.traffic = NpcTraffic(self.network, self.config.traffic, rng)
        keep_clear = route.points[: min(len(route.points), int(25 / route.spacing_m))]
        self.traffic.spawn(npcs, keep_clear, self.config.traffic.min_spawn_gap_m)
        self.step_count = 0
        self._update_traffic_decisions()

    def add_npc(self, segment: int, s_m: float, speed_mps: float, desired_mps: float) -> int:
        """Place one more NPC (scenario set-up, tests) and refresh traffic decisions; returns its id."""
        npc_id = self.traffic.place(segment, s_m, speed_mps, desired_mps)
        self._update_traffic_decisions()
        return npc_id

    # ----------------------------------------------------------------------------------------- physics
    def step(self, control: np.ndarray) -> StepEvents:
        """Apply ``control`` to the ego, advance NPCs, and report this step's events."""
        assert self.ego is not None and self.route is not None, "call reset() first"
        dt = self.config.episode.dt_s
        self.ego = step_vehicle(self.ego, control, self.config.vehicle, dt)
        self.traffic.step(self._npc_accel, dt, self.ego.xy[None])
        self.step_count += 1
        events = self.tracker.update(self.ego.xy, self.ego.yaw_rad, self._collision())
        # Re-decide on schedule, and at once when a respawn changed the number of NPCs.
        if self.step_count % self.config.traffic.decision_interval_steps == 0 or len(self._npc_accel) != self.traffic.count:
            self._update_traffic_decisions()
        return events

    def _update_traffic_decisions(self) -> None:
        """Obstacle gaps for every vehicle (ego last) and the NPCs' IDM accelerations for the next step."""
        ego, traffic, cfg = self.ego, self.traffic, self.config.traffic
        npc_paths = traffic.paths(cfg.path_points, cfg.lookahead_m)
        ego_path = self._ego_path(npc_paths.distance_m)
        paths = Paths(
            np.concatenate([npc_paths.points, ego_path.points]),
            npc_paths.distance_m,
            np.concatenate([npc_paths.in_junction, ego_path.in_junction]),
        )
        positions = np.concatenate([traffic.xy, ego.xy[None]])
        yaws = np.append(traffic.yaw_rad, ego.yaw_rad)
        speeds = np.append(traffic.speed_mps, ego.speed_mps)
        lengths = np.append(np.full(traffic.count, NPC_LENGTH_M), self.config.vehicle.length_m)
        gaps, obstacle_speed = obstacle_gaps(positions, yaws, speeds, lengths, paths)
        self._ego_gap = (float(gaps[-1]), float(obstacle_speed[-1]))
        if traffic.count:
            curve_limit = curvature_speed_limit(self.network, npc_paths, self.config.expert.max_lateral_accel_mps2)
            desired = np.minimum(traffic.desired_mps, curve_limit)
            desired = np.where(npc_paths.in_junction[:, : cfg.path_points // 3].any(1), np.minimum(desired, self.config.expert.junction_speed_mps), desired)
            self._npc_accel = idm_acceleration(traffic.speed_mps, desired, gaps[:-1], obstacle_speed[:-1], cfg)
        else:
            self._npc_accel = np.zeros(0)

    def _ego_path(self, distance_m: np.ndarray) -> Paths:
        points, in_junction = self.tracker.path_ahead(distance_m)
        return Paths(points[None], distance_m, in_junction[None])

    # ----------------------------------------------------------------------------------------- events
    def _collision(self) -> StepEvents:
        """Collision of the ego's oriented box with any NPC's (only NPCs within reach are tested)."""
        ego, vehicle = self.ego, self.config.vehicle
        events = StepEvents()
        if self.traffic.count:
            near = np.hypot(*(self.traffic.xy - ego.xy).T) < 0.5 * (vehicle.length_m + NPC_LENGTH_M) + 1.0
            if near.any():
                ego_box = box_corners(np.array([[ego.x_m, ego.y_m, math.degrees(ego.yaw_rad), vehicle.length_m, vehicle.width_m]]))[0]
                idx = np.nonzero(near)[0]
                npc_boxes = box_corners(self.vehicle_boxes()[idx])
                hit = boxes_overlap(ego_box, npc_boxes)
                if hit.any():
                    events.collision = True
                    events.collision_actor = f"vehicle:{int(self.traffic.ids[idx[np.argmax(hit)]])}"
        return events

    # ----------------------------------------------------------------------------------------- expert
    def expert_waypoints(self, ignore_traffic: bool = False) -> np.ndarray:
        """The expert's K future waypoints (ego frame) for the current state."""
        gap, obstacle_speed = (math.inf, 0.0) if ignore_traffic else self._ego_gap
        return self.planner.plan(self.tracker.route_s_m, self.ego.speed_mps, gap, obstacle_speed, self.ego.xy, self.ego.yaw_rad)

    def vehicle_boxes(self) -> np.ndarray:
        """Other vehicles as (N, 5): x, y, yaw [deg], length, width (the sensors' input)."""
        count = self.traffic.count
        return np.column_stack(
            [self.traffic.xy, np.degrees(self.traffic.yaw_rad), np.full(count, NPC_LENGTH_M), np.full(count, NPC_WIDTH_M)]
        )

    def npc_collisions(self) -> int:
        """Number of overlapping NPC pairs now (traffic-quality statistic, not used per step)."""
        if self.traffic.count < 2:
            return 0
        corners = box_corners(self.vehicle_boxes())
        pairs = 0
        for index in range(self.traffic.count - 1):
            rest = corners[index + 1 :]
            near = np.hypot(*(self.traffic.xy[index + 1 :] - self.traffic.xy[index]).T) < NPC_LENGTH_M + 0.5
            if near.any():
                pairs += int(boxes_overlap(corners[index], rest[near]).sum())
        return pairs
