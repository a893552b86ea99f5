"""Small shared helpers: atomic writes, seeding, the error of a lost simulator."""

from __future__ import annotations

import hashlib
import json
import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np


class SimulatorLostError(RuntimeError):
    """The simulator behind an env went away mid-episode (a CARLA server crashed or stopped answering).

    The episode in progress is lost; the env can be reset again (it reconnects, or its supervisor restarts
    the server), so runners discard the episode and redo it.
    """


def atomic_write_bytes(path: str | Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` via a temporary file in the same folder, fsync, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
        raise


def atomic_write_json(path: str | Path, data: Any) -> None:
    """Write JSON atomically (indented, keys kept in insertion order)."""
    atomic_write_bytes(path, json.dumps(data, indent=2).encode())


def derive_seed(*parts: int | str) -> int:
    """A 31-bit seed derived deterministically from a run seed and indices (e.g. episode number)."""
    sequence = np.random.SeedSequence([abs(hash_part(part)) for part in parts])
    return int(sequence.generate_state(1)[0] & 0x7FFFFFFF)


def hash_part(part: int | str) -> int:
    """An integer for a seed part: ints as they are, strings through SHA-256."""
    if isinstance(part, int):
        return part
    return int.from_bytes(hashlib.sha256(part.encode()).digest()[:8], "little")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and (if installed) torch."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    try:
        import torch

        torch.manual_seed(seed)
    except ImportError:  # pragma: no cover - torch is a dependency, but keep sim usable without it
        pass
