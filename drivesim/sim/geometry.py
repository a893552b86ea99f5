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
    """Separating-axis test between one box (4, 2) and many boxes (N, 4, 2); returns (N,) bool."""
    if len(corners_b) == 0:
        return np.zeros(0, dtype=bool)
    edges_a = np.diff(corners_a[[0, 1, 2]], axis=0)  # two edge directions of A
    edges_b = corners_b[:, [1, 2]] - corners_b[:, [0, 1]]  # (N, 2, 2)
    axes = np.concatenate([np.broadcast_to(edges_a, (len(corners_b), 2, 2)), edges_b], axis=1)  # (N, 4, 2)
    normals = np.stack([-axes[..., 1], axes[..., 0]], -1)
    proj_a = np.einsum("nkd,cd->nkc", normals, corners_a)  # (N, 4 axes, 4 corners)
    proj_b = np.einsum("nkd,ncd->nkc", normals, corners_b)
    separated = (proj_a.max(-1) < proj_b.min(-1)) | (proj_b.max(-1) < proj_a.min(-1))
    return ~separated.any(-1)
