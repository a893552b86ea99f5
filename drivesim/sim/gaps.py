"""What limits each vehicle's speed: leaders on its path, junction conflicts by right of way, and IDM.

Every vehicle that decides (an NPC, or the ego's expert) is described by a look-ahead path of P samples; every
thing it may run into (vehicles, parked cars, props, walkers) is an ``Obstacles`` row. Two array computations
over that common representation give the free distance ahead, so NPCs and the expert obey the same rules:
- an obstacle whose centre lies within its lateral reach of my path ahead is my leader (gap = path distance
  minus half lengths);
- where my path and another mover's cross inside a junction, the one with the lower right of way (``rank``)
  stops before the conflict point; at equal rank the one inside the junction goes first, then the earlier
  arrival, then the lower index. Right of way comes from the map's control of the junction lane (see
  ``drivesim.sim.control``), never from the other's route: an NPC sees the ego only through the ego's lane and
  velocity, as it sees every other vehicle.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CONFLICT_M = 2.6  # paths this close inside a junction conflict [m]
STOP_BEFORE_CONFLICT_M = 3.5  # where a yielding vehicle stops, before the conflict point [m]
STANDING_S = 2.0  # a mover standing this long is not waited for at junctions [s]
ARRIVAL_TIE_S = 0.25  # arrivals closer than this count as simultaneous [s]
ARRIVAL_ACCEL_MPS2 = 1.5  # arrival times assume this acceleration from the current speed [m/s^2]
VEHICLE_HALF_WIDTH_M = 0.95  # lateral reach of a path: obstacle half width plus this [m]


@dataclass
class Paths:
    """Look-ahead paths of V vehicles: points (V, P, 2), distances along the path (P,), junction flags."""

    points: np.ndarray
    distance_m: np.ndarray
    in_junction: np.ndarray  # (V, P) bool
    samples: np.ndarray | None = None  # (V, P) lane-sample index of each point, where known

    def __len__(self) -> int:
        return len(self.points)

    @staticmethod
    def concatenate(parts: list[Paths]) -> Paths:
        samples = None
        if all(part.samples is not None for part in parts):
            samples = np.concatenate([part.samples for part in parts])
        return Paths(np.concatenate([part.points for part in parts]), parts[0].distance_m,
                     np.concatenate([part.in_junction for part in parts]), samples)


@dataclass
class Obstacles:
    """Things on the road, (O,) arrays: centre, heading, speed, length, half width, and whose they are."""

    xy: np.ndarray  # (O, 2) [m]
    yaw_rad: np.ndarray
    speed_mps: np.ndarray
    length_m: np.ndarray
    half_width_m: np.ndarray
    owner: np.ndarray  # (O,) index of the decider this obstacle is (never its own leader), -1 for none

    def __len__(self) -> int:
        return len(self.xy)

    @staticmethod
    def concatenate(parts: list[Obstacles]) -> Obstacles:
        return Obstacles(*(np.concatenate([getattr(part, name) for part in parts]) for name in
                           ("xy", "yaw_rad", "speed_mps", "length_m", "half_width_m", "owner")))


def leader_gaps(paths: Paths, xy: np.ndarray, yaw_rad: np.ndarray, length_m: np.ndarray,
                obstacles: Obstacles) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Free distance to the nearest obstacle on each decider's path.

    Args:
        paths: (D) deciders' look-ahead paths.
        xy, yaw_rad, length_m: (D,) the deciders' centres, headings and lengths.
        obstacles: (O) what may block them.

    Returns:
        gap (D,) [m] (inf where free), the obstacle's speed along the decider's heading (D,) [m/s], and the
        obstacle row (D,) (-1 where free).
    """
    count = len(paths)
    gaps, speeds, leader = np.full(count, np.inf), np.zeros(count), np.full(count, -1)
    if count == 0 or len(obstacles) == 0:
        return gaps, speeds, leader
    reach = paths.distance_m[-1] + 3.0
    delta = obstacles.xy[None, :, :] - xy[:, None, :]
    near = (np.abs(delta[..., 0]) < reach) & (np.abs(delta[..., 1]) < reach)
    near &= obstacles.owner[None, :] != np.arange(count)[:, None]
    mine, other = np.nonzero(near)
    if len(mine) == 0:
        return gaps, speeds, leader
    offset = paths.points[mine] - obstacles.xy[other][:, None, :]  # (pairs, P, 2)
    lateral = (obstacles.half_width_m[other] + VEHICLE_HALF_WIDTH_M)[:, None]
    on_path = (offset[..., 0] ** 2 + offset[..., 1] ** 2) < lateral**2
    hit = on_path.any(1)
    mine, other, on_path = mine[hit], other[hit], on_path[hit]
    if len(mine) == 0:
        return gaps, speeds, leader
    pair_gap = paths.distance_m[on_path.argmax(1)] - 0.5 * (length_m[mine] + obstacles.length_m[other])
    order = np.lexsort((pair_gap, mine))  # per decider, nearest first
    mine, other, pair_gap = mine[order], other[order], pair_gap[order]
    first = np.concatenate([[True], mine[1:] != mine[:-1]])
    mine, other, pair_gap = mine[first], other[first], pair_gap[first]
    gaps[mine] = pair_gap
    heading = np.maximum(np.cos(obstacles.yaw_rad[other] - yaw_rad[mine]), 0.0)
    speeds[mine] = obstacles.speed_mps[other] * heading
    leader[mine] = other
    return gaps, speeds, leader


