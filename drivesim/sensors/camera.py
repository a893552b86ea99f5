"""Sensors stage: an OpenCV front RGB camera that projects the map geometry and vehicle boxes (no GPU).

Conventions follow CARLA's ``sensor.camera.rgb`` so a user can swap in the real sensor at the same settings:
the camera frame is UE4's (x forward, y right, z up), the intrinsics are f = W / (2 tan(fov / 2)),
cx = W / 2, cy = H / 2, and a camera-space point projects to u = cx + f y / x, v = cy - f z / x. The mount
is relative to the ego's bounding-box centre on the ground; pitch is positive up, as in ``carla.Rotation``.

The ground is flat (z = 0). Road surface and lane markings are precomputed once as world-space quads
(lane chunks of at most ``road_chunk_m`` metres / ``chunk_turn_deg`` degrees, dashes and solid-line pieces),
culled per frame by distance and view cone with numpy, clipped at the near plane and filled with OpenCV.
Vehicles are 3D boxes with Lambert-shaded faces, back faces culled, drawn far to near (painter's algorithm).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from drivesim.sensors.config import CameraConfig
from drivesim.sensors.geometry import box_corners, clip_polygons_near, heading_vectors
from drivesim.sensors.map_raster import dashes
from drivesim.sim.road import MARKING_BROKEN, MARKING_NONE, RoadNetwork

SUBPIXEL_BITS = 4  # cv2 drawing precision: coordinates in 1/16 px
_FIXED_POINT = float(1 << SUBPIXEL_BITS)

SKY_ZENITH_RGB = np.array([70.0, 120.0, 200.0])
SKY_HORIZON_RGB = np.array([185.0, 205.0, 230.0])
GROUND_RGB = np.array([96.0, 112.0, 78.0])  # off-road: verge, pavement
ROAD_RGB = (64, 64, 68)
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
    # Group numbers: road surface groups first, then white, then yellow markings (drawn on top).
    unique_keys = sorted(set(group_keys), key=lambda key: (key[0] == "marking", key))
    number = {key: index for index, key in enumerate(unique_keys)}
    group_rgb = [ROAD_RGB if kind != "marking" else (MARKING_WHITE_RGB, MARKING_YELLOW_RGB)[value]
                 for kind, value in unique_keys]
    quad_array = np.concatenate(quads)
    group = np.concatenate([np.full(len(q), number[key]) for q, key in zip(quads, group_keys, strict=True)])
    order = np.argsort(group, kind="stable")
    quad_array, group = quad_array[order], group[order]
    centre = quad_array.mean(axis=1)
    radius = np.linalg.norm(quad_array - centre[:, None], axis=2).max(axis=1)
    first_marking = sum(kind != "marking" for kind, _ in unique_keys)
    return GroundLayer(quad_array, centre, radius, group, group_rgb, first_marking)


class FrontCamera:
    """Renders (H, W, 3) uint8 RGB front-camera images of one map.

    Args:
        network: Road network of the map; its road surface and markings are precomputed as world quads.
        config: Image size, field of view, mount and drawing settings.
    """

    def __init__(self, network: RoadNetwork, config: CameraConfig) -> None:
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
        self._background = self._render_background()

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

    def _render_background(self) -> np.ndarray:
        """Sky gradient above the horizon, hazy ground below (fixed: roll is zero and the pitch is fixed)."""
        width, height = self._render_size
        _, rotation = self.camera_pose(np.zeros(2), 0.0)
        rows = np.arange(height, dtype=np.float64)
        up_per_depth = (self._render_centre_px[1] - rows) / self._render_focal_px  # rays through the rows
        rays = np.stack([np.ones(height), np.zeros(height), up_per_depth], axis=1)
        rays /= np.linalg.norm(rays, axis=1, keepdims=True)
        elevation = rays @ rotation[2]  # sine of the ray's angle above the horizontal
        sky_share = np.clip(elevation / 0.5, 0.0, 1.0) ** 0.7
        sky = SKY_HORIZON_RGB + (SKY_ZENITH_RGB - SKY_HORIZON_RGB) * sky_share[:, None]
        ground_distance_m = self.config.mount_z_m / np.maximum(-elevation, 1e-6)
        haze = np.clip(ground_distance_m / (4.0 * self.config.max_distance_m), 0.0, 0.8)[:, None]
        ground = GROUND_RGB + (SKY_HORIZON_RGB - GROUND_RGB) * haze
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

    def _draw_ground(self, image: np.ndarray, position: np.ndarray, rotation: np.ndarray) -> None:
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
            cv2.fillPoly(image, polygons, layer.group_rgb[group], cv2.LINE_8, SUBPIXEL_BITS)

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

    def _draw_vehicles(self, image: np.ndarray, boxes: np.ndarray, position: np.ndarray,
                       rotation: np.ndarray) -> None:
        """Draw the camera-facing faces of the vehicle boxes (N, 5), Lambert-shaded, far to near."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 5)
        visible = self._visible(boxes[:, :2], np.hypot(boxes[:, 3], boxes[:, 4]) / 2.0, position, rotation)
        if len(visible) == 0:
            return
        boxes, height_m = boxes[visible], self.config.vehicle_height_m
        ground = (box_corners(boxes) - position[:2]) @ rotation[:2] - position[2] * rotation[2]  # (K, 4, 3)
        corners_camera = np.concatenate([ground, ground + height_m * rotation[2]], axis=1)  # (K, 8, 3)
        # Outward normals of the side faces (front, rear, right, left) in the ground plane; the top's is +z.
        forward, right = heading_vectors(boxes[:, 2])
        side_normals = np.stack([forward, -forward, right, -right], axis=1)  # (K, 4, 2)
        facing = np.empty((len(boxes), 5), dtype=bool)  # the camera is on the outer side of the face
        facing[:, :4] = np.einsum("kfd,kd->kf", side_normals, position[:2] - boxes[:, :2]) > boxes[:, [3, 3, 4, 4]] / 2
        facing[:, 4] = position[2] > height_m
        cos_light = np.empty((len(boxes), 5))
        cos_light[:, :4], cos_light[:, 4] = side_normals @ _LIGHT_DIRECTION[:2], _LIGHT_DIRECTION[2]
        shade = _AMBIENT + (1.0 - _AMBIENT) * np.clip(cos_light, 0.0, 1.0)
        base_rgb = VEHICLE_PALETTE_RGB[visible % len(VEHICLE_PALETTE_RGB)]
        face_rgb = np.rint(base_rgb[:, None] * shade[..., None]).astype(np.int64).reshape(-1, 3).tolist()
        outlines = self._face_outlines(corners_camera)
        order = np.argsort(-np.hypot(*(boxes[:, :2] - position[:2]).T), kind="stable")  # painter's: far first
        for face_id in (order[:, None] * 5 + np.arange(5))[facing[order]].tolist():
            outline = outlines[face_id]
            if outline is not None:
                cv2.fillConvexPoly(image, outline, face_rgb[face_id], cv2.LINE_8, SUBPIXEL_BITS)

    def render(self, ego_xy: np.ndarray, ego_yaw_deg: float, boxes: np.ndarray) -> np.ndarray:
        """Render the front camera image of one step.

        Args:
            ego_xy: (2,) ego bounding-box centre, world frame [m].
            ego_yaw_deg: Ego heading [deg].
            boxes: (N, 5) other vehicles: x [m], y [m], yaw [deg], length [m], width [m]; row k is drawn in
                palette colour k mod 8.

        Returns:
            (H, W, 3) uint8 RGB image.
        """
        position, rotation = self.camera_pose(ego_xy, ego_yaw_deg)
        image = self._background.copy()
        self._draw_ground(image, position, rotation)
        self._draw_vehicles(image, boxes, position, rotation)
        if self.config.supersample > 1:
            image = cv2.resize(image, (self.width_px, self.height_px), interpolation=cv2.INTER_AREA)
        return image
