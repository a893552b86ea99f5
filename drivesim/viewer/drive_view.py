"""Viewer stage: driving inside the learned simulator, with the keyboard or an evaluation agent."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import pygame

from drivesim.viewer.controls import KeyboardControl
from drivesim.viewer.hud import HUD_HEIGHT_PX, HudFrame, PredictionFrame, PredictionPanel
from drivesim.viewer.layout import Rect, sensor_row
from drivesim.viewer.views import (
    DREAM_RGB,
    MARGIN_PX,
    MIN_WIDTH_PX,
    View,
    draw_sensors,
    label_panels,
)
from drivesim.viewer.widgets import TEXT_RGB, Series, surface_from_array

PANEL_HEIGHT_PX = 230  # three gauges, two rows of readouts and the per-step plot

if TYPE_CHECKING:  # torch stays out of plain replay
    from drivesim.dream.episode import DreamDriver
    from drivesim.viewer.dream import AgentControl

DRIVE_HELP = (
    ("W / S  (up / down)", "throttle / brake"),
    ("A / D  (left / right)", "steer left / right"),
    ("space", "pause"),
    ("r", "restart from the real context"),
    ("p / F12", "screenshot"),
    ("h", "this help"),
    ("Esc", "quit"),
)


class DriveDreamView(View):
    """Driving inside the learned simulator: keyboard (CARLA-style W/S/A/D) or an agent picks the controls.

    Args:
        driver: the dream (world model started from a real context window).
        agent: agent control, None for the keyboard.
        panel_px: side of each sensor panel [px].
        model_label: how the model is named on screen.
        max_steps_per_update: cap on dream steps per ``update`` (keeps a slow model responsive).
    """

    help_lines = DRIVE_HELP

    def __init__(self, driver: DreamDriver, agent: AgentControl | None = None, panel_px: int = 256,
                 model_label: str = "world model", max_steps_per_update: int = 2) -> None:
        super().__init__()
        self.driver = driver
        self.agent = agent
        self.keyboard = KeyboardControl()
        self.pressed = {"throttle": False, "brake": False, "left": False, "right": False}
        self.paused = False
        self.model_label = model_label
        self.max_steps_per_update = max_steps_per_update
        self.panel = PredictionPanel()
        self._clock_s = 0.0
        keys = tuple(key for key in ("camera", "bev") if key in driver.model.image_keys) or ("camera",)
        row = sensor_row(keys, panel_px)
        width = max(row.bounds.width + 2 * MARGIN_PX, MIN_WIDTH_PX)
        self.panels = sensor_row(keys, panel_px, (width - row.bounds.width) // 2, MARGIN_PX).panels
        self.hud_rect = Rect(MARGIN_PX, row.bounds.bottom + MARGIN_PX, width - 2 * MARGIN_PX, HUD_HEIGHT_PX)
        self.panel_rect = Rect(MARGIN_PX, self.hud_rect.bottom + MARGIN_PX, width - 2 * MARGIN_PX, PANEL_HEIGHT_PX)
        self.frame_size = (width, self.panel_rect.bottom + MARGIN_PX)

    @property
    def control_name(self) -> str:
        return f"agent {self.agent.name}" if self.agent else "keyboard"

    def handle(self, command: str) -> bool:
        if command == "toggle_play":
            self.paused = not self.paused
            return True
        if command == "reset":
            self.driver.reset()
            self.hud.notify("back to the real context")
            return True
        return super().handle(command)

    def set_pressed(self, throttle: bool, brake: bool, left: bool, right: bool) -> None:
        """Which driving keys are held (the window reads them every frame)."""
        self.pressed = {"throttle": throttle, "brake": brake, "left": left, "right": right}

    def next_action(self, dt_s: float) -> np.ndarray:
        """The control of the next dream step: the agent's, else the keyboard's."""
        if self.agent is not None:
            return self.agent(self.driver)
        return self.keyboard.update(dt_s=dt_s, **self.pressed)

    def update(self, dt_s: float) -> None:
        """Step the dream in (episode) real time while not paused."""
        super().update(dt_s)
        if self.paused:
            return
        step_s = self.driver.episode.dt_s
        self._clock_s = min(self._clock_s + dt_s, self.max_steps_per_update * step_s)
        while self._clock_s >= step_s and not self.paused:
            self._clock_s -= step_s
            if self.driver.step(self.next_action(step_s)).terminated:
                self.paused = True
                self.hud.notify("the dream ended (P(continue) low): r restarts, space goes on", 4.0)

    def _frames(self) -> tuple[HudFrame, PredictionFrame]:
        current, history, dt_s = self.driver.current, self.driver.history, self.driver.episode.dt_s
        components = current.components
        rewards = np.array([step.reward for step in history[1:]], np.float32)
        speeds = np.array([step.components["speed"] for step in history], np.float32)
        hud = HudFrame(
            title=f"dream drive: {self.control_name}",
            step=self.driver.steps,
            length=self.driver.steps + 1,
            dt_s=dt_s,
            speed_mps=components["speed"],
            action=current.action,
            events={"collision": components["collision"], "off_road": components["off_road"]},
            status=("ended" if current.terminated else "paused") if self.paused else "dreaming",
            speed_series=speeds,
        )
        panel = PredictionFrame(
            title=f"predicted reward components ({self.model_label})",
            gauges=[("collision", components["collision"]), ("off-road", components["off_road"]),
                    ("episode end", 1.0 - components["cont"])],
            readouts=[("progress", f"{components['progress']:.2f} m"), ("reward", f"{current.reward:+.2f}"),
                      ("return", f"{rewards.sum():+.1f}"),
                      ("from", f"{self.driver.episode.name} @{self.driver.start_step}"),
                      ("dream steps", str(self.driver.steps)), ("time", f"{self.driver.steps * dt_s:.1f} s")],
            series=[Series(rewards, DREAM_RGB, "reward"),
                    Series(np.array([s.components["progress"] for s in history[1:]]), TEXT_RGB, "progress")],
            cursor=None,
            plot_title="per step",
        )
        return hud, panel

    def _draw(self, canvas: np.ndarray) -> pygame.Surface:
        missing = draw_sensors(canvas, self.panels, self.driver.current.images)
        surface = surface_from_array(canvas)
        label_panels(surface, self.panels, "dream ", missing, "context (posterior)" if self.driver.steps == 0 else "")
        hud, panel = self._frames()
        self.hud.tick(hud, self._elapsed_s)
        self.hud.render(surface, self.hud_rect)
        self.panel.tick(panel)
        self.panel.render(surface, self.panel_rect)
        return surface

    def export_frames(self, max_frames: int | None = None) -> tuple[Iterator[np.ndarray], int]:
        """The real start frame then ``max_frames - 1`` dream steps (default 100 frames).

        Without an agent the recorded controls that followed the start frame drive the dream (zeros after
        the episode's end), so a headless export of keyboard mode is reproducible.
        """
        count = max_frames or 100
        self.driver.reset()
        actions = self.driver.episode.fields["action"][self.driver.start_step :]

        def frames() -> Iterator[np.ndarray]:
            yield self.render()
            for index in range(count - 1):
                if self.agent is not None:
                    action = self.agent(self.driver)
                else:
                    action = actions[index] if index < len(actions) else np.zeros(3, np.float32)
                self.driver.step(action)
                yield self.render()

        return frames(), count
