"""Routes over the lane graph: successors and lane changes, resampled into an evenly spaced polyline.

A route is stored exactly as it is rebuilt: the lane segments it follows, the arc length of its start on the
first segment and its length. Consecutive segments are either successors (the lane continues) or lane-change
neighbours (same road section, adjacent lane, same direction): the route then blends from one lane centre to the
other over ``LANE_CHANGE_LENGTH_M`` with a smoothstep, starting ``LANE_CHANGE_LEAD_M`` after it entered the lane.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import networkx as nx
import numpy as np

if TYPE_CHECKING:
    from drivesim.sim.road import RoadNetwork

LANE_CHANGE_LEAD_M = 5.0  # a lane change starts this far after the route entered the lane [m]
LANE_CHANGE_LENGTH_M = 20.0  # longitudinal length of a lane change [m]


@dataclass(frozen=True)
class Route:
    """A path along lane centre lines, sampled every ``spacing_m`` metres."""

    points: np.ndarray  # (P, 2) float64, world x, y [m]
    yaw_rad: np.ndarray  # (P,) heading of each point [rad]
    in_junction: np.ndarray  # (P,) bool
    segments: tuple[int, ...]  # lane segments the route follows, in order
    spacing_m: float
    lane_of_point: np.ndarray | None = None  # (P,) segment each point lies on (the target lane while changing)

    @property
    def length_m(self) -> float:
        return float((len(self.points) - 1) * self.spacing_m)


def _lane_piece(network: RoadNetwork, segment: int, s_from: float, s_to: float | None = None) -> np.ndarray:
    """Centre-line samples of ``segment`` from arc length ``s_from`` (interpolated) to ``s_to`` or its end."""
    start, count = network.segment_start[segment], network.segment_count[segment]
    line = network.points[start : start + count]
    spacing, length = network.segment_spacing_m[segment], network.segment_length_m[segment]
    s_to = length if s_to is None else min(s_to, length)
    s_from = min(max(s_from, 0.0), s_to)
    inner = np.arange(np.floor(s_from / spacing) + 1, np.ceil(s_to / spacing)) * spacing
    s_values = np.concatenate([[s_from], inner[(inner > s_from) & (inner < s_to)], [s_to]])
    position = s_values / spacing
    low = np.minimum(position.astype(np.int64), count - 2) if count > 1 else np.zeros(len(position), np.int64)
    frac = (position - low)[:, None]
    return line[low] + (line[np.minimum(low + 1, count - 1)] - line[low]) * frac


def _lane_change_piece(network: RoadNetwork, source: int, target: int, s_from: float) -> tuple[np.ndarray, float, int]:
    """Points blending from ``source`` to ``target``, the arc length on ``target`` where the change ends, and the
    index of the first point nearer the target lane."""
    length_source, length_target = network.segment_length_m[source], network.segment_length_m[target]
    begin = min(s_from + LANE_CHANGE_LEAD_M, max(length_source - LANE_CHANGE_LENGTH_M, s_from))
    end = min(begin + LANE_CHANGE_LENGTH_M, length_source)
    steps = max(int(np.ceil((end - begin) / 1.0)), 1)
    fraction = np.linspace(begin, end, steps + 1) / max(length_source, 1e-6)  # position along the section
    weight = (fraction - fraction[0]) / max(fraction[-1] - fraction[0], 1e-9)
    weight = weight * weight * (3.0 - 2.0 * weight)  # smoothstep
    xy_source, _ = network.pose_at(np.full(len(fraction), source), fraction * length_source)
    xy_target, _ = network.pose_at(np.full(len(fraction), target), fraction * length_target)
    before = _lane_piece(network, source, s_from, begin)
    blend = xy_source + (xy_target - xy_source) * weight[:, None]
    return np.concatenate([before, blend]), float(fraction[-1] * length_target), len(before) + len(blend) // 2


def route_through(network: RoadNetwork, segments: list[int], start_s_m: float, length_m: float,
                  spacing_m: float = 1.0) -> Route:
    """Resample the lane centre lines of ``segments`` from ``start_s_m`` for ``length_m`` metres.

    Raises:
        ValueError: Two consecutive segments are neither successors nor lane-change neighbours.
    """
    pieces, lanes, flags = [], [], []
    s_in = float(start_s_m)
    for index, segment in enumerate(segments):
        following = segments[index + 1] if index + 1 < len(segments) else None
        if following is not None and network.is_lane_change(segment, following):
            piece, s_in_next, switch = _lane_change_piece(network, segment, following, s_in)
            lane = np.where(np.arange(len(piece)) < switch, segment, following)
        else:
            if following is not None and following not in network.successors[segment]:
                raise ValueError(f"lane segment {following} neither follows nor neighbours segment {segment}")
            piece, s_in_next = _lane_piece(network, segment, s_in), 0.0
            lane = np.full(len(piece), segment)
        pieces.append(piece)
        lanes.append(lane)
        flags.append(np.full(len(piece), network.segment_in_junction[segment]))
        s_in = s_in_next
    xy, lane_of, junction = np.concatenate(pieces), np.concatenate(lanes), np.concatenate(flags)
    keep = [0]
    for index in range(1, len(xy)):  # drop repeated points and points that step back at seams
        step = xy[index] - xy[keep[-1]]
        if step @ step < 1e-12:
            continue
        if len(keep) > 1 and step @ (xy[keep[-1]] - xy[keep[-2]]) <= 0.0:
            continue
        keep.append(index)
    xy, lane_of, junction = xy[keep], lane_of[keep], junction[keep]
    arc = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(xy, axis=0).T))])
    end = min(length_m, arc[-1])
    s_new = np.arange(0.0, end + 1e-9, spacing_m)
    points = np.stack([np.interp(s_new, arc, xy[:, 0]), np.interp(s_new, arc, xy[:, 1])], axis=1)
    delta = np.gradient(points, axis=0) if len(points) > 1 else np.array([[1.0, 0.0]])
    nearest = np.clip(np.searchsorted(arc, s_new), 0, len(junction) - 1)
    return Route(points, np.arctan2(delta[:, 1], delta[:, 0]), junction[nearest], tuple(int(s) for s in segments),
                 spacing_m, lane_of[nearest])


def random_route(network: RoadNetwork, rng: np.random.Generator, length_m: float, start_segment: int | None = None,
                 start_s_m: float | None = None, lane_change_probability: float = 0.0) -> Route:
    """A route of up to ``length_m`` metres by a random walk over the lane graph.

    Without a start, it begins at a random spawn candidate (outside junctions, away from lane ends). At each lane
    with a lane-change neighbour, the walk changes lanes with ``lane_change_probability`` (at most once per lane
    section). A walk that reaches a dead end stops 5 m before it.
    """
    if start_segment is None:
        segments, offsets = network.spawn_candidates(spacing_m=5.0)
        pick = int(rng.integers(len(segments)))
        start_segment, start_s_m = int(segments[pick]), float(offsets[pick])
    s_in = 0.0 if start_s_m is None else start_s_m
    segments = [start_segment]
    total = network.segment_length_m[start_segment] - s_in
    changed = False
    while total < length_m:
        current = segments[-1]
        neighbours = [int(n) for n in (network.left_neighbour[current], network.right_neighbour[current]) if n >= 0]
        room = network.segment_length_m[current] - s_in - 1.5 * LANE_CHANGE_LENGTH_M
        if neighbours and not changed and room > 0 and rng.random() < lane_change_probability:
            segments.append(neighbours[int(rng.integers(len(neighbours)))])
            changed = True
            s_in += LANE_CHANGE_LEAD_M + LANE_CHANGE_LENGTH_M
            continue  # the length already counted continues on the neighbour
        options = network.successors[current]
        if not options:
            total -= 5.0
            break
        segments.append(int(options[rng.integers(len(options))]))
        total += network.segment_length_m[segments[-1]]
        changed, s_in = False, 0.0
    return route_through(network, segments, 0.0 if start_s_m is None else start_s_m, max(min(length_m, total), 1.0))


def plan_route(network: RoadNetwork, start_xy: np.ndarray, goal_xy: np.ndarray) -> Route:
    """Shortest route between two points (A* over successors and lane changes).

    Raises:
        ValueError: No route joins the two points.
    """
    start = network.nearest_sample(np.asarray(start_xy, dtype=float))
    goal = network.nearest_sample(np.asarray(goal_xy, dtype=float))
    source, target = int(network.segment_of[start]), int(network.segment_of[goal])
    try:
        segments = nx.shortest_path(network.graph, source, target, weight="weight")
    except (nx.NetworkXNoPath, nx.NodeNotFound):
        raise ValueError(f"no route from {tuple(start_xy)} to {tuple(goal_xy)} over the lane graph") from None
    start_s = float(network.segment_s(start))
    goal_s = float(network.segment_s(goal))
    length = route_through(network, segments, start_s, np.inf).length_m
    if len(segments) == 1:
        length = goal_s - start_s
    else:
        length = length - (network.segment_length_m[target] - goal_s)
    return route_through(network, segments, start_s, max(length, 1.0))


def junction_runs(route: Route) -> np.ndarray:
    """(R, 3) rows of entry arc length, exit arc length [m] and lane of each junction the route passes."""
    flags = route.in_junction.astype(np.int8)
    changes = np.diff(np.concatenate([[0], flags, [0]]))
    starts, ends = np.flatnonzero(changes == 1), np.flatnonzero(changes == -1)
    lanes = route.lane_of_point if route.lane_of_point is not None else np.full(len(flags), -1)
    rows = [(start * route.spacing_m, end * route.spacing_m, lanes[start]) for start, end in zip(starts, ends, strict=True)]
    return np.array(rows, dtype=float).reshape(-1, 3)
