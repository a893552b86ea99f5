"""Sensors stage: geometry shared by the BEV and the camera (headings, box corners, near-plane clipping).

Frames follow CARLA (UE4, left-handed): x forward/east, y right, z up, metres; yaw in degrees, positive
yaw turns toward +y. A heading ``yaw`` has forward vector (cos yaw, sin yaw) and right vector
(-sin yaw, cos yaw).
"""

from __future__ import annotations

import numpy as np

# Corner order of a box footprint (ego frame of the box): front-left, front-right, rear-right, rear-left.
_CORNER_SIGNS = np.array([[1.0, -1.0], [1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0]])  # (forward, right) signs


def heading_vectors(yaw_deg: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Forward and right unit vectors (..., 2) of headings ``yaw_deg`` in CARLA's left-handed frame."""
    yaw_rad = np.radians(yaw_deg)
    cos_yaw, sin_yaw = np.cos(yaw_rad), np.sin(yaw_rad)
    return np.stack([cos_yaw, sin_yaw], axis=-1), np.stack([-sin_yaw, cos_yaw], axis=-1)


def box_corners(boxes: np.ndarray) -> np.ndarray:
    """Footprint corners of oriented boxes.

    Args:
        boxes: (N, 5) rows of x [m], y [m], yaw [deg], length [m], width [m] (world frame).

    Returns:
        (N, 4, 2) world corners in the order front-left, front-right, rear-right, rear-left.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 5)
    yaw = np.radians(boxes[:, 2])
    cos, sin = np.cos(yaw), np.sin(yaw)
    half = boxes[:, 3:5] * 0.5
    forward = np.stack([cos * half[:, 0], sin * half[:, 0]], axis=1)  # (N, 2)
    right = np.stack([-sin * half[:, 1], cos * half[:, 1]], axis=1)
    return boxes[:, None, :2] + _CORNER_SIGNS[None, :, 0:1] * forward[:, None, :] + _CORNER_SIGNS[None, :, 1:2] * right[:, None, :]


def apply_affine(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine ``matrix`` to points (..., 2)."""
    return points @ matrix[:, :2].T + matrix[:, 2]


def clip_polygons_near(polygons: np.ndarray, near_m: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clip convex polygons in camera space to the half-space ``depth >= near_m`` (Sutherland-Hodgman).

    All polygons are clipped at once: every edge emits its start vertex when that lies in front of the
    plane and its intersection with the plane when it crosses it.

    Args:
        polygons: (Q, n, 3) vertices in camera space, depth (forward distance) in column 0.
        near_m: Depth of the near plane [m].

    Returns:
        ``vertices`` (V, 3), ``offsets`` (Q' + 1,) and ``source`` (Q',): clipped polygon i is
        ``vertices[offsets[i]:offsets[i + 1]]`` (at least 3 vertices, convex if the input was) and came from
        input polygon ``source[i]``. Polygons entirely behind the plane are dropped.
    """
    count, sides = polygons.shape[:2]
    following = polygons[:, (np.arange(sides) + 1) % sides]
    depth, following_depth = polygons[..., 0], following[..., 0]
    inside = depth >= near_m
    crossing = inside != (following_depth >= near_m)
    depth_step = following_depth - depth
    depth_step[~crossing] = 1.0  # no intersection there; avoids dividing by zero
    fraction = (near_m - depth) / depth_step
    candidates = np.empty((count, sides, 2, 3))  # per edge: its start vertex, then its intersection
    candidates[:, :, 0] = polygons
    candidates[:, :, 1] = polygons + fraction[..., None] * (following - polygons)
    emitted = np.empty((count, sides, 2), dtype=bool)
    emitted[..., 0], emitted[..., 1] = inside, crossing
    emitted = emitted.reshape(count, 2 * sides)
    vertex_counts = emitted.sum(axis=1)
    kept = vertex_counts >= 3  # fewer vertices: nothing in front of the plane
    emitted &= kept[:, None]
    source = np.flatnonzero(kept)
    offsets = np.zeros(len(source) + 1, dtype=np.int64)
    np.cumsum(vertex_counts[source], out=offsets[1:])
    return candidates.reshape(count, 2 * sides, 3)[emitted], offsets, source
