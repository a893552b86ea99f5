"""Evaluation stage: per-scenario-type and per-ability breakdowns of a run, as Bench2Drive reports them.

A route belongs to each scenario type it holds (its scenarios' ``type``); a route without scenarios is
``lane_following``. Bench2Drive's routes hold one scenario each, so there a route is in exactly one group; a
long route with several types counts in each of them (its DS cannot be split between its scenarios).
Abilities follow Bench2Drive's ``tools/ability_benchmark.py`` (``Ability``): a type may serve several. Its
extra rule for failed ``Traffic_Signs`` routes (counted as a success when the ego passed the junction without a
red-light or stop infraction) is not applied: every ability's success is the route's success.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from drivesim.eval.metrics import aggregate_metrics

LANE_FOLLOWING = "lane_following"

# Bench2Drive tools/ability_benchmark.py, ``Ability`` (scenario types per ability; keys lower-cased).
ABILITIES: dict[str, tuple[str, ...]] = {
    "overtaking": (
        "Accident", "AccidentTwoWays", "ConstructionObstacle", "ConstructionObstacleTwoWays", "HazardAtSideLaneTwoWays",
        "HazardAtSideLane", "ParkedObstacleTwoWays", "ParkedObstacle", "VehicleOpensDoorTwoWays",
    ),
    "merging": (
        "CrossingBicycleFlow", "EnterActorFlow", "HighwayExit", "InterurbanActorFlow", "HighwayCutIn",
        "InterurbanAdvancedActorFlow", "MergerIntoSlowTrafficV2", "MergerIntoSlowTraffic",
        "NonSignalizedJunctionLeftTurn", "NonSignalizedJunctionRightTurn", "NonSignalizedJunctionLeftTurnEnterFlow",
        "ParkingExit", "SequentialLaneChange", "SignalizedJunctionLeftTurn", "SignalizedJunctionRightTurn",
        "SignalizedJunctionLeftTurnEnterFlow",
    ),
    "emergency_brake": (
        "BlockedIntersection", "DynamicObjectCrossing", "HardBreakRoute", "OppositeVehicleTakingPriority",
        "OppositeVehicleRunningRedLight", "ParkingCutIn", "PedestrianCrossing", "ParkingCrossingPedestrian",
        "StaticCutIn", "VehicleTurningRoute", "VehicleTurningRoutePedestrian", "ControlLoss",
    ),
    "give_way": ("InvadingTurn", "YieldToEmergencyVehicle"),
    "traffic_signs": (
        "BlockedIntersection", "OppositeVehicleTakingPriority", "OppositeVehicleRunningRedLight", "PedestrianCrossing",
        "VehicleTurningRoute", "VehicleTurningRoutePedestrian", "EnterActorFlow", "CrossingBicycleFlow",
        "NonSignalizedJunctionLeftTurn", "NonSignalizedJunctionRightTurn", "NonSignalizedJunctionLeftTurnEnterFlow",
        "SignalizedJunctionLeftTurn", "SignalizedJunctionRightTurn", "SignalizedJunctionLeftTurnEnterFlow",
        "T_Junction", "VanillaNonSignalizedTurn", "VanillaSignalizedTurnEncounterGreenLight",
        "VanillaSignalizedTurnEncounterRedLight", "VanillaNonSignalizedTurnEncounterStopsign",
    ),
}


def route_types(route: Mapping[str, Any]) -> list[str]:
    """The distinct scenario types of a route result (in route order), or ``[LANE_FOLLOWING]``."""
    types = route.get("scenario_types") or route.get("metrics", {}).get("scenario_types") or []
    return list(dict.fromkeys(types)) or [LANE_FOLLOWING]


def route_abilities(route: Mapping[str, Any]) -> list[str]:
    """The Bench2Drive abilities a route result exercises (none for lane following or unlisted types)."""
    types = set(route_types(route))
    return [ability for ability, members in ABILITIES.items() if types & set(members)]


def group_routes(routes: Sequence[Mapping[str, Any]], keys: Callable[[Mapping[str, Any]], list[str]]) -> dict[str, list]:
    """Route results by group key (a route in every group ``keys`` names), groups sorted by name."""
    groups: dict[str, list] = {}
    for route in routes:
        for key in keys(route):
            groups.setdefault(key, []).append(route)
    return dict(sorted(groups.items()))


def breakdown(routes: Sequence[Mapping[str, Any]], keys: Callable[[Mapping[str, Any]], list[str]]) -> dict[str, dict]:
    """The leaderboard aggregate (``aggregate_metrics``) of each group of route results."""
    return {key: aggregate_metrics([route["metrics"] for route in members])
            for key, members in group_routes(routes, keys).items()}


def type_breakdown(routes: Sequence[Mapping[str, Any]]) -> dict[str, dict]:
    """Aggregates per scenario type."""
    return breakdown(routes, route_types)


def ability_breakdown(routes: Sequence[Mapping[str, Any]]) -> dict[str, dict]:
    """Aggregates per Bench2Drive ability (only abilities some route exercises)."""
    return breakdown(routes, route_abilities)
