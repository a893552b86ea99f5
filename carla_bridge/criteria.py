"""CARLA bridge: which collision-sensor events count, by the rules of ScenarioRunner's ``CollisionTest``.

The Leaderboard scores collisions with ``srunner/scenariomanager/scenarioatomics/atomic_criteria.py``
``CollisionTest`` (ScenarioRunner 0.9.16); this module follows it rule by rule:

- an event while the ego's planar speed is below ``EPSILON_MPS`` is not the ego's fault (being rear-ended
  at a red light) and is ignored;
- an event with the same actor as the last counted one is ignored until ``MAX_ID_TIME_S`` have passed;
- an event within ``COLLISION_RADIUS_M`` of the last counted one is ignored until the ego has moved
  farther than that from it (many micro-contacts with one wall count once);
- a counted contact is a *static* collision when the other actor's type contains 'static' or 'traffic'
  but not 'sidewalk' (curbs: that is a lane invasion, not a collision), a *vehicle* or a *walker*
  collision by its type; any other contact (a sidewalk curb) is remembered for the two rules above but
  is no collision event.

The ego's location and speed at an event are those of the last tick before it, as ``CollisionTest``
reads them from ``CarlaDataProvider`` inside the sensor callback.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

COLLISION_RADIUS_M = 5.0  # CollisionTest.COLLISION_RADIUS: two collisions this close count as one [m]
MAX_ID_TIME_S = 5.0  # CollisionTest.MAX_ID_TIME: the same actor within this time counts once [s]
EPSILON_MPS = 0.1  # CollisionTest.EPSILON: below this ego speed a collision is not the ego's fault [m/s]
STATIC_ACTOR_ID = 0  # the id CARLA gives the static world (buildings, poles, curbs) in collision events


def collision_kind(type_id: str) -> str | None:
    """'static', 'vehicle', 'walker', or None (no collision event) for the other actor's ``type_id``."""
    if ("static" in type_id or "traffic" in type_id) and "sidewalk" not in type_id:
        return "static"
    if "vehicle" in type_id:
        return "vehicle"
    if "walker" in type_id:
        return "walker"
    return None


@dataclass(frozen=True)
class CountedCollision:
    """A collision that counts: its kind and ``info['collision_actor']`` label ('vehicle:<id>', 'static', ...)."""

    kind: str
    label: str


class CollisionCriterion:
    """Filters the collision sensor's events of one episode as ``CollisionTest`` does (module docstring)."""

    def __init__(self) -> None:
        self._last_id: int | None = None
        self._last_time_s = 0.0
        self._last_xy: np.ndarray | None = None

    def update(self, ego_xy: np.ndarray, time_s: float) -> None:
        """Once per tick: forget the last collision's place once left, and its actor after ``MAX_ID_TIME_S``."""
        if self._last_xy is not None and math.dist(ego_xy, self._last_xy) > COLLISION_RADIUS_M:
            self._last_xy = None
        if self._last_id is not None and time_s - self._last_time_s > MAX_ID_TIME_S:
            self._last_id = None

    def count(self, event: Any, ego_xy: np.ndarray, ego_speed_mps: float, time_s: float) -> CountedCollision | None:
        """The collision ``event`` (a ``carla.CollisionEvent``) as it counts, or None when it is ignored.

        Args:
            event: The sensor's event; ``other_actor`` has ``id`` and ``type_id``.
            ego_xy: The ego's position at the last tick before the event [m].
            ego_speed_mps: The ego's planar speed at that tick [m/s].
            time_s: Simulation time of that tick [s].
        """
        other = event.other_actor
        other_id = int(getattr(other, "id", STATIC_ACTOR_ID))
        type_id = str(getattr(other, "type_id", ""))
        if self._last_id is not None and other_id == self._last_id:
            return None
        if self._last_xy is not None and math.dist(ego_xy, self._last_xy) <= COLLISION_RADIUS_M:
            return None
        if ego_speed_mps < EPSILON_MPS:
            return None
        self._last_time_s = time_s
        self._last_xy = np.array(ego_xy, dtype=float)
        if other_id != STATIC_ACTOR_ID:
            self._last_id = other_id
        kind = collision_kind(type_id)
        if kind is None:
            return None
        return CountedCollision(kind, "static" if kind == "static" else f"{kind}:{other_id}")
