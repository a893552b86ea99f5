"""Headless export: mp4 and gif files that read back with the expected frame count and size."""

from __future__ import annotations

from pathlib import Path

import imageio.v2 as imageio
import imageio.v3 as iio
import numpy as np
import pytest

from drivesim.viewer.export import export_video, parse_size
from drivesim.viewer.replay import EpisodeLibrary
from drivesim.viewer.views import ReplayView


def test_replay_exports_to_mp4_and_gif(dataset: Path, tmp_path: Path) -> None:
    view = ReplayView(EpisodeLibrary(dataset), panel_px=64, playing=False)
    width, height = view.frame_size
    frames, total = view.export_frames(max_frames=6)
    result = export_video(frames, tmp_path / "replay.mp4", fps=10, total=total, show_progress=False)
    assert (result.frames, result.size) == (6, (width + width % 2, height + height % 2))
    reader = imageio.get_reader(tmp_path / "replay.mp4")
    assert sum(1 for _ in reader) == 6
    assert tuple(reader.get_meta_data()["size"]) == result.size
    reader.close()

    frames, total = view.export_frames(max_frames=5)
    result = export_video(frames, tmp_path / "replay.gif", fps=10, total=total, size=(200, 150), show_progress=False)
    gif = iio.imread(tmp_path / "replay.gif", index=None)
    assert gif.shape[:3] == (5, 150, 200) and result.size == (200, 150)


def test_export_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="mp4"):
        export_video([np.zeros((4, 4, 3), np.uint8)], tmp_path / "x.avi", show_progress=False)
    with pytest.raises(ValueError, match="no frames"):
        export_video([], tmp_path / "x.gif", show_progress=False)
    assert not (tmp_path / "x.gif").exists()
    assert parse_size("640x480") == (640, 480) and parse_size(None) is None
    with pytest.raises(ValueError):
        parse_size("big")
