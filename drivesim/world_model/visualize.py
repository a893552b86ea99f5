"""World model stage: turning predicted and real frames into RGB grids (for logs, eval plots and GIFs)."""

from __future__ import annotations

import numpy as np

# RGB colour of each BEV channel (drivesim.spec.BEV_CHANNELS), painted in this order over a black background.
BEV_COLOURS = np.array(
    [
        [80, 80, 80],  # drivable
        [230, 230, 230],  # lane_markings
        [60, 120, 220],  # route
        [40, 200, 60],  # ego
        [230, 60, 50],  # vehicles
    ],
    dtype=np.float32,
)


def bev_to_rgb(bev: np.ndarray) -> np.ndarray:
    """BEV channel probabilities or masks (..., 5, H, W) in [0, 1] -> RGB (..., H, W, 3) uint8.

    Later channels are painted over earlier ones, weighted by their value (soft predictions blend).
    """
    bev = np.asarray(bev, dtype=np.float32)
    image = np.zeros((*bev.shape[:-3], bev.shape[-2], bev.shape[-1], 3), dtype=np.float32)
    for channel, colour in enumerate(BEV_COLOURS[: bev.shape[-3]]):
        alpha = np.clip(bev[..., channel, :, :], 0.0, 1.0)[..., None]
        image = image * (1.0 - alpha) + colour * alpha
    return image.clip(0, 255).astype(np.uint8)


def camera_to_rgb(camera: np.ndarray) -> np.ndarray:
    """Camera frames (..., H, W, 3) in [0, 1] -> uint8."""
    return (np.clip(np.asarray(camera, dtype=np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def frames_to_rgb(frames: dict[str, np.ndarray]) -> np.ndarray:
    """Side-by-side RGB of every image key: ``camera`` (..., H, W, 3) and/or ``bev`` (..., 5, H, W) -> (..., H, W', 3)."""
    parts = []
    if "camera" in frames:
        parts.append(camera_to_rgb(frames["camera"]))
    if "bev" in frames:
        parts.append(bev_to_rgb(frames["bev"]))
    return np.concatenate(parts, axis=-2)


def tile(images: np.ndarray, pad: int = 2) -> np.ndarray:
    """Tile (rows, cols, H, W, 3) uint8 images into one (rows * (H + pad), cols * (W + pad), 3) grid."""
    rows, cols, height, width, _ = images.shape
    grid = np.full((rows * (height + pad), cols * (width + pad), 3), 255, dtype=np.uint8)
    for r in range(rows):
        for c in range(cols):
            top, left = r * (height + pad), c * (width + pad)
            grid[top : top + height, left : left + width] = images[r, c]
    return grid


def open_loop_grid(real: dict[str, np.ndarray], predicted: dict[str, np.ndarray], context: int) -> np.ndarray:
    """Grid of real (top row of each pair) vs predicted frames (bottom row) for a few sequences.

    Args:
        real: per key (N, T, ...) real frames in [0, 1] for the whole window (context + horizon).
        predicted: per key (N, T - context, ...) open-loop predictions for the frames after the context.
        context: context length; the predicted row repeats the real context frames there, dimmed.

    Returns:
        (rows, cols, 3) uint8 image.
    """
    real_rgb = frames_to_rgb(real)
    pred_rgb = frames_to_rgb(predicted)
    context_rgb = (real_rgb[:, :context].astype(np.float32) * 0.4).astype(np.uint8)
    pred_rgb = np.concatenate([context_rgb, pred_rgb], axis=1)
    rows = np.stack([real_rgb, pred_rgb], axis=1).reshape(-1, *real_rgb.shape[1:])
    return tile(rows)
