"""Evaluation stage: the Leaderboard's route-ending criteria, stepped with the simulator's observations.

A route ends when it is done, when the ego deviates from it, when the ego is blocked, or at the route timeout.
Only the observation spec is read (the ``route`` points in the ego frame, the events and the speed), so the
same rules run on the embedded simulator, the CARLA bridge and the fake test simulator. Sources
(carla-simulator/scenario_runner and carla-simulator/leaderboard, branches ``leaderboard-2.0`` / ``-1.0``):
- done: ``RouteCompletionTest`` (more than 99 % passed and the target nearer than 10 m);
- deviation: ``InRouteTest(offroad_max=30)`` (route_scenario.py): farther than 30 m from the route, or more than
  30 % of the route passed farther than 15 m (``offroad_min`` = half of ``offroad_max``);
- blocked: ``ActorBlockedTest(min_speed=0.1, max_time=180.0)`` (1.0: ``ActorSpeedAboveThresholdTest``, the same);
- timeout: 1.0 route_scenario.py ``_estimate_route_timeout`` = int(0.8 s/m x length + 5 s); 2.0 timer.py
  ``RouteTimeoutBehavior``: 300 s, plus for each metre passed 1 / (10 % of the ego lane's speed limit) seconds.
"""

from __future__ import annotations

import functools
import logging
import math

import numpy as np

from drivesim import spec
from drivesim.eval.config import EvalConfig
from drivesim.eval.leaderboard import EVENT_COMPLETION, scoring_rules

logger = logging.getLogger(__name__)

COMPLETION_SHARE = 0.99  # RouteCompletionTest.PERCENTAGE_THRESHOLD = 99 [%]
COMPLETION_DISTANCE_M = 10.0  # RouteCompletionTest.DISTANCE_THRESHOLD [m]


