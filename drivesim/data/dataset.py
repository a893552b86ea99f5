"""Data stage: a torch Dataset of fixed-length episode windows and a Lightning DataModule over a dataset folder.

Batches are dicts of tensors with leading (B, T): images stay uint8 (``camera`` (B, T, H, W, 3), ``bev``
(B, T, C, H, W) in {0, 1}), float fields are float32 (``ego_pose`` float64), flags are bool.
Episodes shorter than the window are skipped (a warning gives the count); they are not padded.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, default_collate, get_worker_info

from drivesim import spec
from drivesim.data.episode import EpisodeError, EpisodeReader, event_flags, list_episodes
from drivesim.data.sampling import training_sampler
from drivesim.utils import derive_seed

logger = logging.getLogger(__name__)

DEFAULT_WINDOW = 64
WindowIndex = int | tuple[int, int]  # a window of the fixed cuts, or (episode, start step) from a WindowSampler


def window_starts(length: int, window: int, stride: int) -> np.ndarray:
    """Start steps of the windows of one episode: every ``stride`` steps, plus one ending at the last step.

    The extra final window makes sure the end of every episode (where terminal events happen) is covered.
    """
    if length < window:
        return np.zeros(0, dtype=np.int64)
    starts = np.arange(0, length - window + 1, stride, dtype=np.int64)
    if starts[-1] != length - window:
        starts = np.append(starts, length - window)
    return starts


class WindowDataset(Dataset):
    """Fixed-length windows of steps from a list of episodes, read lazily from disk.

    Opening checks each episode's meta and file sizes (cheap; no hashing), so a damaged episode fails here
    with an ``EpisodeError`` naming the file.

    Args:
        episode_dirs: Episode folders (``ep_<index>``).
        window: Steps T per item.
        fields: Fields to load; None loads every field that all episodes hold.
        stride: Steps between window starts within an episode; None means ``window`` (non-overlapping).
            A final window ending at each episode's last step is always added.

    Items are dicts of tensors shaped (T, ...).
    """

    def __init__(
        self,
        episode_dirs: Sequence[str | Path],
        window: int = DEFAULT_WINDOW,
        fields: Sequence[str] | None = None,
        stride: int | None = None,
    ) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.window = window
        self.stride = stride or window
        self.readers = [EpisodeReader(path) for path in episode_dirs]
        for reader in self.readers:  # keep worker processes small: the bulky parts of meta are not needed here
            reader.meta = {key: value for key, value in reader.meta.items() if key not in ("config", "env")}
        self.fields = self._select_fields(fields)
        starts = [self._window_starts(reader.length) for reader in self.readers]
        self.skipped_short = sum(1 for item in starts if item.size == 0)
        if self.skipped_short:
            logger.warning(
                "%d of %d episodes are too short for a %d-step window and give no windows",
                self.skipped_short,
                len(self.readers),
                window,
            )
        self.episode_of_window = np.repeat(np.arange(len(starts)), [item.size for item in starts])
        self.start_of_window = np.concatenate(starts) if starts else np.zeros(0, dtype=np.int64)

    def _window_starts(self, length: int) -> np.ndarray:
        """Start steps of the windows of an episode of ``length`` steps."""
        return window_starts(length, self.window, self.stride)

    def _read_window(self, reader: EpisodeReader, name: str, start: int, out: np.ndarray) -> None:
        """Steps ``[start, start + window)`` of one field into ``out`` (window, ...)."""
        reader.read_into(name, start, start + self.window, out)

    def _select_fields(self, fields: Sequence[str] | None) -> list[str]:
        if fields is not None:
            for reader in self.readers:
                missing = [name for name in fields if name not in reader.fields]
                if missing:
                    raise EpisodeError(f"{reader.path}: lacks requested fields {missing}")
            return list(fields)
        if not self.readers:
            return list(spec.EPISODE_FIELDS)
        common = set.intersection(*(set(reader.fields) for reader in self.readers))
        return [name for name in self.readers[0].fields if name in common]

    def __len__(self) -> int:
        return int(self.start_of_window.size)

    def _locate(self, index: WindowIndex) -> tuple[EpisodeReader, int]:
        """Reader and start step of a window index, or of an ``(episode, start)`` pair from a sampler."""
        if isinstance(index, tuple):
            episode, start = index
            return self.readers[episode], int(start)
        return self.readers[self.episode_of_window[index]], int(self.start_of_window[index])

    def __getitem__(self, index: WindowIndex) -> dict[str, torch.Tensor]:
        reader, start = self._locate(index)
        stop = start + self.window
        return {name: torch.from_numpy(reader.read(name, start, stop)) for name in self.fields}

    def __getitems__(self, indices: Sequence[WindowIndex]) -> WindowBatch:
        """A batch of windows read straight into (B, T, ...) tensors (in shared memory inside workers).

        All episodes of a batch must share each field's per-step shape (as ``default_collate`` requires).
        """
        if len(indices) == 0:
            return WindowBatch({})
        first, _ = self._locate(indices[0])
        stacked = {
            name: _empty_batch_tensor((len(indices), self.window, *first.shape(name)[1:]), first.fields[name]["dtype"])
            for name in self.fields
        }
        arrays = {name: tensor.numpy() for name, tensor in stacked.items()}
        for row, index in enumerate(indices):
            reader, start = self._locate(index)
            for name in self.fields:
                self._read_window(reader, name, start, arrays[name][row])
        return WindowBatch(stacked)

    def window_location(self, index: int) -> tuple[Path, int]:
        """(episode folder, start step) of a window."""
        return self.readers[self.episode_of_window[index]].path, int(self.start_of_window[index])

    def event_windows(self) -> np.ndarray:
        """(N,) bool: which windows contain a collision or off-road step (reads only the events field)."""
        result = np.zeros(len(self), dtype=bool)
        for episode, reader in enumerate(self.readers):
            selected = np.flatnonzero(self.episode_of_window == episode)
            if selected.size == 0:
                continue
            flags = event_flags(reader.read("events")).any(axis=1)
            cumulative = np.concatenate([[0], np.cumsum(flags)])
            starts = self.start_of_window[selected]
            result[selected] = cumulative[np.minimum(starts + self.window, reader.length)] > cumulative[starts]
        return result


class AnchoredWindowDataset(WindowDataset):
    """Evaluation windows: ``context`` observed steps up to an anchor, then ``horizon`` steps after it.

    Anchors lie every ``stride`` steps from row ``context - 1`` to the episode's second-to-last row, so the
    last seconds before an episode's end (where collisions and off-road end it) are anchors too. Rows past
    the end repeat the last row and are marked invalid: items carry ``valid`` (T,) bool, which evaluation
    uses to leave those rows out.

    Args:
        episode_dirs: Episode folders.
        context: Steps up to and including the anchor.
        horizon: Steps after the anchor.
        fields: Fields to load; None loads every field that all episodes hold.
        stride: Steps between anchors (None = ``context + horizon``).
    """

    def __init__(
        self,
        episode_dirs: Sequence[str | Path],
        context: int,
        horizon: int,
        fields: Sequence[str] | None = None,
        stride: int | None = None,
    ) -> None:
        if context < 1 or horizon < 1:
            raise ValueError(f"context and horizon must be >= 1, got {context}, {horizon}")
        self.context = context
        super().__init__(episode_dirs, context + horizon, fields, stride)

    def _window_starts(self, length: int) -> np.ndarray:
        # anchor = start + context - 1 <= length - 2: at least one step after the anchor
        return np.arange(0, max(length - self.context, 0), self.stride, dtype=np.int64)

    def _read_window(self, reader: EpisodeReader, name: str, start: int, out: np.ndarray) -> None:
        stop = min(start + self.window, reader.length)
        reader.read_into(name, start, stop, out[: stop - start])
        out[stop - start :] = out[stop - start - 1]

    def __getitem__(self, index: WindowIndex) -> dict[str, torch.Tensor]:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: Sequence[WindowIndex]) -> WindowBatch:
        batch = super().__getitems__(indices)
        if not batch.stacked:
            return batch
        valid = torch.zeros(len(indices), self.window, dtype=torch.bool)
        for row, index in enumerate(indices):
            reader, start = self._locate(index)
            valid[row, : reader.length - start] = True
        batch.stacked["valid"] = valid
        return WindowBatch(batch.stacked)


class WindowBatch(list):
    """What ``WindowDataset.__getitems__`` returns: a list of per-window dicts (views) plus the stacked batch.

    ``collate_windows`` hands out ``stacked`` without copying; torch's ``default_collate`` still works on
    the list (by stacking the views).
    """

    def __init__(self, stacked: dict[str, torch.Tensor]) -> None:
        size = len(next(iter(stacked.values()))) if stacked else 0
        super().__init__({name: tensor[row] for name, tensor in stacked.items()} for row in range(size))
        self.stacked = stacked


def collate_windows(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Collate function of the DataModule: the pre-stacked batch of a ``WindowBatch``, else default collate."""
    if isinstance(items, WindowBatch):
        return items.stacked
    return default_collate(items)


