"""Viewer stage: pygame drawing primitives of the HUD (text, bars, gauges, badges, small plots, overlays).

Fonts are pygame's default font (``pygame.font.Font(None, size)``), present on every machine. Everything
draws onto a ``pygame.Surface``; no window is needed (surfaces and fonts work with SDL_VIDEODRIVER=dummy).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pygame

from drivesim.viewer.layout import Rect

TEXT_RGB = (230, 230, 230)
MUTED_RGB = (150, 150, 160)
PANEL_RGB = (28, 28, 34)
TRACK_RGB = (55, 55, 65)
ALERT_RGB = (235, 60, 50)
OK_RGB = (70, 200, 90)
WARN_RGB = (240, 170, 40)


def ensure_pygame() -> None:
    """Initialise pygame's font module (safe to call repeatedly; needs no window)."""
    if not pygame.font.get_init():
        pygame.font.init()


@lru_cache(maxsize=16)
def font(size: int) -> pygame.font.Font:
    """pygame's default font at ``size`` [px]."""
    ensure_pygame()
    return pygame.font.Font(None, size)


def to_pygame(rect: Rect) -> pygame.Rect:
    return pygame.Rect(rect.x, rect.y, rect.width, rect.height)


def surface_from_array(image: np.ndarray) -> pygame.Surface:
    """A pygame surface holding an (H, W, 3) uint8 RGB image."""
    return pygame.surfarray.make_surface(np.ascontiguousarray(image.swapaxes(0, 1)))


def array_from_surface(surface: pygame.Surface) -> np.ndarray:
    """The (H, W, 3) uint8 RGB pixels of a surface."""
    return np.ascontiguousarray(pygame.surfarray.array3d(surface).swapaxes(0, 1))


def draw_text(
    surface: pygame.Surface,
    text: str,
    position: tuple[int, int],
    size: int = 20,
    colour: tuple[int, int, int] = TEXT_RGB,
    anchor: str = "topleft",
    max_width: int | None = None,
) -> pygame.Rect:
    """Draw one line of text; ``anchor`` is a pygame.Rect attribute (``topleft``, ``center``, ``topright``...).

    Text wider than ``max_width`` pixels is cut and ends with "..".
    """
    text = fit_text(text, size, max_width) if max_width is not None else text
    rendered = font(size).render(text, True, colour)
    box = rendered.get_rect(**{anchor: position})
    surface.blit(rendered, box)
    return box


def fit_text(text: str, size: int, max_width: int) -> str:
    """``text`` shortened (ending in "..") until it renders at most ``max_width`` pixels wide."""
    if font(size).size(text)[0] <= max_width:
        return text
    while text and font(size).size(text + "..")[0] > max_width:
        text = text[:-1]
    return text + ".."


def draw_panel(surface: pygame.Surface, rect: Rect, colour: tuple[int, int, int] = PANEL_RGB, alpha: int = 255) -> None:
    """Fill a rectangle, translucent when ``alpha`` < 255."""
    if alpha >= 255:
        surface.fill(colour, to_pygame(rect))
        return
    overlay = pygame.Surface(rect.size, pygame.SRCALPHA)
    overlay.fill((*colour, alpha))
    surface.blit(overlay, (rect.x, rect.y))


