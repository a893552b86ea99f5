"""Data stage: the on-disk episode format (atomic write, validated windowed reads, recorder).

An episode is a folder ``ep_<index:06d>/`` holding ``meta.json`` and one ``.npy`` file per field; see
``docs/dataset_format.md`` for the versioned spec.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

import numpy as np

from drivesim import spec

logger = logging.getLogger(__name__)

FORMAT_NAME = "drivesim-episode"
META_FILE = "meta.json"
EPISODE_PATTERN = re.compile(r"^ep_(\d{6,})$")
TEMP_PATTERN = re.compile(r"^\.ep_(\d{6,})\.tmp-(\d+)$")
FIELD_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")  # field names are also file names
RESERVED_META_KEYS = ("format", "schema_version", "index", "length", "fields")

# Canonical dtype and number of dimensions (time axis included) of every known field.
FIELD_DTYPES: dict[str, np.dtype] = {
    "measurements": np.dtype(np.float32),
    "route": np.dtype(np.float32),
    "expert_waypoints": np.dtype(np.float32),
    "events": np.dtype(np.float32),
    "action": np.dtype(np.float32),
    "expert_action": np.dtype(np.float32),
    "reward": np.dtype(np.float32),
    "ego_pose": np.dtype(np.float64),
    "is_first": np.dtype(bool),
    "is_last": np.dtype(bool),
    "is_terminal": np.dtype(bool),
    spec.OBS_BEV: np.dtype(np.uint8),
    spec.OBS_CAMERA: np.dtype(np.uint8),
}
FIELD_NDIM: dict[str, int] = {
    "measurements": 2,
    "route": 3,
    "expert_waypoints": 3,
    "events": 2,
    "action": 2,
    "expert_action": 2,
    "reward": 1,
    "ego_pose": 2,
    "is_first": 1,
    "is_last": 1,
    "is_terminal": 1,
    spec.OBS_BEV: 4,
    spec.OBS_CAMERA: 4,
}
FLAG_FIELDS = ("is_first", "is_last", "is_terminal")

ENCODING_RAW = "raw"
ENCODING_PACKBITS = "packbits"  # {0, 1} values packed 8 per byte along the flattened per-step axis
FIELD_ENCODINGS: dict[str, str] = {spec.OBS_BEV: ENCODING_PACKBITS}

# A step "has" an event when its value exceeds this (collision and lane invasion are 0/1; off_road is the
# share of the footprint off the driving lanes, so > 0.5 means mostly off-road).
EVENT_THRESHOLD = 0.5
SAFETY_EVENTS = ("collision", "off_road")


class EpisodeError(RuntimeError):
    """An episode on disk is missing, truncated, corrupt or of another schema; the message names the file."""


def episode_name(index: int) -> str:
    """Folder name of episode ``index``."""
    return f"ep_{index:06d}"


def list_episodes(data_dir: str | Path) -> list[Path]:
    """Finished episode folders of ``data_dir`` in index order; temporaries and other entries are ignored."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        return []
    found = [entry for entry in data_dir.iterdir() if EPISODE_PATTERN.match(entry.name) and entry.is_dir()]
    return sorted(found, key=lambda path: int(EPISODE_PATTERN.match(path.name).group(1)))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stale_temporaries(data_dir: str | Path) -> list[Path]:
    """Temporary episode folders left by writers that no longer run (killed or crashed)."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        return []
    stale = []
    for entry in data_dir.iterdir():
        match = TEMP_PATTERN.match(entry.name)
        if match and not _pid_alive(int(match.group(2))):
            stale.append(entry)
    return sorted(stale)


def remove_stale_temporaries(data_dir: str | Path) -> list[Path]:
    """Delete the temporaries of dead writers and return what was removed."""
    removed = stale_temporaries(data_dir)
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
        logger.info("removed stale temporary episode %s", path)
    return removed


def event_flags(events: np.ndarray, names: tuple[str, ...] = SAFETY_EVENTS) -> np.ndarray:
    """Per-step boolean flags (T, len(names)) of the named events from an events array (T, E)."""
    columns = [spec.EVENT_NAMES.index(name) for name in names]
    return np.asarray(events)[:, columns] > EVENT_THRESHOLD


class _ChecksumWriter:
    """Forwards writes to a binary file while accumulating the CRC-32 and byte count."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle
        self.crc = 0
        self.size = 0

    def write(self, payload: bytes | memoryview) -> int:
        self.crc = zlib.crc32(payload, self.crc)
        self.size += len(payload)
        return self.handle.write(payload)


