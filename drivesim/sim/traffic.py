"""NPC vehicles: lane-chain followers with per-driver IDM parameters, MOBIL lane changes and scripted control.

Each NPC drives along a chain of lane segments (the lane it is on and the next ones it picked at random),
at arc length ``s_m`` on the first. A lane change moves the NPC to the neighbour lane at once and blends its
drawn position from the old lane over ``LANE_CHANGE_S``. Per-NPC ``DriverParams`` make a share of drivers
aggressive (short headway, late braking, cutting in) or blind to lights and signs, as the Traffic Manager's
``ignore_lights_percentage``. Scenarios script NPCs through ``forced_speed_mps`` / ``forced_accel_mps2``.
"""

from __future__ import annotations

import functools

import numpy as np

from drivesim.sim.config import TrafficConfig
from drivesim.sim.gaps import DriverParams, Paths
from drivesim.sim.road import RoadNetwork

NPC_LENGTH_M, NPC_WIDTH_M = 4.6, 1.9
CHAIN = 6  # lane segments planned ahead per NPC
LANE_CHANGE_S = 3.0  # duration of an NPC lane change [s]
LANE_CHANGE_COOLDOWN_S = 6.0  # an NPC changes lanes at most this often [s]


@functools.lru_cache(maxsize=16)
def _path_distances(num_points: int, lookahead_m: float) -> np.ndarray:
    distance = np.linspace(lookahead_m / num_points, lookahead_m, num_points)
    distance.flags.writeable = False
    return distance


def straightest_chain(network: RoadNetwork, segment: int, length: int = CHAIN) -> np.ndarray:
    """A chain from ``segment`` always taking the successor that turns least (-1 past a dead end)."""
    starts = network.segment_start
    chain = [segment]
    while len(chain) < length:
        options = network.successors[chain[-1]] if chain[-1] >= 0 else []
        if not options:
            chain.append(-1)
            continue
        exit_yaw = network.yaw_rad[starts[chain[-1]] + network.segment_count[chain[-1]] - 1]
        turn = np.abs(np.angle(np.exp(1j * (network.yaw_rad[starts[options]] - exit_yaw))))
        chain.append(int(options[int(np.argmin(turn))]))
    return np.array(chain, dtype=np.int64)


def chain_paths(network: RoadNetwork, chain: np.ndarray, s_m: np.ndarray, num_points: int, lookahead_m: float) -> Paths:
    """Look-ahead paths (V, P) along lane-segment chains (V, CHAIN) from arc lengths ``s_m`` (V,)."""
    distance = _path_distances(num_points, lookahead_m)
    count = len(chain)
    if count == 0:
        empty = np.zeros((0, num_points), dtype=np.int64)
        return Paths(np.zeros((0, num_points, 2)), distance, empty.astype(bool), empty)
    valid = chain >= 0
    lengths = np.where(valid, network.segment_length_m[np.maximum(chain, 0)], np.inf)
    ends = np.cumsum(lengths, axis=1)  # (V, CHAIN) arc length at each chain segment's end
    target = s_m[:, None] + distance[None, :]  # (V, P) arc length from the first segment's start
    link = np.minimum((target[:, :, None] >= ends[:, None, :]).sum(-1), chain.shape[1] - 1)  # (V, P)
    starts = np.concatenate([np.zeros((count, 1)), ends[:, :-1]], axis=1)
    rows = np.arange(count)[:, None]
    segment = np.maximum(chain[rows, link], 0)
    local_s = np.minimum(target - starts[rows, link], network.segment_length_m[segment])
    base, frac = network.locate(segment, local_s)
    points = network.points[base] + (network.points[base + 1] - network.points[base]) * frac[..., None]
    return Paths(points, distance, network.segment_in_junction[segment], base)


