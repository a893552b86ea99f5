"""Planar geometry on arrays: frame transforms, oriented boxes and their overlap (separating axes)."""

from __future__ import annotations

import math

import numpy as np


def world_to_ego(points: np.ndarray, ego_xy: np.ndarray, ego_yaw_rad: float) -> np.ndarray:
    """World points (..., 2) -> ego frame (x forward, y right)."""
    cos, sin = math.cos(ego_yaw_rad), math.sin(ego_yaw_rad)
    return (points - ego_xy) @ np.array([[cos, -sin], [sin, cos]])


def ego_to_world(points: np.ndarray, ego_xy: np.ndarray, ego_yaw_rad: float) -> np.ndarray:
    """Ego-frame points (..., 2) -> world frame."""
    cos, sin = math.cos(ego_yaw_rad), math.sin(ego_yaw_rad)
    return points @ np.array([[cos, sin], [-sin, cos]]) + ego_xy


def footprint_grid(xy: np.ndarray, yaw_rad: float, length_m: float, width_m: float, rows: int = 3, cols: int = 3) -> np.ndarray:
    """Sample points (rows*cols, 2) spread evenly over a box footprint (for off-road shares)."""
    along = (np.arange(rows) + 0.5) / rows - 0.5
    across = (np.arange(cols) + 0.5) / cols - 0.5
    grid = np.stack(np.meshgrid(along * length_m, across * width_m, indexing="ij"), -1).reshape(-1, 2)
    return ego_to_world(grid, xy, yaw_rad)


def boxes_overlap(corners_a: np.ndarray, corners_b: np.ndarray) -> np.ndarray:
    """Separating-axis test between convex quadrilaterals (..., 4, 2) and (..., 4, 2), broadcast; (...) bool.

    One box (4, 2) against many (N, 4, 2) gives (N,); pairs (K, 4, 2) and (K, 4, 2) give (K,).
    """
    corners_a, corners_b = np.broadcast_arrays(np.asarray(corners_a, dtype=float), np.asarray(corners_b, dtype=float))
    if corners_a.size == 0:
        return np.zeros(corners_a.shape[:-2], dtype=bool)
    # Candidate axes: the normals of two edges of each box (rectangles: the other two are parallel).
    edges = np.concatenate([corners_a[..., 1:3, :] - corners_a[..., 0:2, :], corners_b[..., 1:3, :] - corners_b[..., 0:2, :]], axis=-2)
    normals = np.stack([-edges[..., 1], edges[..., 0]], axis=-1)  # (..., 4 axes, 2)
    proj_a = normals @ np.swapaxes(corners_a, -1, -2)  # (..., 4 axes, 4 corners)
    proj_b = normals @ np.swapaxes(corners_b, -1, -2)
    separated = (proj_a.max(-1) < proj_b.min(-1)) | (proj_b.max(-1) < proj_a.min(-1))
    return ~separated.any(-1)


def obb_overlap(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """Whether oriented boxes overlap, for boxes (K, 5) and (K, 5) (x, y, yaw [deg], length, width) pairwise.

    The separating-axis test on centre, axes and half extents (no corners): for each of the four box axes u,
    the boxes are apart when |(c_b - c_a) . u| exceeds the sum of their half extents projected on u.
    """
    yaw_a, yaw_b = np.radians(boxes_a[:, 2]), np.radians(boxes_b[:, 2])
    cos_a, sin_a, cos_b, sin_b = np.cos(yaw_a), np.sin(yaw_a), np.cos(yaw_b), np.sin(yaw_b)
    half_la, half_wa, half_lb, half_wb = boxes_a[:, 3] * 0.5, boxes_a[:, 4] * 0.5, boxes_b[:, 3] * 0.5, boxes_b[:, 4] * 0.5
    dx, dy = boxes_b[:, 0] - boxes_a[:, 0], boxes_b[:, 1] - boxes_a[:, 1]
    # Cosines between the axes: forward a / forward b, forward a / right b (right = (-sin, cos)).
    ff = np.abs(cos_a * cos_b + sin_a * sin_b)
    fr = np.abs(sin_a * cos_b - cos_a * sin_b)  # = |fa . rb| = |ra . fb|
    apart = np.abs(dx * cos_a + dy * sin_a) > half_la + half_lb * ff + half_wb * fr
    apart |= np.abs(-dx * sin_a + dy * cos_a) > half_wa + half_lb * fr + half_wb * ff
    apart |= np.abs(dx * cos_b + dy * sin_b) > half_lb + half_la * ff + half_wa * fr
    apart |= np.abs(-dx * sin_b + dy * cos_b) > half_wb + half_la * fr + half_wa * ff
    return ~apart


def obb_overlap_one(box_a: np.ndarray | tuple, box_b: np.ndarray | tuple) -> bool:
    """``obb_overlap`` for one pair of boxes in plain floats (cheaper than numpy for a handful of pairs)."""
    xa, ya, yaw_a, la, wa = (float(v) for v in box_a)
    xb, yb, yaw_b, lb, wb = (float(v) for v in box_b)
    ca, sa = math.cos(math.radians(yaw_a)), math.sin(math.radians(yaw_a))
    cb, sb = math.cos(math.radians(yaw_b)), math.sin(math.radians(yaw_b))
    la, wa, lb, wb = la * 0.5, wa * 0.5, lb * 0.5, wb * 0.5
    dx, dy = xb - xa, yb - ya
    ff, fr = abs(ca * cb + sa * sb), abs(sa * cb - ca * sb)
    return not (
        abs(dx * ca + dy * sa) > la + lb * ff + wb * fr
        or abs(-dx * sa + dy * ca) > wa + lb * fr + wb * ff
        or abs(dx * cb + dy * sb) > lb + la * ff + wa * fr
        or abs(-dx * sb + dy * cb) > wb + la * fr + wa * ff
    )


def overlapping(box: np.ndarray, boxes: np.ndarray, reach_m: float) -> np.ndarray:
    """Indices of ``boxes`` (N, 5) that overlap ``box`` (5,); only those within bounding-circle reach are tested."""
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    reach = reach_m + 0.5 * np.hypot(boxes[:, 3], boxes[:, 4])
    dx, dy = boxes[:, 0] - box[0], boxes[:, 1] - box[1]
    near = np.flatnonzero(dx * dx + dy * dy < reach * reach)
    return np.array([index for index in near if obb_overlap_one(box, boxes[index])], dtype=np.int64)


def points_in_boxes(points: np.ndarray, boxes: np.ndarray, margin_m: float = 0.0) -> np.ndarray:
    """Whether each point (K, 2) lies inside any of the oriented boxes (N, 5) grown by ``margin_m``; (K,) bool."""
    if len(points) == 0 or len(boxes) == 0:
        return np.zeros(len(points), dtype=bool)
    yaw = np.radians(boxes[:, 2])
    cos, sin = np.cos(yaw), np.sin(yaw)
    dx = points[:, None, 0] - boxes[None, :, 0]
    dy = points[:, None, 1] - boxes[None, :, 1]
    along = np.abs(dx * cos + dy * sin) <= boxes[:, 3] * 0.5 + margin_m
    across = np.abs(-dx * sin + dy * cos) <= boxes[:, 4] * 0.5 + margin_m
    return (along & across).any(1)
