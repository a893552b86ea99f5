"""Evaluation stage configuration: simulator set-up for closed-loop routes, route limits, observation access."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from drivesim import spec
from drivesim.config import Section
from drivesim.sensors.config import SensorsConfig
from drivesim.sim.config import SimConfig

# Localisation: the ego's world pose (x, y, z [m], yaw [deg]) each step, what GNSS + IMU give a car (and a
# CARLA Leaderboard agent). Not a simulator observation: the runner adds it from info["ego_pose"] for agents
# that ask for it (and are allowed it).
OBS_EGO_POSE = "ego_pose"
# Observation keys a non-privileged agent may read by default: what a real car's sensors give, and its
# localisation. Events (collision, off-road, completion) are evaluation signals and ``expert_waypoints`` is
# privileged.
DEFAULT_AGENT_KEYS: tuple[str, ...] = (spec.OBS_MEASUREMENTS, spec.OBS_ROUTE, spec.OBS_BEV, spec.OBS_CAMERA, OBS_EGO_POSE)


class EvalConfig(Section):
    """Closed-loop evaluation settings (CARLA Leaderboard 1.0 rules where they apply).

    The leaderboard ends a route when the agent is blocked for 180 s; our routes are short and traffic is
    simple, so ``blocked_limit_s`` defaults to 30 s. Collisions never end a route (``terminate_on_collision``
    is forced off).
    """

    sim: SimConfig = Field(SimConfig(), description="Embedded simulator / bridge settings; map and episode limits are set per route.")
    sensors: SensorsConfig = Field(
        SensorsConfig(bev=None, camera=None), description="Sensors to render; switch on what the agent reads."
    )
    allowed_observation_keys: tuple[str, ...] = Field(
        DEFAULT_AGENT_KEYS, description="Observation keys a non-privileged agent may receive."
    )
    timeout_speed_mps: float = Field(
        2.0, gt=0.0, description="Route timeout = route length / this speed [m/s] (then the route ends as timeout)."
    )
    blocked_limit_s: float = Field(30.0, gt=0.0, description="No route progress for this long ends the route as agent-blocked [s].")
    off_road_limit_s: float = Field(
        2.0, ge=0.0, description="Driving mostly off-road this long ends the route as a route deviation [s]."
    )
    collision_repeat_window_s: float = Field(
        5.0, ge=0.0, description="Contacts with the same actor within this window count as one collision [s]."
    )
    carla_bridge: dict[str, Any] = Field(
        {}, description="carla_bridge.BridgeConfig settings (host, port, ...) for --sim carla; empty: its defaults."
    )
    check_routes: bool = Field(
        True, description="Rebuild each route on its map before running and re-plan it if the map changed."
    )

    def max_route_steps(self, route_length_m: float) -> int:
        """Route timeout in simulator steps for a route of ``route_length_m`` metres."""
        return max(1, int(round(route_length_m / self.timeout_speed_mps / self.sim.episode.dt_s)))

    def route_sim_config(self, map_name: str, map_seed: int, max_steps: int) -> SimConfig:
        """The simulator config for routes on one map: map set, collisions non-terminal, limits applied."""
        sim = self.sim.model_copy(deep=True)
        sim.map.name = map_name
        sim.map.seed = map_seed
        sim.episode.terminate_on_collision = False
        sim.episode.max_steps = max_steps
        sim.episode.stuck_limit_s = self.blocked_limit_s
        sim.episode.off_road_limit_s = self.off_road_limit_s
        return sim
