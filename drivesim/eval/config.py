"""Evaluation stage configuration: simulator set-up for closed-loop routes, scoring rules, route limits, observation access."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from drivesim import spec
from drivesim.config import Section
from drivesim.dream.config import DreamEvalConfig
from drivesim.sensors.config import SensorsConfig
from drivesim.sim.config import SimConfig

NEVER_S = 1e9  # a simulator limit that never ends a route [s]
# Localisation: the ego's world pose (x, y, z [m], yaw [deg]) each step, what GNSS + IMU give a car (and a
# CARLA Leaderboard agent). Not a simulator observation: the runner adds it from info["ego_pose"] for agents
# that ask for it (and are allowed it).
OBS_EGO_POSE = "ego_pose"
# Observation keys a non-privileged agent may read by default: what a real car's sensors give, and its
# localisation. Events (collision, off-road, completion) are evaluation signals and ``expert_waypoints`` is
# privileged.
DEFAULT_AGENT_KEYS: tuple[str, ...] = (spec.OBS_MEASUREMENTS, spec.OBS_ROUTE, spec.OBS_BEV, spec.OBS_CAMERA, OBS_EGO_POSE)


class EvalConfig(Section):
    """Closed-loop evaluation settings: the simulator set-up and the Leaderboard's scoring rules and limits.

    Defaults are the Leaderboard 2.0 values (sources in ``drivesim.eval.leaderboard`` and
    ``drivesim.eval.monitor``). Collisions never end a route (``terminate_on_collision`` is forced off), and the
    simulator's own off-road and stuck terminations are switched off: the runner applies the leaderboard's
    route deviation, agent-blocked and timeout rules instead.
    """

    sim: SimConfig = Field(SimConfig(), description="Embedded simulator / bridge settings; map and episode limits are set per route.")
    sensors: SensorsConfig = Field(
        SensorsConfig(bev=None, camera=None), description="Sensors to render; switch on what the agent reads."
    )
    allowed_observation_keys: tuple[str, ...] = Field(
        DEFAULT_AGENT_KEYS, description="Observation keys a non-privileged agent may receive."
    )
    scoring: Literal["leaderboard-2.0", "leaderboard-1.0", "bench2drive"] = Field(
        "leaderboard-2.0",
        description="Scoring rules: Leaderboard 2.0, 1.0, or Bench2Drive (2.0 without the min-speed penalty).",
    )
    route_timeout_s_per_m: float = Field(
        0.8, gt=0.0, description="Leaderboard 1.0 route timeout: this per metre of route [s/m] (SECONDS_GIVEN_PER_METERS)..."
    )
    route_timeout_initial_s: float = Field(5.0, ge=0.0, description="... plus this [s] (INITIAL_SECONDS_DELAY).")
    route_timeout_min_s: float = Field(
        300.0, gt=0.0, description="Leaderboard 2.0 route timeout: this to start with [s] (RouteTimeoutBehavior.MIN_TIMEOUT)..."
    )
    route_timeout_speed_share: float = Field(
        0.1, gt=0.0, le=1.0,
        description="... plus each metre passed at this share of its speed limit (TIMEOUT_ROUTE_PERC = 10 %).",
    )
    route_deviation_m: float = Field(
        30.0, gt=0.0, description="Farther than this from the route ends it as a route deviation [m] (InRouteTest offroad_max)."
    )
    route_deviation_pct: float = Field(
        30.0, gt=0.0, le=100.0,
        description="Passing more than this % of the route farther than half route_deviation_m ends it too (MAX_ROUTE_PERCENTAGE).",
    )
    blocked_speed_mps: float = Field(0.1, gt=0.0, description="Agent blocked: slower than this [m/s] ...")
    blocked_limit_s: float = Field(180.0, gt=0.0, description="... for longer than this ends the route [s] (ActorBlockedTest).")
    carla_bridge: dict[str, Any] = Field(
        {}, description="carla_bridge.BridgeConfig settings (host, port, ...) for --sim carla; empty: its defaults."
    )
    check_routes: bool = Field(
        True, description="Rebuild each route on its map before running and re-plan it if the map changed."
    )
    dream: DreamEvalConfig = Field(
        DreamEvalConfig(), description="The learned simulator's settings for --sim dream (context, sampling)."
    )

    def route_sim_config(self, map_name: str, map_seed: int, max_steps: int) -> SimConfig:
        """The simulator config for routes on one map: map set, collisions non-terminal, the simulator's own
        off-road, stuck and time limits out of the way (the runner ends routes), at most ``max_steps`` steps."""
        sim = self.sim.model_copy(deep=True)
        sim.map.name = map_name
        sim.map.seed = map_seed
        sim.episode.terminate_on_collision = False
        sim.episode.max_steps = max_steps
        sim.episode.timeout_initial_s = max_steps * sim.episode.dt_s
        sim.episode.stuck_limit_s = NEVER_S
        sim.episode.off_road_limit_s = 0.0  # 0 switches the off-road termination off
        return sim
