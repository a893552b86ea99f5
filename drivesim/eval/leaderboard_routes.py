"""Evaluation stage: Leaderboard route files (1.0: route XML + scenario JSON; 2.0: route XML with inline
scenarios) imported into drivesim route suites, on any map the simulator loads (a built-in name or an .xodr).

Each route's waypoints are matched to the lanes near them, and the route is the cheapest chain of lane-graph
paths through one lane per waypoint (lane successors and lane changes, ``RoadNetwork.graph``), as the
Leaderboard's ``interpolate_trajectory`` plans between keypoints with CARLA's GlobalRoutePlanner. Like it, the
waypoints' yaw is not used for routing (1.0 files hold yaws that are not the lane's heading). Scenario trigger points become route distances
(``trigger_route_s``) at the first route point within 2 m and 10 deg of them (leaderboard ``route_parser.py``:
DIST_THRESHOLD / ANGLE_THRESHOLD in 2.0, TRIGGER_THRESHOLD / TRIGGER_ANGLE_THRESHOLD in 1.0); a trigger off the
route is dropped with a warning, as the Leaderboard's ``RouteScenario._filter_scenarios`` does.

Leaderboard 1.0 keeps scenarios apart, per town, in a JSON of trigger points per ``ScenarioN``; they are matched
to the route, then one is sampled per trigger position as ``RouteScenario._scenario_sampling`` does (the
highest scenario number first, then seeded draws among those whose positions do not overlap an earlier pick).
Scenarios 4, 7, 8 and 9 need the turn at the next junction (``RouteParser.get_scenario_type``). 1.0 numbers
are named after the ScenarioRunner class of the same situation in Leaderboard 2.0 (``SCENARIOS_1_0``).
XML is read with the standard library's expat parser, which refuses entity-expansion bombs and does not fetch
external entities.
"""

from __future__ import annotations

import json
import logging
import math
import re
import xml.etree.ElementTree as ElementTree
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
from scipy.spatial import cKDTree

from drivesim.eval.routes import RouteSpec, RouteSuite, length_to_goal, parse_map_ref
from drivesim.scenarios.spec import ScenarioSpec
from drivesim.utils import derive_seed

logger = logging.getLogger(__name__)

TRIGGER_DISTANCE_M = 2.0  # route_parser.py: DIST_THRESHOLD (2.0), TRIGGER_THRESHOLD (1.0) [m]
TRIGGER_ANGLE_DEG = 10.0  # route_parser.py: ANGLE_THRESHOLD (2.0), TRIGGER_ANGLE_THRESHOLD (1.0) [deg]
TURN_THRESHOLD_DEG = 35.0  # GlobalRoutePlanner._turn_decision: straight within 35 deg
WAYPOINT_RADIUS_M = 4.0  # lane samples this close to a waypoint are its candidates [m]
MAX_WAYPOINT_OFFSET_M = 10.0  # a waypoint farther than this from every lane is an error [m]
OFFSET_COST = 100.0  # route metres one metre of waypoint offset costs: a waypoint's own lane wins unless unreachable
ROUTE_END_TOLERANCE_M = 5.0

# Leaderboard 1.0 scenario numbers (route_scenario.py NUMBER_CLASS_TRANSLATION) -> ScenarioRunner class names; the
# junction scenarios as their Leaderboard 2.0 successors (7: a crossing vehicle runs a red light, 8: left turn
# against oncoming traffic, 9: right turn into crossing traffic, 10: crossing at an unsignalised junction).
SCENARIOS_1_0: dict[str, str] = {
    "Scenario1": "ControlLoss",
    "Scenario2": "FollowLeadingVehicle",
    "Scenario3": "DynamicObjectCrossing",
    "Scenario4": "VehicleTurningRoute",
    "Scenario5": "OtherLeadingVehicle",
    "Scenario6": "ManeuverOppositeDirection",
    "Scenario7": "OppositeVehicleRunningRedLight",
    "Scenario8": "SignalizedJunctionLeftTurn",
    "Scenario9": "SignalizedJunctionRightTurn",
    "Scenario10": "OppositeVehicleTakingPriority",
}
# RouteParser.get_scenario_type (1.0): the turn at the next junction each scenario needs (others: any route).
TURNS_1_0: dict[str, tuple[str, ...]] = {
    "Scenario4": ("left", "right"),
    "Scenario7": ("left", "right", "straight"),
    "Scenario8": ("left",),
    "Scenario9": ("right",),
}


