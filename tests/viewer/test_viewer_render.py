"""Rendered replay frames: camera and BEV where the layout puts them, HUD text that follows the speed."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from drivesim.viewer.layout import BEV_COLOURS_RGB, Rect
from drivesim.viewer.replay import EpisodeLibrary
from drivesim.viewer.views import ReplayView
from drivesim.viewer.widgets import ALERT_RGB

from .viewer_fixtures import CAMERA_RGB, write_dataset


def _centre(frame: np.ndarray, rect: Rect) -> tuple[int, ...]:
    return tuple(int(v) for v in frame[rect.y + rect.height // 2, rect.x + rect.width // 2])


def _render(view: ReplayView, position: int, step: int) -> np.ndarray:
    view.player.select(position)
    view.player.seek(step)
    return view.render()


def test_camera_and_bev_are_drawn_in_their_panels(dataset: Path) -> None:
    view = ReplayView(EpisodeLibrary(dataset), panel_px=128, playing=False)
    frame = view.render()
    assert frame.shape == (view.frame_size[1], view.frame_size[0], 3) and frame.dtype == np.uint8
    camera, bev = view.panels["camera"], view.panels["bev"]
    assert camera.right <= bev.x and camera.bottom <= view.hud_rect.y
    assert _centre(frame, camera) == CAMERA_RGB
    assert _centre(frame, bev) == BEV_COLOURS_RGB["drivable"]
    panel = frame[camera.y : camera.y + 100, camera.x : camera.right]  # above the caption strip
    assert (panel == CAMERA_RGB).all(axis=-1).mean() > 0.99
    hud = frame[view.hud_rect.y : view.hud_rect.bottom, view.hud_rect.x : view.hud_rect.right]
    assert not (hud == CAMERA_RGB).all(axis=-1).any()


def test_hud_speed_text_follows_the_episode_speed(dataset: Path) -> None:
    view = ReplayView(EpisodeLibrary(dataset), playing=False)
    slow = _render(view, 0, 3)
    slow_box = view.hud.regions["speed"]
    slow_again = _render(view, 0, 4)  # same speed one step later: same speed text
    fast = _render(view, 1, 3)  # 20 m/s instead of 5 m/s
    fast_box = view.hud.regions["speed"]
    assert slow_box.y == fast_box.y and view.hud_rect.y <= slow_box.y and slow_box.bottom <= view.hud_rect.bottom
    box = Rect(slow_box.x, slow_box.y, max(slow_box.width, fast_box.width), slow_box.height)

    def crop(frame: np.ndarray) -> np.ndarray:
        return frame[box.y : box.bottom, box.x : box.right]

    np.testing.assert_array_equal(crop(slow), crop(slow_again))
    assert (crop(slow) != crop(fast)).any(axis=-1).sum() > 20


def test_camera_only_and_bev_only_episodes(tmp_path: Path) -> None:
    for sensors in (("camera",), ("bev",)):
        data = write_dataset(tmp_path / sensors[0], sensors)
        view = ReplayView(EpisodeLibrary(data), panel_px=64, playing=False)
        assert tuple(view.panels) == sensors
        frame = view.render()
        expected = CAMERA_RGB if sensors == ("camera",) else BEV_COLOURS_RGB["drivable"]
        assert _centre(frame, view.panels[sensors[0]]) == expected


def test_event_badges_light_up_at_a_collision(dataset: Path) -> None:
    view = ReplayView(EpisodeLibrary(dataset), playing=False)
    quiet, crash = _render(view, 0, 9), _render(view, 0, 10)
    badges = view.hud.regions["badges"]
    red = np.array(ALERT_RGB)
    count = [int((frame[badges.y : badges.bottom, badges.x : badges.right] == red).all(-1).sum()) for frame in (quiet, crash)]
    assert count[0] == 0 and count[1] > 200
