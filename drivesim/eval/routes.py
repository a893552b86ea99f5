"""Evaluation stage: versioned route suites (YAML schema, loading, checking against the map, generation).

A route is stored exactly as the simulator rebuilds it: the lane segments it follows, the arc length of its
start on the first segment and its length (``RoadNetwork.route_through``). Start pose, goal point and the
map hash are stored too, so a route whose map changed is detected and re-planned from start to goal.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from pydantic import Field, model_validator

from drivesim.config import Section, config_hash, load_config
from drivesim.scenarios.spec import ScenarioSpec
from drivesim.sim.config import MapConfig
from drivesim.utils import atomic_write_bytes, derive_seed

logger = logging.getLogger(__name__)

SUITE_SCHEMA_VERSION = 1
START_TOLERANCE_M = 0.5  # stored start/goal vs. the rebuilt route [m]
GOAL_TOLERANCE_M = 1.5
REPLAN_LENGTH_TOLERANCE = 0.1  # a re-planned route may differ this much in length, else the suite is stale


class RouteSpec(Section):
    """One evaluation route on one map."""

    id: str = Field(description="Unique route id within the suite (file name of its result).")
    map: str = Field(description="Built-in map name ('town', 'junction', 'straight') or an .xodr path.")
    map_seed: int = Field(0, description="Seed of the procedural map generator.")
    map_hash: str | None = Field(None, description="RoadNetwork.map_hash() when the route was made.")
    seed: int = Field(description="Episode seed (traffic, NPC behaviour).")
    npcs: int = Field(0, ge=0, description="Number of NPC vehicles.")
    weather: str | None = Field(None, description="CARLA weather preset (carla.WeatherParameters name, e.g. WetNoon): the server applies it, the embedded camera draws it.")
    start: tuple[float, float, float] = Field(description="Start pose: x, y [m], yaw [deg] (world frame).")
    goal: tuple[float, float] = Field(description="Goal point: x, y [m] (world frame).")
    segments: list[int] = Field(min_length=1, description="Lane segments the route follows, in order.")
    start_s_m: float = Field(ge=0.0, description="Arc length of the start along the first segment [m].")
    length_m: float = Field(gt=0.0, description="Route length [m].")
    scenarios: list[ScenarioSpec] = Field(default_factory=list, description="Scenarios along the route (Leaderboard 2.0 style).")

    @property
    def map_key(self) -> tuple[str, int]:
        """(map name, map seed): routes with the same key share one simulator instance."""
        return self.map, self.map_seed

    def env_options(self) -> dict[str, Any]:
        """``options`` for ``env.reset``: the route to build, traffic and a clean driver."""
        options: dict[str, Any] = {
            "route": {"segments": list(self.segments), "start_s_m": self.start_s_m, "length_m": self.length_m},
            "npcs": self.npcs,
            "driver": "clean",
        }
        if self.weather is not None:
            options["weather"] = self.weather
        if self.scenarios:
            options["scenarios"] = [scenario.model_dump() for scenario in self.scenarios]
        return options


class RouteSuite(Section):
    """A named, versioned list of routes (``configs/routes/<name>.yaml``)."""

    name: str = Field(description="Suite name, e.g. 'dev' or 'test'.")
    schema_version: int = Field(SUITE_SCHEMA_VERSION, description="Version of this file format.")
    description: str = Field("", description="What the suite is for.")
    generator: dict[str, Any] | None = Field(None, description="Arguments the suite was generated with.")
    routes: list[RouteSpec] = Field(min_length=1, description="The routes.")

    @model_validator(mode="after")
    def _unique_ids(self) -> RouteSuite:
        ids = [route.id for route in self.routes]
        duplicates = sorted({route_id for route_id in ids if ids.count(route_id) > 1})
        if duplicates:
            raise ValueError(f"duplicate route ids: {duplicates}")
        if self.schema_version != SUITE_SCHEMA_VERSION:
            raise ValueError(f"schema_version {self.schema_version} is not supported (expected {SUITE_SCHEMA_VERSION})")
        return self

    def fingerprint(self) -> str:
        """Short hash of the suite's content (stored with results; resuming checks it)."""
        return config_hash(self)


def load_suite(path: str | Path) -> RouteSuite:
    """Read and validate a suite; errors name the file and the key (``ConfigError``)."""
    return load_config(RouteSuite, path)


