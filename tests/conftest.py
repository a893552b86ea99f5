"""Shared test fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
CARLA_MAPS = REPO_ROOT.parent / "shared" / "maps" / "carla"


@pytest.fixture
def carla_town_path():
    """Path factory for a real CARLA town's .xodr; skips where ../shared/maps/carla is absent."""

    def get(name: str) -> Path:
        path = CARLA_MAPS / f"{name}.xodr"
        if not path.is_file():
            pytest.skip(f"{path} not available (shared CARLA maps are absent in this checkout)")
        return path

    return get
