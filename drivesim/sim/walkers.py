"""Pedestrians: a walkable network of sidewalks, corners and crossings per map, and kinematic walkers on it.

``WalkerNetwork`` (static, one per map): sidewalk centre lines beside every outermost driving lane (the map's
sidewalk lane where it has one, else a verge 1 m beyond the road's edge), joined where they meet and around
junction corners; crossings from the map's crosswalk polygons (``carla.Map.get_crosswalks()``), or, on maps
without any, across each road end at a junction. ``Walkers`` (per episode): walkers follow edges at their own
speed and pick a random next edge at every node; at a configurable rate they jaywalk straight across the road,
more often from behind a parked car. They stop for nobody unless ``yield_to_vehicles`` is set; a walker that is
hit falls and lies still.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from drivesim.sim.config import WalkersConfig
from drivesim.sim.road import RoadNetwork

WALKER_SIZE_M = 0.6  # footprint side [m]
MERGE_M = 2.5  # edge ends closer than this are one node [m]
CORNER_M = 8.0  # sidewalk ends this close around a junction corner are joined [m]
CROSSWALK_SNAP_M = 8.0  # a crosswalk end joins the nearest node within this distance [m]
SIDEWALK, CROSSING = 0, 1
ALONG, FREE, DOWN, WAITING = 0, 1, 2, 3  # walker modes: on an edge, jaywalking, knocked down, waiting at the kerb
BLOCKED_TURN_BACK_S = 1.5  # a walker a vehicle stands in front of this long turns back [s]


def _crosswalk_polygons(network: RoadNetwork) -> list[np.ndarray]:
    """The map's crosswalks as polygons (the wheel returns one flat point list, each polygon closed)."""
    points = [np.array([p.x, p.y]) for p in network.map.get_crosswalks()]
    polygons, current = [], []
    for point in points:
        current.append(point)
        if len(current) > 3 and np.hypot(*(current[0] - point)) < 1e-3:
            polygons.append(np.array(current[:-1]))
            current = []
    return polygons


