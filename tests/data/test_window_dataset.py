"""Windows dataset and DataModule: shapes/dtypes, determinism, split by episode, event oversampling."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from drivesim import spec
from drivesim.data.dataset import (
    AnchoredWindowDataset,
    EpisodeDataModule,
    WindowDataset,
    collate_windows,
    split_episodes,
    window_starts,
)
from drivesim.data.episode import event_flags, read_episode
from drivesim.data.synthetic import write_synthetic_dataset


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("windows")
    write_synthetic_dataset(root, 12, (6, 60), seed=1, camera_size=16, bev_size=16, event_probability=0.01)
    return root


def test_window_starts_cover_the_episode_end() -> None:
    assert window_starts(10, 4, 4).tolist() == [0, 4, 6]
    assert window_starts(8, 4, 4).tolist() == [0, 4]
    assert window_starts(10, 4, 3).tolist() == [0, 3, 6]
    assert window_starts(3, 4, 4).size == 0


def test_items_are_episode_slices(data_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    episodes = sorted(data_dir.glob("ep_*"))
    with caplog.at_level(logging.WARNING):
        dataset = WindowDataset(episodes, window=16, stride=8)
    lengths = [len(read_episode(path)["reward"]) for path in episodes]
    assert dataset.skipped_short == sum(length < 16 for length in lengths) > 0
    assert "too short for a 16-step window" in caplog.text
    assert len(dataset) == sum(window_starts(length, 16, 8).size for length in lengths)
    item = dataset[len(dataset) // 2]
    path, start = dataset.window_location(len(dataset) // 2)
    full = read_episode(path)
    for name, tensor in item.items():
        np.testing.assert_array_equal(tensor.numpy(), full[name][start : start + 16], err_msg=name)
    assert item["camera"].dtype == torch.uint8 and item["camera"].shape == (16, 16, 16, 3)
    assert item["bev"].dtype == torch.uint8 and item["bev"].shape == (16, len(spec.BEV_CHANNELS), 16, 16)
    assert item["measurements"].dtype == torch.float32 and item["ego_pose"].dtype == torch.float64
    assert item["is_first"].dtype == torch.bool
    indices = [0, len(dataset) - 1, 3]
    batch = dataset.__getitems__(indices)
    for name, tensor in batch.stacked.items():
        expected = torch.stack([dataset[i][name] for i in indices])
        assert tensor.dtype == expected.dtype and torch.equal(tensor, expected), name
        assert torch.equal(default_collate(batch)[name], expected), name


def test_field_selection(data_dir: Path) -> None:
    dataset = WindowDataset(sorted(data_dir.glob("ep_*")), window=8, fields=["action", "bev"])
    assert set(dataset[0]) == {"action", "bev"}
    with pytest.raises(Exception, match="lidar"):
        WindowDataset(sorted(data_dir.glob("ep_*")), window=8, fields=["lidar"])


def test_split_is_by_episode_and_seeded(data_dir: Path) -> None:
    episodes = sorted(data_dir.glob("ep_*"))
    train, val = split_episodes(episodes, 0.25, seed=0)
    assert len(val) == 3 and sorted(train + val) == episodes and not set(train) & set(val)
    assert split_episodes(episodes, 0.25, seed=0) == (train, val)
    assert split_episodes(episodes, 0.25, seed=1)[1] != val
    assert len(split_episodes(episodes[:2], 0.1, seed=0)[1]) == 1


def test_datamodule_batches(data_dir: Path) -> None:
    module = EpisodeDataModule(data_dir, window=8, batch_size=4, num_workers=2, val_fraction=0.25, seed=3)
    module.setup()
    assert {path.name for path in module.train_episodes}.isdisjoint(path.name for path in module.val_episodes)
    batch = next(iter(module.train_dataloader()))
    assert batch["camera"].shape == (4, 8, 16, 16, 3) and batch["camera"].dtype == torch.uint8
    assert batch["bev"].shape == (4, 8, len(spec.BEV_CHANNELS), 16, 16) and batch["reward"].shape == (4, 8)
    assert batch["is_terminal"].dtype == torch.bool and batch["action"].dtype == torch.float32
    val_batch = next(iter(module.val_dataloader()))
    assert val_batch["action"].shape[1:] == (8, 3)


def _sampled(module: EpisodeDataModule) -> list[tuple[int, int]]:
    return list(module.train_dataloader().sampler)


def test_training_sampling_is_seeded_and_oversamples_events(data_dir: Path) -> None:
    def make(oversample: float, seed: int = 0) -> EpisodeDataModule:
        module = EpisodeDataModule(
            data_dir, window=8, batch_size=4, num_workers=0, seed=seed, oversample_events=oversample
        )
        module.setup()
        return module

    assert _sampled(make(0.0)) == _sampled(make(0.0))
    assert _sampled(make(0.0)) != _sampled(make(0.0, seed=1))
    weighted = make(20.0)
    assert _sampled(weighted) == _sampled(make(20.0))
    readers = weighted.train_dataset.readers
    flags = [event_flags(reader.read("events")).any(axis=1) for reader in readers]

    def has_event(window: tuple[int, int]) -> bool:
        episode, start = window
        return bool(flags[episode][start : start + 8].any())

    uniform_share = np.mean([has_event(w) for w in _sampled(make(0.0))])
    assert 0 < uniform_share < 0.5
    assert np.mean([has_event(w) for w in _sampled(weighted)]) > 2 * uniform_share
    batch = next(iter(weighted.train_dataloader()))
    assert batch["camera"].shape == (4, 8, 16, 16, 3)


def test_anchored_windows_reach_the_episode_end_padded_and_marked(data_dir: Path) -> None:
    episodes = sorted(data_dir.glob("ep_*"))
    context, horizon, stride = 4, 12, 5
    dataset = AnchoredWindowDataset(episodes, context, horizon, stride=stride)
    lengths = [len(read_episode(path)["reward"]) for path in episodes]
    # anchors (start + context - 1) every 5 steps up to the second-to-last step of each episode
    assert len(dataset) == sum(len(range(0, max(length - context, 0), stride)) for length in lengths)
    index = len(dataset) - 1  # the last anchor of the last episode: its horizon runs past the end
    path, start = dataset.window_location(index)
    episode = read_episode(path)
    length = len(episode["reward"])
    assert start + context - 1 <= length - 2 < start + context - 1 + stride
    item = dataset[index]
    inside = length - start
    assert item["valid"].tolist() == [True] * inside + [False] * (context + horizon - inside)
    np.testing.assert_array_equal(item["camera"][:inside].numpy(), episode["camera"][start:])
    np.testing.assert_array_equal(item["camera"][inside:].numpy(), np.repeat(episode["camera"][-1:], context + horizon - inside, 0))
    batch = collate_windows(dataset.__getitems__([0, index]))
    first_path, first_start = dataset.window_location(0)
    first_length = len(read_episode(first_path)["reward"])
    assert batch["valid"].shape == (2, context + horizon)
    assert batch["valid"][0].sum() == min(first_length - first_start, context + horizon)
