"""Data stage: find truncated, corrupt or schema-mismatched episodes and optionally quarantine them."""

from __future__ import annotations

import logging
import shutil
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from drivesim.data.episode import (
    ENCODING_PACKBITS,
    FIELD_DTYPES,
    FIELD_NDIM,
    EpisodeError,
    EpisodeReader,
    list_episodes,
    stale_temporaries,
)

logger = logging.getLogger(__name__)

QUARANTINE_DIR = "quarantine"
CHUNK_BYTES = 1 << 22


@dataclass
class VerifyReport:
    """Outcome of ``verify_dataset``: names of good and bad episodes, and what was moved."""

    data_dir: str
    ok: list[str] = field(default_factory=list)
    bad: dict[str, list[str]] = field(default_factory=dict)
    quarantined: list[str] = field(default_factory=list)
    stale_temporaries: list[str] = field(default_factory=list)

    @property
    def checked(self) -> int:
        return len(self.ok) + len(self.bad)

    def to_dict(self) -> dict[str, object]:
        return {
            "data_dir": self.data_dir,
            "checked": self.checked,
            "ok": len(self.ok),
            "bad": self.bad,
            "quarantined": self.quarantined,
            "stale_temporaries": self.stale_temporaries,
        }


def file_crc32(path: Path) -> int:
    """CRC-32 of a whole file, read in chunks."""
    crc = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            crc = zlib.crc32(chunk, crc)
    return crc


def _field_problems(reader: EpisodeReader, name: str, checksums: bool) -> list[str]:
    info = reader.fields[name]
    file = reader.path / info["file"]
    problems = []
    try:
        stored = reader.open(name)
    except EpisodeError as error:
        return [str(error)]
    expected_dtype = FIELD_DTYPES.get(name)
    if expected_dtype is not None:
        if np.dtype(info["dtype"]) != expected_dtype or len(info["shape"]) != FIELD_NDIM[name]:
            problems.append(f"{file}: {info['dtype']}{info['shape']} does not match the schema")
    if info["encoding"] == ENCODING_PACKBITS:
        packed = (int(np.prod(info["shape"][1:])) + 7) // 8
        if list(stored.shape[1:]) != [packed]:
            problems.append(f"{file}: packed size {list(stored.shape[1:])} does not match shape {info['shape']}")
    elif list(stored.shape) != info["shape"]:
        problems.append(f"{file}: shape {list(stored.shape)} does not match meta.json {info['shape']}")
    del stored
    if checksums and file_crc32(file) != info["crc32"]:
        problems.append(f"{file}: checksum mismatch (corrupt)")
    return problems


def verify_episode(path: str | Path, checksums: bool = True) -> list[str]:
    """Problems of one episode (empty when it is sound), each naming the file.

    Checks meta.json and schema version, presence and size of every field file, each .npy header against
    the meta, the episode flags, and (with ``checksums``) every file's CRC-32.
    """
    try:
        reader = EpisodeReader(path)
    except EpisodeError as error:
        return [str(error)]
    problems = [problem for name in reader.fields for problem in _field_problems(reader, name, checksums)]
    if not problems:
        try:
            first, last = reader.read("is_first"), reader.read("is_last")
        except EpisodeError as error:
            return [str(error)]
        if not first[0] or first[1:].any() or not last[-1] or last[:-1].any():
            problems.append(f"{reader.path}: is_first/is_last do not mark exactly the first/last step")
    return problems


def _quarantine(data_dir: Path, episode: Path) -> Path:
    target_dir = data_dir / QUARANTINE_DIR
    target_dir.mkdir(exist_ok=True)
    target = target_dir / episode.name
    suffix = 1
    while target.exists():
        target = target_dir / f"{episode.name}-{suffix}"
        suffix += 1
    shutil.move(str(episode), str(target))
    logger.warning("quarantined %s -> %s", episode, target)
    return target


def verify_dataset(data_dir: str | Path, checksums: bool = True, quarantine: bool = False) -> VerifyReport:
    """Check every episode of ``data_dir``; with ``quarantine`` move the bad ones into ``data_dir/quarantine``.

    Args:
        data_dir: Dataset folder.
        checksums: Also hash every file (reads the whole dataset); without it only metadata, sizes and
            headers are checked.
        quarantine: Move bad episodes into ``data_dir/quarantine/``.

    Returns:
        A ``VerifyReport``; ``report.bad`` maps episode names to their problems.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"no dataset folder {data_dir}")
    report = VerifyReport(str(data_dir), stale_temporaries=[path.name for path in stale_temporaries(data_dir)])
    for episode in list_episodes(data_dir):
        problems = verify_episode(episode, checksums=checksums)
        if not problems:
            report.ok.append(episode.name)
            continue
        report.bad[episode.name] = problems
        if quarantine:
            _quarantine(data_dir, episode)
            report.quarantined.append(episode.name)
    return report
