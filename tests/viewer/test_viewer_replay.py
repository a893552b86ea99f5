"""Replay player state machine and key handling (keys posted through pygame's event queue)."""

from __future__ import annotations

from pathlib import Path

import pygame
import pytest

from drivesim.viewer.app import ViewerApp
from drivesim.viewer.replay import EpisodeLibrary, ReplayPlayer, find_episodes
from drivesim.viewer.views import ReplayView

from .viewer_fixtures import LENGTH


def _key(app: ViewerApp, *keys: int) -> None:
    for key in keys:
        pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=key, mod=0, unicode="", scancode=0))
    app.process_events(pygame.event.get(pygame.KEYDOWN))


@pytest.fixture
def app(dataset: Path, tmp_path: Path) -> ViewerApp:
    pygame.display.init()
    pygame.display.set_mode((8, 8))
    view = ReplayView(EpisodeLibrary(dataset), panel_px=64, playing=False)
    return ViewerApp(view, tmp_path / "shots")


def test_keys_step_seek_and_switch_episodes(app: ViewerApp) -> None:
    player = app.view.player
    _key(app, pygame.K_RIGHT, pygame.K_RIGHT, pygame.K_RIGHT, pygame.K_LEFT)
    assert (player.position, player.step) == (0, 2)
    _key(app, pygame.K_END)
    assert player.step == LENGTH - 1
    _key(app, pygame.K_HOME)
    assert player.step == 0
    _key(app, pygame.K_LEFT)
    assert player.step == 0  # clipped
    _key(app, pygame.K_PAGEDOWN)
    assert (player.position, player.step) == (1, 0)
    _key(app, pygame.K_PAGEDOWN)
    assert player.position == 0  # wraps
    _key(app, pygame.K_PAGEUP)
    assert player.position == 1
    _key(app, pygame.K_UP, pygame.K_UP)
    assert player.speed == 4.0
    _key(app, pygame.K_DOWN)
    assert player.speed == 2.0
    _key(app, pygame.K_SPACE)
    assert player.playing
    _key(app, pygame.K_ESCAPE)
    assert not app.running


def test_event_jumps_cross_episodes_and_wrap(app: ViewerApp) -> None:
    player = app.view.player
    _key(app, pygame.K_c)
    assert (player.position, player.step) == (0, 10)
    _key(app, pygame.K_c)
    assert (player.position, player.step) == (0, 20)
    _key(app, pygame.K_c)
    assert (player.position, player.step) == (1, 5)
    _key(app, pygame.K_c)
    assert (player.position, player.step) == (0, 10)  # wrapped around
    _key(app, pygame.K_o)
    assert (player.position, player.step) == (0, 15)
    _key(app, pygame.K_l)
    assert (player.position, player.step) == (1, 8)


def test_screenshot_and_help_keys(app: ViewerApp) -> None:
    _key(app, pygame.K_s)
    shots = list(app.screenshot_dir.glob("*.png"))
    assert len(shots) == 1
    _key(app, pygame.K_h)
    assert app.view.hud.show_help


def test_playback_advances_in_episode_time(dataset: Path) -> None:
    player = ReplayPlayer(EpisodeLibrary(dataset))
    assert player.advance(0.26)  # 0.26 s at x1 and dt 0.05 s: 5 frames
    assert player.step == 5
    player.handle("faster")
    player.advance(0.1)
    assert player.step == 9
    player.advance(100.0)
    assert player.step == LENGTH - 1 and not player.playing
    player.handle("toggle_play")
    assert player.playing and player.step == 0  # play again from the start


def test_library_filter_and_run_folders(dataset: Path, tmp_path: Path) -> None:
    assert len(EpisodeLibrary(dataset, "collision")) == 2
    only = EpisodeLibrary(dataset, "off-road")
    assert [path.name for path in only.paths] == ["ep_000000"]
    assert EpisodeLibrary(dataset).position(1) == 1
    with pytest.raises(FileNotFoundError):
        EpisodeLibrary(tmp_path)
    with pytest.raises(ValueError, match="unknown event"):
        EpisodeLibrary(dataset, "explosion")
    run = tmp_path / "run"
    run.mkdir()
    (run / "episodes").symlink_to(dataset)
    assert len(find_episodes(run)) == 2
    assert find_episodes(dataset / "ep_000001") == [dataset / "ep_000001"]


def test_window_loop_runs_headless(app: ViewerApp) -> None:
    app.view.player.playing = True
    app.run(fps=100, max_seconds=0.3)
    assert app.view.player.step > 0
