"""Training window sampling: new random cuts every epoch, weights by events and by road users in the BEV."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from drivesim import spec
from drivesim.data.episode import EpisodeReader, write_episode
from drivesim.data.sampling import WindowSampler, road_user_steps
from drivesim.data.synthetic import synthetic_steps

VEHICLES = spec.BEV_CHANNELS.index("vehicles")


def test_each_epoch_cuts_the_episodes_at_new_offsets() -> None:
    sampler = WindowSampler([100, 37, 5], window=10, seed=0)
    assert len(sampler) == 10 + 3  # non-overlapping windows at offset 0; the 5-step episode has none
    epochs = []
    for epoch in range(4):
        sampler.set_epoch(epoch)
        windows = list(sampler)
        assert len(windows) == len(sampler)
        for episode, start in windows:
            assert episode in (0, 1) and 0 <= start <= [100, 37][episode] - 10
        epochs.append(sorted(windows))
    assert len({tuple(w) for w in epochs}) > 1, "every epoch cut the episodes at the same steps"
    offsets = {start % 10 for windows in epochs for episode, start in windows if episode == 0}
    assert len(offsets) > 1
    sampler.set_epoch(2)
    assert sorted(sampler) == epochs[2]  # an epoch is reproducible (resume, DDP ranks)


def test_fixed_cuts_without_random_offsets() -> None:
    sampler = WindowSampler([40, 25], window=10, seed=0, random_offsets=False)
    assert sorted(sampler) == [(0, 0), (0, 10), (0, 20), (0, 30), (1, 0), (1, 10)]


def test_weights_follow_events_and_road_users() -> None:
    lengths = [200, 200]
    events = [np.zeros(200, bool), np.zeros(200, bool)]
    events[0][150] = True
    road = [np.zeros(200, bool), np.ones(200, bool)]
    sampler = WindowSampler(
        lengths, 20, seed=0, event_steps=events, road_user_steps=road, oversample_events=5.0,
        oversample_road_users=2.0,
    )  # fmt: skip
    episodes = np.array([0, 0, 1])
    starts = np.array([0, 140, 0])
    assert sampler.window_weights(episodes, starts).tolist() == [1.0, 6.0, 3.0]
    road_only = WindowSampler(lengths, 20, seed=0, road_user_steps=road, oversample_road_users=2.0)
    windows = []
    for epoch in range(20):
        road_only.set_epoch(epoch)
        windows += list(road_only)
    share_road = np.mean([episode == 1 for episode, _ in windows])
    assert share_road == pytest.approx(3.0 / 4.0, abs=0.06)  # weight 3 vs 1 per window of episode 0
    with pytest.raises(ValueError, match="oversampling"):
        WindowSampler(lengths, 20, oversample_events=-1.0)


def test_road_user_steps_read_the_packed_vehicle_channel(tmp_path: Path) -> None:
    steps = synthetic_steps(12, np.random.default_rng(0), camera_size=None, bev_size=16)
    steps["bev"][:] = 0
    steps["bev"][3, VEHICLES, 5, 5] = 1
    steps["bev"][7, spec.BEV_CHANNELS.index("walkers"), 0, 15] = 1
    steps["bev"][9, spec.BEV_CHANNELS.index("drivable")] = 1  # not a road user
    path = write_episode(tmp_path, 0, steps, {"simulator": "synthetic", "map_name": "none", "seed": 0})
    present = road_user_steps(EpisodeReader(path))
    assert np.flatnonzero(present).tolist() == [3, 7]
