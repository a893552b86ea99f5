"""Sensors stage: the ego-centred, heading-up bird's-eye-view rasteriser shared by every simulator.

The static layers (drivable area, lane markings) are cut out of the map raster pre-rendered once per map
(``drivesim.sensors.map_raster``) with one ``cv2.warpAffine`` per step, as Roach does; the route and the
vehicles are drawn directly in BEV pixels with OpenCV after one vectorised affine transform.

Geometry: pixel (row, col) covers [row, row + 1) x [col, col + 1) of the raster. The ego's centre sits at
column ``size / 2`` and row ``ego_row_fraction * size`` (a pixel corner, so the ego and its lane are drawn
symmetrically); its forward direction points up (row decreasing) and its right (+y in the ego frame) points
right (column increasing); one pixel is ``m_per_px`` metres. OpenCV puts pixel centres at integer
coordinates, so drawing coordinates are these minus half a pixel (the map raster is drawn the same way).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from drivesim.sensors.config import BevConfig
from drivesim.sensors.geometry import apply_affine, box_corners
from drivesim.sensors.map_raster import SUBPIXEL_BITS, render_map_raster
from drivesim.sensors.scene import Scene
from drivesim.sim.road import RoadNetwork
from drivesim.spec import BEV_CHANNELS

DRIVABLE, LANE_MARKINGS, ROUTE, EGO, VEHICLES, WALKERS, OBSTACLES, STOP_SIGNS = (
    BEV_CHANNELS.index(name)
    for name in ("drivable", "lane_markings", "route", "ego", "vehicles", "walkers", "obstacles", "stop_signs")
)
# BEV channel of each stop-line kind (drivesim.sensors.scene.STOP_*): light state, then stop sign.
STOP_LINE_CHANNELS = np.array([BEV_CHANNELS.index(name) for name in
                               ("traffic_light_red", "traffic_light_yellow", "traffic_light_green", "stop_signs")])
MIN_WALKER_M = 1.0  # walkers are drawn at least this large so that they cover pixels at coarse resolutions [m]
STOP_LINE_M = 1.0  # thickness of the drawn stop lines [m]
_FIXED_POINT = float(1 << SUBPIXEL_BITS)

# Display colours (RGB) of the channels, painted in this order by ``bev_to_rgb``; past vehicles are dimmed.
BEV_BACKGROUND_RGB = (30, 30, 34)
BEV_COLOURS_RGB: dict[str, tuple[int, int, int]] = {
    "drivable": (95, 95, 100),
    "lane_markings": (235, 235, 235),
    "route": (70, 130, 230),
    "vehicles": (240, 150, 40),
    "ego": (60, 220, 90),
    "walkers": (240, 90, 200),
    "obstacles": (170, 120, 80),
    "traffic_light_red": (230, 40, 40),
    "traffic_light_yellow": (240, 210, 40),
    "traffic_light_green": (40, 200, 60),
    "stop_signs": (255, 255, 255),
}
_PAST_VEHICLE_RGB = (150, 95, 35)


class BevRenderer:
    """Renders (C, H, W) uint8 {0, 1} BEV observations of one map.

    Channels: ``drivesim.spec.BEV_CHANNELS`` followed by ``config.past_vehicle_frames`` channels holding the
    vehicles 1, 2, ... steps ago, drawn relative to the current ego pose.

    Args:
        network: Road network of the map; its raster at ``config.m_per_px`` is rendered once and cached.
        config: Size, resolution and ego placement of the raster.
    """

    def __init__(self, network: RoadNetwork, config: BevConfig) -> None:
        self.config = config
        self.size_px = config.size_px
        self.m_per_px = config.m_per_px
        self.num_channels = len(BEV_CHANNELS) + config.past_vehicle_frames
        raster = render_map_raster(network, config.m_per_px)
        self._static_layers = np.ascontiguousarray(np.stack([raster.drivable, raster.lane_markings], axis=-1))
        self._raster_origin = raster.origin
        # The ego's centre in OpenCV drawing coordinates (pixel centres at integers).
        self.ego_col_px = self.size_px / 2.0 - 0.5
        self.ego_row_px = config.ego_row_fraction * self.size_px - 0.5
        # Anything whose centre is farther than this from the ego cannot touch the raster (boxes < 20 m long).
        farthest_corner_px = np.hypot(max(self.ego_col_px, self.size_px - self.ego_col_px),
                                      max(self.ego_row_px, self.size_px - self.ego_row_px)) + 1.0
        self._view_radius_m = farthest_corner_px * self.m_per_px + 10.0
        self._route_thickness_px = max(int(round(config.route_width_m / self.m_per_px)), 2)
        self._stop_thickness_px = max(int(round(STOP_LINE_M / self.m_per_px)), 1)
        self._ego_polygons: dict[tuple[float, float], np.ndarray] = {}

    def world_to_pixel(self, ego_xy: np.ndarray, ego_yaw_deg: float) -> np.ndarray:
        """2x3 affine matrix taking world (x, y, 1) [m] to BEV drawing coordinates (column, row), OpenCV's."""
        cos_yaw, sin_yaw = math.cos(math.radians(ego_yaw_deg)), math.sin(math.radians(ego_yaw_deg))
        ego_x, ego_y = float(ego_xy[0]), float(ego_xy[1])
        scale = 1.0 / self.m_per_px  # forward = (cos, sin), right = (-sin, cos)
        return np.array([
            [-sin_yaw * scale, cos_yaw * scale, self.ego_col_px - (cos_yaw * ego_y - sin_yaw * ego_x) * scale],
            [-cos_yaw * scale, -sin_yaw * scale, self.ego_row_px + (cos_yaw * ego_x + sin_yaw * ego_y) * scale],
        ])

    def _pixel_to_raster(self, ego_xy: np.ndarray, ego_yaw_deg: float) -> np.ndarray:
        """2x3 matrix taking BEV to map-raster drawing coordinates (the inverse map of the warp)."""
        cos_yaw, sin_yaw = math.cos(math.radians(ego_yaw_deg)), math.sin(math.radians(ego_yaw_deg))
        offset_x = (float(ego_xy[0]) - self._raster_origin[0]) / self.m_per_px
        offset_y = (float(ego_xy[1]) - self._raster_origin[1]) / self.m_per_px
        # raster = offset + (row0 - row) * forward + (col - col0) * right   (both in pixels)
        return np.array([
            [-sin_yaw, -cos_yaw, offset_x + self.ego_row_px * cos_yaw + self.ego_col_px * sin_yaw],
            [cos_yaw, -sin_yaw, offset_y + self.ego_row_px * sin_yaw - self.ego_col_px * cos_yaw],
        ])

    def _box_polygons(self, boxes: np.ndarray, to_pixel: np.ndarray) -> np.ndarray:
        """Fixed-point drawing polygons (N, 4, 2) of oriented ``boxes`` (N, 5) under ``to_pixel``.

        cv2 also fills the pixels its outline touches: the outline is shrunk by half a pixel on every side so
        that the fill covers (for axis-aligned boxes exactly) the pixels whose centres lie inside the box.
        """
        shrunk = boxes.copy()
        shrunk[:, 3:5] = np.maximum(shrunk[:, 3:5] - self.m_per_px, 0.0)
        return np.rint(apply_affine(to_pixel, box_corners(shrunk)) * _FIXED_POINT).astype(np.int32)

    def _ego_polygon(self, ego_size: tuple[float, float]) -> np.ndarray:
        """The ego's polygon: fixed for a given size (heading-up, ego-centred), so it is cached."""
        key = (float(ego_size[0]), float(ego_size[1]))
        if key not in self._ego_polygons:
            ego_box = np.array([[0.0, 0.0, 0.0, key[0], key[1]]])
            self._ego_polygons[key] = self._box_polygons(ego_box, self.world_to_pixel(np.zeros(2), 0.0))[0]
        return self._ego_polygons[key]

    def _draw_boxes(self, layer: np.ndarray, boxes: np.ndarray, to_pixel: np.ndarray,
                    ego_xy: np.ndarray) -> None:
        """Fill the oriented ``boxes`` (N, 5) near the ego into ``layer`` (H, W)."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 5)
        near = np.abs(boxes[:, :2] - ego_xy).max(axis=1) < self._view_radius_m
        if not near.any():
            return
        for polygon in self._box_polygons(boxes[near], to_pixel):  # one call each: a multi-polygon fill
            cv2.fillConvexPoly(layer, polygon, 1, cv2.LINE_8, SUBPIXEL_BITS)  # would hollow out overlaps

    def _draw_route(self, layer: np.ndarray, route_xy: np.ndarray, to_pixel: np.ndarray,
                    ego_xy: np.ndarray) -> None:
        """Draw the route points near the ego into ``layer`` (H, W) as one thick polyline."""
        route_xy = np.asarray(route_xy, dtype=np.float64).reshape(-1, 2)
        near = np.flatnonzero(np.abs(route_xy - ego_xy).max(axis=1) < self._view_radius_m)
        if len(near) == 0:
            return
        visible = route_xy[near[0] : near[-1] + 1]
        points = np.rint(apply_affine(to_pixel, visible) * _FIXED_POINT).astype(np.int32)
        if len(points) == 1:
            points = np.concatenate([points, points])
        cv2.polylines(layer, [points], False, 1, self._route_thickness_px, cv2.LINE_8, SUBPIXEL_BITS)

    def _draw_stop_lines(self, bev: np.ndarray, scene: Scene, to_pixel: np.ndarray, ego_xy: np.ndarray) -> None:
        """Stop lines into the channel of their kind: the controlling light's state, or a stop sign."""
        if len(scene.stop_lines) == 0:
            return
        near = np.flatnonzero(np.abs(scene.stop_lines[:, 0] - ego_xy).max(axis=1) < self._view_radius_m)
        if len(near) == 0:
            return
        ends = np.rint(apply_affine(to_pixel, scene.stop_lines[near]) * _FIXED_POINT).astype(np.int32)
        for (start, end), channel in zip(ends, STOP_LINE_CHANNELS[scene.stop_kind[near]].tolist(), strict=True):
            cv2.line(bev[channel], tuple(start.tolist()), tuple(end.tolist()), 1, self._stop_thickness_px,
                     cv2.LINE_8, SUBPIXEL_BITS)

    def render(
        self,
        ego_xy: np.ndarray,
        ego_yaw_deg: float,
        ego_size: tuple[float, float],
        route_xy: np.ndarray,
        scene: Scene | np.ndarray,
        past_boxes: list[np.ndarray] | None = None,
    ) -> np.ndarray:
        """Render the BEV of one step.

        Args:
            ego_xy: (2,) ego bounding-box centre, world frame [m].
            ego_yaw_deg: Ego heading [deg].
            ego_size: (length, width) of the ego box [m].
            route_xy: (P, 2) world route points ahead of the ego [m].
            scene: Other actors and signals (``drivesim.sensors.scene.Scene``); an (N, 5) array of boxes
                (x [m], y [m], yaw [deg], length [m], width [m]) stands for a scene of vehicles only.
            past_boxes: Other vehicles 1, 2, ... steps ago (same layout); extra entries are ignored, missing
                ones leave their channels empty.

        Returns:
            (C, H, W) uint8 array in {0, 1}, C = ``self.num_channels``.
        """
        size = self.size_px
        ego_xy = np.asarray(ego_xy, dtype=np.float64)[:2]
        bev = np.zeros((self.num_channels, size, size), np.uint8)
        static = cv2.warpAffine(
            self._static_layers,
            self._pixel_to_raster(ego_xy, ego_yaw_deg),
            (size, size),
            flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=0,
        )
        bev[DRIVABLE] = static[..., 0]
        bev[LANE_MARKINGS] = static[..., 1]
        to_pixel = self.world_to_pixel(ego_xy, ego_yaw_deg)
        self._draw_route(bev[ROUTE], route_xy, to_pixel, ego_xy)
        cv2.fillConvexPoly(bev[EGO], self._ego_polygon(ego_size), 1, cv2.LINE_8, SUBPIXEL_BITS)
        if not isinstance(scene, Scene):
            scene = Scene.of_vehicles(scene)
        self._draw_stop_lines(bev, scene, to_pixel, ego_xy)
        self._draw_boxes(bev[VEHICLES], scene.vehicles, to_pixel, ego_xy)
        if len(scene.walkers):
            walkers = scene.walkers.copy()
            walkers[:, 3:5] = np.maximum(walkers[:, 3:5], MIN_WALKER_M)
            self._draw_boxes(bev[WALKERS], walkers, to_pixel, ego_xy)
        self._draw_boxes(bev[OBSTACLES], scene.obstacles, to_pixel, ego_xy)
        for frame, past in enumerate((past_boxes or [])[: self.config.past_vehicle_frames]):
            self._draw_boxes(bev[len(BEV_CHANNELS) + frame], past, to_pixel, ego_xy)
        return bev


def bev_to_rgb(bev: np.ndarray) -> np.ndarray:
    """Colour a (C, H, W) BEV observation for display: (H, W, 3) uint8 RGB, later channels painted on top."""
    rgb = np.empty(bev.shape[1:] + (3,), np.uint8)
    rgb[:] = BEV_BACKGROUND_RGB
    for name in ("drivable", "lane_markings", "route", "traffic_light_red", "traffic_light_yellow",
                 "traffic_light_green", "stop_signs", "obstacles"):
        rgb[bev[BEV_CHANNELS.index(name)] > 0] = BEV_COLOURS_RGB[name]
    for channel in range(bev.shape[0] - 1, len(BEV_CHANNELS) - 1, -1):  # oldest past vehicles first
        rgb[bev[channel] > 0] = _PAST_VEHICLE_RGB
    for name in ("vehicles", "walkers", "ego"):
        rgb[bev[BEV_CHANNELS.index(name)] > 0] = BEV_COLOURS_RGB[name]
    return rgb
