"""Subprocess smoke tests of `drivesim replay` and `drivesim drive-dream` with a tiny export budget."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio


def _drivesim(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "SDL_VIDEODRIVER": "dummy"}
    return subprocess.run([sys.executable, "-m", "drivesim.cli.main", *args], capture_output=True, text=True,
                          timeout=120, env=env)


def test_replay_list_and_export(dataset: Path, tmp_path: Path) -> None:
    listing = _drivesim("replay", str(dataset), "--filter", "off_road", "--list")
    assert listing.returncode == 0, listing.stderr
    assert "ep_000000" in listing.stdout and "ep_000001" not in listing.stdout
    out = tmp_path / "replay.gif"
    result = _drivesim("replay", str(dataset), "--episode", "1", "--export", str(out), "--max-frames", "3",
                       "--size", "280x230")
    assert result.returncode == 0, result.stderr
    assert iio.imread(out, index=None).shape[:3] == (3, 230, 280)
    missing = _drivesim("replay", str(dataset), "--episode", "7")
    assert missing.returncode == 2 and "episode 7" in missing.stderr


def test_drive_dream_export(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "dream.mp4"
    result = _drivesim("drive-dream", "debug", "--data", str(dataset), "--agent", "random", "--export", str(out),
                       "--steps", "3", "--panel", "64")
    assert result.returncode == 0, result.stderr
    assert out.stat().st_size > 0
