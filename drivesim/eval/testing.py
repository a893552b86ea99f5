"""Evaluation stage: a tiny deterministic simulator following the contract, for runner tests and CLI smoke tests.

The ego drives a kinematic bicycle along a straight route of the requested length; NPC vehicles drive ahead
of it in its lane at constant speeds. It honours the route option, ``npcs``, collisions that do not end the
episode, the off-road and stuck limits and ``max_steps``, with the contract's observation and info keys, and
reports the NPCs' mean speed as ``info["traffic_mean_speed_mps"]``.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import numpy as np

from drivesim import spec
from drivesim.sensors.config import SensorsConfig
from drivesim.sim.config import SimConfig

ROAD_HALF_WIDTH_M = 3.0  # |lateral offset| beyond which the ego is off-road [m]
COLLISION_LATERAL_M = 2.0  # lateral overlap with an NPC in the lane centre [m]
PROGRESS_SPEED_MPS = 0.1  # slower than this counts as no progress (stuck) [m/s]


class FakeRouteEnv:
    """A 1-D route world implementing ``drivesim.sim.interface.DrivingSimulator``.

    Args:
        sim_config: Uses ``vehicle``, ``traffic``, ``expert`` and ``episode`` settings.
        sensors_config: Ignored (no BEV or camera).
    """

    def __init__(self, sim_config: SimConfig, sensors_config: SensorsConfig | None = None) -> None:
        self.config = sim_config
        self.seed = 0
        self.route_length_m = 1.0
        self.reset(seed=0, options={"route": {"segments": [0], "start_s_m": 0.0, "length_m": 100.0}})

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        """Start a route; ``options["route"]["length_m"]`` sets its length, ``options["npcs"]`` the traffic."""
        options = options or {}
        self.seed = 0 if seed is None else int(seed)
        rng = np.random.default_rng(self.seed)
        self.route_length_m = float(options.get("route", {}).get("length_m", 300.0))
        npcs = int(options.get("npcs", self.config.traffic.npcs))
        self.npc_s_m = np.sort(rng.uniform(30.0, max(self.route_length_m, 31.0), npcs))
        self.npc_speed_mps = rng.uniform(*self.config.traffic.desired_speed_mps, npcs)
        self.s_m = self.lateral_m = self.heading_rad = self.speed_mps = self.accel_mps2 = self.yaw_rate_dps = 0.0
        self.max_s_m = 0.0
        self.control = np.zeros(3, dtype=np.float32)
        self.step_index = 0
        self.off_road_s = self.stuck_s = 0.0
        self.distance_m = 0.0
        return self._observation(np.zeros(len(spec.EVENT_NAMES), np.float32)), self._info(None, None)

    def step(self, action: np.ndarray) -> tuple[dict, float, bool, bool, dict]:
        """Advance one step of ``episode.dt_s``."""
        vehicle, episode, dt_s = self.config.vehicle, self.config.episode, self.config.episode.dt_s
        self.control = spec.action_from_control(*np.asarray(action, dtype=np.float32)[:3])
        throttle, steer, brake = (float(value) for value in self.control)
        accel = throttle * vehicle.max_accel_mps2 - brake * vehicle.max_brake_mps2
        accel -= (vehicle.rolling_mps2 + vehicle.drag_per_m * self.speed_mps**2) if self.speed_mps > 0 else 0.0
        new_speed = float(np.clip(self.speed_mps + accel * dt_s, 0.0, vehicle.max_speed_mps))
        self.accel_mps2, self.speed_mps = (new_speed - self.speed_mps) / dt_s, new_speed
        yaw_rate = self.speed_mps * math.tan(math.radians(vehicle.max_steer_deg) * steer) / vehicle.wheelbase_m
        self.heading_rad += yaw_rate * dt_s
        self.yaw_rate_dps = math.degrees(yaw_rate)
        ds = self.speed_mps * math.cos(self.heading_rad) * dt_s
        self.s_m += ds
        self.lateral_m += self.speed_mps * math.sin(self.heading_rad) * dt_s
        self.distance_m += self.speed_mps * dt_s
        self.npc_s_m = self.npc_s_m + self.npc_speed_mps * dt_s
        self.step_index += 1

        events = np.zeros(len(spec.EVENT_NAMES), np.float32)
        progress_m = max(self.s_m - self.max_s_m, 0.0)
        self.max_s_m = max(self.max_s_m, self.s_m)
        off_road = abs(self.lateral_m) > ROAD_HALF_WIDTH_M
        events[spec.EVENT_NAMES.index("progress_m")] = progress_m
        events[spec.EVENT_NAMES.index("route_completion")] = min(self.max_s_m / self.route_length_m, 1.0)
        events[spec.EVENT_NAMES.index("off_road")] = float(off_road)
        actor = self._collide()
        events[spec.EVENT_NAMES.index("collision")] = float(actor is not None)

        self.off_road_s = self.off_road_s + dt_s if off_road else 0.0
        self.stuck_s = self.stuck_s + dt_s if self.speed_mps < PROGRESS_SPEED_MPS else 0.0
        termination = None
        if self.max_s_m >= self.route_length_m:
            termination = "route_done"
        elif actor is not None and episode.terminate_on_collision:
            termination = "collision"
        elif episode.off_road_limit_s > 0 and self.off_road_s > episode.off_road_limit_s:
            termination = "off_road"
        elif self.stuck_s >= episode.stuck_limit_s:
            termination = "stuck"
        elif self.step_index >= episode.max_steps:
            termination = "timeout"
        truncated = termination == "timeout"
        reward = progress_m - 10.0 * events[0] - 2.0 * events[1]
        obs = self._observation(events)
        return obs, float(reward), termination is not None and not truncated, truncated, self._info(termination, actor)

    def _collide(self) -> str | None:
        """Rear-end the nearest overlapping NPC: the ego is stopped behind it."""
        if abs(self.lateral_m) > COLLISION_LATERAL_M:
            return None
        overlap = np.flatnonzero(np.abs(self.npc_s_m - self.s_m) < self.config.vehicle.length_m)
        if overlap.size == 0:
            return None
        index = int(overlap[0])
        self.s_m = float(self.npc_s_m[index] - self.config.vehicle.length_m - 0.5)
        self.speed_mps = 0.0
        return f"vehicle:{index}"

    def expert_action(self) -> np.ndarray:
        """Clean expert: keep the lane, cruise, keep a time gap to the NPC ahead."""
        traffic = self.config.traffic
        ahead = self.npc_s_m[self.npc_s_m > self.s_m]
        gap_m = float(ahead.min() - self.s_m - self.config.vehicle.length_m) if ahead.size else np.inf
        target = min(self.config.expert.target_speed_mps, max(0.0, (gap_m - traffic.min_gap_m) / traffic.time_headway_s))
        error = target - self.speed_mps
        steer = -0.3 * self.lateral_m - 1.5 * self.heading_rad
        return spec.action_from_control(0.6 * error, steer, -0.5 * error)

    def driver_action(self) -> np.ndarray:
        """The clean expert (no noise in this fake)."""
        return self.expert_action()

    def episode_metadata(self) -> dict[str, Any]:
        """Self-description of the current episode."""
        name = self.config.map.name
        return {
            "simulator": "fake-route",
            "map_name": name,
            "map_hash": hashlib.sha256(name.encode()).hexdigest()[:16],
            "seed": self.seed,
            "driver": "clean",
        }

    def close(self) -> None:
        """Nothing to release."""

    def _to_ego(self, forward_m: np.ndarray) -> np.ndarray:
        """Route points ``forward_m`` ahead (lateral 0) in the ego frame (x forward, y right)."""
        dx, dy = forward_m, -self.lateral_m * np.ones_like(forward_m)
        cos, sin = math.cos(self.heading_rad), math.sin(self.heading_rad)
        return np.stack([cos * dx + sin * dy, -sin * dx + cos * dy], axis=1).astype(np.float32)

    def _observation(self, events: np.ndarray) -> dict[str, np.ndarray]:
        config = self.config
        route_ahead = np.arange(config.num_route_points) * config.route_spacing_m
        waypoints_ahead = (np.arange(config.num_waypoints) + 1) * config.waypoint_dt_s * max(self.speed_mps, 1.0)
        measurements = [self.speed_mps, self.accel_mps2, self.yaw_rate_dps, *self.control[[1, 0, 2]]]
        return {
            spec.OBS_MEASUREMENTS: np.asarray(measurements, dtype=np.float32),
            spec.OBS_ROUTE: self._to_ego(route_ahead),
            spec.OBS_WAYPOINTS: self._to_ego(waypoints_ahead),
            spec.OBS_EVENTS: events,
        }

    def _info(self, termination: str | None, actor: str | None) -> dict[str, Any]:
        return {
            "ego_pose": np.array([self.s_m, self.lateral_m, 0.0, math.degrees(self.heading_rad)]),
            "expert_action": self.expert_action(),
            "termination": termination,
            "collision_actor": actor,
            "route_length_m": self.route_length_m,
            "distance_m": self.distance_m,
            "time_s": self.step_index * self.config.episode.dt_s,
            "traffic_mean_speed_mps": float(self.npc_speed_mps.mean()) if self.npc_speed_mps.size else float("nan"),
        }
