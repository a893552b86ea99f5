"""The one observation spec shared by every simulator (embedded, CARLA bridge, learned) and the dataset.

Frames follow CARLA: x forward, y right, z up (UE4, left-handed), metres, yaw in degrees, positive yaw
turns right. "Ego frame" points are (x forward, y right) in metres relative to the ego's bounding-box centre,
heading-up.

Step convention (as DreamerV3's replay): index t holds the observation o_t, the events and reward that
arriving at o_t produced (caused by action a_{t-1}; zero at t=0), and the action a_t taken after seeing o_t.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# 2: events gained collision_walker, collision_static, red_light, stop_sign, wrong_lane; the BEV gained
# walkers, obstacles, traffic-light and stop-sign channels (the interactive world).
SCHEMA_VERSION = 2

# Measurement vector, one float each. Units in the names.
MEASUREMENT_NAMES: tuple[str, ...] = (
    "speed_mps",  # forward speed [m/s]
    "accel_mps2",  # longitudinal acceleration [m/s^2]
    "yaw_rate_dps",  # yaw rate [deg/s], positive = turning right
    "steer",  # last applied steer [-1, 1], positive = right
    "throttle",  # last applied throttle [0, 1]
    "brake",  # last applied brake [0, 1]
)

# Per-step events; see drivesim.sim.events for their exact definitions.
EVENT_NAMES: tuple[str, ...] = (
    "collision",  # 1.0 if the ego touched another actor (of any kind) during this step
    "off_road",  # share of the ego footprint outside driving lanes [0, 1]
    "lane_invasion",  # 1.0 if the ego crossed a lane marking during this step
    "progress_m",  # metres advanced along the route during this step
    "route_completion",  # share of the route completed so far [0, 1]
    "collision_walker",  # 1.0 if that contact was with a walker (pedestrian)
    "collision_static",  # 1.0 if that contact was with a static object (prop, building, barrier)
    "red_light",  # 1.0 on the step the ego entered a junction lane against a red light
    "stop_sign",  # 1.0 on the step the ego left a stop sign's area without having stopped
    "wrong_lane",  # 1.0 while the ego's centre is in a driving lane of the opposite direction
)

# Action vector (= carla.VehicleControl's continuous fields).
ACTION_NAMES: tuple[str, ...] = ("throttle", "steer", "brake")
ACTION_LOW = np.array([0.0, -1.0, 0.0], dtype=np.float32)
ACTION_HIGH = np.array([1.0, 1.0, 1.0], dtype=np.float32)

# BEV channel order produced by the shared rasteriser (drivesim.sensors.bev).
BEV_CHANNELS: tuple[str, ...] = (
    "drivable",
    "lane_markings",
    "route",
    "ego",
    "vehicles",  # other vehicles, parked ones included
    "walkers",
    "obstacles",  # static props: cones, barriers, warning triangles
    "traffic_light_red",  # stop lines of lanes whose light is red
    "traffic_light_yellow",
    "traffic_light_green",
    "stop_signs",  # stop lines of lanes controlled by a stop sign
)

# Observation keys. Optional sensor keys appear only when the sensor is enabled.
OBS_MEASUREMENTS = "measurements"  # (M,) float32
OBS_ROUTE = "route"  # (R, 2) float32, next route points in the ego frame
OBS_WAYPOINTS = "expert_waypoints"  # (K, 2) float32, the expert's future positions in the ego frame
OBS_EVENTS = "events"  # (E,) float32
OBS_BEV = "bev"  # (C, H, W) uint8 in {0, 1}
OBS_CAMERA = "camera"  # (H, W, 3) uint8 RGB

# Episode (dataset) fields, all with a leading time axis T.
EPISODE_FIELDS: tuple[str, ...] = (
    "measurements",  # (T, M) float32
    "route",  # (T, R, 2) float32
    "expert_waypoints",  # (T, K, 2) float32
    "events",  # (T, E) float32
    "action",  # (T, 3) float32, applied after o_t
    "expert_action",  # (T, 3) float32, what the expert would have done at o_t
    "reward",  # (T,) float32, default reward of arriving at o_t
    "ego_pose",  # (T, 4) float64: x, y, z [m], yaw [deg] in world frame
    "is_first",  # (T,) bool
    "is_last",  # (T,) bool
    "is_terminal",  # (T,) bool
    # optional: "bev" (T, C, H, W) uint8, "camera" (T, H, W, 3) uint8
)


@dataclass(frozen=True)
class ObservationShape:
    """Sizes that define the observation spec."""

    num_route_points: int = 16
    route_spacing_m: float = 2.0
    num_waypoints: int = 8
    waypoint_dt_s: float = 0.5
    bev_size: int | None = 64
    camera_size: int | None = 64

    @property
    def bev_channels(self) -> int:
        return len(BEV_CHANNELS)


def action_from_control(throttle: float, steer: float, brake: float) -> np.ndarray:
    """Pack control values into the action vector, clipped to the valid ranges."""
    return np.array(
        [min(max(float(throttle), 0.0), 1.0), min(max(float(steer), -1.0), 1.0), min(max(float(brake), 0.0), 1.0)],
        dtype=np.float32,
    )
