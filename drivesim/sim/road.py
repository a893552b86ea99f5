"""Road network: lane centre lines sampled from a ``carla.Map`` into flat arrays, the lane graph, routes.

Map queries (``carla.Map.get_topology``, ``Waypoint.next_until_lane_end``) run once at set-up; every
per-step query afterwards is an array lookup. The same class serves the embedded simulator and the CARLA
bridge (built from ``world.get_map()``).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

import carla
import networkx as nx
import numpy as np

logger = logging.getLogger(__name__)

MARKING_NONE, MARKING_BROKEN, MARKING_SOLID = 0, 1, 2


def _marking_kind(marking: carla.LaneMarking) -> int:
    name = str(marking.type)
    if name in ("NONE", "Other", "Grass", "Curb", "BottsDots"):
        return MARKING_NONE
    return MARKING_BROKEN if name.startswith("Broken") else MARKING_SOLID


def _lane_start(waypoint: carla.Waypoint, step_m: float) -> carla.Waypoint:
    """Walk back to the first waypoint of the lane section (``previous_until_lane_start`` crashes in 0.9.16)."""
    key = (waypoint.road_id, waypoint.section_id, waypoint.lane_id)
    while True:
        before = [w for w in waypoint.previous(step_m) if (w.road_id, w.section_id, w.lane_id) == key]
        if not before:
            return waypoint
        waypoint = before[0]


def _lane_samples(entry: carla.Waypoint, step_m: float) -> list[carla.Waypoint]:
    """Waypoints every ``step_m`` from a lane section's entry to its exact end."""
    key = (entry.road_id, entry.section_id, entry.lane_id)
    try:
        samples = [entry]
        for waypoint in entry.next_until_lane_end(step_m):
            samples.append(waypoint)
            if waypoint.section_id != entry.section_id:
                break  # the next lane section is a segment of its own; its start closes the gap
        return samples
    except RuntimeError:  # raised by 0.9.16 for some open-ended lanes: walk within the lane instead
        samples = [entry]
        while len(samples) < 100_000:
            same = [w for w in samples[-1].next(step_m) if (w.road_id, w.section_id, w.lane_id) == key]
            if not same:
                break
            samples.append(same[0])
        return samples


@dataclass(frozen=True)
class Route:
    """A path along lane centre lines, sampled every ``spacing_m`` metres."""

    points: np.ndarray  # (P, 2) float64, world x, y [m]
    yaw_rad: np.ndarray  # (P,) heading of each point [rad]
    in_junction: np.ndarray  # (P,) bool
    segments: tuple[int, ...]  # lane segments the route follows, in order
    spacing_m: float

    @property
    def length_m(self) -> float:
        return float((len(self.points) - 1) * self.spacing_m)


