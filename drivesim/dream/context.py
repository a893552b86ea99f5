"""Dream stage: the real context windows a dream starts from: from a dataset, or from one recorded episode.

A context source has ``__len__`` and ``get(indices, device) -> {field: (N, T, ...)}``: the world model's fields
plus ``route``, ``expert_waypoints`` and ``ego_pose``, which DreamSim carries from the context.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from drivesim.dream.frames import resize_images
from drivesim.world_model.model import WorldModel

MODEL_FIELDS = ("measurements", "action", "is_first", "is_last", "is_terminal", "events", "reward")
CONTEXT_EXTRA_FIELDS = ("route", "expert_waypoints", "ego_pose")


class ContextSource:
    """Real context windows (T = ``context_steps``) from a dataset folder, read on demand.

    Args:
        data_dir: dataset written by ``drivesim collect``.
        fields: fields the world model reads (``drivesim.world_model.train.model_fields``).
        context_steps: window length T.
        val_fraction, seed: the world model's split; with ``val_only`` only its held-out episodes are used.
        val_only: draw from held-out episodes (falls back to all episodes when there are none).
    """

    def __init__(
        self,
        data_dir: str | Path,
        fields: Sequence[str],
        context_steps: int,
        val_fraction: float = 0.1,
        seed: int = 0,
        val_only: bool = True,
    ) -> None:
        from drivesim.data.dataset import WindowDataset, split_episodes
        from drivesim.data.episode import list_episodes

        episodes = list_episodes(data_dir)
        if not episodes:
            raise FileNotFoundError(f"no episodes in {data_dir}")
        if val_only and val_fraction > 0:
            _, held_out = split_episodes(episodes, val_fraction, seed)
            episodes = held_out or episodes
        self.dataset = WindowDataset(
            episodes, context_steps, [*fields, *CONTEXT_EXTRA_FIELDS], stride=context_steps
        )
        if len(self.dataset) == 0:
            raise ValueError(f"{data_dir}: no episode has {context_steps} steps for a context window")

    def __len__(self) -> int:
        return len(self.dataset)

    def get(self, indices: Sequence[int], device: torch.device | str = "cpu") -> dict[str, Tensor]:
        """Windows (N, T, ...) as tensors on ``device``."""
        from drivesim.data.dataset import collate_windows

        batch = collate_windows(self.dataset.__getitems__([int(i) for i in indices]))
        return {key: value.to(device) for key, value in batch.items()}


def model_batch(model: WorldModel, episode: Any, start: int, stop: int) -> dict[str, Tensor]:
    """Rows ``[start, stop)`` of an episode as a (1, T, ...) batch for ``model`` (images at its resolution).

    Raises:
        ValueError: the episode lacks an image input the model needs.
    """
    missing = [key for key in model.image_keys if key not in episode.fields]
    if missing:
        raise ValueError(f"the world model reads {missing}, which episode {episode.name} does not have "
                         f"(it has {list(episode.sensors)})")
    batch = {key: torch.from_numpy(np.ascontiguousarray(episode.fields[key][start:stop]))[None] for key in MODEL_FIELDS}
    size_px = model.config.encoder.image_size_px
    for key in model.image_keys:
        batch[key] = torch.from_numpy(resize_images(episode.fields[key][start:stop], key, size_px))[None]
    return batch


class EpisodeContext:
    """One real context window of an episode (rows ``start_step - context_steps + 1 .. start_step``), in the
    form ``DreamSimVectorEnv`` draws its contexts from (``__len__`` and ``get(indices, device)``).

    Args:
        model: the world model (images are resized to its resolution).
        episode: the episode.
        start_step: last real frame of the window.
        context_steps: window length (shorter at the episode start).
    """

    def __init__(self, model: WorldModel, episode: Any, start_step: int, context_steps: int) -> None:
        first = max(0, start_step - context_steps + 1)
        self.window = model_batch(model, episode, first, start_step + 1)
        for key in CONTEXT_EXTRA_FIELDS:
            self.window[key] = torch.from_numpy(np.ascontiguousarray(episode.fields[key][first : start_step + 1]))[None]

    def __len__(self) -> int:
        return 1

    def get(self, indices: list[int], device: torch.device | str = "cpu") -> dict[str, Tensor]:
        """The window (N, T, ...) repeated for each requested index."""
        return {key: value.expand(len(indices), *value.shape[1:]).to(device) for key, value in self.window.items()}
