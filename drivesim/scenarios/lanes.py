"""Lane queries scenarios need: neighbour lanes, junction lanes crossing the ego's, where to start a car so it
arrives at a point in time. Pure functions of the road network (every simulator has one)."""

from __future__ import annotations

import math

import numpy as np

from drivesim.sim.road import RoadNetwork

CROSS_M = 2.0  # junction lanes whose centre lines come this close cross [m]


def lane_line(network: RoadNetwork, segment: int) -> np.ndarray:
    start, count = network.segment_start[segment], network.segment_count[segment]
    return network.points[start : start + count]


def turn_rad(network: RoadNetwork, segment: int) -> float:
    """Heading change along a lane (positive: right turn, CARLA's frame)."""
    start, count = network.segment_start[segment], network.segment_count[segment]
    return float(math.remainder(network.yaw_rad[start + count - 1] - network.yaw_rad[start], math.tau))


def turn_kind(network: RoadNetwork, segment: int) -> str:
    """'left', 'right' or 'straight' for a junction lane."""
    turn = turn_rad(network, segment)
    if abs(turn) < math.radians(30.0):
        return "straight"
    return "right" if turn > 0 else "left"


def approach_of(network: RoadNetwork, junction_lane: int) -> int:
    """The lane leading into a junction lane (-1: none)."""
    before = [p for p in network.predecessors[junction_lane] if not network.segment_in_junction[p]]
    return int(before[0]) if before else -1


def crossing_lanes(network: RoadNetwork, junction_lane: int) -> list[tuple[int, float, float]]:
    """Junction lanes of the same junction entered from another road that cross ``junction_lane``:
    (lane, distance along ``junction_lane`` to the crossing, distance along the other lane to it) [m]."""
    junction = network.segment_junction[junction_lane]
    mine = lane_line(network, junction_lane)
    my_road = network.segment_road_lane[approach_of(network, junction_lane)][0] if approach_of(network, junction_lane) >= 0 else None
    found = []
    for other in np.flatnonzero((network.segment_junction == junction) & network.segment_in_junction):
        other = int(other)
        source = approach_of(network, other)
        if other == junction_lane or source < 0 or network.segment_road_lane[source][0] == my_road:
            continue
        theirs = lane_line(network, other)
        gap = np.linalg.norm(mine[:, None] - theirs[None], axis=-1)
        i, j = np.unravel_index(int(np.argmin(gap)), gap.shape)
        if gap[i, j] < CROSS_M and 0 < j < len(theirs) - 1:
            found.append((other, float(i * network.segment_spacing_m[junction_lane]),
                          float(j * network.segment_spacing_m[other])))
    return found


def start_for_arrival(network: RoadNetwork, junction_lane: int, along_m: float, speed_mps: float,
                      arrival_s: float) -> tuple[int, float]:
    """Where on the approach of ``junction_lane`` a car at ``speed_mps`` starts to reach the point ``along_m``
    into the junction lane in ``arrival_s`` seconds: (approach lane, arc length on it), clipped to the lane."""
    approach = approach_of(network, junction_lane)
    before_entry = speed_mps * arrival_s - along_m
    length = float(network.segment_length_m[approach])
    return approach, float(np.clip(length - before_entry, 0.0, max(length - 1.0, 0.0)))


def same_direction_neighbour(network: RoadNetwork, segment: int, direction: str = "left") -> int:
    """The lane beside ``segment`` one may change into (``direction`` 'left' or 'right'; -1: none)."""
    return int((network.left_neighbour if direction == "left" else network.right_neighbour)[segment])


def route_point_index(route, route_s: float) -> int:
    """Index of the route point nearest route distance ``route_s`` (clipped to the route)."""
    return int(np.clip(round(route_s / route.spacing_m), 0, len(route.points) - 1))


def route_lane_at(route, network: RoadNetwork, route_s: float) -> tuple[int, float]:
    """Lane and arc length on it of the route point at ``route_s``."""
    point = route_point_index(route, route_s)
    sample = network.nearest_sample(route.points[point], float(route.yaw_rad[point]))
    return int(network.segment_of[sample]), float(network.segment_s(sample))
