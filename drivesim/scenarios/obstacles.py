"""Lane blocked ahead (overtaking): ParkedObstacle, Accident, ConstructionObstacle. The ego must change lanes."""

from __future__ import annotations

from drivesim.scenarios.base import Scenario


class _Blocked(Scenario):
    """Something stands in the ego's lane ``distance`` past the trigger from the start."""

    ability = "overtaking"
    defaults = {"distance": 50.0}
    needs = "neighbour_lane"
    static_kind = ""

    def setup(self) -> None:
        segment, s_m = self.actors.route_lane(self.trigger_s + self.params["distance"])
        self.actors.spawn_static(self.static_kind, segment, s_m)
        self.event("spawn", self.static_kind)

    def start(self) -> None:
        self.finish()


class ParkedObstacle(_Blocked):
    """A car parked in the lane."""

    type_name = "ParkedObstacle"
    static_kind = "parked_car"


class Accident(_Blocked):
    """A broken-down car with its warning triangle behind it."""

    type_name = "Accident"
    static_kind = "broken_down_car"


class ConstructionObstacle(_Blocked):
    """Cones closing the lane."""

    type_name = "ConstructionObstacle"
    static_kind = "construction"