def save_suite(suite: RouteSuite, path: str | Path) -> None:
    """Write a suite as YAML (short lists inline, one route per block), atomically."""
    text = yaml.safe_dump(suite.model_dump(mode="json"), sort_keys=False, default_flow_style=None, width=120)
    atomic_write_bytes(path, text.encode())


def parse_map_ref(text: str) -> tuple[str, int]:
    """Parse ``name[:seed]`` ("town:1", "junction", "maps/x.xodr") into (name, seed)."""
    name, _, seed = text.strip().partition(":")
    if not name:
        raise ValueError(f"empty map name in {text!r}")
    try:
        return name, int(seed) if seed else 0
    except ValueError:
        raise ValueError(f"map seed must be an integer in {text!r}") from None


def load_network(map_name: str, map_seed: int, sample_m: float = MapConfig().lane_sample_m) -> Any:
    """The ``RoadNetwork`` of a built-in map (with seed) or an .xodr file, as the simulator loads it (cached)."""
    from drivesim.sim.maps import load_road_network

    return load_road_network(MapConfig(name=map_name, seed=map_seed, lane_sample_m=sample_m))


def length_to_goal(network: Any, segments: list[int], start_s_m: float, goal_xy: np.ndarray,
                   expected_m: float | None = None, tolerance_m: float = GOAL_TOLERANCE_M) -> float | None:
    """Arc length along ``segments`` (from ``start_s_m``) of the point nearest the goal; None if none is within
    ``tolerance_m``.

    With ``expected_m`` only points within 10 % (+20 m) of it are considered, so a route passing the goal
    twice keeps its own end.
    """
    full = network.route_through(segments, start_s_m, float(network.segment_length_m[segments].sum()))
    s_m = np.arange(len(full.points)) * full.spacing_m
    distance_m = np.hypot(*(full.points - goal_xy).T)
    if expected_m is not None:
        distance_m = np.where(np.abs(s_m - expected_m) <= 0.1 * expected_m + 20.0, distance_m, np.inf)
    index = int(np.argmin(distance_m))
    return float(s_m[index]) if distance_m[index] <= tolerance_m else None


def _chain_fits(network: Any, route: RouteSpec) -> bool:
    """Whether the stored segments still exist, follow each other (successors or lane changes) and start at the
    stored start."""
    segments = route.segments
    if min(segments) < 0 or max(segments) >= network.num_segments:
        return False
    if any(nxt not in network.successors[prev] and not network.is_lane_change(prev, nxt)
           for prev, nxt in itertools.pairwise(segments)):
        return False
    start_xy, _ = network.pose_at(np.array(segments[0]), np.array(route.start_s_m))
    return bool(np.hypot(*(start_xy - np.asarray(route.start[:2]))) <= START_TOLERANCE_M)


def check_route(network: Any, route: RouteSpec) -> RouteSpec:
    """Fit a stored route to the map as the simulator loads it now.

    Returns ``route`` itself when its segments, start and length still lead from its start to its goal;
    a copy with the length re-measured to the goal when only lane sampling changed; otherwise a copy
    re-planned from start to goal (``RoadNetwork.plan_route``) if that path has about the stored length.

    Raises:
        ValueError: The route no longer fits and no lane-following path of about its length joins its start
            and goal (the suite must be regenerated).
    """
    goal_xy = np.asarray(route.goal)
    if _chain_fits(network, route):
        end = network.route_through(route.segments, route.start_s_m, route.length_m).points[-1]
        if np.hypot(*(end - goal_xy)) <= GOAL_TOLERANCE_M:
            return route
        length_m = length_to_goal(network, route.segments, route.start_s_m, goal_xy, route.length_m)
        if length_m is not None:
            logger.info("route %s: length re-measured to its goal (%.1f -> %.1f m)", route.id, route.length_m, length_m)
            return route.model_copy(update={"length_m": max(length_m, 1.0), "map_hash": network.map_hash()})
    start_xy = np.asarray(route.start[:2])
    try:
        planned = network.plan_route(start_xy, goal_xy)
    except Exception as error:  # networkx raises several types for segments missing from the graph
        raise ValueError(
            f"route {route.id} does not fit map {route.map}:{route.map_seed} and cannot be re-planned: {error}"
        ) from None
    segments = [int(s) for s in planned.segments]
    start_index = network.nearest_sample(start_xy)
    start_s_m = float((start_index - network.segment_start[segments[0]]) * network.segment_spacing_m[segments[0]])
    length_m = length_to_goal(network, segments, start_s_m, goal_xy) or planned.length_m
    if abs(length_m - route.length_m) > REPLAN_LENGTH_TOLERANCE * route.length_m:
        raise ValueError(
            f"route {route.id} no longer fits map {route.map}:{route.map_seed}, and the shortest path from its start "
            f"to its goal is {length_m:.0f} m instead of {route.length_m:.0f} m: regenerate the suite "
            "(drivesim eval make-suite with the arguments stored under 'generator')"
        )
    logger.warning("route %s does not fit map %s any more: re-planned from start to goal", route.id, route.map)
    update = {"segments": segments, "start_s_m": start_s_m, "length_m": max(length_m, 1.0), "map_hash": network.map_hash()}
    return route.model_copy(update=update)