@dataclass(frozen=True)
class FileScenario:
    """A scenario as a route file states it: its type, trigger pose (x, y, yaw [deg]) and parameters."""

    type: str
    trigger: tuple[float, float, float]
    params: dict[str, Any] = field(default_factory=dict)
    name: str = ""


@dataclass(frozen=True)
class FileRoute:
    """A route as a route file states it."""

    id: str
    town: str
    waypoints: np.ndarray  # (N, 3): x, y [m], yaw [deg] (NaN where the file gives none)
    scenarios: tuple[FileScenario, ...] = ()


def _number(text: str) -> Any:
    """An XML attribute as int, float or bool where it reads as one, else the text."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def _parameter(attributes: dict[str, str]) -> Any:
    """A 2.0 scenario parameter element: ``value="v"`` -> v, ``from/to`` -> [from, to], else the attributes."""
    if set(attributes) == {"value"}:
        return _number(attributes["value"])
    if set(attributes) == {"from", "to"}:
        return [_number(attributes["from"]), _number(attributes["to"])]
    return {key: _number(value) for key, value in attributes.items()}


def _pose(element: ElementTree.Element, where: str) -> tuple[float, float, float]:
    try:
        return float(element.attrib["x"]), float(element.attrib["y"]), float(element.attrib.get("yaw", "nan"))
    except (KeyError, ValueError) as error:
        raise ValueError(f"{where}: a position needs numeric x and y ({error})") from None


def read_route_file(path: str | Path) -> list[FileRoute]:
    """Routes of a Leaderboard route XML: 1.0 (``<waypoint .../>`` children) or 2.0 (``<waypoints><position/>``,
    ``<scenarios><scenario type=...><trigger_point/>`` and parameter elements).

    Raises:
        ValueError: The file is not a route file, naming the file and the route.
    """
    path = Path(path)
    try:
        root = ElementTree.parse(path).getroot()
    except (ElementTree.ParseError, OSError) as error:
        raise ValueError(f"{path}: not a readable route XML ({error})") from None
    routes = []
    for element in root.iter("route"):
        route_id, where = element.attrib.get("id", str(len(routes))), f"{path} route {element.attrib.get('id')}"
        container = element.find("waypoints")
        points = container.iter("position") if container is not None else element.iter("waypoint")
        waypoints = np.array([_pose(point, where) for point in points], dtype=np.float64).reshape(-1, 3)
        if len(waypoints) < 2:
            raise ValueError(f"{where}: a route needs at least two waypoints")
        scenarios = []
        for scenario in element.iter("scenario"):
            trigger, params, dropped = None, {}, []
            for child in scenario:
                if child.tag == "trigger_point":
                    trigger = _pose(child, where)
                elif child.tag == "other_actor":
                    dropped.append(child.tag)
                else:
                    params[child.tag] = _parameter(dict(child.attrib))
            if trigger is None:
                raise ValueError(f"{where}: scenario {scenario.attrib.get('name')} has no trigger_point")
            if dropped:
                logger.warning("%s: scenario %s: other_actor entries ignored (drivesim scenarios place their actors)",
                               where, scenario.attrib.get("name"))
            scenarios.append(FileScenario(scenario.attrib.get("type", ""), trigger, params, scenario.attrib.get("name", "")))
        routes.append(FileRoute(route_id, element.attrib.get("town", ""), waypoints, tuple(scenarios)))
    if not routes:
        raise ValueError(f"{path}: no <route> elements")
    return routes


def read_scenario_file(path: str | Path) -> dict[str, list[tuple[str, tuple[float, float, float], bool]]]:
    """A Leaderboard 1.0 scenario JSON: per town, (``ScenarioN``, trigger pose, has other actors) entries."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
        towns: dict[str, list] = {}
        for town_entry in data["available_scenarios"]:
            for town, scenarios in town_entry.items():
                for scenario in scenarios:
                    for event in scenario["available_event_configurations"]:
                        pose = event["transform"]
                        towns.setdefault(town, []).append(
                            (scenario["scenario_type"], (float(pose["x"]), float(pose["y"]), float(pose["yaw"])),
                             bool(event.get("other_actors")))
                        )
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path}: not a Leaderboard 1.0 scenario file ({type(error).__name__}: {error})") from None
    return towns


