"""Traffic-rule infractions of the ego, defined once for every simulator (after ScenarioRunner's criteria).

- ``RedLightMonitor``: ``RunningRedLightTest`` (srunner/scenariomanager/scenarioatomics/atomic_criteria.py):
  the segment behind the ego, from 0.8 to 1.0 of its half length plus 1 m behind its centre, crosses the stop
  line (the junction lane's entry, 1.2 lane widths long) of a lane whose light is red, moving along the lane;
  once per light until another light is run.
- ``StopSignMonitor``: ``RunningStopTest``: points from the ego's centre to 4 m ahead enter a stop sign's area
  (1.2 x its box); the stop counts when the ego's speed drops below 0.1 m/s inside it; leaving the area without
  having stopped is one infraction.
- ``wrong_lane``: the ego's centre lies in a driving lane whose direction differs from its heading by more than
  ``OutsideRouteLanesTest.MAX_VEHICLE_ANGLE`` (120 deg), outside junctions (looked up in a raster of lane
  headings, drawn once per map).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from drivesim.sensors.map_raster import SUBPIXEL_BITS, MapRaster
from drivesim.sim.control import SERVE_DISTANCE_M, STOPPED_MPS
from drivesim.sim.road import RoadNetwork
from drivesim.sim.signals import RED, SIGN_STOP, SignalLayout

RED_LIGHT_DISTANCE_M = 15.0  # RunningRedLightTest.DISTANCE_LIGHT
WRONG_LANE_ANGLE_DEG = 120.0  # OutsideRouteLanesTest.MAX_VEHICLE_ANGLE
STOP_AREA_LENGTH_M = 3.0  # along the lane, ending at the stop line [m]
STOP_AREA_SCALE = 1.2  # RunningStopTest.point_inside_boundingbox multiplier


def one_per_entry(layout: SignalLayout, positions: np.ndarray) -> np.ndarray:
    """Of stop lines ``positions`` (indices into ``layout.controlled``), one per distinct entry point."""
    if len(positions) == 0:
        return positions
    _, first = np.unique(np.round(layout.stop_xy[positions], 1), axis=0, return_index=True)
    return positions[np.sort(first)]


class RedLightMonitor:
    """Detects the ego running red lights (see the module docstring)."""

    def __init__(self, layout: SignalLayout) -> None:
        self.layout = layout
        lit = np.flatnonzero(layout.light_of_segment[layout.controlled] >= 0)
        self._xy = layout.stop_xy[lit]
        self._yaw = layout.stop_yaw_rad[lit]
        self._half = 1.2 * layout.stop_half_width_m[lit]  # 0.6 lane widths each side
        self._pole = layout.light_of_segment[layout.controlled[lit]]
        self.last_pole = -1

    def reset(self) -> None:
        self.last_pole = -1

    def update(self, ego_xy: np.ndarray, ego_yaw_rad: float, half_length_m: float, light_state: np.ndarray) -> int:
        """The pole whose red light the ego ran during this step, or -1."""
        if len(self._xy) == 0:
            return -1
        close = np.abs(self._xy - ego_xy).max(1) < RED_LIGHT_DISTANCE_M + half_length_m
        if not close.any():
            return -1
        near = np.flatnonzero(close & (light_state[self._pole] == RED) & (self._pole != self.last_pole))
        if len(near) == 0:
            return -1
        forward = np.array([math.cos(ego_yaw_rad), math.sin(ego_yaw_rad)])
        tail_close = ego_xy - forward * 0.8 * half_length_m
        tail_far = ego_xy - forward * (half_length_m + 1.0)
        yaw = self._yaw[near]
        along = np.stack([np.cos(yaw), np.sin(yaw)], 1)
        heading_ok = along @ forward > 0.0
        # The tail segment crosses the stop line: opposite signs along the lane, inside the line's half length.
        rel_close, rel_far = tail_close - self._xy[near], tail_far - self._xy[near]
        s_close, s_far = np.einsum("kd,kd->k", rel_close, along), np.einsum("kd,kd->k", rel_far, along)
        across = np.stack([-along[:, 1], along[:, 0]], 1)
        t_close, t_far = np.einsum("kd,kd->k", rel_close, across), np.einsum("kd,kd->k", rel_far, across)
        fraction = s_close / np.where(np.abs(s_close - s_far) > 1e-9, s_close - s_far, 1e-9)
        t_cross = t_close + (t_far - t_close) * np.clip(fraction, 0.0, 1.0)
        crossed = heading_ok & (s_close * s_far <= 0.0) & (np.abs(t_cross) <= self._half[near])
        if not crossed.any():
            return -1
        self.last_pole = int(self._pole[near[np.argmax(crossed)]])
        return self.last_pole


class StopSignMonitor:
    """Detects the ego running stop signs (see the module docstring)."""

    def __init__(self, layout: SignalLayout) -> None:
        index = one_per_entry(layout, np.flatnonzero(layout.sign_of_segment[layout.controlled] == SIGN_STOP))
        yaw = layout.stop_yaw_rad[index]
        along = np.stack([np.cos(yaw), np.sin(yaw)], 1).reshape(-1, 2)
        self._centre = layout.stop_xy[index].reshape(-1, 2) - along * (STOP_AREA_LENGTH_M / 2.0)
        self._along = along
        self._half = np.column_stack([np.full(len(index), STOP_AREA_LENGTH_M / 2.0), layout.stop_half_width_m[index]])
        self.reset()

    def reset(self) -> None:
        self.target = -1
        self.completed = False
        self.last_failed = -1

    def _affecting(self, ego_xy: np.ndarray, ego_yaw_rad: float) -> np.ndarray:
        forward = np.array([math.cos(ego_yaw_rad), math.sin(ego_yaw_rad)])
        points = ego_xy + np.arange(0.0, SERVE_DISTANCE_M + 1e-6, 0.5)[:, None] * forward  # (Q, 2)
        rel = points[None] - self._centre[:, None]  # (K, Q, 2)
        along = np.einsum("kqd,kd->kq", rel, self._along)
        across = np.einsum("kqd,kd->kq", rel, np.stack([-self._along[:, 1], self._along[:, 0]], 1))
        inside = (np.abs(along) < STOP_AREA_SCALE * self._half[:, :1]) & (np.abs(across) < STOP_AREA_SCALE * self._half[:, 1:])
        heading_ok = self._along @ forward > -0.17  # RunningStopTest ignores stops when driving the other way
        return inside.any(1) & heading_ok

    def update(self, ego_xy: np.ndarray, ego_yaw_rad: float, speed_mps: float) -> bool:
        """Whether the ego ran a stop sign during this step."""
        if len(self._centre) == 0:
            return False
        if self.target < 0:
            if np.abs(self._centre - ego_xy).max(1).min() > SERVE_DISTANCE_M + 2 * STOP_AREA_LENGTH_M + 4.0:
                return False
            affecting = np.flatnonzero(self._affecting(ego_xy, ego_yaw_rad))
            if len(affecting):
                self.target, self.completed = int(affecting[0]), False
            return False
        if speed_mps < STOPPED_MPS:
            self.completed = True
        if self._affecting(ego_xy, ego_yaw_rad)[self.target]:
            return False
        ran = not self.completed and self.last_failed != self.target
        if ran:
            self.last_failed = self.target
        self.target, self.completed = -1, False
        return ran


HEADING_CODES = 254  # lane headings quantised into codes 1..254 (0: no lane, or a junction)


def lane_heading_layer(network: RoadNetwork, raster: MapRaster) -> np.ndarray:
    """(H, W) uint8 raster of the heading code of the driving lane under each pixel, outside junctions (cached)."""
    cache = network.__dict__.setdefault("_heading_layer", {})
    key = round(raster.m_per_px, 6)
    if key in cache:
        return cache[key]
    layer = np.zeros(raster.shape, np.uint8)
    scale = (1 << SUBPIXEL_BITS) / raster.m_per_px
    for segment in np.flatnonzero(~network.segment_in_junction):
        left, right = network.boundaries(int(segment))
        start = network.segment_start[segment]
        yaw = network.yaw_rad[start : start + len(left)]
        codes = 1 + np.round(np.mod(yaw, 2 * np.pi) / (2 * np.pi) * (HEADING_CODES - 1)).astype(np.int64)
        quads = np.stack([left[:-1], left[1:], right[1:], right[:-1]], axis=1)
        pixels = np.round((quads - raster.origin) * scale).astype(np.int32)
        for quad, code in zip(pixels, codes[:-1], strict=True):
            cv2.fillConvexPoly(layer, quad, int(code), cv2.LINE_8, SUBPIXEL_BITS)
    cache[key] = layer
    return layer


def wrong_lane(heading_layer: np.ndarray, raster: MapRaster, ego_xy: np.ndarray, ego_yaw_rad: float) -> bool:
    """Whether the ego's centre is in an opposite-direction driving lane (see the module docstring)."""
    code = int(raster.lookup(heading_layer, np.asarray(ego_xy)[None])[0])
    if code == 0:
        return False
    lane_yaw = (code - 1) / (HEADING_CODES - 1) * 2 * math.pi
    return abs(math.remainder(lane_yaw - ego_yaw_rad, 2 * math.pi)) > math.radians(WRONG_LANE_ANGLE_DEG)