def next_junction_lane(network: RoadNetwork, chain: np.ndarray, s_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First junction lane of each chain (V,) (the current one if inside; -1 if none) and the distance from
    arc length ``s_m`` to its entry (V,) [m] (negative when inside)."""
    valid = chain >= 0
    junction = valid & network.segment_in_junction[np.maximum(chain, 0)]
    has = junction.any(1)
    first = junction.argmax(1)
    lengths = np.where(valid, network.segment_length_m[np.maximum(chain, 0)], 0.0)
    before = np.cumsum(lengths, axis=1) - lengths  # arc length of each chain segment's start
    rows = np.arange(len(chain))
    lane = np.where(has, chain[rows, first], -1)
    return lane, np.where(has, before[rows, first] - s_m, np.inf)


class NpcTraffic:
    """State of all NPCs: lane chain, arc length, speed, driver parameters; advanced by ``step``."""

    def __init__(self, network: RoadNetwork, config: TrafficConfig, rng: np.random.Generator) -> None:
        self.network = network
        self.config = config
        self.rng = rng
        self.chain = np.zeros((0, CHAIN), dtype=np.int64)
        self.s_m = np.zeros(0)
        self.speed_mps = np.zeros(0)
        self.ids = np.zeros(0, dtype=np.int64)
        self.params = self._sample_params(0)
        self.lane_change_from = np.zeros(0, dtype=np.int64)  # segment left by a lane change in progress, -1 none
        self.lane_change_t = np.zeros(0)  # progress of that lane change [0, 1]
        self.cooldown_s = np.zeros(0)  # time until the next lane change is allowed [s]
        self.served_lane = np.zeros(0, dtype=np.int64)  # stop-sign lane already stopped at, -1 none
        self.hold_s = np.zeros(0)  # standstill left after a collision [s]
        self.stopped_s = np.zeros(0)  # how long it has been standing [s]
        self.forced_speed_mps = np.zeros(0)  # scripted target speed, nan where free
        self.forced_accel_mps2 = np.zeros(0)  # scripted acceleration, nan where free
        self._next_id = 1
        spacing = max(config.min_spawn_gap_m / 2.0, 4.0)
        self._spawn_segments, self._spawn_s = network.spawn_candidates(spacing_m=spacing)
        self.xy = np.zeros((0, 2))
        self.yaw_rad = np.zeros(0)

    PER_NPC = ("chain", "s_m", "speed_mps", "ids", "lane_change_from", "lane_change_t", "cooldown_s", "served_lane",
               "hold_s", "stopped_s", "forced_speed_mps", "forced_accel_mps2")

    @property
    def count(self) -> int:
        return len(self.s_m)

    # ------------------------------------------------------------------------------------------ set-up
    def _sample_params(self, count: int, aggressive: np.ndarray | None = None) -> DriverParams:
        """Driver parameters: normal drivers around the config's IDM values, a share aggressive, a share blind."""
        cfg, rng = self.config, self.rng
        if aggressive is None:
            aggressive = rng.random(count) < cfg.aggressive_share
        jitter = rng.uniform(0.85, 1.15, size=(4, count))
        low, high = cfg.desired_speed_mps
        cap = rng.uniform(low, high, size=count) * np.where(aggressive, 1.2, 1.0)
        return DriverParams(
            desired_factor=np.where(aggressive, rng.uniform(1.0, 1.15, count), rng.uniform(0.8, 1.0, count)),
            desired_cap_mps=cap,
            time_headway_s=np.where(aggressive, 0.6, cfg.time_headway_s) * jitter[0],
            min_gap_m=np.where(aggressive, 1.2, cfg.min_gap_m) * jitter[1],
            max_accel_mps2=np.where(aggressive, 1.5, 1.0) * cfg.max_accel_mps2 * jitter[2],
            comfort_decel_mps2=np.where(aggressive, 1.6, 1.0) * cfg.comfort_decel_mps2 * jitter[3],
            politeness=np.where(aggressive, 0.0, cfg.politeness),
            safe_decel_mps2=np.where(aggressive, cfg.max_decel_mps2 * 0.75, cfg.safe_decel_mps2),
            ignore_lights=rng.random(count) < cfg.ignore_lights_share,
            aggressive=aggressive,
        )

    def _append(self, chain: np.ndarray, s_m: np.ndarray, speed: np.ndarray, params: DriverParams) -> np.ndarray:
        count = len(s_m)
        ids = np.arange(self._next_id, self._next_id + count)
        self._next_id += count
        new = {
            "chain": chain.reshape(-1, CHAIN), "s_m": s_m, "speed_mps": speed, "ids": ids,
            "lane_change_from": np.full(count, -1), "lane_change_t": np.ones(count), "cooldown_s": np.zeros(count),
            "served_lane": np.full(count, -1), "hold_s": np.zeros(count), "stopped_s": np.zeros(count),
            "forced_speed_mps": np.full(count, np.nan), "forced_accel_mps2": np.full(count, np.nan),
        }
        for name in self.PER_NPC:
            setattr(self, name, np.concatenate([getattr(self, name), new[name]]))
        self.params = DriverParams.concatenate([self.params, params])
        self._update_pose()
        return ids

    def _extend_chain(self, first_segment: int) -> np.ndarray:
        chain = [first_segment]
        for _ in range(CHAIN - 1):
            options = self.network.successors[chain[-1]] if chain[-1] >= 0 else []
            chain.append(int(options[self.rng.integers(len(options))]) if options else -1)
        return np.array(chain)

    def spawn(self, count: int, avoid_xy: np.ndarray, avoid_radius_m: np.ndarray | float) -> None:
        """Place ``count`` NPCs at random spawn candidates, spaced and away from ``avoid_xy`` (K, 2)."""
        if count <= 0 or len(self._spawn_segments) == 0:
            return
        order = self.rng.permutation(len(self._spawn_segments))
        spawn_xy, _ = self.network.pose_at(self._spawn_segments[order], self._spawn_s[order])
        taken = np.atleast_2d(np.asarray(avoid_xy, dtype=float)).reshape(-1, 2)
        radii = np.broadcast_to(np.asarray(avoid_radius_m, dtype=float), len(taken))
        taken_list, radii_list = list(taken), list(radii)
        chosen: list[int] = []
        for index, xy in zip(order, spawn_xy, strict=True):
            if len(chosen) >= count:
                break
            if taken_list and np.any(np.hypot(*(np.array(taken_list) - xy).T) < np.array(radii_list)):
                continue
            chosen.append(index)
            taken_list.append(xy)
            radii_list.append(self.config.min_spawn_gap_m)
        chosen_array = np.array(chosen, dtype=np.int64)
        chain = np.array([self._extend_chain(int(self._spawn_segments[i])) for i in chosen], dtype=np.int64)
        params = self._sample_params(len(chosen))
        self._append(chain, self._spawn_s[chosen_array], params.desired_cap_mps * 0.5, params)

    def place(self, segment: int, s_m: float, speed_mps: float, desired_mps: float, aggressive: bool = False,
              ignore_lights: bool = False) -> int:
        """Add one NPC at arc length ``s_m`` of ``segment`` (scenarios, tests); returns its id."""
        params = self._sample_params(1, np.array([aggressive]))
        params.desired_cap_mps[:] = desired_mps
        params.desired_factor[:] = np.inf  # an explicit desired speed: the speed limit does not apply
        params.ignore_lights[:] = ignore_lights
        ids = self._append(self._extend_chain(segment)[None], np.array([s_m], float), np.array([speed_mps], float), params)
        return int(ids[0])

    def remove(self, keep: np.ndarray) -> None:
        """Keep only the NPCs where ``keep`` (N,) is True."""
        for name in self.PER_NPC:
            setattr(self, name, getattr(self, name)[keep])
        self.params = self.params.select(keep)
        self._update_pose()

    def index_of(self, npc_id: int) -> int:
        matches = np.flatnonzero(self.ids == npc_id)
        if len(matches) == 0:
            raise KeyError(f"no NPC with id {npc_id}")
        return int(matches[0])

    # ------------------------------------------------------------------------------------------ queries
    def _update_pose(self) -> None:
        self.xy, self.yaw_rad = self.network.pose_at(self.chain[:, 0], self.s_m)
        changing = np.flatnonzero((self.lane_change_from >= 0) & (self.lane_change_t < 1.0))
        if len(changing):
            old = self.lane_change_from[changing]
            new = self.chain[changing, 0]
            old_s = self.s_m[changing] * self.network.segment_length_m[old] / self.network.segment_length_m[new]
            old_xy, _ = self.network.pose_at(old, old_s)
            t = self.lane_change_t[changing]
            weight = t * t * (3.0 - 2.0 * t)  # smoothstep from the old lane to the new
            lateral = self.xy[changing] - old_xy
            self.xy[changing] = old_xy + lateral * weight[:, None]
            # Heading: the lane's plus the angle of the sideways motion (positive yaw turns right, towards +y).
            yaw = self.yaw_rad[changing]
            sideways = -np.sin(yaw) * lateral[:, 0] + np.cos(yaw) * lateral[:, 1]  # offset to the right [m]
            rate = sideways * 6.0 * t * (1.0 - t) / LANE_CHANGE_S  # [m/s]
            self.yaw_rad[changing] = yaw + np.arctan2(rate, np.maximum(self.speed_mps[changing], 1.0))

    def desired_speed(self, speed_limit_mps: np.ndarray) -> np.ndarray:
        """Desired speed (N,) on the current lanes [m/s] given their speed limits (N,)."""
        return np.minimum(self.params.desired_factor * speed_limit_mps, self.params.desired_cap_mps)

    def paths(self, num_points: int, lookahead_m: float) -> Paths:
        """Look-ahead paths along each NPC's planned segment chain."""
        return chain_paths(self.network, self.chain, self.s_m, num_points, lookahead_m)

    # ------------------------------------------------------------------------------------------ motion
    def start_lane_change(self, index: int, target_segment: int) -> None:
        """Move NPC ``index`` to the neighbour lane ``target_segment`` (position blended over LANE_CHANGE_S)."""
        old = int(self.chain[index, 0])
        self.s_m[index] *= self.network.segment_length_m[target_segment] / self.network.segment_length_m[old]
        self.chain[index] = self._extend_chain(target_segment)
        self.lane_change_from[index] = old
        self.lane_change_t[index] = 0.0
        self.cooldown_s[index] = LANE_CHANGE_COOLDOWN_S
        self._update_pose()

    def step(self, accel_mps2: np.ndarray, dt_s: float) -> None:
        """Advance speeds and positions; move along the chains; drop NPCs that reached a dead end."""
        held = self.hold_s > 0.0
        self.speed_mps = np.where(held, 0.0, np.maximum(self.speed_mps + accel_mps2 * dt_s, 0.0))
        self.hold_s = np.maximum(self.hold_s - dt_s, 0.0)
        self.s_m = self.s_m + self.speed_mps * dt_s
        self.cooldown_s = np.maximum(self.cooldown_s - dt_s, 0.0)
        # The sideways move progresses with forward motion (a car standing still does not drift sideways).
        progress = dt_s / LANE_CHANGE_S * np.minimum(self.speed_mps / 3.0, 1.0)
        self.lane_change_t = np.minimum(self.lane_change_t + progress, 1.0)
        self.stopped_s = np.where(self.speed_mps < 0.1, self.stopped_s + dt_s, 0.0)
        lengths = self.network.segment_length_m[self.chain[:, 0]]
        for index in np.nonzero(self.s_m >= lengths)[0]:
            while self.chain[index, 0] >= 0 and self.s_m[index] >= self.network.segment_length_m[self.chain[index, 0]]:
                self.s_m[index] -= self.network.segment_length_m[self.chain[index, 0]]
                tail = self.chain[index, -1]
                options = self.network.successors[tail] if tail >= 0 else []
                following = int(options[self.rng.integers(len(options))]) if options else -1
                self.chain[index] = np.append(self.chain[index, 1:], following)
                self.lane_change_from[index] = -1
        self._update_pose_safe()

    def _update_pose_safe(self) -> None:
        """Pose update that tolerates NPCs whose chain ran out (they are removed by the world)."""
        dead = self.chain[:, 0] < 0
        if dead.any():
            self.chain[dead, 0] = 0
            self._update_pose()
            self.chain[dead, 0] = -1
        else:
            self._update_pose()

    def dead_ends(self) -> np.ndarray:
        """NPCs (N,) whose chain ran out: they drove off a dead end."""
        return self.chain[:, 0] < 0
