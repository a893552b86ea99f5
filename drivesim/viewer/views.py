"""Viewer stage: the replay and real-vs-dream views, and the base class of every view (see also drive_view).

A view turns its state into (H, W, 3) uint8 RGB frames with ``render()``; the same frames go to the pygame
window (``drivesim.viewer.app``) and to the exporter (``drivesim.viewer.export``). Commands come in as strings
(``handle``), wall time as ``update(dt_s)``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pygame

from drivesim import spec
from drivesim.viewer.hud import HUD_HEIGHT_PX, Hud, HudFrame, PredictionFrame, PredictionPanel, events_at
from drivesim.viewer.layout import Rect, dim, new_canvas, paste, sensor_images, sensor_row
from drivesim.viewer.replay import EVENT_KINDS, Episode, EpisodeLibrary, ReplayPlayer
from drivesim.viewer.widgets import (
    ALERT_RGB,
    MUTED_RGB,
    TEXT_RGB,
    WARN_RGB,
    Series,
    array_from_surface,
    draw_label,
    draw_text,
    surface_from_array,
)

if TYPE_CHECKING:  # the dream views need torch; plain replay does not import it
    from drivesim.dream.episode import DreamRollout, OpenLoopDreamer

MARGIN_PX = 8
MIN_WIDTH_PX = 560
PREDICTION_HEIGHT_PX = 180
DREAM_RGB = (110, 160, 250)
EVENT_LEAD_STEPS = 10  # an event jump anchors the dream this many steps before the event
PROGRESS_INDEX = spec.EVENT_NAMES.index("progress_m")
SPEED_INDEX = spec.MEASUREMENT_NAMES.index("speed_mps")
COMPLETION_INDEX = spec.EVENT_NAMES.index("route_completion")
SENSOR_LABELS = {"camera": "camera", "bev": "BEV"}

REPLAY_HELP = (
    ("space", "play / pause"),
    ("left / right", "step back / forward"),
    ("up / down", "faster / slower"),
    ("PgUp / PgDn", "previous / next episode"),
    ("Home / End", "first / last frame"),
    ("c / o / l", "next collision / off-road / lane invasion"),
    ("s", "screenshot"),
    ("h", "this help"),
    ("Esc", "quit"),
)
DREAM_HELP = (*REPLAY_HELP[:-1], ("a", "re-anchor the dream at this frame"), REPLAY_HELP[-1])


def draw_sensors(canvas: np.ndarray, panels: dict[str, Rect], frame: dict[str, np.ndarray] | None,
                 darken: bool = False) -> list[str]:
    """Paste the sensor images of ``frame`` into their panels; returns the keys it had no image for."""
    images = sensor_images(frame or {})
    missing = []
    for key, rect in panels.items():
        if key in images:
            paste(canvas, dim(images[key]) if darken else images[key], rect)
        else:
            missing.append(key)
    return missing


def label_panels(surface: pygame.Surface, panels: dict[str, Rect], prefix: str, missing: Sequence[str],
                 note: str = "") -> None:
    """Caption every panel; say "no camera"/"no BEV" on ``missing`` ones, else show ``note`` on top."""
    for key, rect in panels.items():
        draw_label(surface, rect, f"{prefix}{SENSOR_LABELS[key]}")
        if key in missing:
            draw_text(surface, f"no {SENSOR_LABELS[key]}", (rect.x + rect.width // 2, rect.y + rect.height // 2), 24,
                      MUTED_RGB, "center")
        elif note:
            draw_text(surface, note, (rect.x + rect.width // 2, rect.y + 16), 22, WARN_RGB, "center")


class View:
    """Base of the views: HUD with notices/help, frame size, command handling, frames for export."""

    help_lines: Sequence[tuple[str, str]] = ()

    def __init__(self) -> None:
        self.hud = Hud(self.help_lines)
        self.frame_size = (MIN_WIDTH_PX, 400)
        self._elapsed_s = 0.0

    def handle(self, command: str) -> bool:
        """Apply a command (``help`` here, the rest in subclasses); returns whether it was known."""
        if command == "help":
            self.hud.toggle_help()
            return True
        return False

    def update(self, dt_s: float) -> None:
        """Let ``dt_s`` seconds of wall time pass."""
        self._elapsed_s += dt_s

    def render(self) -> np.ndarray:
        """The current frame (H, W, 3) uint8."""
        canvas = new_canvas(*self.frame_size)
        surface = self._draw(canvas)
        self.hud.render_overlays(surface)
        self._elapsed_s = 0.0
        return array_from_surface(surface)

    def _draw(self, canvas: np.ndarray) -> pygame.Surface:
        raise NotImplementedError

    def export_frames(self, max_frames: int | None = None) -> tuple[Iterator[np.ndarray], int]:
        """Frames of a headless export and their count."""
        raise NotImplementedError


class ReplayView(View):
    """Camera, BEV and HUD of a recorded episode, driven by a ``ReplayPlayer``.

    Args:
        library: episodes to play.
        position: first episode (list position).
        panel_px: side of each sensor panel [px] (64x64 frames are upscaled nearest-neighbour).
        playing: start playing.
    """

    help_lines = REPLAY_HELP

    def __init__(self, library: EpisodeLibrary, position: int = 0, panel_px: int = 256, playing: bool = True) -> None:
        super().__init__()
        self.player = ReplayPlayer(library, position, playing)
        self.sensor_keys = library[position].sensors or ("camera",)
        self.panel_px = panel_px
        self._layout()

    def _layout(self) -> None:
        row = sensor_row(self.sensor_keys, self.panel_px)
        width = max(row.bounds.width + 2 * MARGIN_PX, MIN_WIDTH_PX)
        self.panels = sensor_row(self.sensor_keys, self.panel_px, (width - row.bounds.width) // 2, MARGIN_PX).panels
        self.hud_rect = Rect(MARGIN_PX, row.bounds.height + 2 * MARGIN_PX, width - 2 * MARGIN_PX, HUD_HEIGHT_PX)
        self.frame_size = (width, self.hud_rect.bottom + MARGIN_PX)

    @property
    def episode(self) -> Episode:
        return self.player.episode

    def handle(self, command: str) -> bool:
        known = super().handle(command) or self.player.handle(command)
        if self.player.message:
            self.hud.notify(self.player.message)
            self.player.message = None
        return known

    def update(self, dt_s: float) -> None:
        super().update(dt_s)
        self.player.advance(dt_s)

    def hud_frame(self) -> HudFrame:
        """The HUD content of the current step."""
        episode, step, library = self.episode, self.player.step, self.player.library
        row = episode.frame(step)
        filtered = f", {library.event_filter} only" if library.event_filter else ""
        driver = episode.meta.get("driver")
        markers = [(int(s), name) for name in EVENT_KINDS for s in episode.event_steps(name)]
        return HudFrame(
            title=f"{episode.name}  ({self.player.position + 1}/{len(library)}{filtered})" + (f"  {driver}" if driver else ""),
            step=step,
            length=episode.length,
            dt_s=episode.dt_s,
            speed_mps=float(row["measurements"][SPEED_INDEX]),
            action=row["action"],
            route_completion=float(row["events"][COMPLETION_INDEX]),
            events=events_at(row["events"]),
            status=f"playing x{self.player.speed:g}" if self.player.playing else f"paused (x{self.player.speed:g})",
            speed_series=episode.speed_series,
            event_markers=markers,
        )

    def _draw(self, canvas: np.ndarray) -> pygame.Surface:
        missing = draw_sensors(canvas, self.panels, self.episode.frame(self.player.step))
        surface = surface_from_array(canvas)
        label_panels(surface, self.panels, "", missing)
        self.hud.tick(self.hud_frame(), self._elapsed_s)
        self.hud.render(surface, self.hud_rect)
        return surface

    def export_frames(self, max_frames: int | None = None) -> tuple[Iterator[np.ndarray], int]:
        """Every step of the current episode (at most ``max_frames``)."""
        count = min(self.episode.length, max_frames or self.episode.length)
        self.player.playing = False

        def frames() -> Iterator[np.ndarray]:
            for step in range(count):
                self.player.seek(step)
                yield self.render()

        return frames(), count


class DreamCompareView(ReplayView):
    """Real frames beside the world model's open-loop dream from an anchor frame, with outcome panels.

    The dream observes the frames up to the anchor and rolls the prior with the recorded controls. ``a``
    (command ``reanchor``) re-anchors at the current frame; going past the horizon re-anchors automatically,
    and an event jump (``c``/``o``/``l``) anchors ``EVENT_LEAD_STEPS`` before the event.

    Args:
        library: episodes to play.
        dreamer: the open-loop dreamer (world model, context and horizon).
        position: first episode.
        panel_px: side of each sensor panel [px].
        model_label: how the model is named on screen (e.g. "untrained debug world model").
        playing: start playing.
    """

    help_lines = DREAM_HELP

    def __init__(self, library: EpisodeLibrary, dreamer: OpenLoopDreamer, position: int = 0, panel_px: int = 192,
                 model_label: str = "world model", playing: bool = True) -> None:
        self.dreamer = dreamer
        self.model_label = model_label
        self.real_panel, self.dream_panel = PredictionPanel(), PredictionPanel()
        self._rollout: DreamRollout | None = None
        self._rollout_episode: int | None = None
        super().__init__(library, position, panel_px, playing)

    def _layout(self) -> None:
        row = sensor_row(self.sensor_keys, self.panel_px)
        column_gap = 3 * MARGIN_PX
        width = max(2 * row.bounds.width + column_gap + 2 * MARGIN_PX, MIN_WIDTH_PX)
        left = (width - 2 * row.bounds.width - column_gap) // 2
        self.panels = sensor_row(self.sensor_keys, self.panel_px, left, MARGIN_PX).panels
        dream_x = left + row.bounds.width + column_gap
        self.dream_panels = sensor_row(self.sensor_keys, self.panel_px, dream_x, MARGIN_PX).panels
        below = row.bounds.height + 2 * MARGIN_PX
        self.real_rect = Rect(left, below, row.bounds.width, PREDICTION_HEIGHT_PX)
        self.dream_rect = Rect(dream_x, below, row.bounds.width, PREDICTION_HEIGHT_PX)
        self.hud_rect = Rect(MARGIN_PX, self.real_rect.bottom + MARGIN_PX, width - 2 * MARGIN_PX, HUD_HEIGHT_PX)
        self.frame_size = (width, self.hud_rect.bottom + MARGIN_PX)

    @property
    def rollout(self) -> DreamRollout:
        """The current dream, re-anchored when the episode changed or playback passed its horizon."""
        step = self.player.step
        if self._rollout is None or self._rollout_episode != self.player.position:
            self.reanchor(max(step, min(self.dreamer.context_steps, self.episode.length) - 1))
        elif step > self._rollout.anchor + self._rollout.horizon:
            self.reanchor(step)
        assert self._rollout is not None
        return self._rollout

    def reanchor(self, step: int) -> None:
        """Dream again from ``step`` (the last observed frame)."""
        self._rollout = self.dreamer.rollout(self.episode, step)
        self._rollout_episode = self.player.position

    def handle(self, command: str) -> bool:
        if command == "reanchor":
            self.reanchor(self.player.step)
            self.hud.notify(f"dream re-anchored at step {self.player.step}")
            return True
        before = (self.player.position, self.player.step)
        known = super().handle(command)
        if command.startswith("next_") and (self.player.position, self.player.step) != before:
            # anchor shortly before the event, so the dream shows whether the model saw it coming
            self.reanchor(max(self.player.step - EVENT_LEAD_STEPS, 0))
        return known

    def _panel_frames(self, rollout: DreamRollout) -> tuple[PredictionFrame, PredictionFrame]:
        """Outcome panels under the real and the dream columns for the current step."""
        episode, step = self.episode, self.player.step
        index = rollout.index(step)  # None at or before the anchor: nothing predicted yet

        def at(values: np.ndarray) -> float:
            return float(values[index]) if index is not None else 0.0

        future = episode.fields["events"][rollout.anchor + 1 : rollout.anchor + 1 + rollout.horizon]
        real_progress = np.cumsum(future[:, PROGRESS_INDEX])
        predicted = {name: rollout.components.get(name, np.zeros(0)) for name in ("progress", "speed", "collision", "off_road")}
        dream_progress = np.cumsum(predicted["progress"])
        row = episode.frame(step)
        real_events = events_at(row["events"])
        real = PredictionFrame(
            title="reality",
            gauges=[("collision", real_events["collision"]), ("off-road", real_events["off_road"])],
            readouts=[("progress", f"{at(real_progress):.1f} m"),
                      ("speed", f"{row['measurements'][SPEED_INDEX] * 3.6:.0f} km/h"),
                      ("reward", f"{episode.fields['reward'][step]:+.2f}")],
            series=[Series(real_progress, TEXT_RGB, "real"), Series(dream_progress, DREAM_RGB, "dream")],
            cursor=index,
            plot_title="progress since anchor [m]",
        )
        dream = PredictionFrame(
            title=f"dream from step {rollout.anchor} ({self.model_label})",
            gauges=[("collision", at(predicted["collision"])), ("off-road", at(predicted["off_road"]))],
            readouts=[("progress", f"{at(dream_progress):.1f} m"), ("speed", f"{at(predicted['speed']) * 3.6:.0f} km/h"),
                      ("reward", f"{at(rollout.reward):+.2f}")],
            series=[Series(predicted["collision"], ALERT_RGB, "p(collision)"),
                    Series(predicted["off_road"], WARN_RGB, "p(off-road)")],
            cursor=index,
            y_range=(0.0, 1.0),
            plot_title="predicted events",
        )
        return real, dream

    def _draw(self, canvas: np.ndarray) -> pygame.Surface:
        rollout, step = self.rollout, self.player.step
        real_frame = self.episode.frame(step)
        missing = draw_sensors(canvas, self.panels, real_frame)
        predicted = rollout.frame(step)
        if predicted is not None:
            note, dream_missing = "", draw_sensors(canvas, self.dream_panels, predicted)
        else:  # at or before the anchor (observed), or an anchor on the last frame (nothing left to predict)
            note = "context (observed)" if rollout.horizon else "last frame: nothing to predict"
            dream_missing = draw_sensors(canvas, self.dream_panels, real_frame, True)
        surface = surface_from_array(canvas)
        label_panels(surface, self.panels, "real ", missing)
        label_panels(surface, self.dream_panels, "dream ", dream_missing, note)
        real, dream = self._panel_frames(rollout)
        self.real_panel.tick(real)
        self.dream_panel.tick(dream)
        self.real_panel.render(surface, self.real_rect)
        self.dream_panel.render(surface, self.dream_rect)
        self.hud.tick(self.hud_frame(), self._elapsed_s)
        self.hud.render(surface, self.hud_rect)
        return surface