class RoadNetwork:
    """Lane segments of a map as arrays: centre points, headings, widths and successors.

    Attributes:
        points: (N, 2) centre-line samples [m], CARLA world frame.
        yaw_rad: (N,) lane heading at each sample [rad].
        width_m: (N,) lane width at each sample [m].
        segment_of: (N,) segment index of each sample.
        segment_start: (S,) index of each segment's first sample; samples are evenly spaced within a
            segment by ``segment_spacing_m``.
        segment_length_m: (S,) length of each segment [m].
        successors: list of successor segment indices per segment.
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
                key = (waypoint.road_id, waypoint.section_id, waypoint.lane_id)
                if key not in keys:
                    keys[key] = len(entries)
                    entries.append(waypoint)
        # Lanes without any link (e.g. both ends open) are missing from the topology: find their starts.
        for waypoint in carla_map.generate_waypoints(max(sample_m * 5.0, 5.0)):
            key = (waypoint.road_id, waypoint.section_id, waypoint.lane_id)
            if key not in keys and waypoint.lane_type == carla.LaneType.Driving:
                keys[key] = len(entries)
                entries.append(_lane_start(waypoint, sample_m))
        self.successors: list[list[int]] = [[] for _ in entries]
        for entry, exit_ in topology:
            source = keys[(entry.road_id, entry.section_id, entry.lane_id)]
            target = keys[(exit_.road_id, exit_.section_id, exit_.lane_id)]
            # A lane listed as its own successor is an artefact of split lane entries; skip it.
            if target != source and target not in self.successors[source]:
                self.successors[source].append(target)
        self._sample_segments(entries)
        self.graph = nx.DiGraph()
        self.graph.add_nodes_from(range(len(entries)))  # lanes without links are nodes too
        for source, targets in enumerate(self.successors):
            for target in targets:
                self.graph.add_edge(source, target, weight=float(self.segment_length_m[source]))
        self.predecessors: list[list[int]] = [[] for _ in entries]
        for source, targets in enumerate(self.successors):
            for target in targets:
                self.predecessors[target].append(source)
        self.bounds = np.concatenate([self.points.min(0) - 20.0, self.points.max(0) + 20.0])
        logger.debug("road network %s: %d segments, %d samples", self.name, len(entries), len(self.points))

    def _sample_segments(self, entries: list[carla.Waypoint]) -> None:
        points, yaws, widths, segment_of, junction = [], [], [], [], []
        starts, lengths, spacings, left_marks, right_marks = [], [], [], [], []
        for index, entry in enumerate(entries):
            waypoints = _lane_samples(entry, self.sample_m)
            xy = np.array([[w.transform.location.x, w.transform.location.y] for w in waypoints])
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
            widths.append(np.full(count, entry.lane_width))
            segment_of.append(np.full(count, index))
            junction.append(np.full(count, entry.is_junction))
            lengths.append(length)
            spacings.append(length / (count - 1))
            left_marks.append(_marking_kind(entry.left_lane_marking))
            right_marks.append(_marking_kind(entry.right_lane_marking))
        self.points = np.concatenate(points)
        self.yaw_rad = np.concatenate(yaws)
        self.width_m = np.concatenate(widths)
        self.segment_of = np.concatenate(segment_of)
        self.in_junction = np.concatenate(junction)
        self.segment_start = np.array(starts)
        self.segment_count = np.array([len(p) for p in points])
        self.segment_length_m = np.array(lengths)
        self.segment_spacing_m = np.array(spacings)
        self.segment_in_junction = np.array([entry.is_junction for entry in entries])
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

    @property
    def num_segments(self) -> int:
        return len(self.segment_start)

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
        start, count = self.segment_start[segment], self.segment_count[segment]
        centre = self.points[start : start + count]
        yaw = self.yaw_rad[start : start + count]
        right = np.stack([-np.sin(yaw), np.cos(yaw)], axis=1)  # +90 deg in CARLA's left-handed frame
        half = self.width_m[start : start + count, None] / 2.0
        return centre - right * half, centre + right * half

    def nearest_sample(self, xy: np.ndarray, yaw_rad: float | None = None, max_yaw_diff_rad: float = 1.2) -> int:
        """Index of the lane sample closest to ``xy`` (optionally heading within ``max_yaw_diff_rad``)."""
        distance = np.hypot(*(self.points - xy).T)
        if yaw_rad is not None:
            diff = np.abs(np.angle(np.exp(1j * (self.yaw_rad - yaw_rad))))
            distance = np.where(diff < max_yaw_diff_rad, distance, np.inf)
        return int(np.argmin(distance))

    def random_route(self, rng: np.random.Generator, length_m: float, start_segment: int | None = None,
                     start_s_m: float | None = None) -> Route:
        """A route of up to ``length_m`` metres by a random walk over successors.

        Without a start, it begins at a random spawn candidate (outside junctions, away from lane ends).
        A walk that reaches a dead end stops 5 m before it.
        """
        if start_segment is None:
            segments, offsets = self.spawn_candidates(spacing_m=5.0)
            pick = int(rng.integers(len(segments)))
            start_segment, start_s_m = int(segments[pick]), float(offsets[pick])
        start_s_m = 0.0 if start_s_m is None else start_s_m
        segments = [start_segment]
        total = self.segment_length_m[start_segment] - start_s_m
        while total < length_m:
            options = self.successors[segments[-1]]
            if not options:
                total -= 5.0
                break
            segments.append(int(options[rng.integers(len(options))]))
            total += self.segment_length_m[segments[-1]]
        return self.route_through(segments, start_s_m, max(min(length_m, total), 1.0))

    def plan_route(self, start_xy: np.ndarray, goal_xy: np.ndarray) -> Route:
        """Shortest lane-following route between two points (A* over the segment graph)."""
        start = self.nearest_sample(np.asarray(start_xy, dtype=float))
        goal = self.nearest_sample(np.asarray(goal_xy, dtype=float))
        source, target = int(self.segment_of[start]), int(self.segment_of[goal])
        try:
            segments = nx.shortest_path(self.graph, source, target, weight="weight")
        except nx.NetworkXNoPath:
            raise ValueError(f"no lane-following route from {tuple(start_xy)} to {tuple(goal_xy)}") from None
        start_s = (start - self.segment_start[source]) * self.segment_spacing_m[source]
        goal_s = (goal - self.segment_start[target]) * self.segment_spacing_m[target]
        length = sum(self.segment_length_m[s] for s in segments[:-1]) - start_s + goal_s
        return self.route_through(segments, start_s, max(length, 1.0))

    def route_through(self, segments: list[int], start_s_m: float, length_m: float, spacing_m: float = 1.0) -> Route:
        """Resample the centre lines of consecutive segments from ``start_s_m`` for ``length_m`` metres."""
        xy = np.concatenate(
            [self.points[self.segment_start[s] : self.segment_start[s] + self.segment_count[s]] for s in segments]
        )
        flags = np.concatenate([np.full(self.segment_count[s], self.segment_in_junction[s]) for s in segments])
        keep = [0]
        for index in range(1, len(xy)):  # drop repeated points and points that step back at seams
            step = xy[index] - xy[keep[-1]]
            if step @ step < 1e-12:
                continue
            if len(keep) > 1 and step @ (xy[keep[-1]] - xy[keep[-2]]) <= 0.0:
                continue
            keep.append(index)
        xy, flags = xy[keep], flags[keep]
        arc = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(xy, axis=0).T))])
        end = min(start_s_m + length_m, arc[-1])
        s_new = np.arange(start_s_m, end + 1e-9, spacing_m)
        points = np.stack([np.interp(s_new, arc, xy[:, 0]), np.interp(s_new, arc, xy[:, 1])], axis=1)
        delta = np.gradient(points, axis=0) if len(points) > 1 else np.array([[1.0, 0.0]])
        in_junction = flags[np.clip(np.searchsorted(arc, s_new), 0, len(flags) - 1)]
        return Route(points, np.arctan2(delta[:, 1], delta[:, 0]), in_junction, tuple(segments), spacing_m)

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
        return np.concatenate(segments).astype(np.int64), np.concatenate(offsets)

    def map_hash(self) -> str:
        """Hash of the OpenDRIVE content, recorded in episode metadata."""
        return hashlib.sha256(self.map.to_opendrive().encode()).hexdigest()[:16]
