"""Scenario suites: Bench2Drive-style short routes, each carrying one scenario placed where it can happen.

Every scenario class states what it ``needs`` from the road (``lane``: a junction-free stretch after the
trigger; ``neighbour_lane``: plus a same-direction lane beside it; ``junction_<turn>_<control>``: a junction on
the route turning that way, with or without lights). ``place`` finds the trigger on a candidate route and the
parameters (a direction) that make the scenario possible there; ``generate_scenario_suite`` draws routes and
parameters from a seed until every type has its draws.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from drivesim.eval.routes import RouteSpec, RouteSuite, load_network, parse_map_ref
from drivesim.scenarios import SCENARIO_TYPES
from drivesim.scenarios.lanes import crossing_lanes, route_lane_at, same_direction_neighbour, turn_kind
from drivesim.scenarios.spec import ScenarioSpec
from drivesim.sim.config import SignalsConfig
from drivesim.sim.route import junction_runs
from drivesim.sim.signals import build_signal_layout
from drivesim.utils import derive_seed

CLEAR_AHEAD_M = {"lane": 60.0, "neighbour_lane": 65.0}  # junction-free route a lane scenario needs after its trigger [m]
JUNCTION_LEAD_M = 35.0  # junction scenarios trigger this far before the junction [m]

# Parameter draws per type (ScenarioRunner's names): each draw picks one value per key.
PARAM_DRAWS: dict[str, dict[str, Sequence[Any]]] = {
    "HardBreakRoute": {"distance": [20.0, 30.0], "speed": [7.0, 9.0], "deceleration": [6.0, 8.0]},
    "StaticCutIn": {"distance": [30.0, 35.0], "speed": [5.0, 7.0], "cut_in_distance": [14.0, 20.0]},
    "ParkedObstacle": {"distance": [28.0, 34.0]},
    "Accident": {"distance": [28.0, 34.0]},
    "ConstructionObstacle": {"distance": [26.0, 32.0]},
    "DynamicObjectCrossing": {"distance": [12.0, 16.0], "speed": [1.5, 2.5]},
    "PedestrianCrossing": {"distance": [16.0, 22.0], "speed": [1.2, 1.6]},
    "ControlLoss": {"steer": [0.2, 0.3], "jerks": [2, 3]},
    "OppositeVehicleRunningRedLight": {"speed": [9.0, 12.0]},
    "OppositeVehicleTakingPriority": {"speed": [8.0, 11.0]},
    "SignalizedJunctionLeftTurn": {"flow_speed": [7.0, 9.0]},
    "NonSignalizedJunctionLeftTurn": {"flow_speed": [7.0, 9.0]},
}


def place(type_name: str, network: Any, layout: Any, route: Any, rng: np.random.Generator,
          window: tuple[float, float] | None = None) -> tuple[float, dict] | None:
    """Trigger route distance and placement parameters of ``type_name`` on ``route`` (None: it cannot happen),
    with the trigger inside ``window`` (route distances [m]) when given."""
    needs = SCENARIO_TYPES[type_name].needs
    runs = junction_runs(route)
    length = route.length_m
    low, high = window if window is not None else (25.0, length)
    if needs in ("lane", "neighbour_lane"):
        clear = CLEAR_AHEAD_M[needs]
        for trigger in rng.permutation(np.arange(max(low, 25.0), max(min(high, length - clear - 10.0), 25.0), 5.0)):
            if any(entry < trigger + clear and end > trigger for entry, end, _ in runs):
                continue
            if not _follows_lanes(network, route, trigger, trigger + clear):
                continue  # the route changes lanes there: scripted cars follow lanes
            if needs == "lane":
                return float(trigger), {}
            lane, _ = route_lane_at(route, network, trigger + 30.0)
            sides = [side for side in ("left", "right") if same_direction_neighbour(network, lane, side) >= 0]
            if sides:
                return float(trigger), {"direction": sides[0]} if type_name == "StaticCutIn" else {}
        return None
    _, turn, control = needs.split("_")
    for entry, end, lane in runs:
        lane = int(lane)
        if entry < JUNCTION_LEAD_M + 15.0 or end > length - 25.0 or not low <= entry - JUNCTION_LEAD_M < high:
            continue
        signalized = layout.light_of_segment[lane] >= 0
        if (control == "signalized") != bool(signalized) or turn_kind(network, lane) != turn:
            continue
        crossings = crossing_lanes(network, lane)
        if turn == "left":
            start_yaw = network.yaw_rad[network.segment_start[lane]]
            crossings = [c for c in crossings if turn_kind(network, c[0]) == "straight" and
                         abs(np.angle(np.exp(1j * (network.yaw_rad[network.segment_start[c[0]]] - start_yaw)))) > 2.6]
        if crossings:
            return float(entry - JUNCTION_LEAD_M), {}
    return None


def _follows_lanes(network: Any, route: Any, from_s: float, to_s: float) -> bool:
    """Whether the route between two distances only goes from a lane to its successor (no lane change)."""
    if route.lane_of_point is None:
        return True
    lanes = route.lane_of_point[int(from_s / route.spacing_m) : int(to_s / route.spacing_m) + 1]
    changes = np.flatnonzero(np.diff(lanes) != 0)
    return all(int(lanes[k + 1]) in network.successors[int(lanes[k])] for k in changes)


def generate_scenario_suite(
    name: str, seed: int, maps: Sequence[str], types: Sequence[str] | None = None, draws: int = 6,
    length_range_m: tuple[float, float] = (150.0, 300.0), npcs_per_km: float = 2.0, max_tries: int = 400,
    description: str = "",
) -> RouteSuite:
    """``draws`` routes per scenario type (maps round-robin), each with one scenario; deterministic in ``seed``.

    Raises:
        ValueError: A type found no place on any map within ``max_tries`` routes.
    """
    types = list(types or SCENARIO_TYPES)
    unknown = sorted(set(types) - set(SCENARIO_TYPES))
    if unknown:
        raise ValueError(f"unknown scenario types {unknown}; implemented: {sorted(SCENARIO_TYPES)}")
    refs = [parse_map_ref(text) for text in maps]
    routes: list[RouteSpec] = []
    for type_index, type_name in enumerate(types):
        for draw in range(draws):
            map_ref = refs[(type_index + draw) % len(refs)]
            network = load_network(*map_ref)
            layout = build_signal_layout(network, SignalsConfig())
            rng = np.random.default_rng(derive_seed(seed, type_index * 1000 + draw))
            routes.append(_route_with(type_name, network, layout, map_ref, rng, f"{name}_{type_name}_{draw}",
                                      length_range_m, npcs_per_km, max_tries))
    generator = {"seed": seed, "maps": list(maps), "types": types, "draws": draws,
                 "length_range_m": list(length_range_m), "npcs_per_km": npcs_per_km}
    return RouteSuite(name=name, description=description, generator=generator, routes=routes)


def _draw_route(network: Any, rng: np.random.Generator, length_range_m: tuple[float, float]) -> tuple[Any, float] | None:
    """One random route from a random lane position (None: shorter than the minimum)."""
    candidates = np.flatnonzero(~network.segment_in_junction & (network.segment_length_m > 30.0))
    segment = int(rng.choice(candidates))
    start_s = float(rng.uniform(0.0, network.segment_length_m[segment] - 20.0))
    route = network.random_route(rng, float(rng.uniform(*length_range_m)), segment, start_s)
    return (route, start_s) if route.length_m >= length_range_m[0] else None


def _route_spec(route_id: str, map_ref: tuple[str, int], network: Any, rng: np.random.Generator, route: Any,
                start_s: float, npcs_per_lane_km: float, scenarios: list[ScenarioSpec]) -> RouteSpec:
    lane_km = float(network.segment_length_m[~network.segment_in_junction].sum()) / 1000.0
    return RouteSpec(
        id=route_id, map=map_ref[0], map_seed=map_ref[1], map_hash=network.map_hash(),
        seed=int(rng.integers(0, 2**31 - 1)), npcs=int(round(npcs_per_lane_km * lane_km)),
        start=(*np.round(route.points[0], 2).tolist(), round(float(np.degrees(route.yaw_rad[0])), 2)),
        goal=tuple(np.round(route.points[-1], 2).tolist()), segments=[int(s) for s in route.segments],
        start_s_m=start_s, length_m=route.length_m, scenarios=scenarios,
    )


def _draw_params(type_name: str, rng: np.random.Generator) -> dict[str, Any]:
    return {key: values[int(rng.integers(len(values)))] for key, values in PARAM_DRAWS.get(type_name, {}).items()}


def _route_with(type_name: str, network: Any, layout: Any, map_ref: tuple[str, int], rng: np.random.Generator,
                route_id: str, length_range_m: tuple[float, float], npcs_per_km: float, max_tries: int) -> RouteSpec:
    for _ in range(max_tries):
        drawn = _draw_route(network, rng, length_range_m)
        placed = place(type_name, network, layout, drawn[0], rng) if drawn is not None else None
        if placed is None:
            continue
        trigger, fixed = placed
        params = _draw_params(type_name, rng)
        scenario = ScenarioSpec(type=type_name, trigger_route_s=round(trigger, 1), params={**params, **fixed})
        return _route_spec(route_id, map_ref, network, rng, *drawn, npcs_per_km, [scenario])
    raise ValueError(f"{type_name}: no place found on map {map_ref[0]}:{map_ref[1]} in {max_tries} routes")


def generate_long_suite(
    name: str, seed: int, maps: Sequence[str], num_routes: int = 12, length_range_m: tuple[float, float] = (1000.0, 2000.0),
    npcs_per_lane_km: float = 10.0, scenario_every_m: float = 150.0, max_tries: int = 400, description: str = "",
) -> RouteSuite:
    """Long routes in dense traffic with a scenario about every ``scenario_every_m`` (types drawn per window
    among those that fit there); deterministic in ``seed``."""
    refs = [parse_map_ref(text) for text in maps]
    routes: list[RouteSpec] = []
    for index in range(num_routes):
        map_ref = refs[index % len(refs)]
        network = load_network(*map_ref)
        layout = build_signal_layout(network, SignalsConfig())
        rng = np.random.default_rng(derive_seed(seed, index))
        for _ in range(max_tries):
            drawn = _draw_route(network, rng, length_range_m)
            if drawn is not None:
                break
        else:
            raise ValueError(f"no route of {length_range_m[0]:.0f} m on map {map_ref[0]}:{map_ref[1]}")
        route, start_s = drawn
        scenarios = []
        for window_start in np.arange(40.0, route.length_m - 100.0, scenario_every_m):
            for type_name in rng.permutation(list(SCENARIO_TYPES)):
                placed = place(str(type_name), network, layout, route, rng, (window_start, window_start + scenario_every_m - 40.0))
                if placed is not None:
                    params = _draw_params(str(type_name), rng)
                    scenarios.append(ScenarioSpec(type=str(type_name), trigger_route_s=round(placed[0], 1),
                                                  params={**params, **placed[1]}))
                    break
        routes.append(_route_spec(f"{name}_{index:03d}", map_ref, network, rng, route, start_s, npcs_per_lane_km, scenarios))
    generator = {"seed": seed, "maps": list(maps), "num_routes": num_routes, "length_range_m": list(length_range_m),
                 "npcs_per_lane_km": npcs_per_lane_km, "scenario_every_m": scenario_every_m}
    return RouteSuite(name=name, description=description, generator=generator, routes=routes)
