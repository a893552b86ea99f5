"""What the sensors draw at one step, in world coordinates: one record filled by every simulator.

The embedded world fills it from its actors and signals (``DrivingWorld.scene``); the CARLA bridge from the
server's snapshot. Boxes are (N, 5): x [m], y [m], yaw [deg], length [m], width [m].
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Kinds of stop line (``Scene.stop_kind``): the state of the light that controls it, or a stop sign.
STOP_RED, STOP_YELLOW, STOP_GREEN, STOP_SIGN = 0, 1, 2, 3


def _boxes() -> np.ndarray:
    return np.zeros((0, 5))


@dataclass
class Scene:
    """Actors and signals near the ego (the sensors cull by distance themselves)."""

    vehicles: np.ndarray = field(default_factory=_boxes)  # moving and parked vehicles
    walkers: np.ndarray = field(default_factory=_boxes)
    obstacles: np.ndarray = field(default_factory=_boxes)  # static props: cones, warning triangles
    stop_lines: np.ndarray = field(default_factory=lambda: np.zeros((0, 2, 2)))  # (L, 2, 2) end points [m]
    stop_kind: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # (L,) STOP_* above
    light_poles: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))  # (P, 3) x, y, facing yaw [rad]
    light_state: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # (P,) STOP_RED..STOP_GREEN

    @staticmethod
    def of_vehicles(boxes: np.ndarray) -> Scene:
        """A scene of vehicles only (maps and servers without the other actors)."""
        return Scene(vehicles=np.asarray(boxes, dtype=np.float64).reshape(-1, 5))


def stop_line_segments(xy: np.ndarray, yaw_rad: np.ndarray, half_width_m: np.ndarray) -> np.ndarray:
    """End points (L, 2, 2) of stop lines across lanes entered at ``xy`` (L, 2) heading ``yaw_rad``."""
    right = np.stack([-np.sin(yaw_rad), np.cos(yaw_rad)], axis=-1) * np.asarray(half_width_m)[:, None]
    return np.stack([xy - right, xy + right], axis=1)
