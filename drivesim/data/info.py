"""Data stage: dataset statistics (size, hours and km driven, event rates, maps) for ``drivesim data info``."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from drivesim.data.episode import EpisodeError, EpisodeReader, event_flags, list_episodes

logger = logging.getLogger(__name__)

INFO_EVENTS = ("collision", "off_road", "lane_invasion")
DEFAULT_DT_S = 0.05


def episode_dt_s(meta: dict[str, Any]) -> float:
    """Step length [s] of an episode: ``dt_s`` in its meta, else the recorded sim config, else 0.05."""
    if "dt_s" in meta:
        return float(meta["dt_s"])
    try:
        return float(meta["config"]["sim"]["episode"]["dt_s"])
    except (KeyError, TypeError):
        return DEFAULT_DT_S


def _folder_bytes(path: Path) -> int:
    return sum(entry.stat().st_size for entry in path.iterdir() if entry.is_file())


def dataset_info(data_dir: str | Path) -> dict[str, Any]:
    """Statistics of the episodes in ``data_dir`` as a JSON-serialisable dict.

    Keys: ``episodes``, ``frames``, ``hours``, ``km`` (from ``ego_pose``), ``events`` (per event: share of
    episodes and of steps in which it occurs; a step has an event when its value exceeds 0.5),
    ``collision_or_off_road_episode_share``,
    ``terminations``, ``drivers``, ``maps``, ``simulators`` (episode counts), ``disk_bytes``,
    ``bytes_per_frame``, ``field_bytes_per_frame`` and ``unreadable`` (damaged episodes, skipped).
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"no dataset folder {data_dir}")
    frames = 0
    seconds = 0.0
    metres = 0.0
    disk_bytes = 0
    field_bytes: Counter[str] = Counter()
    episodes_with = np.zeros(len(INFO_EVENTS), dtype=np.int64)
    steps_with = np.zeros(len(INFO_EVENTS), dtype=np.int64)
    safety_episodes = 0
    counters: dict[str, Counter[str]] = {key: Counter() for key in ("terminations", "drivers", "maps", "simulators")}
    unreadable: dict[str, str] = {}
    readers = []
    for path in list_episodes(data_dir):
        try:
            reader = EpisodeReader(path)
            flags = event_flags(reader.read("events"), INFO_EVENTS)
            pose = reader.read("ego_pose")
        except EpisodeError as error:
            unreadable[path.name] = str(error)
            logger.warning("skipping damaged episode: %s", error)
            continue
        readers.append(reader)
        meta = reader.meta
        frames += reader.length
        seconds += reader.length * episode_dt_s(meta)
        metres += float(np.linalg.norm(np.diff(pose[:, :2], axis=0), axis=1).sum())
        episodes_with += flags.any(axis=0)
        safety_episodes += bool(flags[:, :2].any())
        steps_with += flags.sum(axis=0)
        counters["terminations"][str(meta.get("termination") or "none")] += 1
        counters["drivers"][str(meta.get("driver", "unknown"))] += 1
        counters["maps"][str(meta.get("map_name", "unknown"))] += 1
        counters["simulators"][str(meta.get("simulator", "unknown"))] += 1
        field_bytes.update({name: info["bytes"] for name, info in reader.fields.items()})
        disk_bytes += _folder_bytes(path)
    count = len(readers)
    events = {
        name: {
            "episode_share": float(episodes_with[i] / count) if count else 0.0,
            "step_share": float(steps_with[i] / frames) if frames else 0.0,
        }
        for i, name in enumerate(INFO_EVENTS)
    }
    return {
        "data_dir": str(data_dir),
        "episodes": count,
        "frames": frames,
        "hours": seconds / 3600.0,
        "km": metres / 1000.0,
        "mean_length": frames / count if count else 0.0,
        "events": events,
        "collision_or_off_road_episode_share": safety_episodes / count if count else 0.0,
        **{key: dict(counter.most_common()) for key, counter in counters.items()},
        "disk_bytes": disk_bytes,
        "bytes_per_frame": disk_bytes / frames if frames else 0.0,
        "field_bytes_per_frame": {name: size / frames for name, size in field_bytes.items()} if frames else {},
        "unreadable": unreadable,
    }
