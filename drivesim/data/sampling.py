"""Data stage: which training windows an epoch draws (random cuts per epoch, weighted by events and road users).

A ``WindowSampler`` yields ``(episode, start)`` pairs that ``WindowDataset`` reads. Every epoch each episode is
cut at a new random offset, so the windows (and the step each one starts cold from) differ between epochs, and
windows are drawn with weight ``1 + oversample_events * [collision or off-road in the window] +
oversample_road_users * (share of the window's steps whose BEV shows another road user)``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Sampler

from drivesim import spec
from drivesim.data.episode import EpisodeReader, event_flags
from drivesim.utils import derive_seed

logger = logging.getLogger(__name__)

ROAD_USER_CHANNELS = ("vehicles", "walkers")  # BEV channels (drivesim.spec names) holding other road users


def road_user_steps(reader: EpisodeReader, channels: Sequence[str] = ROAD_USER_CHANNELS) -> np.ndarray:
    """(T,) bool: steps whose BEV has a pixel set in any of ``channels``; all False without a BEV.

    Reads the bit-packed rows and tests the byte range of each channel when a channel fills whole bytes,
    so nothing is unpacked in the common case.
    """
    if spec.OBS_BEV not in reader.fields:
        return np.zeros(reader.length, dtype=bool)
    _, num_channels, height, width = reader.shape(spec.OBS_BEV)
    indices = [spec.BEV_CHANNELS.index(name) for name in channels]
    pixels = height * width
    stored = reader.open(spec.OBS_BEV)
    present = np.zeros(reader.length, dtype=bool)
    packed = reader.fields[spec.OBS_BEV]["encoding"] == "packbits"
    for start in range(0, reader.length, 512):  # bounded memory on long episodes
        rows = np.asarray(stored[start : start + 512])
        for index in indices:
            if packed and pixels % 8 == 0:
                part = rows[:, index * pixels // 8 : (index + 1) * pixels // 8]
            elif packed:
                unpacked = np.unpackbits(rows, axis=1, count=num_channels * pixels)
                part = unpacked[:, index * pixels : (index + 1) * pixels]
            else:
                part = rows[:, index].reshape(len(rows), -1)
            present[start : start + len(rows)] |= part.any(axis=1)
    return present


class WindowSampler(Sampler[tuple[int, int]]):
    """Training windows as ``(episode, start)`` pairs, re-cut and re-drawn every epoch.

    Args:
        lengths: steps of each episode.
        window: steps per window.
        seed: run seed; epoch e draws from ``derive_seed(seed, "windows", e)``.
        random_offsets: cut each episode at a random offset in [0, window) every epoch; False cuts at 0.
        event_steps: per episode, (T,) bool steps with a collision or off-road event (None: no weighting).
        road_user_steps: per episode, (T,) bool steps whose BEV shows another road user (None: no weighting).
        oversample_events: extra weight of a window holding an event step.
        oversample_road_users: extra weight x the window's share of steps with road users.

    An epoch yields as many windows as the episodes hold non-overlapping windows cut at offset 0; without
    weights they are this epoch's windows in random order, with weights they are drawn with replacement.
    Lightning calls ``set_epoch`` (also on resume); iterating without it advances the epoch by one.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        window: int,
        seed: int = 0,
        random_offsets: bool = True,
        event_steps: Sequence[np.ndarray] | None = None,
        road_user_steps: Sequence[np.ndarray] | None = None,
        oversample_events: float = 0.0,
        oversample_road_users: float = 0.0,
    ) -> None:
        if oversample_events < 0 or oversample_road_users < 0:
            raise ValueError(
                f"oversampling weights must be >= 0, got events {oversample_events}, "
                f"road users {oversample_road_users}"
            )
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.window = window
        self.seed = seed
        self.random_offsets = random_offsets
        self.oversample_events = oversample_events if event_steps is not None else 0.0
        self.oversample_road_users = oversample_road_users if road_user_steps is not None else 0.0
        self._event_cumsum = _cumsums(event_steps, self.lengths) if self.oversample_events else None
        self._road_cumsum = _cumsums(road_user_steps, self.lengths) if self.oversample_road_users else None
        self.num_samples = int(np.maximum(self.lengths // window, 0).sum())
        self.epoch = 0

    def __len__(self) -> int:
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        """Draw the windows of ``epoch`` on the next iteration."""
        self.epoch = epoch

    def epoch_windows(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Candidate windows of one epoch: episode indices and start steps (N,), cut at random offsets."""
        episodes, starts = [], []
        for episode, length in enumerate(self.lengths):
            room = int(length) - self.window
            if room < 0:
                continue
            offset = int(rng.integers(0, min(self.window, room + 1))) if self.random_offsets else 0
            episode_starts = np.arange(offset, room + 1, self.window, dtype=np.int64)
            episodes.append(np.full(episode_starts.size, episode, dtype=np.int64))
            starts.append(episode_starts)
        if not episodes:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return np.concatenate(episodes), np.concatenate(starts)

    def window_weights(self, episodes: np.ndarray, starts: np.ndarray) -> np.ndarray | None:
        """Sampling weight of each window (None when uniform)."""
        if not (self.oversample_events or self.oversample_road_users):
            return None
        weights = np.ones(episodes.size, dtype=np.float64)
        if self._event_cumsum is not None:
            weights += self.oversample_events * (_window_sums(self._event_cumsum, episodes, starts, self.window) > 0)
        if self._road_cumsum is not None:
            share = _window_sums(self._road_cumsum, episodes, starts, self.window) / self.window
            weights += self.oversample_road_users * share
        return weights

    def __iter__(self) -> Iterator[tuple[int, int]]:
        rng = np.random.default_rng(derive_seed(self.seed, "windows", self.epoch))
        self.epoch += 1
        episodes, starts = self.epoch_windows(rng)
        if episodes.size == 0:
            return iter(())
        weights = self.window_weights(episodes, starts)
        if weights is None:
            order = rng.permutation(episodes.size)
            if order.size < self.num_samples:  # a random cut can lose a window: top up with repeats
                order = np.concatenate([order, rng.integers(0, episodes.size, self.num_samples - order.size)])
            chosen = order[: self.num_samples]
        else:
            generator = torch.Generator().manual_seed(int(rng.integers(0, 2**31 - 1)))
            chosen = torch.multinomial(
                torch.from_numpy(weights), self.num_samples, replacement=True, generator=generator
            ).numpy()
        return iter([(int(episodes[i]), int(starts[i])) for i in chosen])


def _cumsums(flags: Sequence[np.ndarray], lengths: np.ndarray) -> list[np.ndarray]:
    result = []
    for index, (steps, length) in enumerate(zip(flags, lengths, strict=True)):
        if len(steps) != length:
            raise ValueError(f"episode {index}: {len(steps)} flags for {length} steps")
        result.append(np.concatenate([[0], np.cumsum(np.asarray(steps, dtype=np.int64))]))
    return result


def _window_sums(cumsums: list[np.ndarray], episodes: np.ndarray, starts: np.ndarray, window: int) -> np.ndarray:
    return np.array(
        [cumsums[e][s + window] - cumsums[e][s] for e, s in zip(episodes, starts, strict=True)], dtype=np.float64
    )


def training_sampler(
    readers: Sequence[EpisodeReader],
    window: int,
    seed: int,
    random_offsets: bool,
    oversample_events: float,
    oversample_road_users: float,
) -> WindowSampler:
    """A ``WindowSampler`` over opened episodes, reading only the flags its weights need."""
    events = [event_flags(reader.read("events")).any(axis=1) for reader in readers] if oversample_events else None
    road_users = None
    if oversample_road_users:
        road_users = [road_user_steps(reader) for reader in readers]
        if not any(steps.any() for steps in road_users):
            logger.warning("oversample_road_users: no BEV frame shows another road user; sampling ignores it")
    return WindowSampler(
        [reader.length for reader in readers],
        window,
        seed,
        random_offsets,
        events,
        road_users,
        oversample_events,
        oversample_road_users,
    )
