"""Fake CARLA server: the in-process address book mapping (host, port) to running fake servers."""

from __future__ import annotations

from typing import Any

LOCAL_NAMES = ("localhost", "127.0.0.1")
_SERVERS: dict[tuple[str, int], Any] = {}


def _key(host: str, port: int) -> tuple[str, int]:
    return ("localhost" if host in LOCAL_NAMES else host, int(port))


def register(host: str, port: int, server: Any) -> None:
    """Make ``server`` answer clients of (host, port); an address can hold only one server."""
    key = _key(host, port)
    if key in _SERVERS and _SERVERS[key] is not server:
        raise RuntimeError(f"a fake CARLA server already listens on {host}:{port}")
    _SERVERS[key] = server


def unregister(host: str, port: int) -> None:
    _SERVERS.pop(_key(host, port), None)


def lookup(host: str, port: int) -> Any | None:
    return _SERVERS.get(_key(host, port))
