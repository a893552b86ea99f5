"""Junction scenarios (traffic signs, give way): a crossing car runs its red light or takes the ego's priority;
the ego turns left across an oncoming flow, with or without lights. ScenarioRunner's names and parameters."""

from __future__ import annotations

import math

from drivesim.scenarios.base import Scenario
from drivesim.scenarios.lanes import approach_of, crossing_lanes, start_for_arrival, turn_kind
from drivesim.sim.signals import GREEN, RED


class _AtJunction(Scenario):
    """Acts on the first junction the route enters after the trigger; ends when the ego has left it."""

    def _junction(self) -> tuple[float, float, int] | None:
        for entry, end, lane in self.actors.route_junctions():
            if entry >= self.trigger_s:
                return entry, end, lane
        return None

    def start(self) -> None:
        found = self._junction()
        if found is None:
            self.finish("no junction")
            return
        self.entry_s, self.exit_s, self.lane = found
        self.held_lights: list[int] = []
        self.begin()

    def hold_light(self, junction_lane: int, state: int) -> None:
        """Force the light of ``junction_lane`` for the scenario's duration (given back by ``release``)."""
        self.actors.set_light(junction_lane, state)
        self.held_lights.append(junction_lane)

    def begin(self) -> None:
        raise NotImplementedError

    def update(self) -> None:
        if self.actors.ego_route_s() > self.exit_s + 5.0:
            self.release()
            self.finish()

    def release(self) -> None:
        for lane in self.held_lights:
            self.actors.set_light(lane, None)


class _CrossingCar(_AtJunction):
    """A car on a crossing road arrives at the ego's path when the ego does, ignoring its light or sign."""

    ability = "traffic_signs"
    defaults = {"speed": 10.0}
    signalized = True

    def begin(self) -> None:
        network = self.actors.network
        crossings = [c for c in crossing_lanes(network, self.lane) if turn_kind(network, c[0]) == "straight"] or \
            crossing_lanes(network, self.lane)
        if not crossings:
            self.finish("no crossing lane")
            return
        other, along_mine, along_theirs = crossings[int(self.rng.integers(len(crossings)))]
        if self.signalized:
            self.hold_light(self.lane, GREEN)
            self.hold_light(other, RED)
        ego_time = (self.entry_s + along_mine - self.actors.ego_route_s()) / max(self.actors.ego_speed_mps(), 5.0)
        segment, s_m = start_for_arrival(network, other, along_theirs, self.params["speed"], ego_time)
        self.car = self.actors.spawn_vehicle(segment, s_m, self.params["speed"], self.params["speed"], ignore_lights=True)
        self.event("spawn", f"vehicle:{self.car}")

class OppositeVehicleRunningRedLight(_CrossingCar):
    """The ego has green; a crossing car runs its red."""

    type_name = "OppositeVehicleRunningRedLight"
    needs = "junction_straight_signalized"


class OppositeVehicleTakingPriority(_CrossingCar):
    """At a junction without lights, a crossing car ignores its stop sign and takes the ego's right of way."""

    type_name = "OppositeVehicleTakingPriority"
    needs = "junction_straight_unsignalized"
    signalized = False


class _LeftTurn(_AtJunction):
    """The ego turns left while a flow of oncoming cars drives straight through."""

    ability = "give_way"
    defaults = {"flow_speed": 8.0, "source_dist_interval": [35.0, 60.0]}
    signalized = True

    def begin(self) -> None:
        network = self.actors.network
        start_yaw = network.yaw_rad[network.segment_start[self.lane]]
        oncoming = [c for c in crossing_lanes(network, self.lane) if turn_kind(network, c[0]) == "straight"
                    and abs(math.remainder(network.yaw_rad[network.segment_start[c[0]]] - start_yaw, math.tau)) > 2.6]
        if not oncoming:
            self.finish("no oncoming lane")
            return
        self.flow_lane = oncoming[0][0]
        self.source = approach_of(network, self.flow_lane)
        if self.signalized:
            self.hold_light(self.lane, GREEN)
            self.hold_light(self.flow_lane, GREEN)
        # The flow is already running: cars every source_dist_interval down the approach, then more from its start.
        length = float(network.segment_length_m[self.source])
        s_m = length - 8.0
        while s_m > 0.0:
            self._spawn(s_m)
            s_m -= self.gap_m
        self._spawn(0.0)

    def _spawn(self, s_m: float) -> None:
        speed = self.params["flow_speed"]
        self.last = self.actors.spawn_vehicle(self.source, s_m, speed, speed, straight=True)
        low, high = self.params["source_dist_interval"]
        self.gap_m = float(self.rng.uniform(low, high))
        self.event("spawn", f"vehicle:{self.last}")

    def update(self) -> None:
        state = self.actors.vehicle_state(self.last)
        if self.actors.ego_route_s() < self.exit_s and (state is None or state[2] != self.source or
                                                        self._along(state) > self.gap_m):
            self._spawn(0.0)
        super().update()

    def _along(self, state) -> float:
        network = self.actors.network
        start = network.points[network.segment_start[self.source]]
        return float(math.hypot(*(state[0] - start)))

class SignalizedJunctionLeftTurn(_LeftTurn):
    """Both the ego and the oncoming flow have green (a permissive left turn): the ego gives way."""

    type_name = "SignalizedJunctionLeftTurn"
    needs = "junction_left_signalized"


class NonSignalizedJunctionLeftTurn(_LeftTurn):
    """No lights: the ego turning left gives way to the oncoming flow."""

    type_name = "NonSignalizedJunctionLeftTurn"
    needs = "junction_left_unsignalized"
    signalized = False
