"""Dream views with a randomly initialised debug world model: open-loop beside reality, driving in the dream."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pygame
import pytest

from drivesim import spec
from drivesim.dream.episode import DreamDriver, OpenLoopDreamer
from drivesim.viewer.app import ViewerApp
from drivesim.viewer.controls import KeyboardControl
from drivesim.viewer.dream import AgentControl, dream_observation, load_model
from drivesim.viewer.drive_view import DriveDreamView
from drivesim.viewer.export import export_video
from drivesim.viewer.replay import EpisodeLibrary
from drivesim.viewer.views import DreamCompareView
from drivesim.world_model.model import WorldModel

from .viewer_fixtures import LENGTH


@pytest.fixture(scope="module")
def model(debug_checkpoint: Path) -> WorldModel:
    loaded, label = load_model(debug_checkpoint)
    assert label == "world model debug.ckpt"
    return loaded


def test_open_loop_dream_beside_reality_and_reanchor(model: WorldModel, dataset: Path) -> None:
    view = DreamCompareView(EpisodeLibrary(dataset), OpenLoopDreamer(model, context_steps=4, horizon_steps=6),
                            panel_px=64, playing=False)
    rollout = view.rollout
    assert (rollout.anchor, rollout.horizon) == (3, 6)
    assert rollout.images["camera"].shape == (6, 32, 32, 3) and rollout.images["bev"].shape == (6, len(spec.BEV_CHANNELS), 32, 32)
    assert set(rollout.components) >= {"collision", "off_road", "progress"}
    view.player.seek(5)
    frame = view.render()
    assert frame.shape == (view.frame_size[1], view.frame_size[0], 3)
    real, dream = view.panels["camera"], view.dream_panels["camera"]
    assert dream.x > real.right
    assert not np.array_equal(frame[real.y : real.bottom, real.x : real.right],
                              frame[dream.y : dream.bottom, dream.x : dream.right])

    app = ViewerApp(view)
    view.player.seek(12)
    app.dispatch_key(pygame.K_a)
    assert view.rollout.anchor == 12
    view.player.seek(LENGTH - 1)  # past the horizon: re-anchors, nothing left to predict at the last frame
    view.render()
    assert (view.rollout.anchor, view.rollout.horizon) == (LENGTH - 1, 0)


def test_drive_in_the_dream_with_keyboard_and_agent(model: WorldModel, dataset: Path, tmp_path: Path) -> None:
    episode = EpisodeLibrary(dataset)[0]
    driver = DreamDriver(model, episode, context_steps=4, terminate_below_cont=0.0)  # an untrained model may "end"
    assert driver.start_step == 3 and driver.steps == 0
    view = DriveDreamView(driver, panel_px=64)
    held = defaultdict(bool, {pygame.K_w: True, pygame.K_a: True})
    ViewerApp(view).read_held_keys(held)  # W and A held, as pygame.key.get_pressed() reports them
    view.update(0.1)  # two steps of 0.05 s
    assert driver.steps == 2
    throttle, steer, brake = driver.current.action
    assert throttle > 0 and steer < 0 and brake == 0
    assert driver.current.images["camera"].shape == (32, 32, 3)
    view.handle("toggle_play")
    view.update(1.0)
    assert driver.steps == 2  # paused
    view.handle("reset")
    assert driver.steps == 0

    observation = dream_observation(driver, 64)  # what an agent sees: the real simulator's sizes
    assert observation["camera"].shape == (64, 64, 3) and observation["bev"].shape == (len(spec.BEV_CHANNELS), 64, 64)
    assert observation["route"].shape == (16, 2)
    agent = AgentControl("constant:0.7,0.2", driver)
    np.testing.assert_allclose(agent(driver), [0.7, 0.2, 0.0])
    frames, total = DriveDreamView(driver, agent, panel_px=64).export_frames(max_frames=4)
    result = export_video(frames, tmp_path / "dream.gif", fps=20, total=total, show_progress=False)
    assert result.frames == 4 and iio.imread(tmp_path / "dream.gif", index=None).shape[0] == 4
    np.testing.assert_allclose(driver.current.action, [0.7, 0.2, 0.0])
    with pytest.raises(ValueError, match="real simulator"):
        AgentControl("expert", driver)


def test_the_dream_pauses_when_it_ends(model: WorldModel, dataset: Path) -> None:
    driver = DreamDriver(model, EpisodeLibrary(dataset)[0], context_steps=4, terminate_below_cont=1.0)
    view = DriveDreamView(driver, panel_px=64)
    view.update(0.1)
    assert driver.steps == 1 and driver.current.terminated and view.paused
    view.render()


def test_keyboard_control_ramps_and_releases() -> None:
    keyboard = KeyboardControl(throttle_rate=2.0, steer_rate=1.0, max_steer=0.7)
    np.testing.assert_allclose(keyboard.update(True, False, False, True, 0.1), [0.2, 0.1, 0.0])
    np.testing.assert_allclose(keyboard.update(True, False, False, True, 0.1), [0.4, 0.2, 0.0], atol=1e-6)
    np.testing.assert_allclose(keyboard.update(False, True, True, False, 0.1), [0.0, -0.1, 0.4], atol=1e-6)
    assert keyboard.update(False, False, True, False, 5.0)[1] == pytest.approx(-0.7)
    np.testing.assert_allclose(keyboard.update(False, False, False, False, 0.1), [0.0, 0.0, 0.0])