class RoutePlanner:
    """Chains lane-graph paths through a route's waypoints on one ``RoadNetwork``."""

    def __init__(self, network: Any) -> None:
        self.network = network
        self.tree = cKDTree(network.points)
        self._paths: dict[int, tuple[dict, dict]] = {}

    def candidates(self, xy: np.ndarray, where: str) -> list[tuple[int, float, float]]:
        """(segment, arc length, offset [m]) of the nearest sample of each lane near a waypoint."""
        network = self.network
        indices = self.tree.query_ball_point(xy, WAYPOINT_RADIUS_M)
        if not indices:
            distance, index = self.tree.query(xy)
            if distance > MAX_WAYPOINT_OFFSET_M:
                raise ValueError(f"{where} ({xy[0]:.1f}, {xy[1]:.1f}) is {distance:.1f} m from the nearest lane of "
                                 f"map {network.name}: is this the route file's town?")
            indices = [int(index)]
        best: dict[int, tuple[float, int]] = {}
        for index in indices:
            segment, offset = int(network.segment_of[index]), float(np.hypot(*(network.points[index] - xy)))
            if segment not in best or offset < best[segment][0]:
                best[segment] = (offset, index)
        return [(segment, float(network.segment_s(index)), offset) for segment, (offset, index) in best.items()]

    def _from(self, segment: int) -> tuple[dict, dict]:
        if segment not in self._paths:
            self._paths[segment] = nx.single_source_dijkstra(self.network.graph, segment, weight="weight")
        return self._paths[segment]

    def leg(self, start: tuple[int, float, float], end: tuple[int, float, float]) -> tuple[float, list[int]]:
        """Cost [m] and lane segments from one candidate to the next (inf when unreachable)."""
        (segment_a, s_a, _), (segment_b, s_b, _) = start, end
        if segment_a == segment_b and s_b >= s_a - 0.5:
            return max(s_b - s_a, 0.0), [segment_a]
        distances, paths = self._from(segment_a)
        if segment_b == segment_a or segment_b not in distances:
            return math.inf, []
        return distances[segment_b] - s_a + s_b, list(paths[segment_b])

    def plan(self, waypoints: np.ndarray, where: str) -> tuple[list[int], float, float]:
        """(segments, start arc length on the first, expected length [m]) of the cheapest chain through the
        waypoints: one lane candidate each, costed by the lane-graph distance plus the (weighted) offsets from the
        waypoints."""
        layers = [self.candidates(point[:2], f"{where} waypoint {index}") for index, point in enumerate(waypoints)]
        # Per candidate of the current layer: (cost, length so far [m], segments so far).
        best = [(OFFSET_COST * candidate[2], 0.0, [candidate[0]]) for candidate in layers[0]]
        for previous, layer in zip(layers, layers[1:], strict=False):
            new_best = []
            for candidate in layer:
                options = []
                for (cost, length, segments), start in zip(best, previous, strict=True):
                    leg_m, path = self.leg(start, candidate)
                    options.append((cost + leg_m + OFFSET_COST * candidate[2], length + leg_m, segments, path))
                cost, length, segments, path = min(options, key=lambda option: option[0])
                new_best.append((cost, length, segments + (path[1:] if path and path[0] == segments[-1] else path)))
            best = new_best
        pick = int(np.argmin([cost for cost, _, _ in best]))
        cost, length, segments = best[pick]
        if not math.isfinite(cost):
            raise ValueError(f"{where}: no lane-graph path through its waypoints on map {self.network.name}")
        first = segments[0]
        start_s = next(candidate[1] for candidate in layers[0] if candidate[0] == first)
        return segments, start_s, max(length, 1.0)


