"""Road network: lane centre lines sampled from a ``carla.Map`` into flat arrays, the lane graph, the kerbs.

Map queries (``carla.Map.get_topology``, ``Waypoint.next_until_lane_end``, ``get_left_lane``) run once at set-up;
every per-step query afterwards is an array lookup. The same class serves the embedded simulator and the CARLA
bridge (built from ``world.get_map()``).

The lane graph has two kinds of edges: successors (a lane continues into the next lane section or through a
junction) and lane changes (to the adjacent driving lane of the same direction where the markings allow it, as
``carla.Waypoint.lane_change`` says). Routes are built in ``drivesim.sim.route``.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

import carla
import networkx as nx
import numpy as np
from scipy.spatial import cKDTree

from drivesim.sim.route import Route, plan_route, random_route, route_through

logger = logging.getLogger(__name__)

MARKING_NONE, MARKING_BROKEN, MARKING_SOLID = 0, 1, 2
LANE_CHANGE_MIN_M = 25.0  # lane sections shorter than this get no lane-change edges [m]
LANE_CHANGE_COST_M = 15.0  # route-planning cost of one lane change [m]
KERB_LANE_TYPES = ("Parking", "Shoulder", "Sidewalk", "Border", "Curb", "Biking", "Restricted", "Median")

__all__ = ["MARKING_BROKEN", "MARKING_NONE", "MARKING_SOLID", "KerbLane", "RoadNetwork", "Route"]


def _marking_kind(marking: carla.LaneMarking | None) -> int:
    """Marking class of a lane border; a lane without a ``roadMark`` (None in the wheel) has none."""
    if marking is None:
        return MARKING_NONE
    name = str(marking.type)
    if name in ("NONE", "Other", "Grass", "Curb", "BottsDots"):
        return MARKING_NONE
    return MARKING_BROKEN if name.startswith("Broken") else MARKING_SOLID


def _lane_key(waypoint: carla.Waypoint) -> tuple[int, int, int]:
    return waypoint.road_id, waypoint.section_id, waypoint.lane_id


def _lane_start(waypoint: carla.Waypoint, step_m: float) -> carla.Waypoint:
    """Walk back to the first waypoint of the lane section (``previous_until_lane_start`` crashes in 0.9.16)."""
    key = _lane_key(waypoint)
    for _ in range(100_000):
        before = [w for w in waypoint.previous(step_m) if _lane_key(w) == key]
        if not before:
            break
        waypoint = before[0]
    return waypoint


def _lane_samples(entry: carla.Waypoint, step_m: float, successor_entries: list[carla.Waypoint]) -> np.ndarray:
    """Positions (P, 2) every ``step_m`` from a lane section's entry to its end.

    Walks with ``Waypoint.next`` within the lane (``next_until_lane_end`` crashes the 0.9.16 wheel on some
    malformed files, e.g. Scenic's test map Issue189.xodr); the end is closed by the nearest successor's entry.
    """
    key = _lane_key(entry)
    samples = [entry]
    while len(samples) < 100_000:
        same = [w for w in samples[-1].next(step_m) if _lane_key(w) == key]
        if not same:
            break
        samples.append(same[0])
    xy = [[w.transform.location.x, w.transform.location.y] for w in samples]
    last = np.array(xy[-1])
    ends = [np.array([w.transform.location.x, w.transform.location.y]) for w in successor_entries]
    gaps = [float(np.hypot(*(end - last))) for end in ends]
    if gaps and 1e-3 < min(gaps) < 1.5 * step_m:
        xy.append(ends[int(np.argmin(gaps))].tolist())
    return np.array(xy)


def _same_direction_driving(waypoint: carla.Waypoint | None, lane_id: int) -> bool:
    return (
        waypoint is not None
        and waypoint.lane_type == carla.LaneType.Driving
        and waypoint.lane_id * lane_id > 0
    )


@dataclass(frozen=True)
class KerbLane:
    """A non-driving lane beside a road's outermost driving lane (parking, shoulder, sidewalk, ...)."""

    lane_type: str  # carla.LaneType name
    offset_m: float  # distance of its centre from the driving lane's centre, to the right [m]
    width_m: float


class RoadNetwork:
    """Lane segments of a map as arrays: centre points, headings, widths, successors and neighbours.

    Attributes:
        points: (N, 2) centre-line samples [m], CARLA world frame.
        yaw_rad: (N,) lane heading at each sample [rad].
        width_m: (N,) lane width at each sample [m].
        segment_of: (N,) segment index of each sample.
        segment_start: (S,) index of each segment's first sample; samples are evenly spaced within a
            segment by ``segment_spacing_m``.
        segment_length_m: (S,) length of each segment [m].
        successors: list of successor segment indices per segment.
        left_neighbour, right_neighbour: (S,) the adjacent same-direction driving lane one may change to, or -1.
        segment_junction: (S,) OpenDRIVE junction id of junction lanes, -1 elsewhere.
        is_outermost: (S,) driving lanes with no driving lane of their direction to their right (outside junctions).
        kerb: per segment, the non-driving lanes to its right when it is the outermost driving lane.
    """

    def __init__(self, carla_map: carla.Map, sample_m: float = 1.0, name: str | None = None) -> None:
        self.map = carla_map
        self.name = name or carla_map.name
        self.sample_m = sample_m
        topology = carla_map.get_topology()
        keys: dict[tuple[int, int, int], int] = {}
        entries: list[carla.Waypoint] = []
        for pair in topology:
            for waypoint in pair:
                if _lane_key(waypoint) not in keys:
                    keys[_lane_key(waypoint)] = len(entries)
                    entries.append(waypoint)
        # Lanes without any link (e.g. both ends open) are missing from the topology: find their starts.
        for waypoint in carla_map.generate_waypoints(max(sample_m * 5.0, 5.0)):
            if _lane_key(waypoint) not in keys and waypoint.lane_type == carla.LaneType.Driving:
                keys[_lane_key(waypoint)] = len(entries)
                entries.append(_lane_start(waypoint, sample_m))
        self.successors: list[list[int]] = [[] for _ in entries]
        for entry, exit_ in topology:
            source, target = keys[_lane_key(entry)], keys[_lane_key(exit_)]
            # A lane listed as its own successor is an artefact of split lane entries; skip it.
            if target != source and target not in self.successors[source]:
                self.successors[source].append(target)
        self._sample_segments(entries, [[entries[target] for target in targets] for targets in self.successors])
        self._find_neighbours(entries, keys)
        kerbs = [self._kerb_lanes(entry) for entry in entries]
        self.is_outermost = np.array([kerb is not None for kerb in kerbs])
        self.kerb: list[tuple[KerbLane, ...]] = [kerb or () for kerb in kerbs]
        self.predecessors: list[list[int]] = [[] for _ in entries]
        for source, targets in enumerate(self.successors):
            for target in targets:
                self.predecessors[target].append(source)
        self.graph = self._lane_graph()
        self.bounds = np.concatenate([self.points.min(0) - 20.0, self.points.max(0) + 20.0])
        self._tree = cKDTree(self.points)
        logger.debug("road network %s: %d segments, %d samples", self.name, len(entries), len(self.points))

    def _sample_segments(self, entries: list[carla.Waypoint], successor_entries: list[list[carla.Waypoint]]) -> None:
        points, yaws, widths, segment_of = [], [], [], []
        starts, lengths, spacings, left_marks, right_marks = [], [], [], [], []
        for entry, following in zip(entries, successor_entries, strict=True):
            xy = _lane_samples(entry, self.sample_m, following)
            if len(xy) < 2:
                xy = np.vstack([xy, xy + 0.01])
            arc = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(xy, axis=0).T))])
            length = max(arc[-1], 0.01)
            count = max(int(np.ceil(length / self.sample_m)), 1) + 1
            s_new = np.linspace(0.0, length, count)
            resampled = np.stack([np.interp(s_new, arc, xy[:, 0]), np.interp(s_new, arc, xy[:, 1])], axis=1)
            delta = np.gradient(resampled, axis=0)
            starts.append(sum(len(p) for p in points))
            points.append(resampled)
            yaws.append(np.arctan2(delta[:, 1], delta[:, 0]))
            widths.append(np.full(count, max(entry.lane_width, 0.5)))
            segment_of.append(np.full(count, len(starts) - 1))
            lengths.append(length)
            spacings.append(length / (count - 1))
            left_marks.append(_marking_kind(entry.left_lane_marking))
            right_marks.append(_marking_kind(entry.right_lane_marking))
        self.points = np.concatenate(points)
        self.yaw_rad = np.concatenate(yaws)
        self.width_m = np.concatenate(widths)
        self.segment_of = np.concatenate(segment_of)
        self.segment_start = np.array(starts)
        self.segment_count = np.array([len(p) for p in points])
        self.segment_length_m = np.array(lengths)
        self.segment_spacing_m = np.array(spacings)
        self.segment_in_junction = np.array([entry.is_junction for entry in entries])
        self.in_junction = self.segment_in_junction[self.segment_of]
        self.segment_junction = np.array([entry.get_junction().id if entry.is_junction else -1 for entry in entries])
        self.segment_left_marking = np.array(left_marks)
        self.segment_right_marking = np.array(right_marks)
        self.segment_road_lane = [(entry.road_id, entry.lane_id) for entry in entries]
        # Curvature [1/m] of every sample from heading changes over +-2 samples within its segment.
        curvature = np.zeros(len(self.points))
        for start, count, spacing in zip(self.segment_start, self.segment_count, self.segment_spacing_m, strict=True):
            yaw = np.unwrap(self.yaw_rad[start : start + count])
            span = min(2, count - 1)
            if span > 0:
                padded = np.pad(yaw, span, mode="edge")
                curvature[start : start + count] = np.abs(padded[2 * span :] - padded[: -2 * span]) / (2 * span * spacing)
        self.curvature = curvature

    def _find_neighbours(self, entries: list[carla.Waypoint], keys: dict[tuple[int, int, int], int]) -> None:
        """Adjacent same-direction driving lanes one may change to (marking-permitted, outside junctions)."""
        count = len(entries)
        self.left_neighbour = np.full(count, -1, dtype=np.int64)
        self.right_neighbour = np.full(count, -1, dtype=np.int64)
        left_ok = (carla.LaneChange.Left, carla.LaneChange.Both)
        right_ok = (carla.LaneChange.Right, carla.LaneChange.Both)
        for index, entry in enumerate(entries):
            if entry.is_junction or self.segment_length_m[index] < LANE_CHANGE_MIN_M:
                continue
            for side, allowed, table in (("left", left_ok, self.left_neighbour), ("right", right_ok, self.right_neighbour)):
                other = entry.get_left_lane() if side == "left" else entry.get_right_lane()
                if entry.lane_change in allowed and _same_direction_driving(other, entry.lane_id):
                    table[index] = keys.get(_lane_key(other), -1)

    def _kerb_lanes(self, entry: carla.Waypoint) -> tuple[KerbLane, ...] | None:
        """Non-driving lanes right of an outermost driving lane, inner to outer (None for other lanes)."""
        if entry.is_junction:
            return None
        lanes: list[KerbLane] = []
        offset = entry.lane_width / 2.0
        lane = entry.get_right_lane()
        while lane is not None and lane.lane_id * entry.lane_id > 0 and len(lanes) < 6:
            if lane.lane_type == carla.LaneType.Driving:
                return None  # not the outermost driving lane
            width = max(float(lane.lane_width), 0.0)
            lanes.append(KerbLane(str(lane.lane_type), offset + width / 2.0, width))
            offset += width
            lane = lane.get_right_lane()
        return tuple(lanes)

    def _lane_graph(self) -> nx.DiGraph:
        """Successor edges weighted by the source's length; lane-change edges by ``LANE_CHANGE_COST_M``."""
        graph = nx.DiGraph()
        graph.add_nodes_from(range(self.num_segments))  # lanes without links are nodes too
        for source, targets in enumerate(self.successors):
            for target in targets:
                graph.add_edge(source, target, weight=float(self.segment_length_m[source]), lane_change=False)
        for table in (self.left_neighbour, self.right_neighbour):
            for source in np.flatnonzero(table >= 0):
                graph.add_edge(int(source), int(table[source]), weight=LANE_CHANGE_COST_M, lane_change=True)
        return graph

    # ------------------------------------------------------------------------------------------ queries
    @property
    def num_segments(self) -> int:
        return len(self.segment_start)

    def is_lane_change(self, source: int, target: int) -> bool:
        """Whether ``target`` is the lane-change neighbour (not a successor) of ``source``."""
        return bool(target in (self.left_neighbour[source], self.right_neighbour[source]) and target >= 0)

    def locate(self, segment: np.ndarray, s_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Sample index (...) at or before arc length ``s_m`` of ``segment``, and the fraction to the next."""
        segment = np.asarray(segment)
        position = np.minimum(np.maximum(s_m / self.segment_spacing_m[segment], 0.0), self.segment_count[segment] - 1.000001)
        index = position.astype(np.int64)
        return self.segment_start[segment] + index, position - index

    def pose_at(self, segment: np.ndarray, s_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Positions (..., 2) and headings (...) at arc length ``s_m`` along ``segment`` (vectorised)."""
        base, frac = self.locate(segment, s_m)
        xy = self.points[base] + (self.points[base + 1] - self.points[base]) * frac[..., None]
        return xy, self.yaw_rad[base]

    def boundaries(self, segment: int) -> tuple[np.ndarray, np.ndarray]:
        """Left and right lane boundaries (P, 2) of a segment, in the driving direction."""
        return self.offset_line(segment, -0.5), self.offset_line(segment, 0.5)

    def offset_line(self, segment: int, lane_widths: float = 0.0, metres: float = 0.0) -> np.ndarray:
        """A segment's centre line shifted right by ``lane_widths`` lane widths plus ``metres`` (P, 2)."""
        start, count = self.segment_start[segment], self.segment_count[segment]
        centre = self.points[start : start + count]
        yaw = self.yaw_rad[start : start + count]
        right = np.stack([-np.sin(yaw), np.cos(yaw)], axis=1)  # +90 deg in CARLA's left-handed frame
        shift = self.width_m[start : start + count, None] * lane_widths + metres
        return centre + right * shift

    def nearest_sample(self, xy: np.ndarray, yaw_rad: float | None = None, max_yaw_diff_rad: float = 1.2) -> int:
        """Index of the lane sample closest to ``xy`` (optionally heading within ``max_yaw_diff_rad``)."""
        xy = np.asarray(xy, dtype=float)
        distance, index = self._tree.query(xy, k=min(24, len(self.points)))
        index = np.atleast_1d(index)
        if yaw_rad is not None:
            diff = np.abs(np.angle(np.exp(1j * (self.yaw_rad[index] - yaw_rad))))
            good = index[diff < max_yaw_diff_rad]
            if len(good):
                return int(good[0])
            distance = np.hypot(*(self.points - xy).T)  # none near with that heading: search everywhere
            diff = np.abs(np.angle(np.exp(1j * (self.yaw_rad - yaw_rad))))
            return int(np.argmin(np.where(diff < max_yaw_diff_rad, distance, np.inf)))
        return int(index[0])

    def nearest_samples(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Distances (...) and indices (...) of the nearest lane samples of many points (..., 2)."""
        return self._tree.query(np.asarray(xy, dtype=float))

    def segment_s(self, sample: int | np.ndarray) -> np.ndarray:
        """Arc length of lane samples along their segments [m]."""
        segment = self.segment_of[sample]
        return (np.asarray(sample) - self.segment_start[segment]) * self.segment_spacing_m[segment]

    # ------------------------------------------------------------------------------------------ routes
    def random_route(self, rng: np.random.Generator, length_m: float, start_segment: int | None = None,
                     start_s_m: float | None = None, lane_change_probability: float = 0.0) -> Route:
        """A route of up to ``length_m`` metres by a random walk over the lane graph (``drivesim.sim.route``)."""
        return random_route(self, rng, length_m, start_segment, start_s_m, lane_change_probability)

    def plan_route(self, start_xy: np.ndarray, goal_xy: np.ndarray) -> Route:
        """Shortest route between two points over successors and lane changes (A* over the lane graph)."""
        return plan_route(self, start_xy, goal_xy)

    def route_through(self, segments: list[int], start_s_m: float, length_m: float, spacing_m: float = 1.0) -> Route:
        """The route along consecutive ``segments`` (successors or lane changes) from ``start_s_m``."""
        return route_through(self, segments, start_s_m, length_m, spacing_m)

    def spawn_candidates(self, spacing_m: float = 10.0, avoid_junctions: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """(segment, s) pairs every ``spacing_m`` along driving lanes: spawn points for generated maps."""
        segments, offsets = [], []
        for segment in range(self.num_segments):
            if avoid_junctions and self.segment_in_junction[segment]:
                continue
            length = self.segment_length_m[segment]
            s_values = np.arange(2.0, length - 2.0, spacing_m)
            segments.append(np.full(len(s_values), segment))
            offsets.append(s_values)
        if not segments:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        return np.concatenate(segments).astype(np.int64), np.concatenate(offsets)

    def map_hash(self) -> str:
        """Hash of the OpenDRIVE content, recorded in episode metadata."""
        return hashlib.sha256(self.map.to_opendrive().encode()).hexdigest()[:16]