def draw_bar(
    surface: pygame.Surface,
    rect: Rect,
    label: str,
    value: float,
    low: float = 0.0,
    high: float = 1.0,
    colour: tuple[int, int, int] = OK_RGB,
    centred: bool = False,
    label_px: int = 64,
    text: str | None = None,
) -> None:
    """A labelled horizontal bar of ``value`` in [low, high], filled from the left or from the centre.

    Args:
        surface: target.
        rect: whole widget (label on the left, bar, value text on the right).
        label: name shown left of the bar.
        value: the value (clipped for drawing).
        low: value at the bar's left end.
        high: value at the bar's right end.
        colour: fill colour.
        centred: fill from the position of 0 (for signed values like steer).
        label_px: width reserved for the label.
        text: value text (default: two decimals).
    """
    size = max(rect.height - 2, 12)
    draw_text(surface, label, (rect.x, rect.y + rect.height // 2), size, MUTED_RGB, "midleft")
    value_px = 44
    track = Rect(rect.x + label_px, rect.y + 3, max(rect.width - label_px - value_px, 4), max(rect.height - 6, 2))
    pygame.draw.rect(surface, TRACK_RGB, to_pygame(track))
    share = float(np.clip((value - low) / (high - low), 0.0, 1.0))
    origin = float(np.clip((0.0 - low) / (high - low), 0.0, 1.0)) if centred else 0.0
    left, right = sorted((origin, share))
    fill = Rect(track.x + int(left * track.width), track.y, max(int((right - left) * track.width), 1), track.height)
    if right > left:
        pygame.draw.rect(surface, colour, to_pygame(fill))
    if centred:
        middle = track.x + int(origin * track.width)
        pygame.draw.line(surface, TEXT_RGB, (middle, track.y - 2), (middle, track.bottom + 1))
    draw_text(surface, text if text is not None else f"{value:.2f}", (rect.right, rect.y + rect.height // 2), size, TEXT_RGB, "midright")


def probability_colour(probability: float) -> tuple[int, int, int]:
    """Green (0) through amber to red (1)."""
    p = float(np.clip(probability, 0.0, 1.0))
    if p < 0.5:
        return tuple(int(a + (b - a) * p * 2) for a, b in zip(OK_RGB, WARN_RGB, strict=True))  # type: ignore[return-value]
    return tuple(int(a + (b - a) * (p - 0.5) * 2) for a, b in zip(WARN_RGB, ALERT_RGB, strict=True))  # type: ignore[return-value]


def draw_gauge(surface: pygame.Surface, rect: Rect, label: str, probability: float, label_px: int = 72) -> None:
    """A probability bar coloured from green to red, with the value as a percentage."""
    draw_bar(surface, rect, label, probability, 0.0, 1.0, probability_colour(probability), label_px=label_px,
             text=f"{100 * probability:.0f}%")


def draw_badges(surface: pygame.Surface, rect: Rect, badges: Sequence[tuple[str, bool]], size: int = 18) -> None:
    """Event chips in a row: highlighted red when active, dim otherwise."""
    x = rect.x
    for label, active in badges:
        text = font(size).render(label, True, (255, 255, 255) if active else MUTED_RGB)
        chip = pygame.Rect(x, rect.y, text.get_width() + 12, rect.height)
        pygame.draw.rect(surface, ALERT_RGB if active else TRACK_RGB, chip, border_radius=4)
        surface.blit(text, text.get_rect(center=chip.center))
        x = chip.right + 6


@dataclass(frozen=True)
class Series:
    """One line of a plot: values (N,), colour and legend label."""

    values: np.ndarray
    colour: tuple[int, int, int]
    label: str


def draw_plot(
    surface: pygame.Surface,
    rect: Rect,
    series: Sequence[Series],
    cursor: int | None = None,
    y_range: tuple[float, float] | None = None,
    title: str = "",
    markers: Sequence[tuple[int, tuple[int, int, int]]] = (),
) -> None:
    """A small line plot of several series over a shared step axis.

    Args:
        surface: target.
        rect: the plot's rectangle (title and legend inside).
        series: lines; x is the index, all series share the longest length.
        cursor: index marked with a vertical line (the current step).
        y_range: fixed (low, high); default from the data.
        title: text at the top left.
        markers: (index, colour) ticks along the bottom (e.g. event steps).
    """
    pygame.draw.rect(surface, PANEL_RGB, to_pygame(rect))
    pygame.draw.rect(surface, TRACK_RGB, to_pygame(rect), 1)
    header = 16
    if title:
        draw_text(surface, title, (rect.x + 4, rect.y + 2), 16, MUTED_RGB)
    legend_x = rect.right - 4
    for line in reversed(series):
        legend_x = draw_text(surface, line.label, (legend_x, rect.y + 2), 16, line.colour, "topright").left - 8
    area = Rect(rect.x + 4, rect.y + header + 2, rect.width - 8, rect.height - header - 8)
    length = max((len(line.values) for line in series), default=0)
    if length == 0 or area.height < 4:
        return
    values = [np.asarray(line.values, np.float64) for line in series]
    finite = np.concatenate([v[np.isfinite(v)] for v in values]) if values else np.zeros(0)
    low, high = y_range if y_range is not None else (float(finite.min(initial=0.0)), float(finite.max(initial=1.0)))
    high = high if high > low else low + 1.0

    def to_xy(index: float, value: float) -> tuple[int, int]:
        x = area.x + int(index / max(length - 1, 1) * (area.width - 1))
        y = area.bottom - 1 - int((np.clip(value, low, high) - low) / (high - low) * (area.height - 1))
        return x, y

    for index, colour in markers:
        x, _ = to_xy(index, low)
        pygame.draw.line(surface, colour, (x, area.bottom - 5), (x, area.bottom + 2), 2)
    for line, data in zip(series, values, strict=True):
        points = [to_xy(i, v) for i, v in enumerate(data) if np.isfinite(v)]
        if len(points) >= 2:
            pygame.draw.lines(surface, line.colour, False, points, 2)
        elif points:
            pygame.draw.circle(surface, line.colour, points[0], 2)
    if cursor is not None and length > 0:
        x, _ = to_xy(min(cursor, length - 1), low)
        pygame.draw.line(surface, TEXT_RGB, (x, area.y), (x, area.bottom))


def draw_label(surface: pygame.Surface, rect: Rect, text: str, size: int = 18) -> None:
    """A caption on a dark strip at the bottom left of a panel."""
    rendered = font(size).render(text, True, TEXT_RGB)
    box = rendered.get_rect(bottomleft=(rect.x + 4, rect.bottom - 4))
    draw_panel(surface, Rect(box.x - 3, box.y - 2, box.width + 6, box.height + 4), (0, 0, 0), 150)
    surface.blit(rendered, box)


def draw_overlay_lines(surface: pygame.Surface, rows: Sequence[tuple[str, str]], title: str, size: int = 20) -> None:
    """A centred translucent box of (key, description) rows in two aligned columns (the help overlay)."""
    key_px = max(font(size).size(key)[0] for key, _ in rows) + 16
    text_px = max(font(size).size(text)[0] for _, text in rows)
    width, height = key_px + text_px + 40, (len(rows) + 1) * (size + 4) + 24
    box = Rect((surface.get_width() - width) // 2, max((surface.get_height() - height) // 2, 0), width, height)
    draw_panel(surface, box, (0, 0, 0), 215)
    draw_text(surface, title, (box.x + 20, box.y + 12), size + 2, WARN_RGB)
    for row, (key, text) in enumerate(rows):
        y = box.y + 16 + (row + 1) * (size + 4)
        draw_text(surface, key, (box.x + 20, y), size, WARN_RGB)
        draw_text(surface, text, (box.x + 20 + key_px, y), size)
