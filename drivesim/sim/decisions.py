"""Traffic decisions, 10 times a second: NPC accelerations and lane changes, and the expert's obstacle gap.

NPCs see every vehicle, the ego included, as a position, heading and speed on a lane (the ego's path is the
lane-following guess from its lane and heading: its route is never used); they stop at red lights, yellow ones
they can still stop for, and stop signs, give way at junctions by right of way, brake for walkers in the road
and change lanes by MOBIL (Kesting, Treiber, Helbing 2007). The expert sees the same things along its route,
knows which drivers will run a light, and shifts into the neighbour lane to pass a blocked one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from drivesim.sim.control import RANK_INSIDE
from drivesim.sim.expert import LateralPlan
from drivesim.sim.gaps import STANDING_S, Obstacles, Paths, conflict_gaps, idm_acceleration, leader_gaps
from drivesim.sim.geometry import world_to_ego
from drivesim.sim.traffic import NPC_LENGTH_M, NPC_WIDTH_M, chain_paths, next_junction_lane, straightest_chain
from drivesim.sim.walkers import WALKER_SIZE_M

if TYPE_CHECKING:
    from drivesim.sim.world import DrivingWorld

OFF_LANE_M = 2.5  # the ego farther than this from a lane of its heading is predicted straight ahead [m]
WALKER_HORIZONS_S = (0.0, 1.0, 2.0, 3.0)  # walkers in the road are obstacles where they are and will be [s]
WALKER_MARGIN_M = 0.5  # lateral clearance kept from walkers [m]
PASS_LOOKAHEAD_M = 40.0  # the expert plans to pass a blocker this far ahead [m]
PASS_RAMP_M = 14.0  # longitudinal length of the shift into the neighbour lane and back [m]
PASS_CLEARANCE_M = 8.0
PASS_BEFORE_BLOCKER_M = 4.0  # the shift is complete this far before the blocker's centre [m]
PASS_MIN_RAMP_M = 8.0  # the steepest shift: a lane width over this length (from standstill) [m]
BLOCKER_STANDOFF_M = 6.0  # the expert waits this much farther back from a lane blocker than from a car [m]  # back into the lane this far past the blocker [m]
NEIGHBOUR_LATERAL_M = 2.0  # an NPC this far to the side of the ego drives in another lane [m]
NEIGHBOUR_HORIZONS_S = (1.0, 2.0)
LANE_CHANGE_MIN_ROOM_M = 30.0  # an NPC changes lanes only with this much lane left [m]


@dataclass
class EgoView:
    """How the others see the ego: its lane and the lane-following chain from it (none when off-lane)."""

    lane: int  # current lane segment, -1 off-lane
    s_m: float
    chain: np.ndarray | None  # (CHAIN,) straightest continuation of the lane
    straight_path: Paths | None  # off-lane: straight ahead along its heading


def predict_ego(world: DrivingWorld) -> EgoView:
    """The lane-following guess of the ego's path that NPCs use (from its lane and heading, never its route)."""
    network, cfg, ego = world.network, world.config.traffic, world.ego
    sample = network.nearest_sample(ego.xy, ego.yaw_rad)
    if network.in_junction[sample] or np.hypot(*(network.points[sample] - ego.xy)) > OFF_LANE_M:
        # Inside a junction (lanes cross) or off the lanes: the arc its current heading and yaw rate draw.
        distance = np.linspace(cfg.lookahead_m / cfg.path_points, cfg.lookahead_m, cfg.path_points)
        curvature = ego.yaw_rate_rps / max(ego.speed_mps, 1.0)
        yaw = ego.yaw_rad + np.clip(curvature * distance, -math.pi / 2, math.pi / 2)
        steps = np.diff(np.concatenate([[0.0], distance]))
        points = ego.xy + np.cumsum(steps[:, None] * np.column_stack([np.cos(yaw), np.sin(yaw)]), axis=0)
        _, samples = network.nearest_samples(points)
        return EgoView(-1, 0.0, None, Paths(points[None], distance, network.in_junction[samples][None], samples[None]))
    segment = int(network.segment_of[sample])
    chains = network.__dict__.setdefault("_straightest_chains", {})
    if segment not in chains:
        chains[segment] = straightest_chain(network, segment)
    return EgoView(segment, float(network.segment_s(sample)), chains[segment], None)