def _start_candidates(network: Any, spacing_m: float) -> tuple[np.ndarray, np.ndarray]:
    """(segment, s) every ``spacing_m`` from each non-junction lane's start (s = 0 included)."""
    segments, offsets = [], []
    for segment in np.flatnonzero(~network.segment_in_junction):
        s_values = np.arange(0.0, network.segment_length_m[segment] - 2.0, spacing_m)
        segments.append(np.full(len(s_values), segment))
        offsets.append(s_values)
    return np.concatenate(segments).astype(np.int64), np.concatenate(offsets)


def generate_route(
    network: Any,
    route_id: str,
    map_ref: tuple[str, int],
    seed: int,
    length_range_m: tuple[float, float],
    npcs_per_km: tuple[float, float],
    weathers: Sequence[str] = (),
    max_tries: int = 2000,
) -> RouteSpec:
    """One random lane-following route of ``length_range_m`` on ``network`` (deterministic in ``seed``).

    Raises:
        ValueError: No route of the minimum length was found (the map is too small).
    """
    rng = np.random.default_rng(seed)
    candidate_segments, candidate_s = _start_candidates(network, spacing_m=10.0)
    lane_km = float(network.segment_length_m[~network.segment_in_junction].sum()) / 1000.0
    min_m, max_m = length_range_m
    for _ in range(max_tries):
        pick = int(rng.integers(len(candidate_segments)))
        target_m = float(np.round(rng.uniform(min_m, max_m)))
        route = network.random_route(rng, target_m, int(candidate_segments[pick]), float(candidate_s[pick]))
        if route.length_m >= min_m:
            break
    else:
        raise ValueError(
            f"no route of at least {min_m:.0f} m found on map {map_ref[0]}:{map_ref[1]} in {max_tries} tries "
            "(the map is too small for that length; lower the minimum length)"
        )
    return RouteSpec(
        id=route_id,
        map=map_ref[0],
        map_seed=map_ref[1],
        map_hash=network.map_hash(),
        seed=int(rng.integers(0, 2**31 - 1)),
        npcs=int(round(rng.uniform(*npcs_per_km) * lane_km)),
        weather=str(rng.choice(list(weathers))) if weathers else None,
        start=(*np.round(route.points[0], 2).tolist(), round(float(np.degrees(route.yaw_rad[0])), 2)),
        goal=tuple(np.round(route.points[-1], 2).tolist()),
        segments=[int(s) for s in route.segments],
        start_s_m=float(candidate_s[pick]),
        length_m=route.length_m,
    )


def generate_suite(
    name: str,
    seed: int,
    maps: Sequence[str],
    num_routes: int = 20,
    length_range_m: tuple[float, float] = (300.0, 1500.0),
    npcs_per_km: tuple[float, float] = (1.5, 4.0),
    weathers: Sequence[str] = (),
    description: str = "",
) -> RouteSuite:
    """A suite of ``num_routes`` routes, maps taken round-robin from ``maps`` ("town:1", "junction", ...).

    Route i depends only on (``seed``, i), so adding routes keeps the earlier ones. Repeat a map in
    ``maps`` to give it more routes.
    """
    if not maps:
        raise ValueError("at least one map is needed")
    refs = [parse_map_ref(text) for text in maps]
    routes = []
    for index in range(num_routes):
        map_ref = refs[index % len(refs)]
        network = load_network(*map_ref)
        routes.append(
            generate_route(
                network, f"{name}_{index:03d}", map_ref, derive_seed(seed, index), length_range_m, npcs_per_km, weathers
            )
        )
    generator = {
        "seed": seed,
        "maps": list(maps),
        "num_routes": num_routes,
        "length_range_m": list(length_range_m),
        "npcs_per_km": list(npcs_per_km),
        "weathers": list(weathers),
    }
    return RouteSuite(name=name, description=description, generator=generator, routes=routes)
