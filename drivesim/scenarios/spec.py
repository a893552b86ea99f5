"""A route's scenario entry, as Leaderboard 2.0 route files carry them inline: a ScenarioRunner type name, the
route distance at which it starts, and its parameters (ScenarioRunner's names: ``distance``, ``speed``, ...)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from drivesim.config import Section


class ScenarioSpec(Section):
    """One scenario on a route."""

    type: str = Field(description="ScenarioRunner class name, e.g. HardBreakRoute (see `drivesim.scenarios.SCENARIO_TYPES`).")
    trigger_route_s: float = Field(ge=0.0, description="Route distance from the start at which the scenario triggers [m].")
    params: dict[str, Any] = Field(default_factory=dict, description="Scenario parameters (ScenarioRunner's names and units).")