def trigger_route_s(route: Any, trigger: tuple[float, float, float]) -> float | None:
    """Route distance [m] of the first route point within 2 m and 10 deg of a trigger pose, or None."""
    distance = np.hypot(*(route.points - np.asarray(trigger[:2])).T)
    close = distance < TRIGGER_DISTANCE_M
    if math.isfinite(trigger[2]):
        turn = np.abs((np.degrees(route.yaw_rad) - trigger[2] + 180.0) % 360.0 - 180.0)
        close &= turn < TRIGGER_ANGLE_DEG
    hits = np.flatnonzero(close)
    return float(hits[0] * route.spacing_m) if hits.size else None


def next_turn(route: Any, start_s_m: float) -> str | None:
    """The turn (``left``, ``right``, ``straight``) at the first junction after ``start_s_m``, or None.

    CARLA's frame is left-handed: a heading that grows turns right. GlobalRoutePlanner._turn_decision calls a
    heading change within 35 deg straight.
    """
    start = int(start_s_m / route.spacing_m)
    inside = np.flatnonzero(route.in_junction[start:]) + start
    if inside.size == 0:
        return None
    entry = int(inside[0])
    after = np.flatnonzero(~route.in_junction[entry:]) + entry
    if after.size == 0:
        return None
    change = (math.degrees(route.yaw_rad[int(after[0])] - route.yaw_rad[max(entry - 1, 0)]) + 180.0) % 360.0 - 180.0
    if abs(change) < TURN_THRESHOLD_DEG:
        return "straight"
    return "right" if change > 0.0 else "left"


def _scenarios_1_0(route: Any, town_scenarios: Sequence[tuple[str, tuple[float, float, float], bool]],
                   seed: int = 0) -> list[FileScenario]:
    """Leaderboard 1.0: match the town's triggers to the route and sample one scenario per trigger position."""
    triggers: list[tuple[tuple[float, float, float], list[str]]] = []  # route_parser.scan_route_for_scenarios
    for number, pose, _ in town_scenarios:
        s_m = trigger_route_s(route, pose)
        if s_m is None:
            continue
        if number in TURNS_1_0 and next_turn(route, s_m) not in TURNS_1_0[number]:
            continue
        for known, members in triggers:  # check_trigger_position: the same position within 2 m and 10 deg
            turn = abs((known[2] - pose[2] + 180.0) % 360.0 - 180.0)
            if math.hypot(known[0] - pose[0], known[1] - pose[1]) < TRIGGER_DISTANCE_M and turn < TRIGGER_ANGLE_DEG:
                members.append(number)
                break
        else:
            triggers.append((pose, [number]))
    rng = np.random.RandomState(seed)  # RouteScenario._scenario_sampling: numpy.random.RandomState(0)
    sampled: list[tuple[tuple[float, float, float], str]] = []
    for pose, members in triggers:
        options = list(members)
        choice = max(options, key=lambda name: int(name.removeprefix("Scenario") or -1))  # select_scenario
        options.remove(choice)
        while any(math.hypot(pose[0] - other[0], pose[1] - other[1]) < TRIGGER_DISTANCE_M for other, _ in sampled):
            if not options:
                choice = None
                break
            choice = options.pop(int(rng.choice(len(options))))
        if choice is not None:
            sampled.append((pose, choice))
    return [FileScenario(SCENARIOS_1_0.get(number, number), pose, {}, number) for pose, number in sampled]


def _implemented_types() -> frozenset[str] | None:
    """The scenario types drivesim implements (``drivesim.scenarios.SCENARIO_TYPES``), or None without a registry."""
    import drivesim.scenarios as scenarios

    types = getattr(scenarios, "SCENARIO_TYPES", None)
    return None if types is None else frozenset(types)


