"""Walkers crossing in front of the ego (emergency brake): DynamicObjectCrossing, PedestrianCrossing."""

from __future__ import annotations

import math

import numpy as np

from drivesim.scenarios.base import Scenario


class _Crossing(Scenario):
    ability = "emergency_brake"
    needs = "lane"
    walkers = 1
    hidden = False

    def setup(self) -> None:
        network = self.actors.network
        self.cross_s = self.trigger_s + self.params["distance"]
        xy, yaw = self.actors.route_pose(self.cross_s)
        segment, s_m = self.actors.route_lane(self.cross_s)
        right = np.array([-math.sin(yaw), math.cos(yaw)])
        width = float(network.width_m[network.segment_start[segment]])
        if self.hidden:  # a parked car at the kerb, the walker behind it
            self.actors.spawn_static("kerb_car", segment, max(s_m - 3.0, 0.0))
        self.ids = []
        for k in range(self.walkers):
            spot = xy + right * (width / 2.0 + 2.5) + np.array([math.cos(yaw), math.sin(yaw)]) * 1.2 * k
            self.ids.append(self.actors.spawn_walker(spot, 0.0))  # waits at the kerb until the trigger
        self.event("spawn", ",".join(f"walker:{w}" for w in self.ids))

    def start(self) -> None:
        for walker in self.ids:
            self.actors.walker_cross(walker, self.params["across"], self.params["speed"])
        self.event("cross", ",".join(f"walker:{w}" for w in self.ids))
        self.finish()


class DynamicObjectCrossing(_Crossing):
    """A walker steps out from behind a car parked at the kerb ``distance`` past the trigger."""

    type_name = "DynamicObjectCrossing"
    defaults = {"distance": 14.0, "speed": 2.0, "across": 9.0}
    hidden = True


class PedestrianCrossing(_Crossing):
    """A group of three walkers crosses ``distance`` past the trigger."""

    type_name = "PedestrianCrossing"
    defaults = {"distance": 18.0, "speed": 1.4, "across": 10.0}
    walkers = 3
