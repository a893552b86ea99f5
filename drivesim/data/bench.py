"""Data stage benchmark: window-loading throughput of the DataModule (``drivesim bench data``)."""

from __future__ import annotations

import logging
import os
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

from drivesim.data.dataset import EpisodeDataModule
from drivesim.data.synthetic import write_synthetic_dataset

logger = logging.getLogger(__name__)

WARMUP_BATCHES = 4


def _measure(data_dir: Path, window: int, batch_size: int, num_workers: int, batches: int) -> dict[str, Any]:
    module = EpisodeDataModule(
        data_dir, window=window, batch_size=batch_size, num_workers=num_workers, val_fraction=0.0, stride=max(1, window // 8)
    )
    module.setup()
    assert module.train_dataset is not None
    loader = module.train_dataloader()
    frames = 0
    all_frames = 0
    measured = 0
    cpu_start = time.process_time(), resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    iterator = iter(loader)
    for step in range(WARMUP_BATCHES + batches):
        try:
            batch = next(iterator)
        except StopIteration:
            iterator = iter(loader)
            batch = next(iterator)
        all_frames += batch["is_first"].numel()
        if step == WARMUP_BATCHES - 1:
            start = time.perf_counter()
        elif step >= WARMUP_BATCHES:
            frames += batch["is_first"].numel()
            measured += 1
    elapsed = time.perf_counter() - start
    del iterator, loader, batch  # joins the workers, so their CPU time shows in RUSAGE_CHILDREN
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = time.process_time() - cpu_start[0]
    cpu_s += children.ru_utime + children.ru_stime - cpu_start[1].ru_utime - cpu_start[1].ru_stime
    return {
        "frames_per_s": frames / elapsed,
        # Frames per CPU-second of the main process and its workers together (warm-up included): what one
        # free core delivers, a figure that other load on the machine does not skew.
        "frames_per_cpu_s": all_frames / cpu_s if cpu_s > 0 else None,
        "windows_per_s": measured * batch_size / elapsed,
        "batches": measured,
        "seconds": elapsed,
        "train_windows": len(module.train_dataset),
        "fields": module.train_dataset.fields,
    }


def run_data_bench(
    data_dir: str | Path | None = None,
    window: int = 64,
    batch_size: int = 16,
    num_workers: int = 2,
    batches: int = 100,
    synthetic_episodes: int = 8,
    synthetic_length: int = 512,
    image_size: int = 64,
) -> dict[str, Any]:
    """Measure how many frames per second the training DataLoader delivers.

    Args:
        data_dir: Dataset to read; None writes a synthetic one (camera + BEV of ``image_size``) to a temp dir.
        window: Steps T per window.
        batch_size: Windows per batch.
        num_workers: DataLoader worker processes.
        batches: Batches to time (after a few warm-up batches).
        synthetic_episodes: Episodes of the synthetic dataset.
        synthetic_length: Steps per synthetic episode.
        image_size: Camera and BEV size of the synthetic dataset [px].

    Returns:
        A dict with ``frames_per_s`` and details.
    """
    settings = {
        "window": window,
        "batch_size": batch_size,
        "num_workers": num_workers,
        "cpu_count": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0],  # other processes on the machine skew the figure
    }
    if data_dir is not None:
        return {"data_dir": str(data_dir), **settings, **_measure(Path(data_dir), window, batch_size, num_workers, batches)}
    with tempfile.TemporaryDirectory(prefix="drivesim-bench-data-") as temp:
        start = time.perf_counter()
        write_synthetic_dataset(temp, synthetic_episodes, synthetic_length, camera_size=image_size, bev_size=image_size)
        logger.info("wrote %d synthetic episodes in %.1f s", synthetic_episodes, time.perf_counter() - start)
        result = _measure(Path(temp), window, batch_size, num_workers, batches)
    return {"data_dir": "synthetic", "image_size": image_size, **settings, **result}