def conflict_gaps(
    paths: Paths, speed_mps: np.ndarray, rank: np.ndarray, pairs: tuple[np.ndarray, np.ndarray],
    other_paths: Paths | None = None, other_speed_mps: np.ndarray | None = None, other_rank: np.ndarray | None = None,
    same_index: bool = True, other_standing: np.ndarray | None = None, other_bonus: np.ndarray | None = None,
    yields_to: np.ndarray | None = None,
) -> np.ndarray:
    """Where each decider must stop to give way at junction conflicts (D,) [m] (inf where it goes first).

    Args:
        paths, speed_mps, rank: (D) the deciders.
        pairs: (mine, other) candidate pairs: decider index, other-mover index.
        other_paths, other_speed_mps, other_rank: the other movers (default: the deciders themselves).
        same_index: Whether other index k is decider k (index order breaks exact ties).
        other_standing: (O,) movers that have been standing a while: nobody waits for them (gridlock breaker;
            leaders on the path still stop a vehicle before it touches one).
        other_bonus: (K,) extra right of way of the other in each pair (the expert gives way to who will not).
        yields_to: (D,) filled with the other mover each decider gives way to (-1: none).
    """
    gaps = np.full(len(paths), np.inf)
    other_paths = paths if other_paths is None else other_paths
    other_speed_mps = speed_mps if other_speed_mps is None else other_speed_mps
    other_rank = rank if other_rank is None else other_rank
    a, b = pairs
    bonus = np.zeros(len(a)) if other_bonus is None else np.asarray(other_bonus, dtype=float)
    both = paths.in_junction[a].any(1) & other_paths.in_junction[b].any(1)
    if other_standing is not None:
        both &= ~other_standing[b]
    a, b, bonus = a[both], b[both], bonus[both]
    if yields_to is not None:
        yields_to[:] = -1
    if len(a) == 0:
        return gaps
    pa, pb = paths.points[a], other_paths.points[b]
    gap_ab = (pa[:, :, None, 0] - pb[:, None, :, 0]) ** 2 + (pa[:, :, None, 1] - pb[:, None, :, 1]) ** 2
    # Following, not crossing: one path runs through where the other vehicle is now (its first path point), in
    # the other's direction: the one behind waits as a follower (leader gaps), nobody gives way at the junction.
    following = _runs_through(gap_ab[:, 0, :], pb, pa) | _runs_through(gap_ab[:, :, 0], pa, pb)
    close = (gap_ab < CONFLICT_M**2) & paths.in_junction[a][:, :, None] & other_paths.in_junction[b][:, None, :]
    close &= ~following[:, None, None]
    close_a, close_b = close.any(2), close.any(1)
    conflict = close_a.any(1)
    dist_a = paths.distance_m[close_a.argmax(1)]
    dist_b = other_paths.distance_m[close_b.argmax(1)]
    inside_a, inside_b = paths.in_junction[a, 0], other_paths.in_junction[b, 0]
    arrive_a = arrival_s(dist_a, speed_mps[a])
    arrive_b = arrival_s(dist_b, other_speed_mps[b])
    rank_a, rank_b = rank[a], other_rank[b] + bonus
    tie = np.abs(arrive_b - arrive_a) <= ARRIVAL_TIE_S
    index_first = (b < a) if same_index else np.zeros(len(a), dtype=bool)
    same = rank_a == rank_b
    b_first = (rank_b > rank_a) | (same & (
        (inside_b & ~inside_a) | ((inside_b == inside_a) & ((arrive_b < arrive_a - ARRIVAL_TIE_S) | (tie & index_first))))
    )
    # Once committed (inside and close to the conflict point), a vehicle does not stop in the box.
    committed = inside_a & (dist_a < STOP_BEFORE_CONFLICT_M + 1.0)
    yield_gap = np.where(conflict & b_first & ~committed, np.maximum(dist_a - STOP_BEFORE_CONFLICT_M, 0.0), np.inf)
    np.minimum.at(gaps, a, yield_gap)
    if yields_to is not None:
        giving = np.isfinite(yield_gap)
        yields_to[a[giving]] = b[giving]
    return gaps