@dataclass(frozen=True)
class WalkerNetwork:
    """Edges (polylines) between nodes; flat arrays as ``RoadNetwork``'s lanes."""

    points: np.ndarray  # (M, 2) edge samples [m]
    edge_start: np.ndarray  # (E,) first sample of each edge
    edge_count: np.ndarray  # (E,)
    edge_length_m: np.ndarray  # (E,)
    edge_kind: np.ndarray  # (E,) SIDEWALK or CROSSING
    edge_nodes: np.ndarray  # (E, 2) node at the start and at the end
    node_xy: np.ndarray  # (K, 2)
    node_edges: tuple[tuple[int, ...], ...]  # edges touching each node
    across_m: np.ndarray  # (E,) distance straight across the road to the other sidewalk (nan: none)
    sidewalk_segment: np.ndarray  # (E,) lane segment beside a sidewalk edge (-1 for crossings)
    point_edge: np.ndarray  # (M,) edge of every sample

    @property
    def num_edges(self) -> int:
        return len(self.edge_start)

    def position(self, edge: np.ndarray, s_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Positions (..., 2) and headings (...) at arc length ``s_m`` along edges (forward direction)."""
        spacing = self.edge_length_m[edge] / np.maximum(self.edge_count[edge] - 1, 1)
        position = np.clip(s_m / np.maximum(spacing, 1e-6), 0.0, self.edge_count[edge] - 1.000001)
        index = position.astype(np.int64)
        base = self.edge_start[edge] + index
        delta = self.points[base + 1] - self.points[base]
        xy = self.points[base] + delta * (position - index)[..., None]
        return xy, np.arctan2(delta[..., 1], delta[..., 0])


def _resample(line: np.ndarray, spacing_m: float = 1.0) -> np.ndarray:
    arc = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(line, axis=0).T))])
    count = max(int(np.ceil(arc[-1] / spacing_m)), 1) + 1
    s_new = np.linspace(0.0, arc[-1], count)
    return np.stack([np.interp(s_new, arc, line[:, 0]), np.interp(s_new, arc, line[:, 1])], axis=1)


def sidewalk_line(network: RoadNetwork, segment: int) -> np.ndarray:
    """Centre line of the walkable strip beside an outermost lane: its sidewalk, else a verge beyond the kerb."""
    sidewalks = [lane for lane in network.kerb[segment] if lane.lane_type == "Sidewalk"]
    if sidewalks:
        offset = sidewalks[0].offset_m
    else:
        outer = network.kerb[segment][-1] if network.kerb[segment] else None
        lane_half = network.width_m[network.segment_start[segment]] / 2.0
        offset = (outer.offset_m + outer.width_m / 2.0 if outer else lane_half) + 1.0
    return network.offset_line(segment, 0.0, offset)


def build_walker_network(network: RoadNetwork) -> WalkerNetwork:
    """The walkable network of a map (cached on the network)."""
    cache = network.__dict__.setdefault("_walker_network", {})
    if "network" in cache:
        return cache["network"]
    lines: list[np.ndarray] = []
    kinds: list[int] = []
    beside: list[int] = []
    for segment in np.flatnonzero(network.is_outermost):
        line = sidewalk_line(network, int(segment))
        if len(line) >= 2 and np.hypot(*(line[-1] - line[0])) > 1.0:
            lines.append(_resample(line))
            kinds.append(SIDEWALK)
            beside.append(int(segment))
    ends = np.array([[line[0], line[-1]] for line in lines]).reshape(-1, 2)
    node_of_end, node_xy = _merge_points(ends, MERGE_M)
    # Corners: sidewalk ends of different edges around a junction.
    tree = cKDTree(node_xy)
    for a, b in sorted(tree.query_pairs(CORNER_M)):
        lines.append(_resample(np.stack([node_xy[a], node_xy[b]])))
        kinds.append(SIDEWALK)
        beside.append(-1)
        node_of_end = np.append(node_of_end, [a, b])
    crossings = _crossings(network, lines, node_xy, kinds)
    for a, b in crossings:
        lines.append(_resample(np.stack([node_xy[a], node_xy[b]])))
        kinds.append(CROSSING)
        beside.append(-1)
        node_of_end = np.append(node_of_end, [a, b])
    edge_nodes = node_of_end.reshape(-1, 2)
    counts = np.array([len(line) for line in lines])
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    lengths = np.array([float(np.hypot(*np.diff(line, axis=0).T).sum()) for line in lines])
    touching: list[list[int]] = [[] for _ in range(len(node_xy))]
    for edge, (a, b) in enumerate(edge_nodes):
        touching[a].append(edge)
        if b != a:
            touching[b].append(edge)
    points = np.concatenate(lines)
    kinds_array = np.array(kinds)
    result = WalkerNetwork(points, starts, counts, lengths, kinds_array, edge_nodes, node_xy,
                           tuple(tuple(t) for t in touching), _across_distances(lines, kinds_array),
                           np.array(beside), np.repeat(np.arange(len(lines)), counts))
    cache["network"] = result
    return result


def _merge_points(points: np.ndarray, radius_m: float) -> tuple[np.ndarray, np.ndarray]:
    """Cluster points closer than ``radius_m``: the cluster of every point and the cluster centres."""
    label = np.full(len(points), -1)
    centres = []
    tree = cKDTree(points)
    for index in range(len(points)):
        if label[index] >= 0:
            continue
        members = [m for m in tree.query_ball_point(points[index], radius_m) if label[m] < 0]
        label[members] = len(centres)
        centres.append(points[members].mean(0))
    return label, np.array(centres).reshape(-1, 2)


def _crossings(network: RoadNetwork, lines: list[np.ndarray], node_xy: np.ndarray, kinds: list[int]) -> list[tuple[int, int]]:
    """Node pairs joined by a crossing: the map's crosswalks, else one across each road end at a junction."""
    tree = cKDTree(node_xy)
    pairs: set[tuple[int, int]] = set()
    polygons = _crosswalk_polygons(network)
    for polygon in polygons:
        centre = polygon.mean(0)
        axis = np.linalg.svd(polygon - centre)[2][0]  # the long axis of the crosswalk
        along = (polygon - centre) @ axis
        ends = [centre + axis * (along.min() - 1.0), centre + axis * (along.max() + 1.0)]
        found = [tree.query(end, distance_upper_bound=CROSSWALK_SNAP_M) for end in ends]
        if all(np.isfinite(distance) for distance, _ in found) and found[0][1] != found[1][1]:
            pairs.add(tuple(sorted((int(found[0][1]), int(found[1][1])))))
    if polygons:
        return sorted(pairs)
    # No crosswalks in the map: cross each road next to a junction, between facing sidewalk ends.
    junction_xy = network.points[np.flatnonzero(network.in_junction)]
    if len(junction_xy) == 0:
        return []
    near_junction = cKDTree(junction_xy).query(node_xy)[0] < 12.0
    for a, b in sorted(tree.query_pairs(32.0)):
        if not (near_junction[a] and near_junction[b]):
            continue
        gap = np.hypot(*(node_xy[b] - node_xy[a]))
        if gap < 8.0:
            continue
        # Facing across a road: the segment between them crosses driving lanes only, so its middle is on a lane.
        middle = (node_xy[a] + node_xy[b]) / 2.0
        distance, sample = network.nearest_samples(middle)
        if distance > 2.0 or network.in_junction[sample]:
            continue
        direction = (node_xy[b] - node_xy[a]) / gap
        lane_yaw = network.yaw_rad[sample]
        if abs(direction @ np.array([np.cos(lane_yaw), np.sin(lane_yaw)])) < 0.35:
            pairs.add((int(a), int(b)))
    return sorted(pairs)


def _across_distances(lines: list[np.ndarray], kinds: np.ndarray) -> np.ndarray:
    """For each sidewalk edge, the distance straight across the road (leftwards) to another sidewalk."""
    across = np.full(len(lines), np.nan)
    sidewalks = np.flatnonzero(kinds == SIDEWALK)
    samples = np.concatenate([lines[e] for e in sidewalks])
    owner = np.concatenate([np.full(len(lines[e]), e) for e in sidewalks])
    tree = cKDTree(samples)
    for edge in sidewalks:
        line = lines[edge]
        if len(line) < 4:
            continue
        middle = line[len(line) // 2]
        tangent = line[min(len(line) // 2 + 1, len(line) - 1)] - line[len(line) // 2 - 1]
        tangent /= max(np.hypot(*tangent), 1e-9)
        left = np.array([tangent[1], -tangent[0]])  # CARLA's left-handed frame: left of (cos, sin) is (sin, -cos)
        candidates = [c for c in tree.query_ball_point(middle, 40.0) if owner[c] != edge]
        if not candidates:
            continue
        offset = samples[candidates] - middle
        forward = offset @ left
        sideways = np.abs(offset @ tangent)
        good = (forward > 5.0) & (sideways < 2.0)
        if good.any():
            across[edge] = float(forward[good].min())
    return across


class Walkers:
    """All walkers of one episode, vectorised: edge, arc length, direction, speed, mode."""

    def __init__(self, network: WalkerNetwork, config: WalkersConfig, rng: np.random.Generator) -> None:
        self.net = network
        self.config = config
        self.rng = rng
        self.ids = np.zeros(0, dtype=np.int64)
        self.edge = np.zeros(0, dtype=np.int64)
        self.s_m = np.zeros(0)
        self.direction = np.zeros(0)  # +1 along the edge, -1 against it
        self.speed_mps = np.zeros(0)
        self.mode = np.zeros(0, dtype=np.int64)
        self.free_from = np.zeros((0, 2))  # jaywalk start and end
        self.free_to = np.zeros((0, 2))
        self.free_t = np.zeros(0)
        self.wait_s = np.zeros(0)
        self.xy = np.zeros((0, 2))
        self.yaw_rad = np.zeros(0)
        self.velocity = np.zeros((0, 2))
        self._next_id = 1
        self.jaywalk_in_s = np.zeros(0)  # time to the next jaywalk (exponential, drawn per walker) [s]
        self.blocked_s = np.zeros(0)  # how long a vehicle has stood in the walker's way [s]
        self._parked_s: dict[int, np.ndarray] = {}  # sidewalk edge -> arc lengths beside parked cars
        self._edge_has_parked = np.zeros(network.num_edges, dtype=bool)

    PER_WALKER = ("ids", "edge", "s_m", "direction", "speed_mps", "mode", "free_from", "free_to", "free_t", "wait_s",
                  "jaywalk_in_s", "blocked_s")

    @property
    def count(self) -> int:
        return len(self.ids)

    def spawn(self, count: int, near_xy: np.ndarray | None = None, near_share: float = 0.5) -> None:
        """Place walkers on sidewalk edges: ``near_share`` of them within 40 m of ``near_xy`` (P, 2) points."""
        net = self.net
        sidewalks = np.flatnonzero((net.edge_kind == SIDEWALK) & (net.edge_length_m > 2.0))
        if count <= 0 or len(sidewalks) == 0:
            return
        weights = net.edge_length_m[sidewalks].astype(float)
        edges = self.rng.choice(sidewalks, size=count, p=weights / weights.sum())
        s_m = self.rng.uniform(0.0, 1.0, count) * net.edge_length_m[edges]
        if near_xy is not None and len(near_xy):
            starts = net.points[net.edge_start[sidewalks]]
            close = sidewalks[cKDTree(np.asarray(near_xy)).query(starts)[0] < 40.0]
            near = self.rng.random(count) < near_share
            if len(close) and near.any():
                edges[near] = self.rng.choice(close, size=int(near.sum()))
                s_m[near] = self.rng.uniform(0.0, 1.0, int(near.sum())) * net.edge_length_m[edges[near]]
        low, high = self.config.speed_mps
        direction = self.rng.choice([-1.0, 1.0], size=count)
        speed = self.rng.uniform(low, high, count)
        self._append(edges, s_m, direction, speed, self._jaywalk_delays(count))

    def _append(self, edges: np.ndarray, s_m: np.ndarray, direction: np.ndarray, speed_mps: np.ndarray,
                jaywalk_in_s: np.ndarray) -> None:
        """Add walkers walking along sidewalk edges (the per-walker arrays of ``PER_WALKER``)."""
        count = len(edges)
        new = {
            "ids": np.arange(self._next_id, self._next_id + count), "edge": edges, "s_m": s_m, "direction": direction,
            "speed_mps": speed_mps, "mode": np.full(count, ALONG), "free_from": np.zeros((count, 2)),
            "free_to": np.zeros((count, 2)), "free_t": np.zeros(count), "wait_s": np.zeros(count),
            "jaywalk_in_s": jaywalk_in_s, "blocked_s": np.zeros(count),
        }
        self._next_id += count
        for name in self.PER_WALKER:
            setattr(self, name, np.concatenate([getattr(self, name), new[name]]))
        self._update_pose()

    def place_near(self, xy: np.ndarray, speed_mps: float | None = None, direction: float = 1.0) -> int:
        """Put one walker on the sidewalk point nearest ``xy`` (scenarios, tests); returns its index."""
        net = self.net
        sidewalk_points = np.flatnonzero(net.edge_kind[net.point_edge] == SIDEWALK)
        if len(sidewalk_points) == 0:
            raise ValueError("this map has no sidewalks to place a walker on")
        point = int(sidewalk_points[np.argmin(np.hypot(*(net.points[sidewalk_points] - xy).T))])
        edge = int(net.point_edge[point])
        s_m = (point - net.edge_start[edge]) * net.edge_length_m[edge] / max(net.edge_count[edge] - 1, 1)
        low, high = self.config.speed_mps
        speed = speed_mps if speed_mps is not None else (low + high) / 2
        self._append(np.array([edge]), np.array([s_m], float), np.array([direction]), np.array([speed], float),
                     np.full(1, np.inf))  # a scripted walker does not jaywalk on its own
        return self.count - 1

    def _jaywalk_delays(self, count: int) -> np.ndarray:
        rate_per_s = self.config.jaywalk_per_min / 60.0
        return self.rng.exponential(1.0 / rate_per_s, count) if rate_per_s > 0 else np.full(count, np.inf)

    def set_parked_cars(self, xy: np.ndarray) -> None:
        """Where parked cars stand (P, 2): walkers passing them may step out from behind them."""
        self._parked_s = {}
        self._edge_has_parked[:] = False
        if len(xy) == 0:
            return
        net = self.net
        distance, sample = cKDTree(net.points).query(xy)
        for d, point in zip(distance, sample, strict=True):
            edge = int(net.point_edge[point])
            if d < 4.0 and net.edge_kind[edge] == SIDEWALK:
                s = (point - net.edge_start[edge]) * net.edge_length_m[edge] / max(net.edge_count[edge] - 1, 1)
                self._parked_s.setdefault(edge, np.zeros(0))
                self._parked_s[edge] = np.append(self._parked_s[edge], s)
                self._edge_has_parked[edge] = True

    def jaywalk(self, index: int, across_m: float | None = None) -> None:
        """Walker ``index`` steps off the sidewalk and walks straight across the road (scenarios, tests)."""
        net = self.net
        edge = int(self.edge[index])
        distance = across_m if across_m is not None else float(net.across_m[edge])
        if not np.isfinite(distance):
            return
        walking = np.array([np.cos(self.yaw_rad[index]), np.sin(self.yaw_rad[index])])
        # The road lies left of the edge's forward direction (the sidewalk is right of its lane); CARLA's frame is
        # left-handed, so left of (cos, sin) is (sin, -cos).
        left = np.array([walking[1], -walking[0]]) * self.direction[index]
        self.free_from[index] = self.xy[index]
        self.free_to[index] = self.xy[index] + left * distance
        self.free_t[index] = 0.0
        self.mode[index] = FREE

    def knock_down(self, index: int) -> None:
        self.mode[index] = DOWN
        self.speed_mps[index] = 0.0

    # ------------------------------------------------------------------------------------------ motion
    def step(self, dt_s: float, vehicle_xy: np.ndarray | None = None, blocked: np.ndarray | None = None) -> None:
        """Advance every walker; choose new edges at nodes; start jaywalks.

        Args:
            vehicle_xy: Vehicles the walkers look at when ``yield_to_vehicles`` is set.
            blocked: (W,) walkers with a vehicle right in front of them: they do not walk into it this step.
        """
        net, cfg = self.net, self.config
        if self.count == 0:
            return
        moving = np.ones(self.count, dtype=bool) if blocked is None else ~blocked
        self.blocked_s = np.where(moving, 0.0, self.blocked_s + dt_s)
        for index in np.flatnonzero(self.blocked_s > BLOCKED_TURN_BACK_S):
            self._turn_back(int(index))
        along = (self.mode == ALONG) & moving
        previous_s = self.s_m.copy()
        self.s_m = np.where(along, self.s_m + self.direction * self.speed_mps * dt_s, self.s_m)
        free = (self.mode == FREE) & moving
        if free.any():
            span = np.maximum(np.hypot(*(self.free_to[free] - self.free_from[free]).T), 1e-6)
            self.free_t[free] = np.minimum(self.free_t[free] + self.speed_mps[free] * cfg.crossing_speed_factor * dt_s / span, 1.0)
        waiting = self.mode == WAITING
        if waiting.any():
            self.wait_s[waiting] -= dt_s
            self.mode[waiting & (self.wait_s <= 0.0)] = ALONG
        length = net.edge_length_m[self.edge]
        for index in np.flatnonzero(along & ((self.s_m < 0.0) | (self.s_m > length))):
            self._next_edge(index, vehicle_xy)
        for index in np.flatnonzero(free & (self.free_t >= 1.0)):
            self._land(index)
        self._start_jaywalks(along & (self.mode == ALONG), previous_s, dt_s)
        self._update_pose()

    def _next_edge(self, index: int, vehicle_xy: np.ndarray | None) -> None:
        net = self.net
        edge = int(self.edge[index])
        node = int(net.edge_nodes[edge, 1 if self.direction[index] > 0 else 0])
        options = [e for e in net.node_edges[node] if e != edge] or [edge]
        crossings = [e for e in options if net.edge_kind[e] == CROSSING]
        sidewalks = [e for e in options if net.edge_kind[e] != CROSSING]
        if crossings and (not sidewalks or self.rng.random() < self.config.cross_probability):
            pool = crossings
        else:
            pool = sidewalks or options
        chosen = int(pool[self.rng.integers(len(pool))])
        if net.edge_kind[chosen] == CROSSING and self.config.yield_to_vehicles and vehicle_xy is not None and len(vehicle_xy):
            if np.min(np.hypot(*(vehicle_xy - net.node_xy[node]).T)) < 20.0:
                self.mode[index], self.wait_s[index] = WAITING, 2.0
                self.s_m[index] = np.clip(self.s_m[index], 0.0, net.edge_length_m[edge])
                return
        starts_here = net.edge_nodes[chosen, 0] == node
        self.edge[index] = chosen
        self.direction[index] = 1.0 if starts_here else -1.0
        self.s_m[index] = 0.0 if starts_here else net.edge_length_m[chosen]

    def _turn_back(self, index: int) -> None:
        """A walker a car stands in front of goes back the way it came."""
        if self.mode[index] == FREE:
            self.free_to[index], self.free_from[index] = self.free_from[index].copy(), self.xy[index].copy()
            self.free_t[index] = 0.0
        else:
            self.direction[index] = -self.direction[index]
        self.blocked_s[index] = 0.0

    def _land(self, index: int) -> None:
        """End of a jaywalk: continue along the nearest sidewalk edge."""
        net = self.net
        distance = np.hypot(*(net.points - self.free_to[index]).T)
        point = int(np.argmin(np.where(net.edge_kind[net.point_edge] == SIDEWALK, distance, np.inf)))
        edge = int(net.point_edge[point])
        self.edge[index] = edge
        self.s_m[index] = (point - net.edge_start[edge]) * net.edge_length_m[edge] / max(net.edge_count[edge] - 1, 1)
        self.direction[index] = self.rng.choice([-1.0, 1.0])
        self.mode[index] = ALONG

    def _start_jaywalks(self, candidates: np.ndarray, previous_s: np.ndarray, dt_s: float) -> None:
        """Jaywalks: when a walker's exponential timer runs out, or (by chance) as it passes a parked car."""
        net, cfg = self.net, self.config
        self.jaywalk_in_s -= dt_s
        can = candidates & (net.edge_kind[self.edge] == SIDEWALK) & np.isfinite(net.across_m[self.edge])
        start = can & (self.jaywalk_in_s <= 0.0)
        for index in np.flatnonzero(can & ~start & self._edge_has_parked[self.edge]):
            parked = self._parked_s[int(self.edge[index])]
            low, high = sorted((previous_s[index], self.s_m[index]))
            if ((parked >= low) & (parked < high)).any() and self.rng.random() < cfg.behind_parked_probability:
                start[index] = True
        started = np.flatnonzero(start)
        if len(started):
            self.jaywalk_in_s[started] = self._jaywalk_delays(len(started))
            for index in started:
                self._update_pose_one(index)
                self.jaywalk(int(index))

    def _update_pose_one(self, index: int) -> None:
        xy, yaw = self.net.position(self.edge[index : index + 1], self.s_m[index : index + 1])
        self.xy[index], self.yaw_rad[index] = xy[0], yaw[0] + (np.pi if self.direction[index] < 0 else 0.0)

    def _update_pose(self) -> None:
        xy, yaw = self.net.position(self.edge, np.clip(self.s_m, 0.0, self.net.edge_length_m[self.edge]))
        yaw = np.where(self.direction < 0, yaw + np.pi, yaw)
        free = self.mode == FREE
        if free.any():
            t = self.free_t[free][:, None]
            xy[free] = self.free_from[free] + (self.free_to[free] - self.free_from[free]) * t
            delta = self.free_to[free] - self.free_from[free]
            yaw[free] = np.arctan2(delta[:, 1], delta[:, 0])
        down = self.mode == DOWN
        if down.any() and len(self.xy) == len(xy):
            xy[down], yaw[down] = self.xy[down], self.yaw_rad[down]
        self.xy, self.yaw_rad = xy, yaw
        speed = np.where(self.mode == FREE, self.config.crossing_speed_factor * self.speed_mps,
                         np.where(self.mode == ALONG, self.speed_mps, 0.0))
        if len(self.blocked_s) == len(speed):
            speed = np.where(self.blocked_s > 0.0, 0.0, speed)
        self.velocity = np.column_stack([np.cos(yaw) * speed, np.sin(yaw) * speed])

    def on_road(self) -> np.ndarray:
        """Walkers (W,) crossing a road now (on a crossing edge or jaywalking)."""
        if self.count == 0:
            return np.zeros(0, dtype=bool)
        return ((self.mode == ALONG) & (self.net.edge_kind[self.edge] == CROSSING)) | (self.mode == FREE)

    def boxes(self) -> np.ndarray:
        """Walkers as (W, 5) boxes: x, y, yaw [deg], length, width (the sensors' input)."""
        count = self.count
        return np.column_stack([self.xy, np.degrees(self.yaw_rad), np.full(count, WALKER_SIZE_M), np.full(count, WALKER_SIZE_M)])
