"""Viewer stage: the HUD, split like CARLA's manual_control into ``tick()`` (compute) and ``render()`` (draw).

``Hud`` shows time, speed, control bars, route completion, event badges and a timeline; ``PredictionPanel``
shows probabilities as gauges, readouts and a small plot (under real/dream columns, or the dream's reward
components when driving in the dream).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pygame

from drivesim import spec
from drivesim.viewer.layout import Rect
from drivesim.viewer.widgets import (
    ALERT_RGB,
    MUTED_RGB,
    OK_RGB,
    TEXT_RGB,
    WARN_RGB,
    Series,
    draw_badges,
    draw_bar,
    draw_gauge,
    draw_overlay_lines,
    draw_panel,
    draw_plot,
    draw_text,
    font,
    to_pygame,
)

EVENT_LABELS = {"collision": "COLLISION", "off_road": "OFF-ROAD", "lane_invasion": "LANE INVASION"}
EVENT_RGB = {"collision": ALERT_RGB, "off_road": WARN_RGB, "lane_invasion": (200, 200, 80)}
EVENT_THRESHOLD = 0.5
HUD_HEIGHT_PX = 180
SPEED_RGB = (90, 170, 240)


@dataclass
class HudFrame:
    """What the HUD shows for one frame (computed by a view, turned into drawables by ``Hud.tick``).

    Attributes:
        title: first line (episode name, position, driver...).
        step: current step.
        length: steps in the episode (or so far, when driving).
        dt_s: step length [s].
        speed_mps: ego speed [m/s].
        action: control (3,) [throttle, steer, brake] applied after this frame.
        route_completion: share of the route done [0, 1], None when unknown.
        events: event name -> value at this step (> 0.5 highlights the badge).
        status: playback status text ("playing x1", "paused", "dreaming"...).
        speed_series: speed (T,) for the timeline plot, optional.
        event_markers: (step, event name) ticks on the timeline.
    """

    title: str
    step: int
    length: int
    dt_s: float
    speed_mps: float
    action: np.ndarray
    route_completion: float | None = None
    events: dict[str, float] = field(default_factory=dict)
    status: str = ""
    speed_series: np.ndarray | None = None
    event_markers: Sequence[tuple[int, str]] = ()


@dataclass
class _HudView:
    title: str
    time_text: str
    speed_text: str
    status: str
    bars: list[tuple[str, float, float, float, tuple[int, int, int], bool]]
    badges: list[tuple[str, bool]]
    timeline: list[Series]
    cursor: int
    markers: list[tuple[int, tuple[int, int, int]]]


class Hud:
    """Head-up display of the replay and dream views, plus notices and the help overlay.

    Args:
        help_lines: (keys, description) rows of the help overlay.

    Attributes:
        regions: where the last ``render`` drew the ``hud``, the ``speed`` text and the event ``badges``.
        show_help: whether the help overlay is on.
    """

    def __init__(self, help_lines: Sequence[tuple[str, str]] = ()) -> None:
        self.help_lines = list(help_lines)
        self.show_help = False
        self.regions: dict[str, Rect] = {}
        self._view: _HudView | None = None
        self._notice = ""
        self._notice_left_s = 0.0

    def notify(self, text: str, seconds: float = 2.0) -> None:
        """Show ``text`` for ``seconds`` (e.g. "screenshot saved")."""
        self._notice, self._notice_left_s = text, seconds

    def toggle_help(self) -> None:
        self.show_help = not self.show_help

    def tick(self, frame: HudFrame, dt_s: float = 0.0) -> None:
        """Compute the drawables of ``frame``; ``dt_s`` of wall time fades notices."""
        self._notice_left_s = max(self._notice_left_s - dt_s, 0.0)
        throttle, steer, brake = (float(v) for v in np.asarray(frame.action, np.float32).reshape(3))
        bars = [
            ("throttle", throttle, 0.0, 1.0, OK_RGB, False),
            ("steer", steer, -1.0, 1.0, SPEED_RGB, True),
            ("brake", brake, 0.0, 1.0, ALERT_RGB, False),
        ]
        if frame.route_completion is not None:
            bars.append(("route", float(frame.route_completion), 0.0, 1.0, (70, 130, 230), False))
        badges = [(EVENT_LABELS[name], frame.events.get(name, 0.0) > EVENT_THRESHOLD) for name in EVENT_LABELS]
        timeline = [] if frame.speed_series is None else [Series(frame.speed_series * 3.6, SPEED_RGB, "speed km/h")]
        self._view = _HudView(
            title=frame.title,
            time_text=f"t {frame.step * frame.dt_s:6.2f} s   step {frame.step}/{max(frame.length - 1, 0)}",
            speed_text=f"{frame.speed_mps * 3.6:5.1f} km/h",
            status=frame.status,
            bars=bars,
            badges=badges,
            timeline=timeline,
            cursor=frame.step,
            markers=[(step, EVENT_RGB[name]) for step, name in frame.event_markers if name in EVENT_RGB],
        )

    def render(self, surface: pygame.Surface, rect: Rect) -> None:
        """Draw the last ticked frame into ``rect`` of ``surface``."""
        if self._view is None:
            raise RuntimeError("Hud.render() before Hud.tick()")
        view = self._view
        draw_panel(surface, rect)
        body = rect.inset(8)
        has_timeline = bool(view.timeline)
        top, bottom = body.split_rows([body.height - 56 if has_timeline else body.height, 0])
        left, right = top.split_columns(2, gap=16)
        draw_text(surface, view.title, (left.x, left.y), 20, TEXT_RGB, max_width=left.width)
        draw_text(surface, view.time_text, (left.x, left.y + 22), 20, MUTED_RGB)
        speed_box = draw_text(surface, view.speed_text, (left.x, left.y + 44), 38, TEXT_RGB)
        self.regions = {"hud": rect, "speed": Rect(speed_box.x, speed_box.y, speed_box.width, speed_box.height)}
        draw_text(surface, view.status, (left.right, left.y + 54), 18, WARN_RGB, "topright")
        self.regions["badges"] = Rect(left.x, left.y + 80, left.width, 20)
        draw_badges(surface, self.regions["badges"], view.badges, 16)
        row_px = 20
        for row, (label, value, low, high, colour, centred) in enumerate(view.bars):
            draw_bar(surface, Rect(right.x, right.y + row * (row_px + 4), right.width, row_px), label, value, low, high,
                     colour, centred)
        if has_timeline:
            draw_plot(surface, bottom, view.timeline, view.cursor, title="timeline", markers=view.markers)

    def render_overlays(self, surface: pygame.Surface) -> None:
        """Draw the fading notice and, when toggled, the help overlay over the whole frame."""
        if self._notice_left_s > 0.0 and self._notice:
            rendered = font(22).render(self._notice, True, TEXT_RGB)
            box = rendered.get_rect(midtop=(surface.get_width() // 2, 8))
            draw_panel(surface, Rect(box.x - 8, box.y - 4, box.width + 16, box.height + 8), (0, 0, 0), 180)
            surface.blit(rendered, box)
        if self.show_help and self.help_lines:
            draw_overlay_lines(surface, self.help_lines, "keys")


@dataclass
class PredictionFrame:
    """What a ``PredictionPanel`` shows.

    Attributes:
        title: heading (e.g. "reality", "dream (open loop from step 12)").
        gauges: (label, probability) pairs drawn as green-to-red gauges.
        readouts: (label, text) pairs drawn as plain values.
        series: lines of the plot (e.g. probabilities over the horizon, cumulative progress).
        cursor: plot index of the current step (None hides it).
        y_range: fixed plot range, None for automatic.
        plot_title: caption of the plot.
    """

    title: str
    gauges: list[tuple[str, float]] = field(default_factory=list)
    readouts: list[tuple[str, str]] = field(default_factory=list)
    series: list[Series] = field(default_factory=list)
    cursor: int | None = None
    y_range: tuple[float, float] | None = None
    plot_title: str = ""


class PredictionPanel:
    """Gauges, readouts and a small plot of predicted (or real) outcomes; ``tick`` then ``render``."""

    def __init__(self) -> None:
        self._frame: PredictionFrame | None = None

    def tick(self, frame: PredictionFrame) -> None:
        """Keep the frame to draw (values are clipped to [0, 1] for the gauges)."""
        gauges = [(label, float(np.clip(value, 0.0, 1.0))) for label, value in frame.gauges]
        self._frame = PredictionFrame(frame.title, gauges, list(frame.readouts), list(frame.series), frame.cursor,
                                      frame.y_range, frame.plot_title)

    def render(self, surface: pygame.Surface, rect: Rect) -> None:
        """Draw into ``rect``: title, gauges and readouts on top, the plot below."""
        if self._frame is None:
            raise RuntimeError("PredictionPanel.render() before tick()")
        frame = self._frame
        draw_panel(surface, rect)
        pygame.draw.rect(surface, (45, 45, 55), to_pygame(rect), 1)
        body = rect.inset(6)
        draw_text(surface, frame.title, (body.x, body.y), 20, TEXT_RGB, max_width=body.width)
        y = body.y + 22
        for label, value in frame.gauges:
            draw_gauge(surface, Rect(body.x, y, body.width, 18), label, value)
            y += 21
        if frame.readouts:
            columns = Rect(body.x, y, body.width, 18).split_columns(min(len(frame.readouts), 3), gap=8)
            for index, (label, text) in enumerate(frame.readouts):
                column = columns[index % len(columns)]
                row_y = y + (index // len(columns)) * 19
                draw_text(surface, label, (column.x, row_y), 17, MUTED_RGB)
                draw_text(surface, text, (column.right, row_y), 17, TEXT_RGB, "topright")
            y += ((len(frame.readouts) - 1) // len(columns) + 1) * 19
        if frame.series and body.bottom - y > 30:
            draw_plot(surface, Rect(body.x, y + 2, body.width, body.bottom - y - 2), frame.series, frame.cursor,
                      frame.y_range, frame.plot_title)


def events_at(events_row: np.ndarray) -> dict[str, float]:
    """Event name -> value of one row of the ``events`` field (collision, off-road, lane invasion)."""
    return {name: float(events_row[spec.EVENT_NAMES.index(name)]) for name in EVENT_LABELS}

