"""Dataset checks: verify finds truncated/corrupt/schema-mismatched episodes; info statistics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from drivesim.cli.data_commands import _info_table
from drivesim.data.dataset import WindowDataset
from drivesim.data.episode import EpisodeError, EpisodeReader, list_episodes
from drivesim.data.info import dataset_info
from drivesim.data.synthetic import write_synthetic_dataset
from drivesim.data.verify import verify_dataset, verify_episode


@pytest.fixture()
def dataset(tmp_path: Path) -> list[Path]:
    return write_synthetic_dataset(tmp_path / "data", 3, 40, camera_size=16, bev_size=16, event_probability=0.05)


def _truncate(path: Path, remove_bytes: int = 100) -> None:
    payload = path.read_bytes()
    path.write_bytes(payload[:-remove_bytes])


def test_sound_dataset_verifies(dataset: list[Path]) -> None:
    report = verify_dataset(dataset[0].parent)
    assert report.ok == ["ep_000000", "ep_000001", "ep_000002"] and not report.bad


def test_truncated_file_is_reported_and_fails_loading(dataset: list[Path]) -> None:
    _truncate(dataset[1] / "camera.npy")
    report = verify_dataset(dataset[0].parent, checksums=False)
    assert list(report.bad) == ["ep_000001"]
    assert "camera.npy" in report.bad["ep_000001"][0]
    with pytest.raises(EpisodeError, match=r"ep_000001/camera\.npy.*truncated"):
        EpisodeReader(dataset[1])
    with pytest.raises(EpisodeError, match=r"ep_000001/camera\.npy"):
        WindowDataset(dataset, window=8)


def test_corruption_needs_checksums(dataset: list[Path]) -> None:
    path = dataset[2] / "route.npy"
    payload = bytearray(path.read_bytes())
    payload[-5] ^= 0xFF
    path.write_bytes(bytes(payload))
    assert verify_episode(dataset[2], checksums=False) == []
    problems = verify_episode(dataset[2])
    assert len(problems) == 1 and "route.npy" in problems[0] and "checksum" in problems[0]


def test_schema_mismatch_and_missing_meta(dataset: list[Path]) -> None:
    meta_path = dataset[0] / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["schema_version"] = 99
    meta_path.write_text(json.dumps(meta))
    (dataset[1] / "meta.json").unlink()
    report = verify_dataset(dataset[0].parent)
    assert sorted(report.bad) == ["ep_000000", "ep_000001"]
    assert "schema version 99" in report.bad["ep_000000"][0]
    assert "meta.json: missing" in report.bad["ep_000001"][0]


def test_version_1_dataset_is_refused_with_what_changed(dataset: list[Path]) -> None:
    meta_path = dataset[0] / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["schema_version"] = 1
    meta_path.write_text(json.dumps(meta))
    message = verify_dataset(dataset[0].parent).bad["ep_000000"][0]
    assert "schema version 1" in message and "older dataset" in message and "collect it again" in message


def test_quarantine_moves_bad_episodes(dataset: list[Path]) -> None:
    data_dir = dataset[0].parent
    _truncate(dataset[0] / "events.npy", 4)
    report = verify_dataset(data_dir, quarantine=True)
    assert report.quarantined == ["ep_000000"]
    assert (data_dir / "quarantine" / "ep_000000").is_dir()
    assert [path.name for path in list_episodes(data_dir)] == ["ep_000001", "ep_000002"]
    assert not verify_dataset(data_dir).bad


def test_info_statistics(dataset: list[Path]) -> None:
    info = dataset_info(dataset[0].parent)
    assert info["episodes"] == 3 and info["frames"] == 120
    assert info["hours"] == pytest.approx(120 * 0.05 / 3600)
    assert info["km"] == pytest.approx(3 * 39 * 8.0 * 0.05 / 1000)
    events = np.concatenate([np.load(path / "events.npy") for path in dataset])
    assert info["events"]["collision"]["step_share"] == pytest.approx((events[:, 0] > 0.5).mean())
    assert info["events"]["lane_invasion"]["episode_share"] == 0.0
    assert info["maps"] == {"none": 3} and info["drivers"] == {"clean": 3}
    assert info["bytes_per_frame"] == pytest.approx(info["disk_bytes"] / 120)
    assert 1400 < info["bytes_per_frame"] < 1700  # 16x16 camera 768 B + packed 11-channel BEV 352 B + vectors
    console = Console(record=True, width=120)
    console.print(_info_table(info))
    text = console.export_text()
    assert "bytes/frame" in text and "largest fields" in text and "camera 771 B/frame" in text
    _truncate(dataset[0] / "reward.npy", 4)
    damaged = dataset_info(dataset[0].parent)
    assert damaged["episodes"] == 2 and list(damaged["unreadable"]) == ["ep_000000"]