def _write_npy(path: Path, array: np.ndarray) -> tuple[int, int]:
    """Write ``array`` as a .npy file, fsync it, and return (size in bytes, CRC-32 of the file)."""
    array = np.ascontiguousarray(array)
    with open(path, "wb") as handle:
        writer = _ChecksumWriter(handle)
        np.lib.format.write_array_header_1_0(writer, np.lib.format.header_data_from_array_1_0(array))
        writer.write(memoryview(array.reshape(-1).view(np.uint8)))
        handle.flush()
        os.fsync(handle.fileno())
    return writer.size, writer.crc


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _canonical(name: str, value: Any, length: int) -> np.ndarray:
    """Check a field's dtype/shape and return it in its canonical dtype."""
    if not FIELD_NAME_PATTERN.match(name):
        raise ValueError(f"field name {name!r} must match {FIELD_NAME_PATTERN.pattern}")
    array = np.asarray(value)
    if array.dtype.hasobject:
        raise ValueError(f"field {name!r} has dtype object; only numeric arrays can be stored")
    if array.ndim == 0:
        raise ValueError(f"field {name!r} needs a leading time axis, got a scalar")
    if array.shape[0] != length:
        raise ValueError(f"field {name!r} has {array.shape[0]} steps, expected {length}")
    dtype = FIELD_DTYPES.get(name)
    if dtype is None:
        return array
    if array.ndim != FIELD_NDIM[name]:
        raise ValueError(f"field {name!r} must have {FIELD_NDIM[name]} dims (time first), got shape {array.shape}")
    if not np.can_cast(array.dtype, dtype, casting="same_kind"):
        raise ValueError(f"field {name!r} of dtype {array.dtype} cannot be stored as {dtype}")
    return array.astype(dtype, copy=False)


def _encode(name: str, array: np.ndarray) -> tuple[str, np.ndarray]:
    """Return (encoding, stored array) for a field."""
    encoding = FIELD_ENCODINGS.get(name, ENCODING_RAW)
    if encoding == ENCODING_PACKBITS:
        if array.size and array.max() > 1:
            raise ValueError(f"field {name!r} must hold only 0/1 values to be bit-packed")
        return encoding, np.packbits(array.reshape(array.shape[0], -1), axis=1)
    return encoding, array


