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


# The Traffic Manager runs inside the client process that first asks a server for one, bound to its port
# on this host; it lives until ``shut_down()``, even when the server it was made for restarts or dies.
_TRAFFIC_MANAGERS: dict[int, tuple[Any, int]] = {}
TM_BIND_ERROR = (
    "trying to create rpc server for traffic manager; but the system failed to create because of bind error."
)


def bind_traffic_manager(port: int, server: Any, epoch: int) -> None:
    """Bind a Traffic Manager on ``port`` for ``server`` in its start ``epoch``.

    Raises:
        RuntimeError: The port is held by another Traffic Manager (the real client's message).
    """
    holder = _TRAFFIC_MANAGERS.get(int(port))
    if holder is not None and holder != (server, epoch):
        raise RuntimeError(TM_BIND_ERROR)
    _TRAFFIC_MANAGERS[int(port)] = (server, epoch)


def release_traffic_manager(port: int) -> None:
    _TRAFFIC_MANAGERS.pop(int(port), None)


def traffic_manager_ports(server: Any | None = None) -> list[int]:
    """Ports held by Traffic Managers in this process (of ``server`` only, when given)."""
    return sorted(port for port, (owner, _) in _TRAFFIC_MANAGERS.items() if server is None or owner is server)
