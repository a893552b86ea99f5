"""StaticCutIn: a car standing in the neighbour lane pulls into the ego's lane just ahead of it (merging)."""

from __future__ import annotations

from drivesim.scenarios.base import Scenario
from drivesim.scenarios.lanes import same_direction_neighbour


class StaticCutIn(Scenario):
    """A car stands in the same-direction lane on the ``direction`` side, ``distance`` past the trigger; when the
    ego is ``cut_in_distance`` behind it, it accelerates to ``speed`` and changes into the ego's lane."""

    type_name = "StaticCutIn"
    ability = "merging"
    defaults = {"distance": 40.0, "direction": "left", "speed": 6.0, "cut_in_distance": 18.0}
    needs = "neighbour_lane"

    def setup(self) -> None:
        self.car_s = self.trigger_s + self.params["distance"]
        segment, s_m = self.actors.route_lane(self.car_s)
        self.ego_lane = segment
        neighbour = same_direction_neighbour(self.actors.network, segment, self.params["direction"])
        if neighbour < 0:
            self.finish("no neighbour lane")
            return
        self.car = self.actors.spawn_vehicle(neighbour, s_m, 0.0, self.params["speed"], straight=True)
        self.actors.set_vehicle_speed(self.car, 0.0)
        self.event("spawn", f"vehicle:{self.car}")

    def update(self) -> None:
        if self.car_s - self.actors.ego_route_s() <= self.params["cut_in_distance"]:
            self.actors.set_vehicle_speed(self.car, None)
            self.actors.change_lane(self.car, self.ego_lane)
            self.event("cut_in", f"vehicle:{self.car}")
            self.finish()
