"""Scenario base class and the manager that triggers and runs a route's scenarios.

A scenario (one class per ScenarioRunner type) goes through ``setup`` at reset (actors that stand there from
the start: obstacles, a parked car hiding a walker), ``start`` when the ego's route distance reaches the
entry's ``trigger_route_s``, then ``update`` every step until it calls ``finish``. It may also shape the
ego's control (``ControlLoss``). Every transition is logged as a scenario event, so the same route run on two
simulators can be compared event by event.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from drivesim.scenarios.actors import ScenarioActors
from drivesim.scenarios.spec import ScenarioSpec

ABILITIES = ("merging", "overtaking", "emergency_brake", "give_way", "traffic_signs")  # Bench2Drive's


class ScenarioError(ValueError):
    """A scenario entry that cannot run (unknown type or parameter, or no place for it on the route)."""


class Scenario:
    """One scenario on one route. Subclasses set ``type_name``, ``ability`` and ``defaults``."""

    type_name: ClassVar[str] = ""
    ability: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}
    timeout_s: ClassVar[float] = 60.0  # running longer than this ends the scenario ("scenario timeout")

    def __init__(self, spec: ScenarioSpec, actors: ScenarioActors, rng: np.random.Generator) -> None:
        unknown = set(spec.params) - set(self.defaults)
        if unknown:
            raise ScenarioError(f"{spec.type}: unknown parameters {sorted(unknown)}; known: {sorted(self.defaults)}")
        self.spec = spec
        self.params = {**self.defaults, **spec.params}
        self.actors = actors
        self.rng = rng
        self.state = "pending"  # pending -> running -> done
        self.started_s = 0.0
        self.log: list[tuple[str, str]] = []  # (event, detail) of this step, drained by the manager

    @property
    def trigger_s(self) -> float:
        return self.spec.trigger_route_s

    def event(self, name: str, detail: str = "") -> None:
        self.log.append((name, detail))

    def finish(self, outcome: str = "done") -> None:
        self.state = "done"
        self.event("end", outcome)

    def setup(self) -> None:
        """At reset: actors present from the start."""

    def start(self) -> None:
        """At the trigger."""

    def update(self) -> None:
        """Every step while running."""

    def control(self, action: np.ndarray) -> np.ndarray:
        """The ego's control after the scenario's interference (none by default)."""
        return action


class ScenarioManager:
    """The scenarios of one episode: set up at reset, triggered by route distance, stepped with the world."""

    def __init__(self, specs: list[ScenarioSpec | dict], actors: ScenarioActors, seed: int) -> None:
        from drivesim.scenarios import scenario_class

        self.actors = actors
        rng = np.random.default_rng(seed)
        self.scenarios: list[Scenario] = []
        for entry in specs:
            spec = entry if isinstance(entry, ScenarioSpec) else ScenarioSpec.model_validate(entry)
            self.scenarios.append(scenario_class(spec.type)(spec, actors, rng))
        self.events: list[dict[str, Any]] = []

    def reset(self) -> list[dict[str, Any]]:
        for scenario in self.scenarios:
            scenario.event("setup")
            scenario.setup()
        return self._drain()

    def control(self, action: np.ndarray) -> np.ndarray:
        for scenario in self.scenarios:
            if scenario.state == "running":
                action = scenario.control(action)
        return action

    def step(self) -> list[dict[str, Any]]:
        """Trigger and update; returns this step's scenario events."""
        route_s, now = self.actors.ego_route_s(), self.actors.time_s()
        for scenario in self.scenarios:
            if scenario.state == "pending" and route_s >= scenario.trigger_s:
                scenario.state, scenario.started_s = "running", now
                scenario.event("trigger", f"route_s={route_s:.1f}")
                scenario.start()
            elif scenario.state == "running":
                if now - scenario.started_s > scenario.timeout_s:
                    scenario.finish("timeout")
                else:
                    scenario.update()
        return self._drain()

    def _drain(self) -> list[dict[str, Any]]:
        now = round(self.actors.time_s(), 3)
        fresh = []
        for index, scenario in enumerate(self.scenarios):
            fresh += [{"t_s": now, "scenario": index, "type": scenario.type_name, "event": name, "detail": detail}
                      for name, detail in scenario.log]
            scenario.log.clear()
        self.events += fresh
        return fresh
