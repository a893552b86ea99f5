"""Static things: parked vehicles along the kerb, lane-blocking obstacles, and buildings beside the roads.

Parked vehicles stand in the map's parking lanes (or shoulders wide enough for a car). Lane blockers stand in a
driving lane that has a same-direction neighbour, so passing them needs a lane change: a broken-down car with a
warning triangle behind it, or a construction site of cones. Buildings are boxes set back from each road's
outer kerb where nothing else is; they are static for a map (seeded by its hash) and drawn by the camera.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from drivesim.sensors.geometry import box_corners
from drivesim.sensors.map_raster import MapRaster, render_map_raster
from drivesim.sim.road import RoadNetwork
from drivesim.sim.traffic import NPC_LENGTH_M, NPC_WIDTH_M

PARKED, BROKEN_DOWN, CONE, TRIANGLE = 0, 1, 2, 3
VEHICLE_KINDS = (PARKED, BROKEN_DOWN)  # drawn and counted as vehicles; the others are static props
PROP_SIZE_M = {CONE: (0.4, 0.4), TRIANGLE: (0.3, 0.7)}
PARKING_SPACING_M = 6.5  # one parking place per this much kerb [m]
PARKING_MIN_WIDTH_M = 2.2  # a shoulder this wide takes parked cars [m]
BLOCKER_BEFORE_JUNCTION_M = 45.0  # blockers stand at least this far before the lane's end [m]


@dataclass
class StaticActors:
    """Parked vehicles and props of one episode."""

    boxes: np.ndarray  # (N, 5) x, y, yaw [deg], length, width
    kind: np.ndarray  # (N,)
    segment: np.ndarray  # (N,) lane blocked, -1 for things beside the road
    s_m: np.ndarray  # (N,) arc length on that lane

    @staticmethod
    def empty() -> StaticActors:
        return StaticActors(np.zeros((0, 5)), np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))

    def __len__(self) -> int:
        return len(self.kind)

    @property
    def is_vehicle(self) -> np.ndarray:
        return np.isin(self.kind, VEHICLE_KINDS)

    def label(self, index: int) -> str:
        """``collision_actor`` label: parked and broken-down cars are vehicles, the rest static props."""
        if self.kind[index] in VEHICLE_KINDS:
            return f"vehicle:static_{index}"
        return f"static:{('cone', 'triangle')[self.kind[index] - CONE]}_{index}"

    def append(self, boxes: np.ndarray, kind: int, segment: int = -1, s_m: float = 0.0) -> None:
        count = len(boxes)
        self.boxes = np.concatenate([self.boxes, np.asarray(boxes, float).reshape(-1, 5)])
        self.kind = np.concatenate([self.kind, np.full(count, kind)])
        self.segment = np.concatenate([self.segment, np.full(count, segment)])
        self.s_m = np.concatenate([self.s_m, np.full(count, s_m)])


def parking_places(network: RoadNetwork) -> tuple[np.ndarray, np.ndarray]:
    """Centres (K, 2) and headings (K,) of the places where a car can be parked (cached on the network)."""
    cache = network.__dict__.setdefault("_parking_places", {})
    if "places" in cache:
        return cache["places"]
    xy, yaw = [], []
    for segment in np.flatnonzero(network.is_outermost):
        lanes = [lane for lane in network.kerb[segment]
                 if lane.lane_type == "Parking" or (lane.lane_type == "Shoulder" and lane.width_m >= PARKING_MIN_WIDTH_M)]
        length = network.segment_length_m[segment]
        if not lanes or length < 2 * PARKING_SPACING_M + 10.0:
            continue
        s_values = np.arange(8.0, length - 8.0, PARKING_SPACING_M)
        line = network.offset_line(int(segment), 0.0, lanes[0].offset_m)
        spacing = network.segment_spacing_m[segment]
        index = np.minimum((s_values / spacing).astype(np.int64), len(line) - 1)
        xy.append(line[index])
        yaw.append(network.yaw_rad[network.segment_start[segment] + index])
    places = (np.concatenate(xy) if xy else np.zeros((0, 2)), np.concatenate(yaw) if yaw else np.zeros(0))
    cache["places"] = places
    return places


def blocker_lanes(network: RoadNetwork) -> np.ndarray:
    """Lanes where a blocker can stand: outside junctions, with a same-direction neighbour, long enough."""
    neighbour = (network.left_neighbour >= 0) | (network.right_neighbour >= 0)
    return np.flatnonzero(neighbour & ~network.segment_in_junction
                          & (network.segment_length_m >= BLOCKER_BEFORE_JUNCTION_M + 35.0))


def place_static_actors(network: RoadNetwork, rng: np.random.Generator, parked: int, blockers: int,
                        avoid_xy: np.ndarray, avoid_radius_m: float) -> StaticActors:
    """Parked cars in random parking places and lane blockers in random lanes, away from ``avoid_xy`` (K, 2)."""
    actors = StaticActors.empty()
    avoid_xy = np.atleast_2d(avoid_xy).reshape(-1, 2)
    places_xy, places_yaw = parking_places(network)
    if parked > 0 and len(places_xy):
        far = np.hypot(*(places_xy[:, None, :] - avoid_xy[None]).transpose(2, 0, 1)).min(1) > avoid_radius_m
        chosen = rng.permutation(np.flatnonzero(far))[:parked]
        boxes = np.column_stack([places_xy[chosen], np.degrees(places_yaw[chosen]),
                                 np.full(len(chosen), NPC_LENGTH_M), np.full(len(chosen), NPC_WIDTH_M)])
        actors.append(boxes, PARKED)
    blocked: set[int] = set()
    for segment in rng.permutation(blocker_lanes(network)):
        if len(blocked) >= blockers:
            break
        neighbours = {int(network.left_neighbour[segment]), int(network.right_neighbour[segment])}
        if neighbours & blocked:
            continue  # never close both lanes of a road
        length = network.segment_length_m[segment]
        s_m = float(rng.uniform(25.0, length - BLOCKER_BEFORE_JUNCTION_M))
        xy, yaw = network.pose_at(np.array(segment), np.array(s_m))
        if np.hypot(*(avoid_xy - xy).T).min() < avoid_radius_m:
            continue
        if rng.random() < 0.5:
            add_broken_down_car(network, actors, int(segment), s_m)
        else:
            add_construction(network, actors, int(segment), s_m)
        blocked.add(int(segment))
    return actors


def add_broken_down_car(network: RoadNetwork, actors: StaticActors, segment: int, s_m: float) -> None:
    """A stopped car in lane ``segment`` at ``s_m`` with a warning triangle 6 m behind it."""
    xy, yaw = network.pose_at(np.array(segment), np.array(s_m))
    actors.append(np.array([[*xy, np.degrees(yaw), NPC_LENGTH_M, NPC_WIDTH_M]]), BROKEN_DOWN, segment, s_m)
    back_xy, back_yaw = network.pose_at(np.array(segment), np.array(max(s_m - 6.0, 0.0)))
    actors.append(np.array([[*back_xy, np.degrees(back_yaw), *PROP_SIZE_M[TRIANGLE]]]), TRIANGLE, segment, s_m - 6.0)


def add_construction(network: RoadNetwork, actors: StaticActors, segment: int, s_m: float, length_m: float = 8.0) -> None:
    """Cones closing lane ``segment`` from ``s_m`` for ``length_m``: a diagonal taper, then the lane's edge."""
    width = network.width_m[network.segment_start[segment]]
    for k, along in enumerate(np.arange(0.0, length_m + 1e-6, 2.0)):
        across = (0.5 - min(k / 2.0, 1.0)) * 0.7 * width  # taper from the right edge across the lane
        xy, yaw = network.pose_at(np.array(segment), np.array(s_m + along))
        right = np.array([-np.sin(yaw), np.cos(yaw)])
        actors.append(np.array([[*(xy - right * across), np.degrees(yaw), *PROP_SIZE_M[CONE]]]), CONE, segment, s_m + along)


