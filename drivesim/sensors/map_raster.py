"""Static map layers (drivable area, lane markings) pre-rendered once per map and resolution.

The one rasteriser of road geometry: the BEV cuts its view out of these layers with one affine warp per
step, and the simulator answers off-road and lane-invasion queries with array lookups into them (instead
of per-step ``carla.Map.get_waypoint`` calls, which cost 30-110 us each on real towns).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from drivesim.sim.road import MARKING_BROKEN, MARKING_NONE, RoadNetwork

DASH_ON_M, DASH_OFF_M = 3.0, 3.0  # broken-line pattern [m]
SUBPIXEL_BITS = 4  # cv2 drawing precision: coordinates in 1/16 px


@dataclass
class MapRaster:
    """World-aligned raster layers: row = (y - origin_y) / m_per_px, col = (x - origin_x) / m_per_px."""

    origin: np.ndarray  # (2,) world x, y of pixel (0, 0)'s corner [m]
    m_per_px: float
    drivable: np.ndarray  # (H, W) uint8 {0, 1}
    lane_markings: np.ndarray  # (H, W) uint8 {0, 1}

    @property
    def shape(self) -> tuple[int, int]:
        return self.drivable.shape

    @functools.cached_property
    def layer_bits(self) -> np.ndarray:
        """Both layers in one array (bit 0 drivable, bit 1 lane marking): one lookup answers both."""
        return self.drivable | (self.lane_markings << 1)

    def to_pixels(self, xy: np.ndarray) -> np.ndarray:
        """World (..., 2) -> pixel (..., 2) as (col, row) floats."""
        return (np.asarray(xy) - self.origin) / self.m_per_px

    def lookup(self, layer: np.ndarray, xy: np.ndarray) -> np.ndarray:
        """Values of ``layer`` at world points (...,2); points outside the raster read 0."""
        # OpenCV draws integer coordinates at pixel centres: pixel j covers [j - 0.5, j + 0.5).
        pixels = ((np.asarray(xy) - self.origin) * (1.0 / self.m_per_px) + 0.5).astype(np.int64)
        col, row = pixels[..., 0], pixels[..., 1]
        height, width = layer.shape
        inside = (col >= 0) & (col < width) & (row >= 0) & (row < height)
        return layer[np.where(inside, row, 0), np.where(inside, col, 0)] * inside


def _to_cv_points(raster_origin: np.ndarray, m_per_px: float, xy: np.ndarray) -> np.ndarray:
    return np.round((xy - raster_origin) / m_per_px * (1 << SUBPIXEL_BITS)).astype(np.int32)


def dashes(line: np.ndarray, spacing_m: float) -> list[np.ndarray]:
    """Split a polyline sampled every ``spacing_m`` into dash pieces."""
    period = max(int(round((DASH_ON_M + DASH_OFF_M) / spacing_m)), 2)
    on = max(int(round(DASH_ON_M / spacing_m)), 1)
    return [line[start : start + on + 1] for start in range(0, len(line) - 1, period)]


def render_map_raster(network: RoadNetwork, m_per_px: float, marking_width_m: float = 0.3) -> MapRaster:
    """Render the drivable area and lane markings of ``network`` at ``m_per_px``; cached on the network."""
    cache = network.__dict__.setdefault("_raster_cache", {})
    key = (round(m_per_px, 6), round(marking_width_m, 6))
    if key in cache:
        return cache[key]
    origin = network.bounds[:2]
    width = int(np.ceil((network.bounds[2] - network.bounds[0]) / m_per_px))
    height = int(np.ceil((network.bounds[3] - network.bounds[1]) / m_per_px))
    drivable = np.zeros((height, width), np.uint8)
    markings = np.zeros((height, width), np.uint8)
    thickness = max(int(round(marking_width_m / m_per_px)), 1)
    polygons = []
    for segment in range(network.num_segments):
        left, right = network.boundaries(segment)
        polygons.append(_to_cv_points(origin, m_per_px, np.concatenate([left, right[::-1]])))
        if network.segment_in_junction[segment]:
            continue
        spacing = network.segment_spacing_m[segment]
        for line, kind in ((left, network.segment_left_marking[segment]), (right, network.segment_right_marking[segment])):
            if kind == MARKING_NONE:
                continue
            pieces = dashes(line, spacing) if kind == MARKING_BROKEN else [line]
            cv_pieces = [_to_cv_points(origin, m_per_px, piece) for piece in pieces if len(piece) >= 2]
            cv2.polylines(markings, cv_pieces, False, 1, thickness, cv2.LINE_8, SUBPIXEL_BITS)
    for polygon in polygons:  # one call per polygon: a multi-polygon fillPoly would apply even-odd filling
        cv2.fillPoly(drivable, [polygon], 1, cv2.LINE_8, SUBPIXEL_BITS)
    raster = MapRaster(origin=np.asarray(origin, dtype=np.float64), m_per_px=m_per_px, drivable=drivable, lane_markings=markings)
    cache[key] = raster
    return raster
