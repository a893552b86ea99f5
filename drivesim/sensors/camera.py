"""Sensors stage: an OpenCV front RGB camera that projects the map geometry and vehicle boxes (no GPU).

Conventions follow CARLA's ``sensor.camera.rgb`` so a user can swap in the real sensor at the same settings:
the camera frame is UE4's (x forward, y right, z up), the intrinsics are f = W / (2 tan(fov / 2)),
cx = W / 2, cy = H / 2, and a camera-space point projects to u = cx + f y / x, v = cy - f z / x. The mount
is relative to the ego's bounding-box centre on the ground; pitch is positive up, as in ``carla.Rotation``.

The ground is flat (z = 0). Road surface, kerbs (sidewalks, parking, shoulders) and lane markings are
precomputed once as world-space quads (lane chunks of at most ``road_chunk_m`` metres / ``chunk_turn_deg``
degrees, dashes and solid-line pieces), culled per frame by distance and view cone with numpy, clipped at the
near plane and filled with OpenCV. Vehicles, walkers, props, light poles and buildings are upright 3D boxes
with Lambert-shaded faces, back faces culled, drawn far to near (painter's algorithm); light heads show their
lit lamp. The weather (a CARLA preset, ``drivesim.sensors.weather``) sets the sky, the brightness, the fog,
a wet road and the headlights at night.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from drivesim.sensors.config import CameraConfig
from drivesim.sensors.geometry import box_corners, clip_polygons_near, heading_vectors
from drivesim.sensors.map_raster import dashes
from drivesim.sensors.scene import Scene
from drivesim.sensors.weather import (
    HEADLIGHT_HALF_ANGLE_DEG,
    HEADLIGHT_RANGE_M,
    CameraWeather,
    camera_weather,
)
from drivesim.sim.road import MARKING_BROKEN, MARKING_NONE, RoadNetwork

SUBPIXEL_BITS = 4  # cv2 drawing precision: coordinates in 1/16 px
_FIXED_POINT = float(1 << SUBPIXEL_BITS)

SKY_HORIZON_RGB = np.array([185.0, 205.0, 230.0])
GROUND_RGB = np.array([96.0, 112.0, 78.0])  # off-road: verge, pavement
ROAD_RGB = (64, 64, 68)
KERB_RGB = {"Sidewalk": (150, 148, 140), "Parking": (72, 72, 76), "Shoulder": (84, 82, 78)}  # others: verge
VERGE_RGB = (92, 104, 76)
WALKER_PALETTE_RGB = np.array([[60, 60, 140], [150, 40, 40], [40, 110, 60], [200, 180, 140], [50, 50, 50],
                               [230, 120, 40]], dtype=np.float64)
BUILDING_PALETTE_RGB = np.array([[170, 160, 145], [140, 130, 120], [185, 175, 160], [120, 115, 110],
                                 [160, 120, 100]], dtype=np.float64)
PROP_RGB = (245, 110, 20)  # traffic cones and warning triangles
POLE_RGB = (55, 58, 60)
LAMP_RGB = {0: (255, 40, 30), 1: (255, 200, 30), 2: (40, 255, 90)}  # lit lamp by state (red, yellow, green)
WALKER_HEIGHT_M, PROP_HEIGHT_M = 1.8, 0.7
POLE_HEIGHT_M, POLE_WIDTH_M = 4.2, 0.25
HEAD_BOTTOM_M, HEAD_HEIGHT_M, HEAD_WIDTH_M = 3.0, 1.1, 0.45
LAMP_RADIUS_M = 0.14
MARKING_WHITE_RGB = (230, 230, 230)
MARKING_YELLOW_RGB = (225, 185, 40)
VEHICLE_PALETTE_RGB = np.array(
    [[200, 40, 40], [40, 90, 200], [230, 230, 230], [30, 30, 35], [240, 170, 30], [40, 150, 70],
     [150, 150, 160], [120, 40, 150]], dtype=np.float64
)  # vehicle k gets colour k mod 8
_LIGHT_DIRECTION = np.array([0.35, -0.45, 0.82]) / np.linalg.norm([0.35, -0.45, 0.82])  # towards the sun
_AMBIENT = 0.45

# Box corners: 0-3 bottom (front-left, front-right, rear-right, rear-left as in ``box_corners``), 4-7 top.
# Faces (the bottom is never seen from a camera above the ground): front, rear, right, left, top.
_BOX_FACES = np.array([[0, 1, 5, 4], [2, 3, 7, 6], [1, 2, 6, 5], [3, 0, 4, 7], [4, 5, 6, 7]])


@dataclass(frozen=True)
class GroundLayer:
    """World-space quads on the ground (z = 0) with culling bounds and fill groups.

    Quads in one group never overlap, so a whole group is filled by one ``cv2.fillPoly`` call (which fills
    overlaps even-odd); quads are sorted by group, so every culled subset keeps each group contiguous and
    groups are drawn in increasing order (road surface first, markings last).
    """

    quads: np.ndarray  # (Q, 4, 2) world x, y [m], convex
    centre: np.ndarray  # (Q, 2) [m]
    radius_m: np.ndarray  # (Q,) distance from the centre to the farthest corner [m]
    group: np.ndarray  # (Q,) int, non-decreasing
    group_rgb: list[tuple[int, int, int]]  # colour of each group
    first_marking_group: int  # groups from this one on are markings, drawn after the road surface
    group_is_road: np.ndarray  # (G,) bool: road surface (tinted by wet weather)


def _chunk_bounds(yaw_rad: np.ndarray, spacing_m: float, chunk_m: float, turn_rad: float) -> np.ndarray:
    """Sample indices splitting a lane into pieces of at most ``chunk_m`` length and ``turn_rad`` turn."""
    bounds, start = [0], 0
    for index in range(1, len(yaw_rad)):
        turn = abs(np.angle(np.exp(1j * (yaw_rad[index] - yaw_rad[start]))))
        if (index - start) * spacing_m >= chunk_m - 1e-9 or turn >= turn_rad or index == len(yaw_rad) - 1:
            bounds.append(index)
            start = index
    return np.array(bounds if len(bounds) > 1 else [0, len(yaw_rad) - 1])


def _ribbon(line: np.ndarray, normal: np.ndarray, half_width_m: np.ndarray | float, start: np.ndarray,
            end: np.ndarray) -> np.ndarray:
    """Quads (K, 4, 2) along ``line`` (P, 2) from samples ``start`` to ``end`` (K,), ``half_width_m`` each side
    along ``normal`` (P, 2)."""
    offset = normal * np.broadcast_to(np.asarray(half_width_m, dtype=np.float64), len(line))[:, None]
    return np.stack([line[start] - offset[start], line[end] - offset[end], line[end] + offset[end],
                     line[start] + offset[start]], axis=1)


def build_ground_layer(network: RoadNetwork, config: CameraConfig) -> GroundLayer:
    """Road-surface and lane-marking quads of a map, in world space.

    Road quads are grouped per road outside junctions (lanes of one road only share edges) and per lane
    inside junctions (where lanes overlap). Markings are drawn outside junctions, as in the map raster:
    each lane's right marking, plus the centre line (yellow: the left marking of lane -1, or of lane 1 where
    the road has no lane -1).
    """
    quads: list[np.ndarray] = []
    group_keys: list[tuple[str, int]] = []
    road_lanes = set(network.segment_road_lane)
    turn_rad = np.radians(config.chunk_turn_deg)
    for segment in range(network.num_segments):
        start, count = network.segment_start[segment], network.segment_count[segment]
        centre = network.points[start : start + count]
        yaw = network.yaw_rad[start : start + count]
        spacing = network.segment_spacing_m[segment]
        right = np.stack([-np.sin(yaw), np.cos(yaw)], axis=1)
        bounds = _chunk_bounds(yaw, spacing, config.road_chunk_m, turn_rad)
        road_id, lane_id = network.segment_road_lane[segment]
        half_width = network.width_m[start : start + count] / 2.0
        quads.append(_ribbon(centre, right, half_width, bounds[:-1], bounds[1:]))
        group_keys.append(("lane", segment) if network.segment_in_junction[segment] else ("road", road_id))
        for kerb in network.kerb[segment]:  # sidewalks, parking, shoulders beside the outermost lane
            kerb_line = centre + right * kerb.offset_m
            quads.append(_ribbon(kerb_line, right, kerb.width_m / 2.0, bounds[:-1], bounds[1:]))
            group_keys.append(("kerb", road_id, kerb.lane_type))
        if network.segment_in_junction[segment]:
            continue
        left_line, right_line = network.boundaries(segment)
        lines = [(right_line, network.segment_right_marking[segment], "white")]
        if lane_id == -1 or (lane_id == 1 and (road_id, -1) not in road_lanes):
            lines.append((left_line, network.segment_left_marking[segment], "yellow"))
        for line, kind, colour in lines:
            if kind == MARKING_NONE:
                continue
            if kind == MARKING_BROKEN:
                pieces = [piece for piece in dashes(np.arange(count), spacing) if len(piece) >= 2]
                piece_start = np.array([piece[0] for piece in pieces], dtype=np.int64)
                piece_end = np.array([piece[-1] for piece in pieces], dtype=np.int64)
            else:
                piece_start, piece_end = bounds[:-1], bounds[1:]
            if len(piece_start):
                quads.append(_ribbon(line, right, config.marking_width_m / 2.0, piece_start, piece_end))
                group_keys.append(("marking", 0 if colour == "white" else 1))
    # Group numbers: kerbs first, then road surface groups, then white, then yellow markings (drawn on top).
    unique_keys = sorted(set(group_keys), key=lambda key: (key[0] == "marking", key[0] != "kerb", key))
    number = {key: index for index, key in enumerate(unique_keys)}
    group_rgb = [_group_rgb(key) for key in unique_keys]
    quad_array = np.concatenate(quads)
    group = np.concatenate([np.full(len(q), number[key]) for q, key in zip(quads, group_keys, strict=True)])
    order = np.argsort(group, kind="stable")
    quad_array, group = quad_array[order], group[order]
    centre = quad_array.mean(axis=1)
    radius = np.linalg.norm(quad_array - centre[:, None], axis=2).max(axis=1)
    first_marking = sum(key[0] != "marking" for key in unique_keys)
    is_road = np.array([key[0] in ("road", "lane") or (key[0] == "kerb" and key[2] != "Sidewalk")
                        for key in unique_keys])
    return GroundLayer(quad_array, centre, radius, group, group_rgb, first_marking, is_road)


def _group_rgb(key: tuple) -> tuple[int, int, int]:
    if key[0] == "marking":
        return (MARKING_WHITE_RGB, MARKING_YELLOW_RGB)[key[1]]
    if key[0] == "kerb":
        return KERB_RGB.get(key[2], VERGE_RGB)
    return ROAD_RGB


class FrontCamera:
    """Renders (H, W, 3) uint8 RGB front-camera images of one map.

    Args:
        network: Road network of the map; its road surface, kerbs and markings are precomputed as world quads.
        config: Image size, field of view, mount and drawing settings.
        buildings: (B, 5) building footprints and (B,) heights [m] drawn along the roads (none by default).
    """

    def __init__(self, network: RoadNetwork, config: CameraConfig,
                 buildings: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        self.config = config
        self.width_px, self.height_px = config.width_px, config.height_px
        scale = config.supersample
        self._render_size = (self.width_px * scale, self.height_px * scale)
        focal = self.width_px / (2.0 * np.tan(np.radians(config.fov_deg) / 2.0))
        # Output pixel i covers render pixels [s i, s i + s - 1]: its centre is at s i + (s - 1) / 2.
        self._render_focal_px = focal * scale
        self._render_centre_px = (self.width_px / 2.0 * scale + (scale - 1) / 2.0,
                                  self.height_px / 2.0 * scale + (scale - 1) / 2.0)
        self._render_centre_fixed = np.array(self._render_centre_px) * _FIXED_POINT
        half_fov_rad = np.arctan(self.width_px / 2.0 / focal)
        self._cone_cos, self._cone_sin = np.cos(half_fov_rad), np.sin(half_fov_rad)
        self._cone_apex_back_m = config.mount_z_m + 1.0  # wedge apex behind the camera: conservative culling
        self.ground = build_ground_layer(network, config)
        footprints, heights = buildings if buildings is not None else (np.zeros((0, 5)), np.zeros(0))
        self._buildings = np.asarray(footprints, dtype=np.float64).reshape(-1, 5)
        self._building_height_m = np.asarray(heights, dtype=np.float64)
        self._building_rgb = BUILDING_PALETTE_RGB[np.arange(len(self._buildings)) % len(BUILDING_PALETTE_RGB)]
        self._looks: dict[str, tuple] = {}  # per weather: background, ground colours, post-process

    def intrinsics(self) -> np.ndarray:
        """3x3 camera matrix K as CARLA computes it for ``sensor.camera.rgb`` at this size and FOV."""
        focal = self.width_px / (2.0 * np.tan(np.radians(self.config.fov_deg) / 2.0))
        return np.array([[focal, 0.0, self.width_px / 2.0],
                         [0.0, focal, self.height_px / 2.0],
                         [0.0, 0.0, 1.0]])

    def camera_pose(self, ego_xy: np.ndarray, ego_yaw_deg: float) -> tuple[np.ndarray, np.ndarray]:
        """World position (3,) of the camera and its rotation (3, 3) whose columns are its forward, right and
        up axes in the world frame (so ``(p - position) @ rotation`` is a point in camera space)."""
        yaw_rad, pitch_rad = math.radians(ego_yaw_deg), math.radians(self.config.pitch_deg)
        cos_yaw, sin_yaw = math.cos(yaw_rad), math.sin(yaw_rad)  # ego forward (cos, sin), right (-sin, cos)
        cos_pitch, sin_pitch = math.cos(pitch_rad), math.sin(pitch_rad)
        mount_x, mount_y = self.config.mount_x_m, self.config.mount_y_m
        position = np.array([float(ego_xy[0]) + mount_x * cos_yaw - mount_y * sin_yaw,
                             float(ego_xy[1]) + mount_x * sin_yaw + mount_y * cos_yaw, self.config.mount_z_m])
        rotation = np.array([[cos_yaw * cos_pitch, -sin_yaw, -cos_yaw * sin_pitch],  # columns: the camera's
                             [sin_yaw * cos_pitch, cos_yaw, -sin_yaw * sin_pitch],  # forward, right and up axes
                             [sin_pitch, 0.0, cos_pitch]])
        return position, rotation

    def _pixel_rays(self) -> tuple[np.ndarray, np.ndarray]:
        """Ground distance [m] (inf above the horizon) and lateral angle [rad] of each render pixel's ray
        (fixed: roll is zero and the pitch is fixed)."""
        width, height = self._render_size
        _, rotation = self.camera_pose(np.zeros(2), 0.0)
        cols, rows = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
        rays = np.stack([np.ones_like(cols), (cols - self._render_centre_px[0]) / self._render_focal_px,
                         (self._render_centre_px[1] - rows) / self._render_focal_px], axis=-1) @ rotation.T
        down = np.maximum(-rays[..., 2], 1e-9)
        along = np.where(rays[..., 2] < 0.0, self.config.mount_z_m / down, np.inf)
        distance = along * np.hypot(rays[..., 0], rays[..., 1])
        return distance, np.arctan2(rays[..., 1], rays[..., 0])

    def _look(self, weather: CameraWeather) -> tuple:
        """Background, ground colours and the post-process (gain, offset or None) of ``weather`` (cached)."""
        if weather.name not in self._looks:
            background = self._render_background(weather)
            ground_rgb = [tuple(int(v) for v in np.rint(np.asarray(rgb) * weather.road_tint)) if is_road else rgb
                          for rgb, is_road in zip(self.ground.group_rgb, self.ground.group_is_road, strict=True)]
            distance, angle = self._pixel_rays()
            fog = weather.fog_share(np.minimum(distance, 4.0 * self.config.max_distance_m))
            fog = np.maximum(fog, weather.veil)
            gain = weather.brightness * (1.0 - fog)
            if weather.headlights:
                reach = np.clip(1.0 - distance / HEADLIGHT_RANGE_M, 0.0, 1.0)
                cone = np.exp(-((np.degrees(angle) / HEADLIGHT_HALF_ANGLE_DEG) ** 2))
                gain = gain + 0.9 * reach * cone * (1.0 - fog)
            offset = fog[..., None] * weather.fog_rgb * max(weather.brightness, 0.3)
            identity = np.allclose(gain, 1.0, atol=1e-3) and float(offset.max()) < 0.5
            post = None if identity else (gain[..., None].astype(np.float32), offset.astype(np.float32))
            self._looks[weather.name] = (background, ground_rgb, post)
        return self._looks[weather.name]

    def _render_background(self, weather: CameraWeather) -> np.ndarray:
        """Sky gradient above the horizon, hazy ground below (fixed: roll is zero and the pitch is fixed)."""
        width, height = self._render_size
        _, rotation = self.camera_pose(np.zeros(2), 0.0)
        rows = np.arange(height, dtype=np.float64)
        up_per_depth = (self._render_centre_px[1] - rows) / self._render_focal_px  # rays through the rows
        rays = np.stack([np.ones(height), np.zeros(height), up_per_depth], axis=1)
        rays /= np.linalg.norm(rays, axis=1, keepdims=True)
        elevation = rays @ rotation[2]  # sine of the ray's angle above the horizontal
        sky_share = np.clip(elevation / 0.5, 0.0, 1.0) ** 0.7
        sky = weather.sky_horizon_rgb + (weather.sky_zenith_rgb - weather.sky_horizon_rgb) * sky_share[:, None]
        ground_distance_m = self.config.mount_z_m / np.maximum(-elevation, 1e-6)
        haze = np.clip(ground_distance_m / (4.0 * self.config.max_distance_m), 0.0, 0.8)[:, None]
        ground = GROUND_RGB + (SKY_HORIZON_RGB - GROUND_RGB) * haze
        if weather.brightness > 0.0:  # the sky is not dimmed by the post-process's brightness: undo it here
            sky = np.clip(sky / weather.brightness, 0.0, 255.0)
        colours = np.where((elevation > 0.0)[:, None], sky, ground)
        background = np.empty((height, width, 3), np.uint8)
        background[:] = np.rint(colours)[:, None, :].astype(np.uint8)
        return background

    def _visible(self, centre: np.ndarray, radius_m: np.ndarray, position: np.ndarray,
                 rotation: np.ndarray) -> np.ndarray:
        """Indices of bounding circles within ``max_distance_m`` and the horizontal view cone."""
        relative = centre - position[:2]
        forward = rotation[:2, 0] / np.hypot(*rotation[:2, 0])
        along = relative @ forward
        lateral = np.abs(relative @ rotation[:2, 1])
        reach = self.config.max_distance_m + radius_m
        keep = (along > -radius_m) & (along * along + lateral * lateral < reach * reach)
        keep &= lateral * self._cone_cos - (along + self._cone_apex_back_m) * self._cone_sin <= radius_m
        return np.flatnonzero(keep)

    def _project(self, points_camera: np.ndarray) -> np.ndarray:
        """Camera-space points (..., 3) in front of the near plane -> fixed-point pixel coordinates (..., 2)."""
        scale = (self._render_focal_px * _FIXED_POINT) / points_camera[..., 0]
        pixels = np.empty(points_camera.shape[:-1] + (2,))
        np.multiply(points_camera[..., 1], scale, out=pixels[..., 0])
        np.multiply(points_camera[..., 2], -scale, out=pixels[..., 1])
        pixels += self._render_centre_fixed
        return np.rint(pixels).astype(np.int32)

    def _draw_ground(self, image: np.ndarray, position: np.ndarray, rotation: np.ndarray,
                     group_rgb: list[tuple[int, int, int]]) -> None:
        """Fill the visible road-surface quads, then the lane-marking quads."""
        layer = self.ground
        visible = self._visible(layer.centre, layer.radius_m, position, rotation)
        if len(visible) == 0:
            return
        quads = (layer.quads[visible] - position[:2]) @ rotation[:2] - position[2] * rotation[2]  # (K, 4, 3)
        groups = layer.group[visible]
        in_front = quads[..., 0] >= self.config.near_clip_m
        whole = in_front.all(axis=1)
        straddling = np.flatnonzero(in_front.any(axis=1) & ~whole)
        fills: list[tuple[int, np.ndarray]] = []  # (group, polygons): road surface first, markings on top
        if whole.any():
            pixels, whole_groups = self._project(quads[whole]), groups[whole]
            run_starts = np.concatenate([[0], np.flatnonzero(np.diff(whole_groups)) + 1, [len(whole_groups)]])
            for begin, end in zip(run_starts[:-1].tolist(), run_starts[1:].tolist(), strict=True):
                fills.append((int(whole_groups[begin]), pixels[begin:end]))
        if len(straddling):  # quads under the camera
            vertices, offsets, source = clip_polygons_near(quads[straddling], self.config.near_clip_m)
            pixels = self._project(vertices)
            for index, group in enumerate(groups[straddling][source].tolist()):
                fills.append((group, pixels[offsets[index] : offsets[index + 1]][None]))
        for group, polygons in sorted(fills, key=lambda fill: fill[0] >= layer.first_marking_group):
            cv2.fillPoly(image, polygons, group_rgb[group], cv2.LINE_8, SUBPIXEL_BITS)

    def _face_outlines(self, corners_camera: np.ndarray) -> list[np.ndarray | None]:
        """Fixed-point outlines of the faces of boxes with corners (K, 8, 3) in camera space.

        Returns:
            Entry ``5 k + face`` (faces as in ``_BOX_FACES``): the outline (n, 2), or None where the face lies
            behind the near plane. Boxes wholly in front are projected directly, the others clipped first.
        """
        near_m = self.config.near_clip_m
        whole = (corners_camera[..., 0] >= near_m).all(axis=1)
        outlines: list[np.ndarray | None] = [None] * (5 * len(corners_camera))
        whole_boxes, partial_boxes = np.flatnonzero(whole), np.flatnonzero(~whole)
        if len(whole_boxes):
            projected = self._project(corners_camera[whole_boxes])[:, _BOX_FACES].reshape(-1, 4, 2)
            face_ids = (whole_boxes[:, None] * 5 + np.arange(5)).ravel().tolist()
            for face_id, outline in zip(face_ids, np.ascontiguousarray(projected), strict=True):
                outlines[face_id] = outline
        if len(partial_boxes):
            faces_camera = corners_camera[partial_boxes][:, _BOX_FACES].reshape(-1, 4, 3)
            vertices, offsets, source = clip_polygons_near(faces_camera, near_m)
            pixels = self._project(vertices)
            face_ids = (partial_boxes[:, None] * 5 + np.arange(5)).ravel()[source].tolist()
            for polygon, face_id in enumerate(face_ids):
                outlines[face_id] = pixels[offsets[polygon] : offsets[polygon + 1]]
        return outlines

    def _draw_solids(self, image: np.ndarray, boxes: np.ndarray, base_m: np.ndarray, height_m: np.ndarray,
                     rgb: np.ndarray, position: np.ndarray, rotation: np.ndarray) -> None:
        """Draw the camera-facing faces of upright boxes (N, 5) from ``base_m`` to ``base_m + height_m`` above
        the ground, base colours ``rgb`` (N, 3), Lambert-shaded, far to near (painter's algorithm)."""
        visible = self._visible(boxes[:, :2], np.hypot(boxes[:, 3], boxes[:, 4]) / 2.0, position, rotation)
        if len(visible) == 0:
            return
        boxes, base_m, top_m = boxes[visible], base_m[visible], base_m[visible] + height_m[visible]
        ground = (box_corners(boxes) - position[:2]) @ rotation[:2] - position[2] * rotation[2]  # (K, 4, 3)
        corners_camera = np.concatenate([ground + base_m[:, None, None] * rotation[2],
                                         ground + top_m[:, None, None] * rotation[2]], axis=1)  # (K, 8, 3)
        # Outward normals of the side faces (front, rear, right, left) in the ground plane; the top's is +z.
        forward, right = heading_vectors(boxes[:, 2])
        side_normals = np.stack([forward, -forward, right, -right], axis=1)  # (K, 4, 2)
        facing = np.empty((len(boxes), 5), dtype=bool)  # the camera is on the outer side of the face
        facing[:, :4] = np.einsum("kfd,kd->kf", side_normals, position[:2] - boxes[:, :2]) > boxes[:, [3, 3, 4, 4]] / 2
        facing[:, 4] = position[2] > top_m
        cos_light = np.empty((len(boxes), 5))
        cos_light[:, :4], cos_light[:, 4] = side_normals @ _LIGHT_DIRECTION[:2], _LIGHT_DIRECTION[2]
        shade = _AMBIENT + (1.0 - _AMBIENT) * np.clip(cos_light, 0.0, 1.0)
        face_rgb = np.rint(rgb[visible][:, None] * shade[..., None]).astype(np.int64).reshape(-1, 3).tolist()
        outlines = self._face_outlines(corners_camera)
        order = np.argsort(-np.hypot(*(boxes[:, :2] - position[:2]).T), kind="stable")  # painter's: far first
        for face_id in (order[:, None] * 5 + np.arange(5))[facing[order]].tolist():
            outline = outlines[face_id]
            if outline is not None:
                cv2.fillConvexPoly(image, outline, face_rgb[face_id], cv2.LINE_8, SUBPIXEL_BITS)

    def _scene_solids(self, scene: Scene) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """All upright boxes of a scene and the map: (N, 5) boxes, bases, heights [m] and colours (N, 3)."""
        cfg = self.config
        vehicles, walkers, props = scene.vehicles.reshape(-1, 5), scene.walkers.reshape(-1, 5), scene.obstacles.reshape(-1, 5)
        poles = scene.light_poles.reshape(-1, 3)
        pole_boxes = np.column_stack([poles[:, :2], np.degrees(poles[:, 2]), np.full((len(poles), 2), POLE_WIDTH_M)])
        head_boxes = pole_boxes.copy()
        head_boxes[:, 3:5] = HEAD_WIDTH_M
        parts = [
            (vehicles, 0.0, cfg.vehicle_height_m, VEHICLE_PALETTE_RGB[np.arange(len(vehicles)) % len(VEHICLE_PALETTE_RGB)]),
            (walkers, 0.0, WALKER_HEIGHT_M, WALKER_PALETTE_RGB[np.arange(len(walkers)) % len(WALKER_PALETTE_RGB)]),
            (props, 0.0, PROP_HEIGHT_M, np.tile(PROP_RGB, (len(props), 1))),
            (pole_boxes, 0.0, POLE_HEIGHT_M, np.tile(POLE_RGB, (len(poles), 1))),
            (head_boxes, HEAD_BOTTOM_M, HEAD_HEIGHT_M, np.tile(POLE_RGB, (len(poles), 1))),
            (self._buildings, 0.0, self._building_height_m, self._building_rgb),
        ]
        boxes = np.concatenate([part[0] for part in parts]).astype(np.float64)
        base = np.concatenate([np.broadcast_to(np.asarray(part[1], float), len(part[0])) for part in parts])
        height = np.concatenate([np.broadcast_to(np.asarray(part[2], float), len(part[0])) for part in parts])
        rgb = np.concatenate([np.asarray(part[3], float).reshape(-1, 3) for part in parts])
        return boxes, base, height, rgb

    def _draw_lamps(self, image: np.ndarray, scene: Scene, position: np.ndarray, rotation: np.ndarray) -> None:
        """The lit lamp of every light head that faces the camera (red on top, yellow, green below), emissive:
        drawn after the weather so it glows at night (it is not occluded by what stands in front of it)."""
        poles = scene.light_poles.reshape(-1, 3)
        if len(poles) == 0:
            return
        visible = self._visible(poles[:, :2], np.full(len(poles), 1.0), position, rotation)
        facing_x, facing_y = np.cos(poles[visible, 2]), np.sin(poles[visible, 2])
        towards = (position[0] - poles[visible, 0]) * facing_x + (position[1] - poles[visible, 1]) * facing_y
        visible = visible[towards > 0.0]
        if len(visible) == 0:
            return
        state = scene.light_state[visible]
        facing = np.stack([np.cos(poles[visible, 2]), np.sin(poles[visible, 2])], axis=1)
        lamp_xy = poles[visible, :2] + facing * (HEAD_WIDTH_M / 2.0 + 0.02)
        lamp_z = HEAD_BOTTOM_M + HEAD_HEIGHT_M * (np.array([0.8, 0.5, 0.2])[np.clip(state, 0, 2)])
        points = np.column_stack([lamp_xy, lamp_z])
        camera = (points - position) @ rotation
        front = camera[:, 0] > self.config.near_clip_m
        if not front.any():
            return
        pixels = self._project(camera[front])
        radius = np.maximum(self._render_focal_px * LAMP_RADIUS_M / camera[front, 0], 1.0)
        for (u, v), r, lit in zip(pixels.tolist(), radius.tolist(), state[front].tolist(), strict=True):
            cv2.circle(image, (u, v), int(round(r * _FIXED_POINT)), LAMP_RGB.get(int(lit), LAMP_RGB[0]), -1,
                       cv2.LINE_8, SUBPIXEL_BITS)

    def render(self, ego_xy: np.ndarray, ego_yaw_deg: float, scene: Scene | np.ndarray,
               weather: str | None = None) -> np.ndarray:
        """Render the front camera image of one step.

        Args:
            ego_xy: (2,) ego bounding-box centre, world frame [m].
            ego_yaw_deg: Ego heading [deg].
            scene: Other actors and signals (``drivesim.sensors.scene.Scene``); an (N, 5) array of vehicle boxes
                (x [m], y [m], yaw [deg], length [m], width [m]) stands for a scene of vehicles only. Vehicle k
                is drawn in palette colour k mod 8.
            weather: A CARLA weather preset name (``drivesim.sensors.weather``); None is ``ClearNoon``.

        Returns:
            (H, W, 3) uint8 RGB image.
        """
        if not isinstance(scene, Scene):
            scene = Scene.of_vehicles(scene)
        background, ground_rgb, post = self._look(camera_weather(weather))
        position, rotation = self.camera_pose(ego_xy, ego_yaw_deg)
        image = background.copy()
        self._draw_ground(image, position, rotation, ground_rgb)
        self._draw_solids(image, *self._scene_solids(scene), position, rotation)
        if post is not None:
            gain, offset = post
            image = np.clip(image * gain + offset, 0.0, 255.0).astype(np.uint8)
        self._draw_lamps(image, scene, position, rotation)
        if self.config.supersample > 1:
            image = cv2.resize(image, (self.width_px, self.height_px), interpolation=cv2.INTER_AREA)
        return image
