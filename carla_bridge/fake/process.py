"""Fake CARLA server with a real server process: what the supervisor starts, watches, kills and restarts.

``python -m carla_bridge.fake.process -carla-rpc-port=P`` (the fake ``CarlaUE4.sh`` runs it) is the
server's *process*: it listens on 127.0.0.1:P and greets every connection with its boot id. The world
itself is still simulated in the client's process by a ``ProcessFakeServer``, which follows that process:
while it is gone every call times out, and when a new process answers (a restart) the world starts fresh,
with no actors and default settings, as a restarted CARLA server. ``ProcessClientFactory`` builds the
clients (picklable, for collection workers in other processes); ``kill_at_ticks`` makes the fake SIGKILL
its server process at given ticks, mid-episode.
"""

from __future__ import annotations

import argparse
import os
import select
import signal
import socket
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from carla_bridge.fake import registry
from carla_bridge.fake.client import FakeClient
from carla_bridge.fake.server import FakeCarlaServer
from drivesim.sim.config import SimConfig

if TYPE_CHECKING:
    from carla_bridge.env import CarlaBridgeEnv
    from drivesim.data.config import CollectConfig

BANNER = b"fake-carla"
CONNECT_TIMEOUT_S = 1.0


def serve(port: int) -> None:
    """Listen on 127.0.0.1:``port``; greet each connection with ``fake-carla <pid> <boot id>``; run until killed."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(16)
    greeting = b"%s %d %d\n" % (BANNER, os.getpid(), time.monotonic_ns())
    connections = [listener]
    while True:
        readable, _, _ = select.select(connections, [], [])
        for ready in readable:
            if ready is listener:
                connection, _ = listener.accept()
                connection.sendall(greeting)
                connections.append(connection)
            elif not ready.recv(4096):
                connections.remove(ready)
                ready.close()


class ProcessLink:
    """A connection to the server process on 127.0.0.1:``port``: its pid and boot id while it lives."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._socket: socket.socket | None = None
        self.pid: int | None = None
        self.boot_id: str | None = None
        self._killed: set[str] = set()  # boot ids of processes killed here (gone, even if not yet reaped)

    def _connect(self) -> None:
        try:
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=CONNECT_TIMEOUT_S)
            line = sock.makefile("rb").readline()
        except OSError:
            return
        parts = line.split()
        if len(parts) != 3 or parts[0] != BANNER or parts[2].decode() in self._killed:
            sock.close()
            return
        self._socket, self.pid, self.boot_id = sock, int(parts[1]), parts[2].decode()

    def _disconnect(self) -> None:
        if self._socket is not None:
            self._socket.close()
        self._socket, self.pid, self.boot_id = None, None, None

    def current_boot(self) -> str | None:
        """The boot id of the process answering now, or None when none does."""
        if self._socket is not None:
            readable, _, _ = select.select([self._socket], [], [], 0.0)
            if readable:  # the server never sends after its greeting: readable means closed
                self._disconnect()
        if self._socket is None:
            self._connect()
        return self.boot_id

    def kill(self) -> None:
        """SIGKILL the server process (as a crash); it is gone from now on."""
        if self.pid is not None:
            os.kill(self.pid, signal.SIGKILL)
        if self.boot_id is not None:
            self._killed.add(self.boot_id)
        self._disconnect()


class ProcessFakeServer(FakeCarlaServer):
    """A ``FakeCarlaServer`` alive exactly while its server process answers (see the module docstring).

    Args:
        kill_at_ticks: Ticks (counted over all restarts) at which the fake kills its server process.
        **server: ``FakeCarlaServer`` arguments.
    """

    def __init__(self, kill_at_ticks: tuple[int, ...] = (), **server: Any) -> None:
        self.link = ProcessLink(int(server["port"]))
        self.kill_at_ticks = set(kill_at_ticks)
        self.total_ticks = 0
        self._boot: str | None = None
        super().__init__(**server)
        self.alive = False  # until a process answers

    def _follow_process(self) -> None:
        boot = self.link.current_boot()
        if boot is None:
            self.alive = False
        elif boot != self._boot:
            self._boot = boot
            self.start()  # a (re)started server: fresh world, default settings, no actors

    def _check_alive(self) -> None:
        self._follow_process()
        super()._check_alive()

    def _tick(self, seconds: float) -> int:
        frame = super()._tick(seconds)
        self.total_ticks += 1
        if self.total_ticks in self.kill_at_ticks:
            self.link.kill()
        return frame


class ProcessFakeClient(FakeClient):
    """A ``FakeClient`` whose server is the ``ProcessFakeServer`` of (host, port), made on first use."""

    _server_options: dict[str, Any] = {}

    def _server(self) -> FakeCarlaServer:
        server = registry.lookup(self._host, self._port)
        if server is None:
            server = ProcessFakeServer(host=self._host, port=self._port, **self._server_options)
        if isinstance(server, ProcessFakeServer):
            server._follow_process()
        return super()._server()


@dataclass(frozen=True)
class ProcessClientFactory:
    """Picklable ``client_factory`` (host, port) -> ``ProcessFakeClient`` for the bridge and the supervisor.

    Args:
        town: Map of the fake's world (a built-in map name).
        sim_config: Embedded simulator config of the fake's world.
        kill_at_ticks: Port -> ticks at which that server's process is killed.
    """

    town: str = "junction"
    sim_config: SimConfig = field(default_factory=SimConfig)
    kill_at_ticks: dict[int, tuple[int, ...]] = field(default_factory=dict)

    def __call__(self, host: str, port: int) -> ProcessFakeClient:
        client = ProcessFakeClient(host, port)
        client._server_options = {
            "town": self.town,
            "sim_config": self.sim_config,
            "kill_at_ticks": tuple(self.kill_at_ticks.get(port, ())),
        }
        return client


@dataclass(frozen=True)
class FakeServerEnvFactory:
    """Picklable env factory of collection worker ``server``: the bridge on that fake server process.

    The bridge config comes from ``config.collect.carla.for_server(server)`` as in ``drivesim collect``.
    """

    config: CollectConfig
    server: int
    clients: ProcessClientFactory

    def __call__(self) -> CarlaBridgeEnv:
        from carla_bridge.env import CarlaBridgeEnv
        from carla_bridge.fake import commands

        bridge = self.config.collect.carla.for_server(self.server)
        return CarlaBridgeEnv(
            bridge, self.config.sim, self.config.sensors, client_factory=self.clients, command_module=commands
        )


def main() -> None:
    """``CarlaUE4.sh``-style arguments: only ``-carla-rpc-port=P`` is read, the rest is ignored."""
    parser = argparse.ArgumentParser(description=__doc__, prefix_chars="-")
    parser.add_argument("-carla-rpc-port", type=int, default=2000)
    arguments, _ = parser.parse_known_args()
    serve(arguments.carla_rpc_port)


if __name__ == "__main__":
    main()