def _empty_batch_tensor(shape: tuple[int, ...], dtype_str: str) -> torch.Tensor:
    """An uninitialised tensor; inside a DataLoader worker it lives in shared memory (as default_collate does)."""
    dtype = torch.from_numpy(np.empty(0, dtype=np.dtype(dtype_str))).dtype
    if get_worker_info() is None:
        return torch.empty(shape, dtype=dtype)
    numel = int(np.prod(shape))
    base = torch.empty(0, dtype=dtype)
    storage = base._typed_storage()._new_shared(numel, device=base.device)
    return base.new(storage).view(shape)


def split_episodes(
    episode_dirs: Sequence[Path], val_fraction: float, seed: int
) -> tuple[list[Path], list[Path]]:
    """Seeded train/validation split by episode.

    Episodes are ranked by a key derived from (seed, folder name), and the first
    ``round(val_fraction * n)`` (at least one when ``val_fraction > 0`` and n >= 2) go to validation.
    Both lists keep index order.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    count = len(episode_dirs)
    num_val = int(round(val_fraction * count))
    if val_fraction > 0 and count >= 2:
        num_val = min(max(num_val, 1), count - 1)
    ranked = sorted(episode_dirs, key=lambda path: derive_seed(seed, Path(path).name))
    val = set(ranked[:num_val])
    return [path for path in episode_dirs if path not in val], [path for path in episode_dirs if path in val]


class EpisodeDataModule(pl.LightningDataModule):
    """Lightning DataModule of fixed-length windows from a dataset folder.

    Args:
        data_dir: Dataset folder written by ``drivesim collect``.
        window: Steps T per item.
        batch_size: Windows B per batch.
        num_workers: DataLoader worker processes (persistent when > 0).
        val_fraction: Share of episodes held out for validation (split by episode).
        seed: Seed of the split and of the training sampler.
        oversample_events: Windows with a collision or off-road step are drawn ``1 + oversample_events``
            times as often as others (0 = uniform).
        fields: Fields to load; None loads all.
        stride: Steps between validation window starts (None = ``window``).
        random_offsets: Cut the training windows at a new random offset per episode every epoch
            (``drivesim.data.sampling.WindowSampler``); False keeps the cuts at offset 0.
        oversample_road_users: Extra weight x the share of a window's steps whose BEV shows another vehicle
            or walker.
    """

    def __init__(
        self,
        data_dir: str | Path,
        window: int = DEFAULT_WINDOW,
        batch_size: int = 16,
        num_workers: int = 2,
        val_fraction: float = 0.1,
        seed: int = 0,
        oversample_events: float = 0.0,
        fields: Sequence[str] | None = None,
        stride: int | None = None,
        random_offsets: bool = True,
        oversample_road_users: float = 0.0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if oversample_events < 0 or oversample_road_users < 0:
            raise ValueError(
                f"oversample_events and oversample_road_users must be >= 0, got {oversample_events}, "
                f"{oversample_road_users}"
            )
        self.random_offsets = random_offsets
        self.oversample_road_users = oversample_road_users
        self.data_dir = Path(data_dir)
        self.window = window
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.val_fraction = val_fraction
        self.seed = seed
        self.oversample_events = oversample_events
        self.fields = list(fields) if fields is not None else None
        self.stride = stride
        self.train_episodes: list[Path] = []
        self.val_episodes: list[Path] = []
        self.train_dataset: WindowDataset | None = None
        self.val_dataset: WindowDataset | None = None

    def setup(self, stage: str | None = None) -> None:
        """List the episodes, split them and open both datasets (once)."""
        if self.train_dataset is not None:
            return
        episodes = list_episodes(self.data_dir)
        if not episodes:
            raise FileNotFoundError(f"no episodes in {self.data_dir} (run `drivesim collect` first)")
        self.train_episodes, self.val_episodes = split_episodes(episodes, self.val_fraction, self.seed)
        self.train_dataset = WindowDataset(self.train_episodes, self.window, self.fields, self.stride)
        self.val_dataset = WindowDataset(self.val_episodes, self.window, self.fields, self.stride)
        logger.info(
            "%s: %d train windows from %d episodes, %d val windows from %d episodes",
            self.data_dir,
            len(self.train_dataset),
            len(self.train_episodes),
            len(self.val_dataset),
            len(self.val_episodes),
        )

    def _loader(self, dataset: WindowDataset, train: bool) -> DataLoader:
        sampler = None
        if train:
            sampler = training_sampler(
                dataset.readers,
                self.window,
                self.seed,
                self.random_offsets,
                self.oversample_events,
                self.oversample_road_users,
            )
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=False,
            sampler=sampler,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
            drop_last=train and len(sampler or dataset) >= self.batch_size,
            collate_fn=collate_windows,
        )

    def train_dataloader(self) -> DataLoader:
        """Training windows: new random cuts every epoch, drawn uniformly or weighted (``WindowSampler``)."""
        self.setup()
        assert self.train_dataset is not None
        if len(self.train_dataset) == 0:
            raise ValueError(f"{self.data_dir}: no training windows of {self.window} steps (episodes too short?)")
        return self._loader(self.train_dataset, train=True)

    def val_dataloader(self) -> DataLoader | list:
        """Validation windows in order; an empty list when there are no validation windows."""
        self.setup()
        assert self.val_dataset is not None
        if len(self.val_dataset) == 0:
            return []
        return self._loader(self.val_dataset, train=False)