def write_episode(
    data_dir: str | Path, index: int, steps: Mapping[str, np.ndarray], metadata: Mapping[str, Any]
) -> Path:
    """Write one episode atomically and return its final folder.

    Files go into a hidden temporary sibling ``.ep_<index>.tmp-<pid>``, are fsynced, and the folder is
    renamed into place, so an interrupted write never leaves a visible partial episode.

    Args:
        data_dir: Dataset folder (created if missing).
        index: Episode number; the folder is ``ep_<index:06d>``.
        steps: Field name -> array with a leading time axis; must hold every ``drivesim.spec.EPISODE_FIELDS``
            entry, may hold ``bev`` (T, C, H, W) {0, 1} and ``camera`` (T, H, W, 3) and extra numeric fields.
        metadata: JSON-serialisable self-description (simulator, map, seed, config, driver, ...).

    Returns:
        The episode folder.

    Raises:
        ValueError: A field is missing or has a wrong dtype/shape, or metadata uses a reserved key.
        FileExistsError: The episode already exists.
    """
    data_dir = Path(data_dir)
    missing = [name for name in spec.EPISODE_FIELDS if name not in steps]
    if missing:
        raise ValueError(f"episode {index} lacks fields {missing}")
    clash = [key for key in RESERVED_META_KEYS if key in metadata]
    if clash:
        raise ValueError(f"metadata keys {clash} are reserved by the episode format")
    length = int(np.asarray(steps["reward"]).shape[0])
    if length < 1:
        raise ValueError(f"episode {index} is empty")
    arrays = {name: _canonical(name, value, length) for name, value in steps.items()}

    final = data_dir / episode_name(index)
    if final.exists():
        raise FileExistsError(f"episode already exists: {final}")
    data_dir.mkdir(parents=True, exist_ok=True)
    temp = data_dir / f".{episode_name(index)}.tmp-{os.getpid()}"
    if temp.exists():
        shutil.rmtree(temp)
    temp.mkdir()
    try:
        fields: dict[str, dict[str, Any]] = {}
        for name, array in arrays.items():
            encoding, stored = _encode(name, array)
            size, crc = _write_npy(temp / f"{name}.npy", stored)
            fields[name] = {
                "file": f"{name}.npy",
                "dtype": array.dtype.str,
                "shape": list(array.shape),
                "encoding": encoding,
                "stored_dtype": stored.dtype.str,
                "stored_shape": list(stored.shape),
                "bytes": size,
                "crc32": crc,
            }
        meta = {
            "format": FORMAT_NAME,
            "schema_version": spec.SCHEMA_VERSION,
            "index": index,
            "length": length,
            **metadata,
            "fields": fields,
        }
        payload = json.dumps(meta, indent=2).encode()
        with open(temp / META_FILE, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        _fsync_dir(temp)
        os.rename(temp, final)
        _fsync_dir(data_dir)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    return final


def load_meta(path: str | Path) -> dict[str, Any]:
    """Read and check an episode's ``meta.json`` (format and schema version)."""
    meta_path = Path(path) / META_FILE
    try:
        meta = json.loads(meta_path.read_text())
    except FileNotFoundError:
        raise EpisodeError(f"{meta_path}: missing (not an episode, or a damaged one)") from None
    except (OSError, ValueError) as error:
        raise EpisodeError(f"{meta_path}: unreadable ({error})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise EpisodeError(f"{meta_path}: not a {FORMAT_NAME} meta file")
    version = meta.get("schema_version")
    if version != spec.SCHEMA_VERSION:
        hint = ""
        if isinstance(version, int) and version < spec.SCHEMA_VERSION:
            hint = (" (an older dataset: version 2 added walker/static collision, red-light, stop-sign and wrong-lane"
                    " events and BEV channels for walkers, obstacles, lights and stop signs; collect it again)")
        raise EpisodeError(f"{meta_path}: schema version {version}, this drivesim reads {spec.SCHEMA_VERSION}{hint}")
    if not isinstance(meta.get("fields"), dict) or not isinstance(meta.get("length"), int):
        raise EpisodeError(f"{meta_path}: lacks 'fields' or 'length'")
    return meta


class _FieldLayout(NamedTuple):
    file: str
    dtype: np.dtype  # decoded
    shape: tuple[int, ...]  # decoded, without the time axis
    stored_dtype: np.dtype
    row_shape: tuple[int, ...]  # stored, without the time axis
    row_bytes: int
    data_offset: int  # size of the .npy header
    packed: bool
    bits: int  # decoded values per step (packbits)


class EpisodeReader:
    """Random access to one episode's fields without loading the whole episode.

    Opening reads ``meta.json`` and checks the schema, that every required field is described, and that each
    field file exists with the recorded size (cheap; checksums are left to ``drivesim data verify``).
    ``read`` reads only the byte range of the requested steps; ``open`` gives the whole stored field as a
    read-only memory map (``np.load(mmap_mode="r", allow_pickle=False)``).

    Args:
        path: Episode folder ``ep_<index>``.

    Raises:
        EpisodeError: The episode is damaged; the message names the file and suggests ``drivesim data verify``.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.meta = load_meta(self.path)
        self.length: int = self.meta["length"]
        self.fields: dict[str, dict[str, Any]] = self.meta["fields"]
        self._layouts: dict[str, _FieldLayout] = {}
        missing = [name for name in spec.EPISODE_FIELDS if name not in self.fields]
        if missing:
            raise EpisodeError(f"{self.path / META_FILE}: lacks required fields {missing}")
        for info in self.fields.values():
            file = self.path / info["file"]
            try:
                size = file.stat().st_size
            except FileNotFoundError:
                raise EpisodeError(f"{file}: missing (run `drivesim data verify`)") from None
            if size != info["bytes"]:
                raise EpisodeError(
                    f"{file}: {size} bytes on disk, meta.json records {info['bytes']} "
                    "(truncated or corrupt; run `drivesim data verify --quarantine`)"
                )
            if info["shape"][0] != self.length or info["stored_shape"][0] != self.length:
                raise EpisodeError(f"{file}: {info['shape'][0]} steps, episode length is {self.length}")

    def __repr__(self) -> str:
        return f"EpisodeReader({str(self.path)!r}, length={self.length})"

    def shape(self, field: str) -> tuple[int, ...]:
        """Decoded shape of a field, time axis first."""
        return tuple(self._field(field)["shape"])

    def _field(self, field: str) -> dict[str, Any]:
        try:
            return self.fields[field]
        except KeyError:
            raise KeyError(f"{self.path} has no field {field!r}; it has {sorted(self.fields)}") from None

    def open(self, field: str) -> np.ndarray:
        """The stored (possibly bit-packed) array of a field as a read-only memory map."""
        info = self._field(field)
        file = self.path / info["file"]
        try:
            stored = np.load(file, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as error:
            raise EpisodeError(f"{file}: cannot be read ({error}); run `drivesim data verify`") from None
        if list(stored.shape) != info["stored_shape"] or stored.dtype.str != info["stored_dtype"]:
            raise EpisodeError(
                f"{file}: holds {stored.dtype.str}{list(stored.shape)}, meta.json records "
                f"{info['stored_dtype']}{info['stored_shape']}"
            )
        return stored

    def read(self, field: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Steps ``[start, stop)`` of a field as a new decoded array; only those steps are read from disk."""
        layout = self._layouts.get(field) or self._layout(field)
        stop = self.length if stop is None else stop
        out = np.empty((max(stop - start, 0), *layout.shape), dtype=layout.dtype)
        self.read_into(field, start, stop, out)
        return out

    def read_into(self, field: str, start: int, stop: int, out: np.ndarray) -> None:
        """Decode steps ``[start, stop)`` of a field into ``out`` (C-contiguous, decoded shape and dtype).

        The .npy data follows its header to the end of the file, so the header size is the file size minus
        the data size and steps ``[start, stop)`` are one contiguous byte range: only that range is read,
        straight into ``out`` for raw fields.
        """
        layout = self._layouts.get(field) or self._layout(field)
        if not 0 <= start <= stop <= self.length:
            raise IndexError(f"{self.path.name}/{field}: steps [{start}, {stop}) outside [0, {self.length})")
        if out.shape != (stop - start, *layout.shape) or out.dtype != layout.dtype or not out.flags.c_contiguous:
            raise ValueError(
                f"{self.path.name}/{field}: out must be {layout.dtype}{(stop - start, *layout.shape)} C-contiguous, "
                f"got {out.dtype}{out.shape}"
            )
        target = np.empty((stop - start, *layout.row_shape), dtype=layout.stored_dtype) if layout.packed else out
        try:
            with open(layout.file, "rb", buffering=0) as handle:
                handle.seek(layout.data_offset + start * layout.row_bytes)
                received = handle.readinto(memoryview(target.reshape(-1).view(np.uint8)))
        except OSError as error:
            raise EpisodeError(f"{layout.file}: cannot be read ({error}); run `drivesim data verify`") from None
        if received != target.nbytes:
            raise EpisodeError(f"{layout.file}: truncated (run `drivesim data verify --quarantine`)")
        if layout.packed:
            out[...] = np.unpackbits(target, axis=1, count=layout.bits).reshape(out.shape)

    def _layout(self, field: str) -> _FieldLayout:
        """Where and how a field's steps lie in its file (computed once per field)."""
        info = self._field(field)
        stored_dtype = np.dtype(info["stored_dtype"])
        row_shape = tuple(info["stored_shape"][1:])
        row_bytes = int(np.prod(row_shape)) * stored_dtype.itemsize
        layout = _FieldLayout(
            file=str(self.path / info["file"]),
            dtype=np.dtype(info["dtype"]),
            shape=tuple(info["shape"][1:]),
            stored_dtype=stored_dtype,
            row_shape=row_shape,
            row_bytes=row_bytes,
            data_offset=info["bytes"] - self.length * row_bytes,
            packed=info["encoding"] == ENCODING_PACKBITS,
            bits=int(np.prod(info["shape"][1:])),
        )
        self._layouts[field] = layout
        return layout

    def read_all(self, fields: list[str] | tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
        """Every (or the selected) field in full."""
        names = list(self.fields) if fields is None else list(fields)
        return {name: self.read(name) for name in names}


def read_episode(path: str | Path) -> dict[str, np.ndarray]:
    """Load every field of an episode into memory (decoded, canonical dtypes)."""
    return EpisodeReader(path).read_all()


from drivesim.data.recorder import EpisodeRecorder  # noqa: E402  (part of this module's public API)

__all__ = [
    "EpisodeError",
    "EpisodeReader",
    "EpisodeRecorder",
    "event_flags",
    "list_episodes",
    "load_meta",
    "read_episode",
    "remove_stale_temporaries",
    "stale_temporaries",
    "write_episode",
]