def _safe_id(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "route"


def default_town(map_name: str) -> str:
    """The town a map stands for: an .xodr file's stem ("Town01"), else the built-in map's name."""
    return Path(map_name).stem if map_name.endswith(".xodr") else map_name


def import_routes(
    route_file: str | Path,
    map_ref: str,
    name: str,
    scenario_file: str | Path | None = None,
    town: str | None = None,
    seed: int = 0,
    npcs_per_km: float = 2.5,
) -> tuple[RouteSuite, list[str]]:
    """A drivesim suite from a Leaderboard route file.

    Args:
        route_file: Route XML (1.0 or 2.0).
        map_ref: The map, ``name[:seed]`` or an .xodr path (route coordinates are in its frame).
        name: Suite name; route ids are ``<name>_<file route id>``.
        scenario_file: Leaderboard 1.0 scenario JSON (for 1.0 route files; 2.0 files carry their scenarios).
        town: Import only routes of this town ("" for all); default: the map's (``default_town``).
        seed: Route seeds derive from it (route i: ``derive_seed(seed, i)``).
        npcs_per_km: NPC vehicles per lane-km of the map.

    Returns:
        The suite and the warnings raised (dropped triggers, unknown scenario types, skipped towns).

    Raises:
        ValueError: No route of the town in the file, or a route that does not fit the map.
    """
    from drivesim.eval.routes import load_network

    map_name, map_seed = parse_map_ref(map_ref)
    network = load_network(map_name, map_seed)
    planner = RoutePlanner(network)
    town = default_town(map_name) if town is None else town
    file_routes = read_route_file(route_file)
    selected = [route for route in file_routes if not town or route.town == town]
    warnings = []
    if len(selected) < len(file_routes):
        others = sorted({route.town for route in file_routes} - {town})
        warnings.append(f"{len(file_routes) - len(selected)} routes of other towns skipped ({', '.join(others)})")
    if not selected:
        raise ValueError(f"{route_file}: no route of town {town!r} (towns: "
                         f"{sorted({route.town for route in file_routes})}); pass the town or '' for all")
    town_scenarios = read_scenario_file(scenario_file) if scenario_file is not None else {}
    implemented = _implemented_types()
    lane_km = float(network.segment_length_m[~network.segment_in_junction].sum()) / 1000.0
    routes = []
    for index, file_route in enumerate(selected):
        where = f"{Path(route_file).name} route {file_route.id}"
        segments, start_s, expected_m = planner.plan(file_route.waypoints, where)
        length_m = length_to_goal(network, segments, start_s, file_route.waypoints[-1, :2], expected_m,
                                  ROUTE_END_TOLERANCE_M) or expected_m
        route = network.route_through(segments, start_s, length_m)
        scenarios = list(file_route.scenarios)
        if scenario_file is not None:
            scenarios += _scenarios_1_0(route, town_scenarios.get(file_route.town, []))
        specs = []
        for scenario in scenarios:
            s_m = trigger_route_s(route, scenario.trigger)
            if s_m is None:
                warnings.append(f"{where}: scenario {scenario.name or scenario.type} dropped: its trigger "
                                f"({scenario.trigger[0]:.1f}, {scenario.trigger[1]:.1f}) is not on the route")
                continue
            if implemented is not None and scenario.type not in implemented:
                warnings.append(f"{where}: scenario type {scenario.type} is not implemented in drivesim (kept)")
            specs.append(ScenarioSpec(type=scenario.type, trigger_route_s=s_m, params=scenario.params))
        routes.append(RouteSpec(
            id=f"{name}_{_safe_id(file_route.id)}",
            map=map_name,
            map_seed=map_seed,
            map_hash=network.map_hash(),
            seed=derive_seed(seed, index),
            npcs=int(round(npcs_per_km * lane_km)),
            start=(*np.round(route.points[0], 2).tolist(), round(float(np.degrees(route.yaw_rad[0])), 2)),
            goal=tuple(np.round(route.points[-1], 2).tolist()),
            segments=[int(s) for s in segments],
            start_s_m=float(start_s),
            length_m=route.length_m,
            scenarios=sorted(specs, key=lambda spec: spec.trigger_route_s),
        ))
    if implemented is None and any(route.scenarios for route in routes):
        warnings.append("drivesim.scenarios has no SCENARIO_TYPES registry yet: scenario types were not checked")
    for text in warnings:
        logger.warning(text)
    generator = {"source": str(route_file), "scenario_file": None if scenario_file is None else str(scenario_file),
                 "map": map_ref, "town": town, "seed": seed, "npcs_per_km": npcs_per_km}
    description = f"Imported from the Leaderboard route file {Path(route_file).name} (town {town or 'any'})."
    return RouteSuite(name=name, description=description, generator=generator, routes=routes), warnings