def walker_obstacles(world: DrivingWorld) -> Obstacles:
    """Walkers in the road, where they are and where they will be shortly (speed 0: they may stop anywhere)."""
    walkers = world.walkers
    on_road = np.flatnonzero(walkers.on_road())
    if len(on_road) == 0:
        return _no_obstacles()
    xy = np.concatenate([walkers.xy[on_road] + walkers.velocity[on_road] * t for t in WALKER_HORIZONS_S])
    count = len(xy)
    return Obstacles(xy, np.zeros(count), np.zeros(count), np.full(count, WALKER_SIZE_M),
                     np.full(count, WALKER_SIZE_M / 2.0 + WALKER_MARGIN_M), np.full(count, -1))


def static_obstacles(world: DrivingWorld) -> Obstacles:
    """Lane blockers and props (parked cars stand beside the lanes, never on a path: left out)."""
    statics = world.statics
    boxes = statics.boxes[statics.segment >= 0]
    count = len(boxes)
    return Obstacles(boxes[:, :2], np.radians(boxes[:, 2]), np.zeros(count), boxes[:, 3], boxes[:, 4] / 2.0,
                     np.full(count, -1))


def _no_obstacles() -> Obstacles:
    return Obstacles(np.zeros((0, 2)), np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0, np.int64))


def npc_obstacles(world: DrivingWorld, owned: bool) -> Obstacles:
    traffic = world.traffic
    count = traffic.count
    owner = np.arange(count) if owned else np.full(count, -1)
    return Obstacles(traffic.xy, traffic.yaw_rad, traffic.speed_mps, np.full(count, NPC_LENGTH_M),
                     np.full(count, NPC_WIDTH_M / 2.0), owner)


def neighbour_lane_obstacles(world: DrivingWorld) -> Obstacles:
    """NPCs driving the ego's way in another lane, where they will be in 1 and 2 s along their paths (a lane
    change of the ego's route, or its pass, gives way to the car alongside instead of merging into it), and NPCs
    changing lanes, already in their target lane (the expert brakes for a cut-in as it starts)."""
    traffic, ego = world.traffic, world.ego
    if traffic.count == 0:
        return _no_obstacles()
    local = world_to_ego(traffic.xy, ego.xy, ego.yaw_rad)
    same_way = np.cos(traffic.yaw_rad - ego.yaw_rad) > np.cos(np.radians(30.0))
    beside = same_way & (np.abs(local[:, 1]) > NEIGHBOUR_LATERAL_M) & (np.abs(local[:, 1]) < 2.5 * NEIGHBOUR_LATERAL_M)
    beside &= (local[:, 0] > -15.0) & (local[:, 0] < 15.0)
    changing = (traffic.lane_change_t < 1.0) & (traffic.lane_change_from >= 0) & (np.abs(local[:, 0]) < 40.0)
    rows = np.flatnonzero(beside | changing)
    if len(rows) == 0:
        return _no_obstacles()
    paths = world.decision_cache["npc_paths"]
    # A car changing lanes is already where its path goes: its first path point lies in the target lane.
    steps = [np.minimum(np.searchsorted(paths.distance_m, traffic.speed_mps[rows] * t), len(paths.distance_m) - 1)
             for t in (0.0, *NEIGHBOUR_HORIZONS_S)]
    xy = np.concatenate([paths.points[rows, step] for step in steps])
    count = len(xy)
    return Obstacles(xy, np.tile(traffic.yaw_rad[rows], len(steps)), np.tile(traffic.speed_mps[rows], len(steps)),
                     np.full(count, NPC_LENGTH_M), np.full(count, NPC_WIDTH_M / 2.0), np.full(count, -1))


def ego_obstacle(world: DrivingWorld) -> Obstacles:
    ego, vehicle = world.ego, world.config.vehicle
    return Obstacles(ego.xy[None], np.array([ego.yaw_rad]), np.array([ego.speed_mps]), np.array([vehicle.length_m]),
                     np.array([vehicle.width_m / 2.0]), np.array([-1]))


