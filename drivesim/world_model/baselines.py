"""World model stage: the baselines open-loop predictions are judged against (no learning, no torch).

- camera: copy the last observed frame;
- BEV, constant position: copy the last observed BEV (everything keeps its place in the ego frame);
- BEV, constant velocity: each object (connected component of an object channel) keeps the pixel velocity
  it had between two observed frames, in the ego frame; layer channels (drivable, lanes, route, ego) are copied;
- events within 1 s: a speed-and-distance score, the share of the distance to the nearest hazard ahead
  that the current speed covers in the event window (1 = reaches it in time).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from drivesim.spec import BEV_CHANNELS

# Channels holding separate objects that move in the ego frame (tracked by the constant-velocity baseline).
OBJECT_CHANNELS = (
    "vehicles",
    "walkers",
    "obstacles",
    "traffic_light_red",
    "traffic_light_yellow",
    "traffic_light_green",
    "stop_signs",
)
# What the speed-and-distance baseline measures the distance to, per event (channels by spec name).
HAZARD_CHANNELS = {
    "collision": ("vehicles", "walkers", "obstacles"),
    "red_light": ("traffic_light_red",),
}
MAX_SPEED_PX_PER_STEP = 3.0  # a component farther than this per step from every earlier one is not matched
CORRIDOR_MARGIN_M = 1.0  # [m] beside the ego's width that still counts as "ahead"


def _components(mask: np.ndarray) -> tuple[np.ndarray, int, np.ndarray]:
    """Labels (H, W), count and centroids (N, 2) (row, col) of the 8-connected components of a mask."""
    labels, count = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    if count == 0:
        return labels, 0, np.zeros((0, 2))
    centroids = np.asarray(ndimage.center_of_mass(mask, labels, range(1, count + 1)), dtype=np.float64)
    return labels, count, centroids.reshape(count, 2)


def component_velocities(earlier: np.ndarray, last: np.ndarray, gap_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Components of ``last`` (H, W) bool and their velocities [px/step] from ``earlier``, ``gap_steps`` before.

    Each component of ``last`` is matched to the earlier component with the nearest centroid, if that lies
    within ``MAX_SPEED_PX_PER_STEP * gap_steps`` pixels; unmatched components get zero velocity.

    Returns:
        labels (H, W) of ``last``'s components (0 = background) and velocities (N, 2) (rows, cols) per step.
    """
    labels, count, centroids = _components(last)
    velocities = np.zeros((count, 2))
    if count == 0:
        return labels, velocities
    _, earlier_count, earlier_centroids = _components(earlier)
    if earlier_count == 0:
        return labels, velocities
    distances = np.linalg.norm(centroids[:, None] - earlier_centroids[None], axis=-1)  # (N, M)
    nearest = distances.argmin(axis=1)
    matched = distances[np.arange(count), nearest] <= MAX_SPEED_PX_PER_STEP * gap_steps
    velocities[matched] = (centroids[matched] - earlier_centroids[nearest[matched]]) / gap_steps
    return labels, velocities


def shift_components(labels: np.ndarray, velocities: np.ndarray, steps: int) -> np.ndarray:
    """(H, W) bool: every component moved by ``round(velocity * steps)`` pixels; what leaves the view is lost."""
    height, width = labels.shape
    out = np.zeros(labels.shape, dtype=bool)
    rows, cols = np.nonzero(labels)
    if rows.size == 0:
        return out
    offsets = np.rint(velocities[labels[rows, cols] - 1] * steps).astype(np.int64)
    rows, cols = rows + offsets[:, 0], cols + offsets[:, 1]
    inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
    out[rows[inside], cols[inside]] = True
    return out


def constant_velocity_bev(bev_earlier: np.ndarray, bev_last: np.ndarray, gap_steps: int, horizons: list[int]) -> np.ndarray:
    """Constant-velocity BEV predictions.

    Args:
        bev_earlier: (B, C, H, W) {0, 1} BEV ``gap_steps`` before the last observed one.
        bev_last: (B, C, H, W) {0, 1} last observed BEV.
        gap_steps: steps between the two.
        horizons: steps h after the last observed frame to predict.

    Returns:
        (B, len(horizons), C, H, W) bool; object channels extrapolated per component, others copied.
    """
    batch, channels = bev_last.shape[:2]
    last = bev_last > 0.5
    out = np.repeat(last[:, None], len(horizons), axis=1)
    for channel in (BEV_CHANNELS.index(name) for name in OBJECT_CHANNELS if name in BEV_CHANNELS):
        if channel >= channels:
            continue
        for row in range(batch):
            if not last[row, channel].any():
                continue
            labels, velocities = component_velocities(bev_earlier[row, channel] > 0.5, last[row, channel], gap_steps)
            if not velocities.any():
                continue
            for index, steps in enumerate(horizons):
                out[row, index, channel] = shift_components(labels, velocities, steps)
    return out


def ego_box(bev: np.ndarray) -> tuple[int, float, float]:
    """Front row, centre column and half width [px] of the ego box in one BEV (C, H, W).

    Falls back to drivesim's default mount (ego centre at 75 % of the height, 2 m wide at 0.5 m/px) when the
    ego channel is empty.
    """
    ego = bev[BEV_CHANNELS.index("ego")] > 0.5
    rows, cols = np.nonzero(ego)
    if rows.size == 0:
        height, width = ego.shape
        return int(0.75 * height) - 4, (width - 1) / 2.0, 2.0
    return int(rows.min()), float(cols.mean()), (cols.max() - cols.min() + 1) / 2.0


def distance_ahead_m(bev: np.ndarray, hazard: np.ndarray, m_per_px: float) -> float:
    """Distance [m] from the ego's front to the nearest ``hazard`` (H, W) pixel in the corridor ahead.

    The corridor is the ego's width plus ``CORRIDOR_MARGIN_M`` on each side; inf when it holds no hazard.
    """
    front, centre, half_width = ego_box(bev)
    rows, cols = np.nonzero(hazard[: front + 1])
    inside = np.abs(cols - centre) <= half_width + CORRIDOR_MARGIN_M / m_per_px
    if not inside.any():
        return float("inf")
    return float((front - rows[inside].max()) * m_per_px)


def speed_distance_score(bev_last: np.ndarray, speed_mps: np.ndarray, event: str, window_s: float, m_per_px: float) -> np.ndarray:
    """Speed-and-distance baseline probability of ``event`` within ``window_s``, (B,) in [0, 1].

    ``min(1, speed * window_s / distance)`` with the distance to the nearest hazard ahead: other road users
    and obstacles for ``collision``, non-drivable pixels for ``off_road``, red-light stop lines for
    ``red_light``. An empty corridor scores 0.

    Args:
        bev_last: (B, C, H, W) last observed BEV.
        speed_mps: (B,) speed at that step [m/s].
        event: ``collision``, ``off_road`` or ``red_light``.
        window_s: event window [s].
        m_per_px: BEV resolution [m/px].
    """
    scores = np.zeros(len(bev_last))
    for row, (bev, speed) in enumerate(zip(bev_last, speed_mps, strict=True)):
        if event == "off_road":
            hazard = bev[BEV_CHANNELS.index("drivable")] < 0.5
        else:
            hazard = np.zeros(bev.shape[1:], dtype=bool)
            for name in HAZARD_CHANNELS[event]:
                hazard |= bev[BEV_CHANNELS.index(name)] > 0.5
        distance = max(distance_ahead_m(bev, hazard, m_per_px), 0.1)
        scores[row] = min(1.0, max(float(speed), 0.0) * window_s / distance)
    return scores
