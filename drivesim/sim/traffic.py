"""NPC traffic: lane-following vehicles with IDM gap keeping and junction yielding, vectorised over all.

Every vehicle (NPCs and the ego) is described by a look-ahead path of ``path_points`` samples. Obstacles
come from two array computations over that common representation, so the ego's expert and the NPCs obey
the same rules:
- a vehicle whose centre lies on my path ahead is my leader (gap = path distance minus half lengths);
- where my path and another's cross inside a junction, whoever arrives later (inside-the-junction first,
  then earlier arrival, then lower index) stops before the conflict point.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from drivesim.sim.config import TrafficConfig
from drivesim.sim.road import RoadNetwork

NPC_LENGTH_M, NPC_WIDTH_M = 4.6, 1.9
ON_PATH_M = 1.9  # a vehicle centre this close to my path is in my lane [m]
CONFLICT_M = 2.6  # paths this close inside a junction conflict [m]
STOP_BEFORE_CONFLICT_M = 3.5  # where a yielding vehicle stops, before the conflict point [m]
CHAIN = 6  # lane segments planned ahead per NPC


@dataclass
class Paths:
    """Look-ahead paths of V vehicles: points (V, P, 2), distances along the path (P,), junction flags."""

    points: np.ndarray
    distance_m: np.ndarray
    in_junction: np.ndarray  # (V, P) bool
    samples: np.ndarray | None = None  # (V, P) lane-sample index of each point, where known


def curvature_speed_limit(network: RoadNetwork, paths: Paths, max_lateral_accel_mps2: float) -> np.ndarray:
    """Lowest speed (V,) along each lane path such that v^2 * curvature <= ``max_lateral_accel_mps2``."""
    kappa = network.curvature[paths.samples].max(axis=1)
    return np.sqrt(max_lateral_accel_mps2 / np.maximum(kappa, 1e-4))


def obstacle_gaps(
    positions: np.ndarray, yaw_rad: np.ndarray, speeds: np.ndarray, lengths: np.ndarray, paths: Paths
) -> tuple[np.ndarray, np.ndarray]:
    """Free distance ahead (V,) [m] and the speed of what limits it (V,) [m/s] for every vehicle.

    Only pairs of vehicles closer than the look-ahead are examined.
    """
    count = len(positions)
    if count < 2:
        return np.full(count, np.inf), np.zeros(count)
    reach = paths.distance_m[-1] + 2.0 * ON_PATH_M
    delta = positions[:, None, :] - positions[None, :, :]
    near = (np.abs(delta[..., 0]) < reach) & (np.abs(delta[..., 1]) < reach)
    np.fill_diagonal(near, False)
    mine, other = np.nonzero(near)
    # Leaders: the other vehicle's centre lies on my path ahead.
    offset = paths.points[mine] - positions[other][:, None, :]  # (pairs, P, 2)
    on_path = (offset[..., 0] ** 2 + offset[..., 1] ** 2) < ON_PATH_M**2
    has_leader = on_path.any(1)
    pair_gap = np.where(
        has_leader, paths.distance_m[on_path.argmax(1)] - 0.5 * (lengths[mine] + lengths[other]), np.inf
    )
    gap_matrix = np.full((count, count), np.inf)
    gap_matrix[mine, other] = pair_gap
    leader = gap_matrix.argmin(axis=1)
    gaps = gap_matrix[np.arange(count), leader]
    heading = np.maximum(np.cos(yaw_rad[leader] - yaw_rad), 0.0)
    obstacle_speed = np.where(np.isfinite(gaps), speeds[leader] * heading, 0.0)
    # Junction conflicts: my path and the other's come close inside a junction.
    both = paths.in_junction[mine].any(1) & paths.in_junction[other].any(1)
    if both.any():
        a, b = mine[both], other[both]
        pa, pb = paths.points[a], paths.points[b]
        gap_ab = (pa[:, :, None, 0] - pb[:, None, :, 0]) ** 2 + (pa[:, :, None, 1] - pb[:, None, :, 1]) ** 2
        close = (gap_ab < CONFLICT_M**2) & paths.in_junction[a][:, :, None] & paths.in_junction[b][:, None, :]
        close_a, close_b = close.any(2), close.any(1)
        conflict = close_a.any(1)
        dist_a = paths.distance_m[close_a.argmax(1)]
        dist_b = paths.distance_m[close_b.argmax(1)]
        inside = paths.in_junction[:, 0]
        arrive_a = dist_a / np.maximum(speeds[a], 1.0)
        arrive_b = dist_b / np.maximum(speeds[b], 1.0)
        # b goes first if it is inside and a is not, else if it arrives clearly earlier, else lower index.
        same_state = inside[b] == inside[a]
        b_first = (inside[b] & ~inside[a]) | (
            same_state & ((arrive_b < arrive_a - 0.25) | ((np.abs(arrive_b - arrive_a) <= 0.25) & (b < a)))
        )
        # Once committed (inside and close to the conflict point), a vehicle does not stop in the box.
        committed = inside[a] & (dist_a < STOP_BEFORE_CONFLICT_M + 1.0)
        yield_gap = np.where(conflict & b_first & ~committed, np.maximum(dist_a - STOP_BEFORE_CONFLICT_M, 0.0), np.inf)
        conflict_matrix = np.full((count, count), np.inf)
        conflict_matrix[a, b] = yield_gap
        conflict_gap = conflict_matrix.min(axis=1)
        tighter = conflict_gap < gaps
        gaps = np.where(tighter, conflict_gap, gaps)
        obstacle_speed = np.where(tighter, 0.0, obstacle_speed)
    return gaps, obstacle_speed


def idm_acceleration(speed: np.ndarray, desired: np.ndarray, gap: np.ndarray, obstacle_speed: np.ndarray,
                     config: TrafficConfig) -> np.ndarray:
    """Intelligent Driver Model acceleration (Treiber et al. 2000), clipped to the hard braking limit."""
    a_max, b = config.max_accel_mps2, config.comfort_decel_mps2
    approach = speed - obstacle_speed
    desired_gap = config.min_gap_m + np.maximum(speed * config.time_headway_s + speed * approach / (2 * np.sqrt(a_max * b)), 0.0)
    free = 1.0 - (speed / np.maximum(desired, 0.1)) ** 4
    interaction = np.where(np.isfinite(gap), (desired_gap / np.maximum(gap, 0.1)) ** 2, 0.0)
    return np.minimum(np.maximum(a_max * (free - interaction), -config.max_decel_mps2), a_max)


@functools.lru_cache(maxsize=16)
def _path_distances(num_points: int, lookahead_m: float) -> np.ndarray:
    distance = np.linspace(lookahead_m / num_points, lookahead_m, num_points)
    distance.flags.writeable = False
    return distance


class NpcTraffic:
    """State of all NPCs: lane segment chain, arc length, speed; advanced by ``step``."""

    def __init__(self, network: RoadNetwork, config: TrafficConfig, rng: np.random.Generator) -> None:
        self.network = network
        self.config = config
        self.rng = rng
        self.chain = np.zeros((0, CHAIN), dtype=np.int64)
        self.s_m = np.zeros(0)
        self.speed_mps = np.zeros(0)
        self.desired_mps = np.zeros(0)
        self.ids = np.zeros(0, dtype=np.int64)
        self._next_id = 1
        spacing = max(config.min_spawn_gap_m / 2.0, 4.0)
        self._spawn_segments, self._spawn_s = network.spawn_candidates(spacing_m=spacing)
        self.xy = np.zeros((0, 2))
        self.yaw_rad = np.zeros(0)

    @property
    def count(self) -> int:
        return len(self.s_m)

    def _extend_chain(self, first_segment: int) -> np.ndarray:
        chain = [first_segment]
        for _ in range(CHAIN - 1):
            options = self.network.successors[chain[-1]]
            chain.append(int(options[self.rng.integers(len(options))]) if options else -1)
        return np.array(chain)

    def spawn(self, count: int, avoid_xy: np.ndarray, avoid_radius_m: float) -> None:
        """Place ``count`` NPCs at random spawn candidates, spaced and away from ``avoid_xy`` (K, 2)."""
        order = self.rng.permutation(len(self._spawn_segments))
        spawn_xy, _ = self.network.pose_at(self._spawn_segments[order], self._spawn_s[order])
        chosen: list[int] = []
        taken = [np.asarray(p) for p in np.atleast_2d(avoid_xy)]
        radii = [avoid_radius_m] * len(taken)
        for index, xy in zip(order, spawn_xy, strict=True):
            if len(chosen) >= count:
                break
            if taken and np.any(np.hypot(*(np.array(taken) - xy).T) < np.array(radii)):
                continue
            chosen.append(index)
            taken.append(xy)
            radii.append(self.config.min_spawn_gap_m)
        new_chain = np.array([self._extend_chain(int(self._spawn_segments[i])) for i in chosen], dtype=np.int64)
        new_chain = new_chain.reshape(-1, CHAIN)
        chosen = np.array(chosen, dtype=np.int64)
        low, high = self.config.desired_speed_mps
        desired = self.rng.uniform(low, high, size=len(chosen))
        self.chain = np.concatenate([self.chain, new_chain])
        self.s_m = np.concatenate([self.s_m, self._spawn_s[chosen]])
        self.speed_mps = np.concatenate([self.speed_mps, desired * 0.5])
        self.desired_mps = np.concatenate([self.desired_mps, desired])
        self.ids = np.concatenate([self.ids, np.arange(self._next_id, self._next_id + len(chosen))])
        self._next_id += len(chosen)
        self._update_pose()

    def place(self, segment: int, s_m: float, speed_mps: float, desired_mps: float) -> int:
        """Add one NPC at arc length ``s_m`` of ``segment`` (scenario set-up, tests); returns its id."""
        self.chain = np.concatenate([self.chain, self._extend_chain(segment)[None]])
        self.s_m = np.append(self.s_m, s_m)
        self.speed_mps = np.append(self.speed_mps, speed_mps)
        self.desired_mps = np.append(self.desired_mps, desired_mps)
        self.ids = np.append(self.ids, self._next_id)
        self._next_id += 1
        self._update_pose()
        return int(self.ids[-1])

    def _update_pose(self) -> None:
        self.xy, self.yaw_rad = self.network.pose_at(self.chain[:, 0], self.s_m)

    def paths(self, num_points: int, lookahead_m: float) -> Paths:
        """Look-ahead paths along each NPC's planned segment chain."""
        distance = _path_distances(num_points, lookahead_m)
        if self.count == 0:
            empty = np.zeros((0, num_points), dtype=np.int64)
            return Paths(np.zeros((0, num_points, 2)), distance, empty.astype(bool), empty)
        valid = self.chain >= 0
        lengths = np.where(valid, self.network.segment_length_m[np.maximum(self.chain, 0)], np.inf)
        ends = np.cumsum(lengths, axis=1)  # (N, CHAIN) arc length at each chain segment's end
        target = self.s_m[:, None] + distance[None, :]  # (N, P) arc length from the first segment's start
        link = np.minimum((target[:, :, None] >= ends[:, None, :]).sum(-1), CHAIN - 1)  # (N, P)
        starts = np.concatenate([np.zeros((self.count, 1)), ends[:, :-1]], axis=1)
        rows = np.arange(self.count)[:, None]
        segment = np.maximum(self.chain[rows, link], 0)
        local_s = np.minimum(target - starts[rows, link], self.network.segment_length_m[segment])
        base, frac = self.network.locate(segment, local_s)
        points = self.network.points[base] + (self.network.points[base + 1] - self.network.points[base]) * frac[..., None]
        return Paths(points, distance, self.network.segment_in_junction[segment], base)

    def step(self, accel_mps2: np.ndarray, dt_s: float, avoid_xy: np.ndarray) -> None:
        """Advance speeds and positions; move to the next chain segment; respawn at dead ends."""
        self.speed_mps = np.maximum(self.speed_mps + accel_mps2 * dt_s, 0.0)
        self.s_m = self.s_m + self.speed_mps * dt_s
        lengths = self.network.segment_length_m[self.chain[:, 0]]
        for index in np.nonzero(self.s_m >= lengths)[0]:
            while self.chain[index, 0] >= 0 and self.s_m[index] >= self.network.segment_length_m[self.chain[index, 0]]:
                self.s_m[index] -= self.network.segment_length_m[self.chain[index, 0]]
                tail = self.chain[index, -1]
                options = self.network.successors[tail] if tail >= 0 else []
                following = int(options[self.rng.integers(len(options))]) if options else -1
                self.chain[index] = np.append(self.chain[index, 1:], following)
        dead = self.chain[:, 0] < 0
        if dead.any():
            keep = ~dead
            for name in ("chain", "s_m", "speed_mps", "desired_mps", "ids"):
                setattr(self, name, getattr(self, name)[keep])
            self._update_pose()
            self.spawn(int(dead.sum()), np.concatenate([np.atleast_2d(avoid_xy), self.xy]), 30.0)
        self._update_pose()
