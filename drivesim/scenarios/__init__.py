"""Scenarios stage: ScenarioRunner-style situations scripted along a route through one actor API.

``SCENARIO_TYPES`` maps ScenarioRunner class names to our classes (one module per family); a route's entries
(``drivesim.scenarios.spec.ScenarioSpec``) are run by ``ScenarioManager`` on any simulator that implements
``drivesim.scenarios.actors.ScenarioActors``.
"""

from __future__ import annotations

from drivesim.scenarios.base import ABILITIES, Scenario, ScenarioError, ScenarioManager
from drivesim.scenarios.control_loss import ControlLoss
from drivesim.scenarios.crossing import DynamicObjectCrossing, PedestrianCrossing
from drivesim.scenarios.cut_in import StaticCutIn
from drivesim.scenarios.hard_break import HardBreakRoute
from drivesim.scenarios.junction import (
    NonSignalizedJunctionLeftTurn,
    OppositeVehicleRunningRedLight,
    OppositeVehicleTakingPriority,
    SignalizedJunctionLeftTurn,
)
from drivesim.scenarios.obstacles import Accident, ConstructionObstacle, ParkedObstacle

SCENARIO_TYPES: dict[str, type[Scenario]] = {
    cls.type_name: cls
    for cls in (HardBreakRoute, StaticCutIn, ParkedObstacle, Accident, ConstructionObstacle, DynamicObjectCrossing,
                PedestrianCrossing, ControlLoss, OppositeVehicleRunningRedLight, OppositeVehicleTakingPriority,
                SignalizedJunctionLeftTurn, NonSignalizedJunctionLeftTurn)
}
ABILITY_OF_TYPE = {name: cls.ability for name, cls in SCENARIO_TYPES.items()}


def scenario_class(type_name: str) -> type[Scenario]:
    """The class of a ScenarioRunner type name (a clear error naming the known ones)."""
    if type_name not in SCENARIO_TYPES:
        raise ScenarioError(f"unknown scenario type {type_name!r}; implemented: {', '.join(sorted(SCENARIO_TYPES))}")
    return SCENARIO_TYPES[type_name]


__all__ = ["ABILITIES", "ABILITY_OF_TYPE", "SCENARIO_TYPES", "Scenario", "ScenarioError", "ScenarioManager", "scenario_class"]
