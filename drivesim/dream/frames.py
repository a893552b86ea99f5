"""Dream stage: frames for and from the world model: resizing recorded or rendered images to its resolution.

Pure numpy (the viewer uses ``resize_nearest`` for display too).
"""

from __future__ import annotations

import numpy as np

from drivesim import spec


def resize_nearest(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of (H, W, ...) to (height, width) = ``size[1], size[0]`` (crisp pixels).

    Args:
        image: (H, W) or (H, W, C) array.
        size: target (width, height) [px].
    """
    width, height = size
    rows = (np.arange(height) * image.shape[0] // max(height, 1)).clip(0, image.shape[0] - 1)
    cols = (np.arange(width) * image.shape[1] // max(width, 1)).clip(0, image.shape[1] - 1)
    return image[rows[:, None], cols[None, :]]


def resize_images(images: np.ndarray, key: str, size_px: int) -> np.ndarray:
    """Resize (T, H, W, 3) camera or (T, C, H, W) BEV frames to ``size_px`` squares.

    Integer downscales of the camera average pixel blocks; everything else (BEV masks, upscales) is nearest.
    """
    channels_first = key == spec.OBS_BEV
    height, width = images.shape[-2:] if channels_first else images.shape[1:3]
    if (height, width) == (size_px, size_px):
        return images
    if not channels_first and height % size_px == 0 and width % size_px == 0:
        fy, fx = height // size_px, width // size_px
        blocks = images.reshape(images.shape[0], size_px, fy, size_px, fx, 3).astype(np.float32)
        return (blocks.mean((2, 4)) + 0.5).astype(np.uint8)
    moved = np.moveaxis(images, 1, -1) if channels_first else images  # (T, H, W, C)
    resized = np.stack([resize_nearest(frame, (size_px, size_px)) for frame in moved])
    return np.moveaxis(resized, -1, 1) if channels_first else resized
