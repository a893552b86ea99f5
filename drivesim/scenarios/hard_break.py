"""HardBreakRoute: the car ahead brakes hard (emergency brake)."""

from __future__ import annotations

from drivesim.scenarios.base import Scenario


class HardBreakRoute(Scenario):
    """At the trigger a lead car drives ``distance`` ahead of the ego at ``speed``; ``brake_after_s`` later it
    brakes at ``deceleration`` to a stop, stands ``stop_s`` seconds and drives on."""

    type_name = "HardBreakRoute"
    ability = "emergency_brake"
    defaults = {"distance": 25.0, "speed": 8.0, "deceleration": 7.0, "stop_s": 6.0, "brake_after_s": 4.0}
    needs = "lane"

    def start(self) -> None:
        segment, s_m = self.actors.route_lane(self.actors.ego_route_s() + self.params["distance"])
        speed = self.params["speed"]
        self.lead = self.actors.spawn_vehicle(segment, s_m, speed, speed, straight=True)
        self.event("spawn", f"vehicle:{self.lead}")
        self.stopped_at, self.braking = None, False

    def update(self) -> None:
        state = self.actors.vehicle_state(self.lead)
        if state is None:
            self.finish("lead left")
            return
        if not self.braking:
            if self.actors.time_s() - self.started_s >= self.params["brake_after_s"]:
                self.braking = True
                self.actors.set_vehicle_accel(self.lead, -self.params["deceleration"])
                self.event("brake", f"vehicle:{self.lead}")
            return
        if self.stopped_at is None and state[1] < 0.05:
            self.stopped_at = self.actors.time_s()
            self.actors.set_vehicle_accel(self.lead, None)
            self.actors.set_vehicle_speed(self.lead, 0.0)
        elif self.stopped_at is not None and self.actors.time_s() - self.stopped_at > self.params["stop_s"]:
            self.actors.set_vehicle_speed(self.lead, None)
            self.finish()
