"""ControlLoss: the ego's steering jerks (a slippery patch) for a few seconds; it must recover its lane."""

from __future__ import annotations

import numpy as np

from drivesim.scenarios.base import Scenario


class ControlLoss(Scenario):
    """From the trigger, ``jerks`` steer offsets of up to ``steer`` (random sign) each last ``jerk_s`` seconds,
    one every ``interval_s`` seconds."""

    type_name = "ControlLoss"
    ability = "emergency_brake"
    defaults = {"steer": 0.25, "jerks": 3, "jerk_s": 0.4, "interval_s": 1.5}
    needs = "lane"

    def start(self) -> None:
        self.offsets = self.rng.uniform(0.5, 1.0, int(self.params["jerks"])) * self.rng.choice([-1.0, 1.0], int(self.params["jerks"]))

    def control(self, action: np.ndarray) -> np.ndarray:
        elapsed = self.actors.time_s() - self.started_s
        jerk = int(elapsed // self.params["interval_s"])
        if jerk >= len(self.offsets):
            return action
        if elapsed - jerk * self.params["interval_s"] < self.params["jerk_s"]:
            action = np.array(action, dtype=np.float32).copy()
            action[1] = float(np.clip(action[1] + self.params["steer"] * self.offsets[jerk], -1.0, 1.0))
        return action

    def update(self) -> None:
        if self.actors.time_s() - self.started_s > self.params["interval_s"] * self.params["jerks"]:
            self.finish()
