"""The embedded world: ego, NPC traffic, walkers, parked cars, props and traffic lights on one road network.

``DrivingWorld`` holds the state and the physics; ``EmbeddedSimEnv`` (env.py) wraps it in the gymnasium
simulator contract and adds sensors. Kept apart so the CARLA bridge's fake server can drive a world without the
env layer. Nothing drives through anything: a collision stops both parties (the ego is put back where it was
before the contact and NPCs stand still for ``collision_hold_s``); a walker that is hit falls.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from drivesim.sensors.geometry import box_corners
from drivesim.sensors.map_raster import MapRaster, render_map_raster
from drivesim.sensors.scene import STOP_SIGN, Scene, stop_line_segments
from drivesim.sim import decisions
from drivesim.sim.config import SimConfig
from drivesim.sim.control import JunctionControl
from drivesim.sim.controller import WaypointController
from drivesim.sim.events import EgoEventTracker, StepEvents
from drivesim.sim.expert import ExpertPlanner, LateralPlan
from drivesim.sim.geometry import boxes_overlap, obb_overlap_one, overlapping, points_in_boxes
from drivesim.sim.infractions import (
    RedLightMonitor,
    StopSignMonitor,
    lane_heading_layer,
    one_per_entry,
    wrong_lane,
)
from drivesim.sim.props import Buildings, StaticActors, build_buildings, place_static_actors
from drivesim.sim.road import RoadNetwork, Route
from drivesim.sim.route import junction_runs
from drivesim.sim.signals import SIGN_STOP, SignalLayout, TrafficLights, build_signal_layout
from drivesim.sim.traffic import NPC_LENGTH_M, NPC_WIDTH_M, NpcTraffic
from drivesim.sim.vehicle import VehicleState, step_vehicle
from drivesim.sim.walkers import DOWN, WALKER_SIZE_M, Walkers, build_walker_network

KEEP_CLEAR_M = 25.0  # nothing spawns on the first metres of the ego's route [m]
STUCK_RESPAWN_S = 90.0  # an NPC standing this long out of the ego's sight is respawned elsewhere [s]
GRIDLOCK_S = 10.0  # an NPC standing this long inside a junction is in a gridlock: it is respawned elsewhere [s]
RESPAWN_CLEAR_M = 40.0  # NPCs re-enter at least this far from the ego [m]
CONTACT_REACH_M = 6.0  # centres farther apart than this cannot touch [m]


class DrivingWorld:
    """Ego vehicle, NPC traffic, walkers, static actors, lights, route, expert and events on one road network."""

    def __init__(self, network: RoadNetwork, config: SimConfig) -> None:
        self.network = network
        self.config = config
        self.raster: MapRaster = render_map_raster(network, config.map.raster_m_per_px)
        self.layout: SignalLayout = build_signal_layout(network, config.signals)
        self.control = JunctionControl(network, self.layout)
        self.walker_network = build_walker_network(network)
        self.buildings: Buildings | None = build_buildings(network, config.map.raster_m_per_px) if config.props.buildings else None
        self.controller = WaypointController(config.vehicle, config.waypoint_dt_s)
        self.planner = ExpertPlanner(config.expert, config.traffic, config.num_waypoints, config.waypoint_dt_s)
        self.red_lights = RedLightMonitor(self.layout)
        self.stop_signs = StopSignMonitor(self.layout)
        self.heading_layer = lane_heading_layer(network, self.raster)
        self.rng = np.random.default_rng(0)
        self.traffic = NpcTraffic(network, config.traffic, self.rng)
        self.walkers = Walkers(self.walker_network, config.walkers, self.rng)
        self.statics = StaticActors.empty()
        self.lights = TrafficLights(self.layout, config.signals, self.rng)
        self.ego: VehicleState | None = None
        self.route: Route | None = None
        self.tracker = EgoEventTracker(self.raster, config)
        self.step_count = 0
        self.lateral: LateralPlan | None = None
        self.ego_served_lane = -1
        self.ego_stopped_s = 0.0
        self.expert_leader = -1
        self.expert_reason = "free"  # what limits the expert now (diagnostics)
        self.npc_contacts = 0  # NPC-NPC collisions so far (traffic-quality statistic)
        self.decision_cache: dict[str, Any] = {}
        self._npc_accel = np.zeros(0)
        self._ego_gap = (math.inf, 0.0)
        self._gap_step, self._gap_route_s = 0, 0.0
        self._junction_runs = np.zeros((0, 3))
        self._stop_lines, self._stop_pole = _stop_lines(self.layout)

    # ----------------------------------------------------------------------------------------- set-up
    def reset(self, rng: np.random.Generator, route: Route, npcs: int, walkers: int | None = None,
              parked: int | None = None, blockers: int | None = None) -> None:
        """Place the ego at the start of ``route`` and the other actors elsewhere (counts default to the config)."""
        cfg = self.config
        self.rng = rng
        self.route = route
        start_yaw = float(route.yaw_rad[0])
        self.ego = VehicleState(x_m=float(route.points[0, 0]), y_m=float(route.points[0, 1]), yaw_rad=start_yaw)
        self.tracker.reset(route, self.ego.xy, start_yaw)
        lanes = route.lane_of_point if route.lane_of_point is not None else np.zeros(len(route.points), np.int64)
        self.planner.set_route(route, self.layout.speed_limit_mps[lanes])
        self._junction_runs = junction_runs(route)
        self.controller.reset()
        self.red_lights.reset()
        self.stop_signs.reset()
        self.lights = TrafficLights(self.layout, cfg.signals, rng)
        keep_clear = route.points[: min(len(route.points), int(KEEP_CLEAR_M / route.spacing_m))]
        self.statics = place_static_actors(
            self.network, rng, cfg.props.parked_vehicles if parked is None else parked,
            cfg.props.lane_blockers if blockers is None else blockers, route.points[:: max(int(40 / route.spacing_m), 1)][:2],
            KEEP_CLEAR_M + 15.0,
        )
        self.traffic = NpcTraffic(self.network, cfg.traffic, rng)
        avoid = np.concatenate([keep_clear, self.statics.boxes[:, :2]])
        radii = np.concatenate([np.full(len(keep_clear), cfg.traffic.min_spawn_gap_m), np.full(len(self.statics), 6.0)])
        self.traffic.spawn(npcs, avoid, radii)
        self.walkers = Walkers(self.walker_network, cfg.walkers, rng)
        self.walkers.spawn(cfg.walkers.count if walkers is None else walkers, route.points, cfg.walkers.near_route_share)
        self.walkers.set_parked_cars(self.statics.boxes[self.statics.is_vehicle & (self.statics.segment < 0), :2])
        self.step_count = 0
        self.lateral = None
        self.ego_served_lane = -1
        self.ego_stopped_s = 0.0
        self.npc_contacts = 0
        self._update_decisions()

    def add_npc(self, segment: int, s_m: float, speed_mps: float, desired_mps: float, **driver: Any) -> int:
        """Place one more NPC (scenario set-up, tests) and refresh traffic decisions; returns its id."""
        npc_id = self.traffic.place(segment, s_m, speed_mps, desired_mps, **driver)
        self._update_decisions()
        return npc_id

    def refresh_decisions(self) -> None:
        """Re-decide traffic and the expert now (after a scenario or test changed actors or lights)."""
        self._update_decisions()

    # ----------------------------------------------------------------------------------------- physics
    def step(self, control: np.ndarray) -> StepEvents:
        """Apply ``control`` to the ego, advance everyone, resolve contacts and report this step's events."""
        assert self.ego is not None and self.route is not None, "call reset() first"
        cfg, dt = self.config, self.config.episode.dt_s
        previous_ego = self.ego
        previous_s, previous_lane = self.traffic.s_m.copy(), self.traffic.chain[:, 0].copy()
        self.ego = step_vehicle(self.ego, control, cfg.vehicle, dt)
        self.traffic.step(self._npc_accel, dt)
        self.walkers.step(dt, self.traffic.xy, self._walkers_blocked())
        self.lights.step(dt)
        self.step_count += 1
        events = self._contacts(previous_ego, previous_s, previous_lane)
        self.ego_stopped_s = self.ego_stopped_s + dt if self.ego.speed_mps < 0.1 else 0.0
        events = self.tracker.update(self.ego.xy, self.ego.yaw_rad, events)
        half_length = cfg.vehicle.length_m / 2.0
        events.red_light = self.red_lights.update(self.ego.xy, self.ego.yaw_rad, half_length, self.lights.state) >= 0
        events.stop_sign = self.stop_signs.update(self.ego.xy, self.ego.yaw_rad, self.ego.speed_mps)
        events.wrong_lane = wrong_lane(self.heading_layer, self.raster, self.ego.xy, self.ego.yaw_rad)
        lane, distance, _ = self.route_junction_ahead()
        self.ego_served_lane = int(self.control.serve(np.array([lane]), np.array([distance]), np.array([self.ego.speed_mps]),
                                                      np.array([half_length]), np.array([self.ego_served_lane]))[0])
        respawned = self._respawn()
        if self.step_count % cfg.traffic.decision_interval_steps == 0 or respawned:
            self._update_decisions()
        return events

    def _contacts(self, previous_ego: VehicleState, previous_s: np.ndarray, previous_lane: np.ndarray) -> StepEvents:
        """Contacts of the ego (every step) and of the NPCs (every decision); nothing overlaps afterwards.

        Only pairs whose bounding circles meet are tested exactly (separating axes).
        """
        events = StepEvents()
        traffic, walkers, statics, ego, vehicle = self.traffic, self.walkers, self.statics, self.ego, self.config.vehicle
        ego_box = (ego.x_m, ego.y_m, math.degrees(ego.yaw_rad), vehicle.length_m, vehicle.width_m)
        ego_reach = 0.5 * math.hypot(vehicle.length_m, vehicle.width_m)
        label = None
        npc_boxes = self.npc_boxes()
        hit = overlapping(ego_box, npc_boxes, ego_reach)
        if len(hit):
            label = f"vehicle:{int(traffic.ids[hit[0]])}"
            traffic.hold_s[hit] = np.maximum(traffic.hold_s[hit], self.config.traffic.collision_hold_s)
        hit = overlapping(ego_box, statics.boxes, ego_reach) if label is None else ()
        if len(hit):
            label = statics.label(int(hit[0]))
            events.collision_static = not statics.is_vehicle[hit[0]]
        if label is None and self.buildings is not None and self.tracker.last_off_road > 0.0:
            if self.raster.lookup(self.buildings.footprint, box_corners(np.array([ego_box]))[0]).any():
                label, events.collision_static = "static:building", True
        if label is not None:  # the ego stops where it was before the contact
            self.ego = VehicleState(previous_ego.x_m, previous_ego.y_m, previous_ego.yaw_rad, 0.0,
                                    -previous_ego.speed_mps / self.config.episode.dt_s, 0.0, ego.steer, ego.throttle, ego.brake)
        if walkers.count:
            for index in overlapping(ego_box, walkers.boxes(), ego_reach):
                if walkers.mode[index] == DOWN:
                    continue
                walkers.knock_down(int(index))
                if label is None:
                    label, events.collision_walker = f"walker:{int(walkers.ids[index])}", True
        events.collision, events.collision_actor = label is not None, label
        if self.step_count % self.config.traffic.decision_interval_steps == 0:
            stopped = self._npc_contacts(npc_boxes)
            if stopped.any():
                same_lane = stopped & (traffic.chain[:, 0] == previous_lane)
                traffic.s_m[same_lane] = previous_s[same_lane]
                traffic.hold_s[stopped] = np.maximum(traffic.hold_s[stopped], self.config.traffic.collision_hold_s)
        held = traffic.hold_s > 0.0
        if held.any():
            traffic.speed_mps[held] = 0.0
            traffic._update_pose()
        return events

    def _npc_contacts(self, npc_boxes: np.ndarray) -> np.ndarray:
        """NPCs touching another NPC, a lane blocker or a walker in the road (N,) bool; hit walkers fall."""
        traffic, walkers, statics = self.traffic, self.walkers, self.statics
        count = traffic.count
        touching = np.zeros(count, dtype=bool)
        if count == 0:
            return touching
        reach = math.hypot(NPC_LENGTH_M, NPC_WIDTH_M)  # twice an NPC's bounding radius
        x, y = traffic.xy[:, 0], traffic.xy[:, 1]
        first, second = np.nonzero(np.triu((np.abs(x[:, None] - x[None, :]) < reach) & (np.abs(y[:, None] - y[None, :]) < reach), 1))
        for a, b in zip(first.tolist(), second.tolist(), strict=True):
            if obb_overlap_one(npc_boxes[a], npc_boxes[b]):
                if traffic.hold_s[a] <= 0.0 or traffic.hold_s[b] <= 0.0:
                    self.npc_contacts += 1  # new contacts only, not pairs already standing after one
                touching[a] = touching[b] = True
        on_road = np.flatnonzero(walkers.on_road() & (walkers.mode != DOWN)) if walkers.count else np.zeros(0, np.int64)
        walker_boxes = walkers.boxes()[on_road] if len(on_road) else np.zeros((0, 5))
        blockers = statics.boxes[statics.segment >= 0]
        for boxes, walker_index in ((blockers, None), (walker_boxes, on_road)):
            if len(boxes) == 0:
                continue
            npc, other = np.nonzero((np.abs(x[:, None] - boxes[None, :, 0]) < reach) & (np.abs(y[:, None] - boxes[None, :, 1]) < reach))
            for a, b in zip(npc.tolist(), other.tolist(), strict=True):
                if obb_overlap_one(npc_boxes[a], boxes[b]):
                    touching[a] = True
                    if walker_index is not None:
                        walkers.knock_down(int(walker_index[b]))
        return touching

    def _walkers_blocked(self) -> np.ndarray | None:
        """Walkers in the road with a vehicle within a step ahead of them: they stop for nobody, but do not walk into
        a car either."""
        walkers = self.walkers
        if walkers.count == 0:
            return None
        on_road = np.flatnonzero(walkers.on_road())
        if len(on_road) == 0:
            return None
        velocity = walkers.velocity[on_road]  # the way they walk (yaw is the edge's heading, also walking back)
        speed = np.linalg.norm(velocity, axis=1, keepdims=True)
        heading = np.where(speed > 1e-6, velocity / np.maximum(speed, 1e-6),
                           np.column_stack([np.cos(walkers.yaw_rad[on_road]), np.sin(walkers.yaw_rad[on_road])]))
        ahead = walkers.xy[on_road] + heading * 0.6
        ego, vehicle = self.ego, self.config.vehicle
        ego_box = np.array([[ego.x_m, ego.y_m, math.degrees(ego.yaw_rad), vehicle.length_m, vehicle.width_m]])
        boxes = np.concatenate([ego_box, self.vehicle_boxes()])
        blocked = np.zeros(walkers.count, dtype=bool)
        blocked[on_road] = points_in_boxes(ahead, boxes, margin_m=WALKER_SIZE_M / 2.0 + 0.1)
        return blocked

    def _respawn(self) -> bool:
        """NPCs that drove off a dead end, or stand jammed out of sight, re-enter elsewhere."""
        traffic = self.traffic
        if traffic.count == 0:
            return False
        far = np.hypot(*(traffic.xy - self.ego.xy).T) > 60.0
        free = np.isnan(traffic.forced_speed_mps) & (traffic.hold_s <= 0.0)
        inside = self.network.segment_in_junction[np.maximum(traffic.chain[:, 0], 0)]
        jammed = ((traffic.stopped_s > STUCK_RESPAWN_S) & far) | ((traffic.stopped_s > GRIDLOCK_S) & inside)
        gone = traffic.dead_ends() | (jammed & free)
        if not gone.any():
            return False
        self._move_elsewhere(gone)
        return True

    def _move_elsewhere(self, gone: np.ndarray) -> None:
        """Remove the NPCs flagged ``gone`` and spawn as many away from the ego, the others and the props."""
        traffic = self.traffic
        traffic.remove(~gone)
        avoid = np.concatenate([self.ego.xy[None], traffic.xy, self.statics.boxes[:, :2]])
        radii = np.concatenate([[RESPAWN_CLEAR_M], np.full(traffic.count, self.config.traffic.min_spawn_gap_m),
                                np.full(len(self.statics), 6.0)])
        traffic.spawn(int(gone.sum()), avoid, radii)

    def clear_around(self, xy: np.ndarray, radius_m: float) -> None:
        """Move free NPCs within ``radius_m`` of ``xy`` elsewhere (a scenario puts something there)."""
        traffic = self.traffic
        near = (np.hypot(*(traffic.xy - np.asarray(xy)).T) < radius_m) & np.isnan(traffic.forced_speed_mps)
        if near.any():
            self._move_elsewhere(near)
            self._update_decisions()

    # ----------------------------------------------------------------------------------------- decisions
    def _update_decisions(self) -> None:
        """NPC accelerations and lane changes, and the expert's gap, for the next decision interval."""
        self.decision_cache = {"others": decisions.Obstacles.concatenate(
            [decisions.static_obstacles(self), decisions.walker_obstacles(self)])}
        ego_view = decisions.predict_ego(self)
        self._npc_accel = decisions.decide_npcs(self, ego_view, self.decision_cache["others"])
        if self.config.traffic.lane_changes:
            decisions.npc_lane_changes(self, ego_view, self._npc_accel)
        self._ego_gap = decisions.expert_gap(self)
        self._gap_step, self._gap_route_s = self.step_count, self.tracker.route_s_m
        decisions.plan_passing(self)

    # ----------------------------------------------------------------------------------------- route queries
    def route_junction_ahead(self) -> tuple[int, float, bool]:
        """The route's next junction lane (-1 none), the distance from the ego to its entry [m], inside it?"""
        route_s = self.tracker.route_s_m
        runs = self._junction_runs
        ahead = np.flatnonzero(runs[:, 1] > route_s)
        if len(ahead) == 0:
            return -1, math.inf, False
        entry, _, lane = runs[ahead[0]]
        return int(lane), float(entry - route_s), bool(entry <= route_s)

    def next_route_junction_s(self, route_s_m: float) -> float:
        """Route arc length where the next junction after ``route_s_m`` starts (inf: none)."""
        entries = self._junction_runs[:, 0]
        later = entries[entries > route_s_m]
        return float(later[0]) if len(later) else math.inf

    def route_s_of(self, xy: np.ndarray, max_lateral_m: float = 6.0) -> float | None:
        """Route arc length of a point near the ego's part of the route (None when off the route)."""
        route, index = self.route, self.tracker.route_index
        low, high = max(index - 40, 0), min(index + 120, len(route.points))
        offset = route.points[low:high] - np.asarray(xy)
        distance = np.einsum("ij,ij->i", offset, offset)
        nearest = int(np.argmin(distance))
        if distance[nearest] > max_lateral_m**2:
            return None
        return float((low + nearest) * route.spacing_m)

    # ----------------------------------------------------------------------------------------- expert
    def expert_waypoints(self, ignore_traffic: bool = False) -> np.ndarray:
        """The expert's K future waypoints (ego frame) for the current state.

        Between decisions the gap is carried forward (less the distance driven, plus the obstacle's own motion).
        ``ignore_traffic`` (the careless driver): no vehicles, walkers, props, lights or signs, no passing.
        """
        if ignore_traffic:
            gap, obstacle_speed = math.inf, 0.0
        else:
            gap, obstacle_speed = self._ego_gap
            elapsed_s = (self.step_count - self._gap_step) * self.config.episode.dt_s
            gap = gap - (self.tracker.route_s_m - self._gap_route_s) + obstacle_speed * elapsed_s
        lateral = None if ignore_traffic else self.lateral
        return self.planner.plan(self.tracker.route_s_m, self.ego.speed_mps, gap, obstacle_speed, self.ego.xy,
                                 self.ego.yaw_rad, lateral)

    # ----------------------------------------------------------------------------------------- sensor inputs
    def npc_boxes(self) -> np.ndarray:
        count = self.traffic.count
        return np.column_stack([self.traffic.xy, np.degrees(self.traffic.yaw_rad), np.full(count, NPC_LENGTH_M),
                                np.full(count, NPC_WIDTH_M)])

    def vehicle_boxes(self) -> np.ndarray:
        """Other vehicles as (N, 5): x, y, yaw [deg], length, width (NPCs, then parked and broken-down cars)."""
        return np.concatenate([self.npc_boxes(), self.statics.boxes[self.statics.is_vehicle]])

    def walker_boxes(self) -> np.ndarray:
        return self.walkers.boxes()

    def prop_boxes(self) -> np.ndarray:
        """Static props (cones, triangles) as (N, 5) boxes."""
        return self.statics.boxes[~self.statics.is_vehicle]

    def scene(self) -> Scene:
        """What the sensors draw now: vehicles, walkers, props, stop lines by light state or sign, light poles."""
        state = self.lights.state
        pole = self._stop_pole
        kind = np.where(pole >= 0, state[np.maximum(pole, 0)] if len(state) else STOP_SIGN, STOP_SIGN)
        layout = self.layout
        return Scene(
            vehicles=self.vehicle_boxes(), walkers=self.walker_boxes(), obstacles=self.prop_boxes(),
            stop_lines=self._stop_lines, stop_kind=kind,
            light_poles=np.column_stack([layout.pole_xy, layout.pole_yaw_rad]).reshape(-1, 3),
            light_state=state.astype(np.int64),
        )

    def npc_collisions(self) -> int:
        """Number of overlapping NPC pairs now (traffic-quality statistic, not used per step)."""
        if self.traffic.count < 2:
            return 0
        corners = box_corners(self.npc_boxes())
        pairs = 0
        for index in range(self.traffic.count - 1):
            rest = corners[index + 1 :]
            near = np.hypot(*(self.traffic.xy[index + 1 :] - self.traffic.xy[index]).T) < NPC_LENGTH_M + 0.5
            if near.any():
                pairs += int(boxes_overlap(corners[index], rest[near]).sum())
        return pairs


def _stop_lines(layout: SignalLayout) -> tuple[np.ndarray, np.ndarray]:
    """One stop line per controlled lane entry (junction lanes from one lane share it): end points (L, 2, 2) and
    the light pole that controls it (L,) (-1: a stop sign; yield lines are not drawn)."""
    lanes = layout.controlled
    drawn = np.flatnonzero((layout.light_of_segment[lanes] >= 0) | (layout.sign_of_segment[lanes] == SIGN_STOP))
    if len(drawn) == 0:
        return np.zeros((0, 2, 2)), np.zeros(0, np.int64)
    first = one_per_entry(layout, drawn)
    lines = stop_line_segments(layout.stop_xy[first], layout.stop_yaw_rad[first], layout.stop_half_width_m[first])
    return lines, layout.light_of_segment[lanes[first]].astype(np.int64)