@dataclass(frozen=True)
class Buildings:
    """Building boxes of a map: footprints (B, 5) as vehicle boxes, heights (B,), and a raster of footprints."""

    boxes: np.ndarray
    height_m: np.ndarray
    footprint: np.ndarray  # (H, W) uint8 on the map raster's grid


def build_buildings(network: RoadNetwork, raster_m_per_px: float) -> Buildings:
    """Boxes set back from every road's outer kerb where they touch no road, kerb or other building (cached)."""
    cache = network.__dict__.setdefault("_buildings", {})
    key = round(raster_m_per_px, 6)
    if key in cache:
        return cache[key]
    raster = render_map_raster(network, raster_m_per_px)
    rng = np.random.default_rng(int(network.map_hash(), 16) % (2**32))
    used = _kerb_area(network, raster)
    footprint = np.zeros(raster.shape, np.uint8)
    boxes, heights = [], []
    for segment in np.flatnonzero(network.is_outermost):
        length = network.segment_length_m[segment]
        kerb = network.kerb[segment]
        edge = (kerb[-1].offset_m + kerb[-1].width_m / 2.0) if kerb else network.width_m[network.segment_start[segment]] / 2.0
        s = float(rng.uniform(0.0, 6.0))
        while s < length - 6.0:
            size = float(rng.uniform(10.0, 24.0))
            depth = float(rng.uniform(8.0, 16.0))
            middle = min(s + size / 2.0, length)
            xy, yaw = network.pose_at(np.array(segment), np.array(middle))
            right = np.array([-np.sin(yaw), np.cos(yaw)])
            centre = xy + right * (edge + 2.0 + depth / 2.0)
            box = np.array([*centre, np.degrees(yaw), size, depth])
            polygon = _raster_polygon(raster, box)
            if _free(used, polygon) and _free(footprint, polygon):
                cv2.fillConvexPoly(footprint, polygon, 1)
                boxes.append(box)
                heights.append(float(rng.uniform(6.0, 24.0)))
            s += size + float(rng.uniform(3.0, 8.0))
    result = Buildings(np.array(boxes).reshape(-1, 5), np.array(heights), footprint)
    cache[key] = result
    return result


