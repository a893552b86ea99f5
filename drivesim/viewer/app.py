"""Viewer stage: the pygame window loop and the key bindings of the three views."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pygame

from drivesim.viewer.drive_view import DriveDreamView
from drivesim.viewer.views import View
from drivesim.viewer.widgets import ensure_pygame, surface_from_array

logger = logging.getLogger(__name__)

# Window-level commands, handled here; every other command goes to the view.
QUIT, SCREENSHOT = "quit", "screenshot"

REPLAY_KEYS: dict[int, str] = {
    pygame.K_SPACE: "toggle_play",
    pygame.K_RIGHT: "step_forward",
    pygame.K_LEFT: "step_back",
    pygame.K_UP: "faster",
    pygame.K_DOWN: "slower",
    pygame.K_PAGEUP: "prev_episode",
    pygame.K_PAGEDOWN: "next_episode",
    pygame.K_HOME: "home",
    pygame.K_END: "end",
    pygame.K_c: "next_collision",
    pygame.K_o: "next_off_road",
    pygame.K_l: "next_lane_invasion",
    pygame.K_a: "reanchor",
    pygame.K_s: SCREENSHOT,
    pygame.K_F12: SCREENSHOT,
    pygame.K_h: "help",
    pygame.K_ESCAPE: QUIT,
    pygame.K_q: QUIT,
}
DRIVE_KEYS: dict[int, str] = {
    pygame.K_SPACE: "toggle_play",
    pygame.K_r: "reset",
    pygame.K_BACKSPACE: "reset",
    pygame.K_p: SCREENSHOT,
    pygame.K_F12: SCREENSHOT,
    pygame.K_h: "help",
    pygame.K_ESCAPE: QUIT,
}
# Held keys of driving in the dream (read every frame, like CARLA's manual_control).
THROTTLE_KEYS = (pygame.K_w, pygame.K_UP)
BRAKE_KEYS = (pygame.K_s, pygame.K_DOWN)
LEFT_KEYS = (pygame.K_a, pygame.K_LEFT)
RIGHT_KEYS = (pygame.K_d, pygame.K_RIGHT)


def key_bindings(view: View) -> dict[int, str]:
    """The key -> command map of a view."""
    return DRIVE_KEYS if isinstance(view, DriveDreamView) else REPLAY_KEYS


class ViewerApp:
    """Dispatches keys to a view and handles window commands (quit, screenshots).

    Args:
        view: the view to show.
        screenshot_dir: where ``s``/``p``/F12 screenshots go.
    """

    def __init__(self, view: View, screenshot_dir: str | Path = "screenshots") -> None:
        self.view = view
        self.screenshot_dir = Path(screenshot_dir)
        self.running = True
        self.bindings = key_bindings(view)
        self._screenshots = 0

    def dispatch_key(self, key: int) -> str | None:
        """Run the command bound to ``key``; returns the command (None when unbound)."""
        command = self.bindings.get(key)
        if command == QUIT:
            self.running = False
        elif command == SCREENSHOT:
            self.screenshot(self.view.render())
        elif command is not None:
            self.view.handle(command)
        return command

    def process_events(self, events: Iterable[pygame.event.Event]) -> None:
        """Handle a batch of pygame events (key presses and window close)."""
        for event in events:
            if event.type == pygame.QUIT:
                self.running = False
            elif event.type == pygame.KEYDOWN:
                self.dispatch_key(event.key)

    def read_held_keys(self, pressed: pygame.key.ScancodeWrapper | dict[int, bool]) -> None:
        """Pass the held driving keys to a drive-in-the-dream view."""
        if isinstance(self.view, DriveDreamView):
            held = [any(pressed[key] for key in keys) for keys in (THROTTLE_KEYS, BRAKE_KEYS, LEFT_KEYS, RIGHT_KEYS)]
            self.view.set_pressed(*held)

    def screenshot(self, frame: np.ndarray) -> Path:
        """Save a frame as PNG in the screenshot folder and tell the HUD."""
        import imageio.v3 as iio

        self.screenshot_dir.mkdir(parents=True, exist_ok=True)
        path = self.screenshot_dir / f"drivesim_{time.strftime('%Y%m%d_%H%M%S')}_{self._screenshots:03d}.png"
        self._screenshots += 1
        iio.imwrite(path, frame)
        self.view.hud.notify(f"saved {path}")
        logger.info("screenshot %s", path)
        return path

    def run(self, title: str = "drivesim", fps: float = 30.0, max_seconds: float | None = None) -> None:
        """Open the window and loop until Esc or close (or ``max_seconds``, for smoke tests)."""
        ensure_pygame()
        pygame.display.init()
        try:
            pygame.display.set_caption(title)
            screen = pygame.display.set_mode(self.view.frame_size)
            clock = pygame.time.Clock()
            started = time.monotonic()
            while self.running:
                dt_s = clock.tick(fps) / 1000.0
                self.process_events(pygame.event.get())
                self.read_held_keys(pygame.key.get_pressed())
                self.view.update(dt_s)
                screen.blit(surface_from_array(self.view.render()), (0, 0))
                pygame.display.flip()
                if max_seconds is not None and time.monotonic() - started > max_seconds:
                    break
        finally:
            pygame.display.quit()