def decide_npcs(world: DrivingWorld, ego_view: EgoView, others: Obstacles) -> np.ndarray:
    """NPC accelerations (N,) for the next decision interval."""
    traffic, cfg, network = world.traffic, world.config.traffic, world.network
    count = traffic.count
    cache = world.decision_cache
    params, control, lights = traffic.params, world.control, world.lights
    # Paths, next junction lanes and right of way of the NPCs and of the ego as it appears from its lane.
    on_lane = ego_view.chain is not None
    chain = np.vstack([traffic.chain, ego_view.chain[None]]) if on_lane else traffic.chain
    s_m = np.append(traffic.s_m, ego_view.s_m) if on_lane else traffic.s_m
    paths = chain_paths(network, chain, s_m, cfg.path_points, cfg.lookahead_m)
    if not on_lane:
        paths = Paths.concatenate([paths, ego_view.straight_path])
    lane, distance = next_junction_lane(network, chain, s_m)
    if not on_lane:
        lane, distance = np.append(lane, -1), np.append(distance, np.inf)
    inside = np.append(network.segment_in_junction[traffic.chain[:, 0]], bool(paths.in_junction[-1, 0]))
    light = np.where(lane >= 0, lights.lane_state(np.maximum(lane, 0)), -1)
    lengths = np.full(count, NPC_LENGTH_M)
    npc = slice(0, count)
    traffic.served_lane = control.serve(lane[npc], distance[npc], traffic.speed_mps, lengths / 2.0, traffic.served_lane)
    served = np.append((traffic.served_lane >= 0) & (traffic.served_lane == lane[npc]),
                       world.ego_served_lane >= 0 and world.ego_served_lane == lane[-1])
    ignores = np.append(params.ignore_lights, False)
    rank = control.rank(lane, inside, light, served, ignores)
    npc_paths = Paths(paths.points[npc], paths.distance_m, paths.in_junction[npc], paths.samples[npc])
    cache["npc_paths"], cache["npc_rank"], cache["npc_next_distance"] = npc_paths, rank[npc], distance[npc]
    cache["npc_junction"] = np.where(lane[npc] >= 0, network.segment_junction[np.maximum(lane[npc], 0)], -1)
    cache["npc_yields_to_ego"] = np.zeros(count, dtype=bool)
    if count == 0:
        return np.zeros(0)
    # Leaders, stop lines and junction conflicts.
    obstacles = Obstacles.concatenate([npc_obstacles(world, owned=True), ego_obstacle(world), others])
    gaps, obstacle_speed, _ = leader_gaps(npc_paths, traffic.xy, traffic.yaw_rad, lengths, obstacles)
    stop_gap = control.stop_gaps(lane[npc], distance[npc], traffic.speed_mps, lengths / 2.0, light[npc], served[npc],
                                 params.comfort_decel_mps2, params.ignore_lights)
    junction = np.where(lane >= 0, network.segment_junction[np.maximum(lane, 0)], -1)
    pairs = same_junction_pairs(junction[npc], junction)
    speeds = np.append(traffic.speed_mps, world.ego.speed_mps)
    standing = np.append(traffic.stopped_s, world.ego_stopped_s) > STANDING_S
    yields_to = np.full(count, -1)
    conflict = conflict_gaps(npc_paths, traffic.speed_mps, rank[npc], pairs, paths, speeds, rank, other_standing=standing,
                             yields_to=yields_to)
    cache["npc_yields_to_ego"] = yields_to == count
    limit = np.minimum(np.minimum(gaps, stop_gap), conflict)
    obstacle_speed = np.where(limit < gaps, 0.0, obstacle_speed)
    # Desired speed: the driver's share of the speed limit, curves and junctions.
    desired = traffic.desired_speed(world.layout.speed_limit_mps[traffic.chain[:, 0]])
    curve = np.sqrt(world.config.expert.max_lateral_accel_mps2 / np.maximum(network.curvature[npc_paths.samples].max(1), 1e-4))
    desired = np.minimum(desired, curve)
    near_junction = npc_paths.in_junction[:, : cfg.path_points // 3].any(1)
    junction_speed = world.config.expert.junction_speed_mps * np.where(params.aggressive, 1.3, 1.0)
    desired = np.where(near_junction, np.minimum(desired, junction_speed), desired)
    desired = np.where(np.isnan(traffic.forced_speed_mps), desired, traffic.forced_speed_mps)
    accel = idm_acceleration(traffic.speed_mps, desired, limit, obstacle_speed, params.time_headway_s,
                             params.min_gap_m, params.max_accel_mps2, params.comfort_decel_mps2, cfg.max_decel_mps2)
    return np.where(np.isnan(traffic.forced_accel_mps2), accel, traffic.forced_accel_mps2)


def same_junction_pairs(junction: np.ndarray, other_junction: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mine, other) index pairs heading for the same junction (ids >= 0), never a vehicle with itself."""
    same = (junction[:, None] == other_junction[None, :]) & (junction[:, None] >= 0)
    count = min(len(junction), len(other_junction))
    same[np.arange(count), np.arange(count)] = False
    return np.nonzero(same)


def npc_lane_changes(world: DrivingWorld, ego_view: EgoView, accel: np.ndarray) -> None:
    """MOBIL lane changes for a random ~1/s share of the NPCs (each decides about once a second)."""
    traffic, cfg, network = world.traffic, world.config.traffic, world.network
    if traffic.count == 0:
        return
    decision_s = cfg.decision_interval_steps * world.config.episode.dt_s
    segment = traffic.chain[:, 0]
    room = network.segment_length_m[segment] - traffic.s_m
    has_neighbour = (network.left_neighbour[segment] >= 0) | (network.right_neighbour[segment] >= 0)
    eligible = (has_neighbour & (room > LANE_CHANGE_MIN_ROOM_M) & (traffic.cooldown_s <= 0.0)
                & (traffic.lane_change_t >= 1.0) & np.isnan(traffic.forced_speed_mps) & np.isnan(traffic.forced_accel_mps2)
                & (traffic.hold_s <= 0.0) & (world.rng.random(traffic.count) < decision_s))
    candidates = np.flatnonzero(eligible)
    if len(candidates) == 0:
        return
    # Everyone's lane position: NPCs (also on the lane before and after, by their chains), the ego, lane blockers.
    lanes = np.concatenate([segment, [ego_view.lane], world.statics.segment])
    s_all = np.concatenate([traffic.s_m, [ego_view.s_m], world.statics.s_m])
    speed_all = np.concatenate([traffic.speed_mps, [world.ego.speed_mps], np.zeros(len(world.statics))])
    next_lane = traffic.chain[:, 1]
    s_before = traffic.s_m - network.segment_length_m[segment]  # arc length on the next lane, negative
    params = traffic.params
    limit = world.layout.speed_limit_mps[segment]
    desired_all = np.concatenate([traffic.desired_speed(limit), [world.config.expert.target_speed_mps],
                                  np.zeros(len(world.statics))])
    for index in candidates:
        best, best_gain = -1, cfg.lane_change_gain_mps2
        for target in (network.left_neighbour[segment[index]], network.right_neighbour[segment[index]]):
            if target < 0:
                continue
            s_new = traffic.s_m[index] * network.segment_length_m[target] / network.segment_length_m[segment[index]]
            on_target = np.where(lanes == target, s_all, np.nan)
            on_target[: traffic.count] = np.where(next_lane == target, s_before, on_target[: traffic.count])
            on_target[index] = np.nan
            known = np.flatnonzero(~np.isnan(on_target))
            ahead = known[on_target[known] > s_new]
            behind = known[on_target[known] <= s_new]
            lead = ahead[np.argmin(on_target[ahead])] if len(ahead) else -1
            follow = behind[np.argmax(on_target[behind])] if len(behind) else -1
            lead_gap = on_target[lead] - s_new - NPC_LENGTH_M if lead >= 0 else np.inf
            lead_speed = speed_all[lead] if lead >= 0 else 0.0
            if lead_gap < 1.0:
                continue
            idm = _idm_for(params, index, cfg)
            new_accel = idm(traffic.speed_mps[index], desired_all[index], lead_gap, lead_speed)
            gain = new_accel - accel[index]
            if follow >= 0:
                follow_gap = s_new - on_target[follow] - NPC_LENGTH_M
                if follow_gap < 1.0:
                    continue
                follower = _idm_for(params, follow if follow < traffic.count else None, cfg)
                follow_new = follower(speed_all[follow], max(desired_all[follow], 0.1), follow_gap, traffic.speed_mps[index])
                if follow_new < -params.safe_decel_mps2[index]:
                    continue  # unsafe for the new follower
                follow_old = follower(speed_all[follow], max(desired_all[follow], 0.1), lead_gap + follow_gap + NPC_LENGTH_M, lead_speed)
                gain += params.politeness[index] * (follow_new - follow_old)
            if gain > best_gain:
                best, best_gain = int(target), gain
        if best >= 0:
            traffic.start_lane_change(int(index), best)


def _idm_for(params, index: int | None, cfg) -> callable:
    """Scalar IDM with NPC ``index``'s parameters (the config's for the ego or None)."""
    if index is None:
        headway, gap, a_max, b = cfg.time_headway_s, cfg.min_gap_m, cfg.max_accel_mps2, cfg.comfort_decel_mps2
    else:
        headway, gap = params.time_headway_s[index], params.min_gap_m[index]
        a_max, b = params.max_accel_mps2[index], params.comfort_decel_mps2[index]

    def idm(speed: float, desired: float, lead_gap: float, lead_speed: float) -> float:
        result = idm_acceleration(np.array([speed]), np.array([desired]), np.array([lead_gap]), np.array([lead_speed]),
                                  np.array([headway]), np.array([gap]), np.array([a_max]), np.array([b]), cfg.max_decel_mps2)
        return float(result[0])

    return idm


def expert_gap(world: DrivingWorld, ignore_traffic: bool = False) -> tuple[float, float]:
    """The expert's free distance along its route (vehicles, walkers, props, conflicts, stop lines) and the
    speed of what limits it."""
    if ignore_traffic:
        return math.inf, 0.0
    traffic, cfg, ego = world.traffic, world.config.traffic, world.ego
    distance = np.linspace(cfg.lookahead_m / cfg.path_points, cfg.lookahead_m, cfg.path_points)
    route_s = world.tracker.route_s_m
    points = world.planner.points_at(route_s + distance, world.lateral)
    index = np.minimum(((route_s + distance) / world.route.spacing_m).astype(np.int64), len(world.route.points) - 1)
    path = Paths(points[None], distance, world.route.in_junction[index][None])
    obstacles = Obstacles.concatenate([npc_obstacles(world, owned=False), world.decision_cache["others"],
                                       neighbour_lane_obstacles(world)])
    length = world.config.vehicle.length_m
    gaps, obstacle_speed, leader = leader_gaps(path, ego.xy[None], np.array([ego.yaw_rad]), np.array([length]), obstacles)
    gap, speed = float(gaps[0]), float(obstacle_speed[0])
    world.expert_leader = int(leader[0])
    world.expert_reason = _leader_reason(world, int(leader[0])) if np.isfinite(gap) else "free"
    if world.expert_reason == "lane blocker" and world.lateral is None:
        gap = max(gap - BLOCKER_STANDOFF_M, 0.0)  # wait with room to pull out around it
    # Stop line of the next controlled junction lane on the route.
    lane, entry_distance, inside = world.route_junction_ahead()
    light = int(world.lights.lane_state(np.array([max(lane, 0)]))[0]) if lane >= 0 else -1
    served = world.ego_served_lane >= 0 and world.ego_served_lane == lane
    stop = world.control.stop_gaps(np.array([lane]), np.array([entry_distance]), np.array([ego.speed_mps]),
                                   np.array([length / 2.0]), np.array([light]), np.array([served]),
                                   np.array([cfg.comfort_decel_mps2]), np.array([False]))[0]
    if stop < gap:
        gap, speed = float(stop), 0.0
        world.expert_reason = f"stop line of lane {lane}"
    # Junction conflicts with the NPCs' planned paths (privileged: the expert knows who will run a light).
    if traffic.count:
        npc_paths = world.decision_cache["npc_paths"]
        npc_rank = world.decision_cache["npc_rank"]
        approaching = np.isfinite(world.decision_cache["npc_next_distance"])
        npc_rank = np.where(traffic.params.ignore_lights & approaching, np.maximum(npc_rank, RANK_INSIDE - 0.5), npc_rank)
        my_rank = world.control.rank(np.array([lane]), np.array([inside]), np.array([light]), np.array([served]),
                                     np.array([False]))
        my_junction = world.network.segment_junction[lane] if lane >= 0 else -1
        near = np.flatnonzero(world.decision_cache["npc_junction"] == my_junction) if my_junction >= 0 else np.zeros(0, np.int64)
        # An NPC that does not give way to the ego takes one rank more: the expert does not insist on its right.
        bonus = np.where(world.decision_cache["npc_yields_to_ego"][near], 0.0, 1.0)
        yields_to = np.full(1, -1)
        conflict = conflict_gaps(path, np.array([ego.speed_mps]), my_rank, (np.zeros(len(near), np.int64), near),
                                 npc_paths, traffic.speed_mps, npc_rank, same_index=False,
                                 other_standing=traffic.stopped_s > STANDING_S, other_bonus=bonus,
                                 yields_to=yields_to)[0]
        if np.isfinite(conflict) and not inside and lane >= 0:
            conflict = min(conflict, max(entry_distance - length / 2.0, 0.0))  # give way at the line, not in the box
        if conflict < gap:
            gap, speed = float(conflict), 0.0
            world.expert_leader = int(yields_to[0])
            world.expert_reason = f"junction conflict with vehicle:{int(traffic.ids[yields_to[0]])}"
    return gap, speed


def _leader_reason(world: DrivingWorld, leader: int) -> str:
    """What an expert-obstacle row is (for diagnostics): NPCs, then lane blockers, then walkers."""
    count, blockers = world.traffic.count, int((world.statics.segment >= 0).sum())
    if leader < count:
        return f"vehicle:{int(world.traffic.ids[leader])}"
    if leader < count + blockers:
        return "lane blocker"
    if leader < len(world.decision_cache["others"]) + count:
        return "walker"
    return "vehicle in the neighbour lane"


def plan_passing(world: DrivingWorld) -> None:
    """Shift the expert into the neighbour lane to pass a lane blocker ahead, when that lane is clear."""
    network, statics = world.network, world.statics
    route_s = world.tracker.route_s_m
    if world.lateral is not None:
        if route_s > world.lateral.end_s:
            world.lateral = None
        return
    leader = world.expert_leader
    static_start = world.traffic.count  # expert obstacles: NPCs, then lane blockers, then walkers
    in_lanes = np.flatnonzero(statics.segment >= 0)
    if leader < static_start or leader >= static_start + len(in_lanes):
        return
    blocker = int(in_lanes[leader - static_start])
    lane = int(statics.segment[blocker])
    if lane < 0:
        return
    blocker_s = world.route_s_of(statics.boxes[blocker, :2])
    if blocker_s is None or blocker_s - route_s > PASS_LOOKAHEAD_M:
        return
    # The whole blocked stretch (a construction site is several cones) and room to get back before a junction.
    same = np.flatnonzero(statics.segment == lane)
    stretch = [world.route_s_of(statics.boxes[k, :2]) for k in same]
    stretch = [s for s in stretch if s is not None]
    end_s = max(stretch) + NPC_LENGTH_M / 2.0 + PASS_CLEARANCE_M
    junction_s = world.next_route_junction_s(route_s)
    if end_s + PASS_RAMP_M > junction_s:
        return
    for target, sign in ((network.left_neighbour[lane], -1.0), (network.right_neighbour[lane], 1.0)):
        if target < 0:
            continue
        width = float(network.width_m[network.segment_start[target]])
        if not _lane_clear(world, sign * width, 20.0, end_s + PASS_RAMP_M):
            continue
        start = max(route_s + 1.0, min(stretch) - PASS_RAMP_M - 10.0)
        # Planned late (the lane was busy and the ego waits behind the blocker): a steeper shift, done before it.
        full = min(start + PASS_RAMP_M, max(min(stretch) - PASS_BEFORE_BLOCKER_M, start + PASS_MIN_RAMP_M))
        world.lateral = LateralPlan(start, full, end_s, end_s + PASS_RAMP_M, sign * width)
        return


def _lane_clear(world: DrivingWorld, offset_m: float, behind_m: float, ahead_s: float) -> bool:
    """No vehicle in the lane ``offset_m`` to the side of the route (right positive) from ``behind_m`` behind the
    ego to route arc length ``ahead_s``, and none coming up from farther behind within 4 s (by geometry, not lane
    ids: a car on a junction lane or another segment of that lane counts too)."""
    traffic, route = world.traffic, world.route
    route_s = world.tracker.route_s_m
    for index in np.flatnonzero(np.hypot(*(traffic.xy - world.ego.xy).T) < ahead_s - route_s + 60.0):
        s = world.route_s_of(traffic.xy[index], max_lateral_m=abs(offset_m) + 3.0)
        if s is None:
            continue
        point = min(int(s / route.spacing_m), len(route.points) - 1)
        normal = np.array([-math.sin(route.yaw_rad[point]), math.cos(route.yaw_rad[point])])
        lateral = float((traffic.xy[index] - route.points[point]) @ normal)
        if abs(lateral - offset_m) > 0.6 * abs(offset_m):
            continue
        if route_s - behind_m < s < ahead_s:
            return False
        if s <= route_s - behind_m and traffic.speed_mps[index] * 4.0 > route_s - s:
            return False
    return True