def arrival_s(distance_m: np.ndarray, speed_mps: np.ndarray) -> np.ndarray:
    """Time to cover ``distance_m`` from ``speed_mps`` accelerating at ``ARRIVAL_ACCEL_MPS2`` (no faster than
    holding the speed: a car at standstill is not infinitely late)."""
    a = ARRIVAL_ACCEL_MPS2
    speed = np.maximum(speed_mps, 0.0)
    return (np.sqrt(speed * speed + 2.0 * a * distance_m) - speed) / a


def _direction(points: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Unit direction (K, 2) of paths ``points`` (K, P, 2) at point ``index`` (K,)."""
    rows = np.arange(len(points))
    low = np.minimum(index, points.shape[1] - 2)
    step = points[rows, low + 1] - points[rows, low]
    return step / np.maximum(np.linalg.norm(step, axis=1, keepdims=True), 1e-9)


def _runs_through(gap_to_first: np.ndarray, path: np.ndarray, other_path: np.ndarray) -> np.ndarray:
    """Whether each ``path`` (K, P, 2) passes the first point of ``other_path`` (squared distances (K, P) to it)
    heading within 45 degrees of the other's direction there (it drives behind the other, not across it)."""
    close = gap_to_first.min(1) < CONFLICT_M**2
    heading = np.einsum("kd,kd->k", _direction(path, gap_to_first.argmin(1)),
                        _direction(other_path, np.zeros(len(path), np.int64)))
    return close & (heading > np.cos(np.radians(45.0)))


@dataclass
class DriverParams:
    """Per-vehicle IDM and lane-change parameters, (N,) arrays."""

    desired_factor: np.ndarray  # desired speed as a share of the lane's speed limit
    desired_cap_mps: np.ndarray  # never faster than this [m/s]
    time_headway_s: np.ndarray
    min_gap_m: np.ndarray
    max_accel_mps2: np.ndarray
    comfort_decel_mps2: np.ndarray
    politeness: np.ndarray  # MOBIL politeness p
    safe_decel_mps2: np.ndarray  # MOBIL: the new follower must not brake harder than this
    ignore_lights: np.ndarray  # bool: runs red lights and stop signs (Traffic Manager's ignore_lights_percentage)
    aggressive: np.ndarray  # bool

    FIELDS = ("desired_factor", "desired_cap_mps", "time_headway_s", "min_gap_m", "max_accel_mps2",
              "comfort_decel_mps2", "politeness", "safe_decel_mps2", "ignore_lights", "aggressive")

    def select(self, keep: np.ndarray) -> DriverParams:
        return DriverParams(*(getattr(self, name)[keep] for name in self.FIELDS))

    @staticmethod
    def concatenate(parts: list[DriverParams]) -> DriverParams:
        return DriverParams(*(np.concatenate([getattr(part, name) for part in parts]) for name in DriverParams.FIELDS))


def idm_acceleration(speed: np.ndarray, desired: np.ndarray, gap: np.ndarray, obstacle_speed: np.ndarray,
                     time_headway_s: np.ndarray, min_gap_m: np.ndarray, max_accel_mps2: np.ndarray,
                     comfort_decel_mps2: np.ndarray, max_decel_mps2: float) -> np.ndarray:
    """Intelligent Driver Model acceleration (Treiber et al. 2000), clipped to the hard braking limit."""
    approach = speed - obstacle_speed
    dynamic = speed * time_headway_s + speed * approach / (2.0 * np.sqrt(max_accel_mps2 * comfort_decel_mps2))
    desired_gap = min_gap_m + np.maximum(dynamic, 0.0)
    free = 1.0 - (speed / np.maximum(desired, 0.1)) ** 4
    interaction = np.where(np.isfinite(gap), (desired_gap / np.maximum(gap, 0.1)) ** 2, 0.0)
    return np.minimum(np.maximum(max_accel_mps2 * (free - interaction), -max_decel_mps2), max_accel_mps2)


def vehicle_gaps(xy: np.ndarray, yaw_rad: np.ndarray, speed_mps: np.ndarray, length_m: np.ndarray,
                 half_width_m: np.ndarray, paths: Paths) -> tuple[np.ndarray, np.ndarray]:
    """Free distance ahead (V,) [m] and the speed of what limits it (V,) for V vehicles that all see each other.

    Leaders on the path, then junction conflicts at equal right of way (inside first, then earlier arrival):
    the rule set for vehicles whose junction control is not known (the real server's other vehicles).
    """
    count = len(xy)
    obstacles = Obstacles(xy, yaw_rad, speed_mps, length_m, half_width_m, np.arange(count))
    gaps, speeds, _ = leader_gaps(paths, xy, yaw_rad, length_m, obstacles)
    mine, other = np.nonzero(~np.eye(count, dtype=bool))
    yield_gap = conflict_gaps(paths, speed_mps, np.zeros(count), (mine, other))
    speeds = np.where(yield_gap < gaps, 0.0, speeds)
    return np.minimum(gaps, yield_gap), speeds
