"""The one actor API scenarios script through, and its implementation on the embedded world.

A scenario only talks to ``ScenarioActors``: where the ego is along its route, the road network, and verbs to
spawn and drive other actors (vehicles, walkers, static obstacles) and to set lights. The embedded world
implements it here (``EmbeddedActors``); a CARLA server implements the same verbs with real actors (the
bridge's side, see ``carla_bridge``), so one scenario definition runs on both.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from drivesim.scenarios.lanes import route_lane_at, route_point_index
from drivesim.sim.props import BROKEN_DOWN, PARKED, add_broken_down_car, add_construction
from drivesim.sim.road import RoadNetwork
from drivesim.sim.route import junction_runs
from drivesim.sim.traffic import NPC_LENGTH_M, NPC_WIDTH_M
from drivesim.sim.world import DrivingWorld

STATIC_KINDS = ("broken_down_car", "parked_car", "kerb_car", "construction")
CLEAR_AROUND_VEHICLE_M = 8.0  # free NPCs this close to a scripted car's spawn point make room [m]
CLEAR_AROUND_STATIC_M = 30.0  # NPCs this close to a scripted obstacle are moved elsewhere when it appears [m]


class ScenarioActors(Protocol):
    """What a scenario may read and do (identical on every simulator)."""

    network: RoadNetwork

    def time_s(self) -> float: ...
    def ego_route_s(self) -> float: ...
    def ego_speed_mps(self) -> float: ...
    def route_lane(self, route_s: float) -> tuple[int, float]: ...
    def route_pose(self, route_s: float) -> tuple[np.ndarray, float]: ...
    def route_junctions(self) -> list[tuple[float, float, int]]: ...
    def spawn_vehicle(self, segment: int, s_m: float, speed_mps: float, desired_mps: float,
                      ignore_lights: bool = False, straight: bool = False) -> int: ...
    def vehicle_state(self, vehicle: int) -> tuple[np.ndarray, float, int] | None: ...
    def set_vehicle_speed(self, vehicle: int, speed_mps: float | None) -> None: ...
    def set_vehicle_accel(self, vehicle: int, accel_mps2: float | None) -> None: ...
    def change_lane(self, vehicle: int, target_segment: int) -> None: ...
    def spawn_walker(self, xy: np.ndarray, speed_mps: float) -> int: ...
    def walker_cross(self, walker: int, across_m: float | None = None, speed_mps: float | None = None) -> None: ...
    def spawn_static(self, kind: str, segment: int, s_m: float) -> None: ...
    def set_light(self, junction_lane: int, state: int | None) -> None: ...


class EmbeddedActors:
    """``ScenarioActors`` on the embedded ``DrivingWorld``."""

    def __init__(self, world: DrivingWorld) -> None:
        self.world = world
        self.network = world.network

    # ------------------------------------------------------------------------------------------ reading
    def time_s(self) -> float:
        return self.world.step_count * self.world.config.episode.dt_s

    def ego_route_s(self) -> float:
        return float(self.world.tracker.route_s_m)

    def ego_speed_mps(self) -> float:
        return float(self.world.ego.speed_mps)

    def route_lane(self, route_s: float) -> tuple[int, float]:
        """Lane segment and arc length on it of the route point at ``route_s``."""
        return route_lane_at(self.world.route, self.network, route_s)

    def route_pose(self, route_s: float) -> tuple[np.ndarray, float]:
        route = self.world.route
        point = route_point_index(route, route_s)
        return route.points[point].copy(), float(route.yaw_rad[point])

    def route_junctions(self) -> list[tuple[float, float, int]]:
        """(entry route s, exit route s, junction lane) of every junction the route crosses."""
        return [(float(entry), float(end), int(lane)) for entry, end, lane in junction_runs(self.world.route)]

    # ------------------------------------------------------------------------------------------ vehicles
    def spawn_vehicle(self, segment: int, s_m: float, speed_mps: float, desired_mps: float,
                      ignore_lights: bool = False, straight: bool = False) -> int:
        world = self.world
        world.clear_around(self.network.pose_at(np.array(segment), np.array(s_m))[0], CLEAR_AROUND_VEHICLE_M)
        npc = world.traffic.place(segment, s_m, speed_mps, desired_mps, ignore_lights=ignore_lights)
        if straight:
            from drivesim.sim.traffic import straightest_chain

            world.traffic.chain[world.traffic.index_of(npc)] = straightest_chain(self.network, segment)
        world.refresh_decisions()
        return npc

    def _index(self, vehicle: int) -> int | None:
        traffic = self.world.traffic
        found = np.flatnonzero(traffic.ids == vehicle)
        return int(found[0]) if len(found) else None

    def vehicle_state(self, vehicle: int) -> tuple[np.ndarray, float, int] | None:
        """Position, speed and current lane of ``vehicle`` (None once it left the world)."""
        index = self._index(vehicle)
        if index is None:
            return None
        traffic = self.world.traffic
        return traffic.xy[index].copy(), float(traffic.speed_mps[index]), int(traffic.chain[index, 0])

    def set_vehicle_speed(self, vehicle: int, speed_mps: float | None) -> None:
        index = self._index(vehicle)
        if index is not None:
            self.world.traffic.forced_speed_mps[index] = np.nan if speed_mps is None else speed_mps

    def set_vehicle_accel(self, vehicle: int, accel_mps2: float | None) -> None:
        index = self._index(vehicle)
        if index is not None:
            self.world.traffic.forced_accel_mps2[index] = np.nan if accel_mps2 is None else accel_mps2
            self.world.refresh_decisions()

    def change_lane(self, vehicle: int, target_segment: int) -> None:
        index = self._index(vehicle)
        if index is not None:
            self.world.traffic.start_lane_change(index, target_segment)

    # ------------------------------------------------------------------------------------------ walkers
    def spawn_walker(self, xy: np.ndarray, speed_mps: float) -> int:
        walkers = self.world.walkers
        index = walkers.place_near(np.asarray(xy, dtype=float), speed_mps)
        walkers.speed_mps[index] = speed_mps
        return int(walkers.ids[index])

    def walker_cross(self, walker: int, across_m: float | None = None, speed_mps: float | None = None) -> None:
        walkers = self.world.walkers
        found = np.flatnonzero(walkers.ids == walker)
        if len(found):
            if speed_mps is not None:
                walkers.speed_mps[found[0]] = speed_mps
            walkers.jaywalk(int(found[0]), across_m)
            self.world.refresh_decisions()

    # ------------------------------------------------------------------------------------------ statics, lights
    def spawn_static(self, kind: str, segment: int, s_m: float) -> None:
        """A broken-down car (with its warning triangle), a car parked in the lane or at its kerb, or a
        construction site in the lane."""
        world = self.world
        if kind == "broken_down_car":
            add_broken_down_car(self.network, world.statics, segment, s_m)
        elif kind in ("parked_car", "kerb_car"):  # in the lane, or beside it at the kerb (not blocking)
            xy, yaw = self.network.pose_at(np.array(segment), np.array(s_m))
            if kind == "kerb_car":
                width = float(self.network.width_m[self.network.segment_start[segment]])
                xy = xy + np.array([-np.sin(yaw), np.cos(yaw)]) * (width / 2.0 + NPC_WIDTH_M / 2.0 + 0.2)
            world.statics.append(np.array([[*xy, np.degrees(yaw), NPC_LENGTH_M, NPC_WIDTH_M]]),
                                 BROKEN_DOWN if kind == "parked_car" else PARKED, segment if kind == "parked_car" else -1, s_m)
        elif kind == "construction":
            add_construction(self.network, world.statics, segment, s_m)
        else:
            raise ValueError(f"unknown static kind {kind!r}; expected one of {STATIC_KINDS}")
        world.clear_around(self.network.pose_at(np.array(segment), np.array(s_m))[0], CLEAR_AROUND_STATIC_M)
        world.refresh_decisions()

    def set_light(self, junction_lane: int, state: int | None) -> None:
        """Force the light controlling ``junction_lane`` to ``state`` (RED/YELLOW/GREEN; None: its cycle)."""
        pole = int(self.world.layout.light_of_segment[junction_lane])
        if pole >= 0:
            self.world.lights.set_state(pole, state)
            self.world.refresh_decisions()
