"""The one simulator contract: embedded simulator, CARLA bridge and learned simulator all implement it.

It is a gymnasium ``Env`` (``reset(seed=..., options=...)`` / ``step(action)``) whose observations follow
``drivesim.spec``, plus two methods that data collection and evaluation need.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

# Keys of the ``info`` dict returned by reset() and step().
INFO_EGO_POSE = "ego_pose"  # (4,) float64: x, y, z [m], yaw [deg], world frame
INFO_EXPERT_ACTION = "expert_action"  # (3,) float32: the clean expert's control at this observation
INFO_TERMINATION = "termination"  # None or one of TERMINATION_REASONS
INFO_COLLISION_ACTOR = "collision_actor"  # None or "vehicle:<id>" / "static" for this step's collision
INFO_ROUTE_LENGTH = "route_length_m"  # total route length [m]
INFO_DISTANCE = "distance_m"  # distance driven so far [m]
INFO_TIME = "time_s"  # simulated time since reset [s]
INFO_SCENARIO_EVENTS = "scenario_events"  # list of this step's scenario events: {t_s, scenario, type, event, detail}

TERMINATION_REASONS = ("collision", "off_road", "route_done", "stuck", "timeout")


@runtime_checkable
class DrivingSimulator(Protocol):
    """What recording, evaluation, replay and policies may rely on."""

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        """Start an episode. ``options`` may hold ``route`` (a RouteSpec) and ``driver`` mode."""
        ...

    def step(self, action: np.ndarray) -> tuple[dict, float, bool, bool, dict]:
        """Apply a control (throttle, steer, brake) for one fixed step; gymnasium's 5-tuple."""
        ...

    def expert_action(self) -> np.ndarray:
        """The privileged expert's clean control for the current observation, (3,) float32."""
        ...

    def driver_action(self) -> np.ndarray:
        """The data-collection driver's control: the expert plus this episode's noise, (3,) float32."""
        ...

    def episode_metadata(self) -> dict[str, Any]:
        """Self-description for the dataset: simulator, map name and hash, seed, config, driver mode."""
        ...

    def close(self) -> None: ...