class RouteMonitor:
    """Decides after every step whether the route is over, and why.

    Args:
        route_length_m: Route length [m].
        config: Evaluation config (scoring rules and the criteria's thresholds).
        speed_limits_mps: Speed limit along the route, one per metre from its start (2.0 timeout); None: the
            config's default limit everywhere.
    """

    def __init__(self, route_length_m: float, config: EvalConfig, speed_limits_mps: np.ndarray | None = None) -> None:
        self.length_m = float(route_length_m)
        self.config = config
        self.rules = scoring_rules(config.scoring)
        default = config.sim.signals.default_speed_limit_kmh / 3.6
        self.speed_limits_mps = np.full(1, default) if speed_limits_mps is None or not len(speed_limits_mps) else (
            np.asarray(speed_limits_mps, dtype=np.float64))
        self.dt_s = config.sim.episode.dt_s
        self.steps = 0
        self.time_s = 0.0
        self.route_s_m = 0.0
        self.out_of_route_m = 0.0
        self.in_safe_route = True
        self.last_moving_s: float | None = None
        self.timeout_s = self._initial_timeout_s()

    def _initial_timeout_s(self) -> float:
        if self.rules.timeout == "length":
            return float(int(self.config.route_timeout_s_per_m * self.length_m + self.config.route_timeout_initial_s))
        return float(self.config.route_timeout_min_s)

    def time_limit_s(self) -> float:
        """The longest this route can last under the timeout rule (the simulator's step budget) [s]."""
        if self.rules.timeout == "length":
            return self._initial_timeout_s()
        slowest = max(float(self.speed_limits_mps.min()) * self.config.route_timeout_speed_share, 1e-3)
        return self.config.route_timeout_min_s + self.length_m / slowest

    def update(self, observation: dict[str, np.ndarray], env_termination: str | None = None) -> str | None:
        """Feed the observation after a step; returns ``route_done``, ``route_deviation``, ``agent_blocked``,
        ``route_timeout`` or None."""
        self.steps += 1
        self.time_s = self.steps * self.dt_s
        events = observation[spec.OBS_EVENTS]
        completion = float(events[EVENT_COMPLETION])
        route_s = completion * self.length_m
        progress_m = max(route_s - self.route_s_m, 0.0)
        route_ego = np.asarray(observation[spec.OBS_ROUTE], dtype=np.float64).reshape(-1, 2)
        speed_mps = float(observation[spec.OBS_MEASUREMENTS][0])
        if progress_m > 0.0 and self.rules.timeout == "progress":
            limit = self.speed_limits_mps[min(int(route_s), len(self.speed_limits_mps) - 1)]
            self.timeout_s += progress_m / (limit * self.config.route_timeout_speed_share)
        self.route_s_m = max(route_s, self.route_s_m)
        if env_termination == "route_done" or (
            completion > COMPLETION_SHARE and np.hypot(*route_ego[-1]) < COMPLETION_DISTANCE_M
        ):
            return "route_done"
        if self._deviated(route_ego, progress_m):
            return "route_deviation"
        if self._blocked(speed_mps):
            return "agent_blocked"
        if self.time_s > self.timeout_s:
            return "route_timeout"
        return None

    def _deviated(self, route_ego: np.ndarray, progress_m: float) -> bool:
        """InRouteTest: the nearest observed route point is the ego's distance to the route."""
        distance_m = float(np.hypot(route_ego[:, 0], route_ego[:, 1]).min())
        limit_m = self.config.route_deviation_m
        off_route = distance_m >= limit_m
        if not off_route:
            self.in_safe_route = distance_m < limit_m / 2.0
        if progress_m > 0.0 and not self.in_safe_route:
            self.out_of_route_m += progress_m
            off_route = off_route or 100.0 * self.out_of_route_m / self.length_m > self.config.route_deviation_pct
        return off_route

    def _blocked(self, speed_mps: float) -> bool:
        """ActorBlockedTest: slower than ``blocked_speed_mps`` for longer than ``blocked_limit_s``."""
        if speed_mps < self.config.blocked_speed_mps and self.last_moving_s is not None:
            return self.time_s - self.last_moving_s > self.config.blocked_limit_s
        self.last_moving_s = self.time_s
        return False


@functools.lru_cache(maxsize=16)
def _lane_speed_limits(map_name: str, map_seed: int, sample_m: float, signals_json: str) -> np.ndarray:
    from drivesim.eval.routes import load_network
    from drivesim.sim.config import SignalsConfig
    from drivesim.sim.signals import build_signal_layout

    network = load_network(map_name, map_seed, sample_m)
    return build_signal_layout(network, SignalsConfig.model_validate_json(signals_json)).speed_limit_mps


def route_speed_limits(route: object, config: EvalConfig) -> np.ndarray | None:
    """Speed limit [m/s] every metre along a ``RouteSpec``, from its map's signs (None when the map cannot load)."""
    from drivesim.eval.routes import load_network

    sim = config.sim
    try:
        limits = _lane_speed_limits(route.map, route.map_seed, sim.map.lane_sample_m, sim.signals.model_dump_json())
        network = load_network(route.map, route.map_seed, sim.map.lane_sample_m)
        lanes = network.route_through(list(route.segments), route.start_s_m, route.length_m).lane_of_point
    except Exception as error:  # noqa: BLE001 - a map we cannot read here: the default limit applies
        logger.warning("route %s: no speed limits from map %s (%s); using the default", route.id, route.map, error)
        return None
    return None if lanes is None else limits[lanes]


def route_time_limit_s(route: object, config: EvalConfig) -> float:
    """The route timeout's upper bound [s] (sizes the simulator's step budget)."""
    return RouteMonitor(route.length_m, config, route_speed_limits(route, config)).time_limit_s()


def route_steps_limit(route: object, config: EvalConfig) -> int:
    """``route_time_limit_s`` in simulator steps."""
    return max(1, int(math.ceil(route_time_limit_s(route, config) / config.sim.episode.dt_s)))