def _raster_polygon(raster: MapRaster, box: np.ndarray) -> np.ndarray:
    return np.round(raster.to_pixels(box_corners(box[None])[0])).astype(np.int32)


def _free(layer: np.ndarray, polygon: np.ndarray) -> bool:
    """No set pixel of ``layer`` under ``polygon`` (and the polygon inside the raster)."""
    height, width = layer.shape
    if polygon[:, 0].min() < 0 or polygon[:, 1].min() < 0 or polygon[:, 0].max() >= width or polygon[:, 1].max() >= height:
        return False
    low, high = polygon.min(0), polygon.max(0) + 1
    window = np.zeros((high[1] - low[1], high[0] - low[0]), np.uint8)
    cv2.fillConvexPoly(window, polygon - low, 1)
    return not (window & layer[low[1] : high[1], low[0] : high[0]]).any()


def _kerb_area(network: RoadNetwork, raster: MapRaster) -> np.ndarray:
    """Driving lanes, junctions and kerb lanes (plus a 1 m verge) on the raster's grid."""
    used = raster.drivable.copy()
    used = cv2.dilate(used, np.ones((5, 5), np.uint8))  # junction corners between lanes
    for segment in np.flatnonzero(network.is_outermost):
        kerb = network.kerb[segment]
        edge = (kerb[-1].offset_m + kerb[-1].width_m / 2.0) if kerb else network.width_m[network.segment_start[segment]] / 2.0
        inner = network.offset_line(int(segment), 0.0, 0.0)
        outer = network.offset_line(int(segment), 0.0, edge + 1.0)
        polygon = np.round(raster.to_pixels(np.concatenate([inner, outer[::-1]])) * 16).astype(np.int32)
        cv2.fillPoly(used, [polygon], 1, cv2.LINE_8, 4)
    return used
