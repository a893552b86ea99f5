"""Viewer stage: pure-numpy layout and compositing of sensor panels into RGB frames (no window needed)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from drivesim.dream.frames import resize_nearest  # noqa: F401 - re-exported for the viewer's modules
from drivesim.spec import BEV_CHANNELS

BACKGROUND_RGB = (18, 18, 22)
BEV_BACKGROUND_RGB = (30, 30, 34)
# Display colour of each BEV channel, as in CARLA/Roach BEVs: grey road, white markings, blue-ish route,
# green ego, red vehicles. Past-vehicle channels (beyond the five of drivesim.spec) are drawn in dark red.
BEV_COLOURS_RGB: dict[str, tuple[int, int, int]] = {
    "drivable": (90, 90, 96),
    "lane_markings": (235, 235, 235),
    "route": (70, 130, 230),
    "vehicles": (225, 45, 40),
    "ego": (50, 215, 80),
}
PAST_VEHICLE_RGB = (120, 35, 30)
# Painting order: later entries are drawn over earlier ones.
BEV_PAINT_ORDER = ("drivable", "lane_markings", "route", "vehicles", "ego")


@dataclass(frozen=True)
class Rect:
    """An axis-aligned rectangle in pixels (x to the right, y down)."""

    x: int
    y: int
    width: int
    height: int

    @property
    def right(self) -> int:
        return self.x + self.width

    @property
    def bottom(self) -> int:
        return self.y + self.height

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        return self.width, self.height

    def inset(self, margin: int) -> Rect:
        """The rectangle shrunk by ``margin`` on every side."""
        return Rect(self.x + margin, self.y + margin, max(self.width - 2 * margin, 0), max(self.height - 2 * margin, 0))

    def split_rows(self, heights: Sequence[int]) -> list[Rect]:
        """Stacked sub-rectangles of the given heights, top to bottom (the last gets what is left if 0)."""
        rects, y = [], self.y
        for height in heights:
            height = height or self.bottom - y
            rects.append(Rect(self.x, y, self.width, height))
            y += height
        return rects

    def split_columns(self, count: int, gap: int = 0) -> list[Rect]:
        """``count`` side-by-side sub-rectangles of equal width separated by ``gap`` pixels."""
        width = (self.width - gap * (count - 1)) // count
        return [Rect(self.x + i * (width + gap), self.y, width, self.height) for i in range(count)]


def colorize_bev(bev: np.ndarray) -> np.ndarray:
    """Colour a BEV for display: (C, H, W) masks {0, 1} or probabilities [0, 1] -> (H, W, 3) uint8 RGB.

    Channels follow ``drivesim.spec.BEV_CHANNELS``; channels beyond the fifth are past-vehicle frames (newest
    first). Soft values (world-model probabilities) blend with what is below, so a 0.5 vehicle is half red.
    """
    bev = np.asarray(bev)
    if bev.ndim != 3 or bev.shape[0] < len(BEV_CHANNELS):
        raise ValueError(f"BEV must be (C>={len(BEV_CHANNELS)}, H, W), got shape {bev.shape}")
    values = bev.astype(np.float32, copy=False)
    image = np.empty((*bev.shape[1:], 3), np.float32)
    image[:] = BEV_BACKGROUND_RGB

    def paint(alpha: np.ndarray, colour: tuple[int, int, int]) -> None:
        alpha = np.clip(alpha, 0.0, 1.0)[..., None]
        image[:] = image * (1.0 - alpha) + np.asarray(colour, np.float32) * alpha

    for name in BEV_PAINT_ORDER[:3]:
        paint(values[BEV_CHANNELS.index(name)], BEV_COLOURS_RGB[name])
    for channel in range(bev.shape[0] - 1, len(BEV_CHANNELS) - 1, -1):  # oldest past vehicles first
        paint(values[channel], PAST_VEHICLE_RGB)
    for name in BEV_PAINT_ORDER[3:]:
        paint(values[BEV_CHANNELS.index(name)], BEV_COLOURS_RGB[name])
    return (image + 0.5).astype(np.uint8)


def camera_to_uint8(camera: np.ndarray) -> np.ndarray:
    """A camera frame (H, W, 3) as uint8: uint8 passes through, floats in [0, 1] are scaled."""
    camera = np.asarray(camera)
    if camera.dtype == np.uint8:
        return camera
    return (np.clip(camera.astype(np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def fit_rect(image_size: tuple[int, int], box: Rect) -> Rect:
    """The largest rectangle of the image's aspect ratio centred in ``box`` (integer scale when upscaling)."""
    width, height = image_size
    scale = min(box.width / width, box.height / height)
    if scale >= 1.0:
        scale = float(int(scale))
    fitted_w, fitted_h = max(int(width * scale), 1), max(int(height * scale), 1)
    return Rect(box.x + (box.width - fitted_w) // 2, box.y + (box.height - fitted_h) // 2, fitted_w, fitted_h)


def paste(canvas: np.ndarray, image: np.ndarray, box: Rect, fit: bool = True) -> Rect:
    """Draw ``image`` (H, W, 3) uint8 into ``canvas`` at ``box`` with nearest-neighbour scaling.

    Args:
        canvas: (H, W, 3) uint8 frame, modified in place.
        image: RGB image to draw.
        box: target rectangle.
        fit: keep the aspect ratio (centred in ``box``) instead of stretching.

    Returns:
        The rectangle actually covered.
    """
    target = fit_rect((image.shape[1], image.shape[0]), box) if fit else box
    canvas[target.y : target.bottom, target.x : target.right] = resize_nearest(image, target.size)
    return target


def new_canvas(width: int, height: int, colour: tuple[int, int, int] = BACKGROUND_RGB) -> np.ndarray:
    """An empty (height, width, 3) uint8 frame filled with ``colour``."""
    canvas = np.empty((height, width, 3), np.uint8)
    canvas[:] = colour
    return canvas


def dim(image: np.ndarray, factor: float = 0.45) -> np.ndarray:
    """A darker copy of an RGB image (used for context frames and paused overlays)."""
    return (image.astype(np.float32) * factor).astype(np.uint8)


def sensor_images(frame: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Display RGB of every sensor in an observation-like dict: ``camera`` as is, ``bev`` colourised."""
    images = {}
    if frame.get("camera") is not None:
        images["camera"] = camera_to_uint8(frame["camera"])
    if frame.get("bev") is not None:
        images["bev"] = colorize_bev(frame["bev"])
    return images


@dataclass(frozen=True)
class SensorRowLayout:
    """Where the sensor panels of one row go: ``panels`` maps sensor name to its rectangle."""

    panels: dict[str, Rect]
    bounds: Rect


def sensor_row(keys: Sequence[str], panel_px: int, x: int = 0, y: int = 0, gap: int = 4) -> SensorRowLayout:
    """Square panels of ``panel_px`` side by side for the given sensor keys (camera first, then BEV).

    Args:
        keys: sensors present (``camera``, ``bev``); order on screen is always camera then BEV.
        panel_px: panel side [px].
        x: left edge of the row.
        y: top edge of the row.
        gap: pixels between panels.
    """
    ordered = [key for key in ("camera", "bev") if key in keys]
    panels = {key: Rect(x + i * (panel_px + gap), y, panel_px, panel_px) for i, key in enumerate(ordered)}
    width = len(ordered) * panel_px + max(len(ordered) - 1, 0) * gap
    return SensorRowLayout(panels, Rect(x, y, width, panel_px))


def even_size(width: int, height: int) -> tuple[int, int]:
    """Round a frame size up to even numbers (needed by H.264 with yuv420p)."""
    return width + width % 2, height + height % 2
