"""Fake CARLA server: the batch commands module (``carla.command`` with a ``SpawnActor`` for fake blueprints).

``carla.command.SpawnActor`` only accepts blueprints made by a real server and does not expose the
blueprint or the commands chained with ``then()`` afterwards, so the fake needs its own ``SpawnActor``;
every other command is the real one from the wheel (``SetAutopilot``, ``DestroyActor``, ``FutureActor``,
``ApplyVehicleControl``), whose attributes the fake server reads back.
"""

from __future__ import annotations

from typing import Any

import carla
from carla.command import ApplyVehicleControl, DestroyActor, FutureActor, SetAutopilot

from carla_bridge.fake.actors import FakeActor, FakeActorBlueprint

__all__ = ["ApplyVehicleControl", "DestroyActor", "FutureActor", "Response", "SetAutopilot", "SpawnActor"]


class FakeSpawnActor:
    """Stands in for ``carla.command.SpawnActor``: keeps a copy of the blueprint and the chained commands."""

    def __init__(
        self,
        blueprint: FakeActorBlueprint | None = None,
        transform: carla.Transform | None = None,
        parent: FakeActor | int | None = None,
    ) -> None:
        self._blueprint = blueprint._copy() if blueprint is not None else None
        self.transform = transform if transform is not None else carla.Transform()
        self.parent_id = parent.id if isinstance(parent, FakeActor) else int(parent or 0)
        self._then: list[Any] = []

    def then(self, command: Any) -> FakeSpawnActor:
        self._then.append(command)
        return self


class FakeResponse:
    """Stands in for ``carla.command.Response`` (which cannot be instantiated from Python)."""

    def __init__(self, actor_id: int = 0, error: str = "") -> None:
        self.actor_id = actor_id
        self.error = error

    def has_error(self) -> bool:
        return bool(self.error)


SpawnActor = FakeSpawnActor
Response = FakeResponse
