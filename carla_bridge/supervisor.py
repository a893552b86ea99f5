"""CARLA bridge: a supervisor that starts a CARLA server (``CarlaUE4.sh``), watches it and restarts it.

Given the CARLA folder, ``ServerSupervisor`` runs ``CarlaUE4.sh -carla-rpc-port=<port> <args>`` in its own
process group (the script starts the UE4 binary as a child: both are stopped together), waits until a
client gets the server's version, and after a lost session restarts the server when its process died
or no longer answers. Its output goes to a log file whose last lines are quoted when a start fails.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from drivesim.utils import SimulatorLostError

logger = logging.getLogger(__name__)

SERVER_SCRIPT = "CarlaUE4.sh"
STOP_GRACE_S = 10.0  # SIGTERM, then SIGKILL after this long [s]
FIRST_POLL_S = 0.05  # readiness checks start this often and back off to poll_s [s]
ANSWER_TIMEOUT_S = 5.0  # a running server that does not answer a version query within this is hung [s]
LOG_TAIL_LINES = 20


class ServerStartError(SimulatorLostError):
    """The CARLA server did not start (the script is missing, it exited, or it never answered)."""


class ServerSupervisor:
    """Owns one CARLA server process on ``host:port`` (see the module docstring).

    Args:
        carla_root: The CARLA folder holding ``CarlaUE4.sh``.
        port: RPC port (``-carla-rpc-port``); the server also uses the next two.
        args: More arguments, e.g. ``-RenderOffScreen``, ``-nosound``, ``-quality-level=Low``.
        client_factory: ``carla.Client`` or a stand-in taking (host, port), used to see it answer.
        host: Where clients reach it (the server runs on this machine).
        start_timeout_s: How long a start may take until the server answers [s] (real servers: 10-60 s).
        poll_s: Longest interval of the readiness checks [s] (they start at ``FIRST_POLL_S``).
        log_path: The server's output; default ``<tmp>/drivesim-carla-<port>.log``.
    """

    def __init__(
        self,
        carla_root: Path,
        port: int,
        args: Sequence[str],
        client_factory: Callable[[str, int], Any],
        host: str = "localhost",
        start_timeout_s: float = 120.0,
        poll_s: float = 1.0,
        log_path: Path | None = None,
    ) -> None:
        self.script = Path(carla_root).expanduser() / SERVER_SCRIPT
        self.port = port
        self.args = list(args)
        self.client_factory = client_factory
        self.host = host
        self.start_timeout_s = start_timeout_s
        self.poll_s = poll_s
        self.log_path = log_path or Path(tempfile.gettempdir()) / f"drivesim-carla-{port}.log"
        self.process: subprocess.Popen | None = None
        self.starts = 0

    def command(self) -> list[str]:
        return [str(self.script), f"-carla-rpc-port={self.port}", *self.args]

    def running(self) -> bool:
        """Whether the process this supervisor started is still alive."""
        return self.process is not None and self.process.poll() is None

    def answering(self, timeout_s: float = ANSWER_TIMEOUT_S) -> bool:
        """Whether a server on the port returns its version within ``timeout_s``."""
        try:
            client = self.client_factory(self.host, self.port)
            client.set_timeout(timeout_s)
            client.get_server_version()
        except RuntimeError:
            return False
        return True

    def start(self) -> None:
        """Start the server and wait until it answers.

        Raises:
            ServerStartError: ``CarlaUE4.sh`` is missing, another server already answers on the port, the
                process exited, or it did not answer within ``start_timeout_s`` (it is stopped then).
        """
        if not os.access(self.script, os.X_OK):
            raise ServerStartError(
                f"no executable {self.script}: --carla-root must be the CARLA 0.9.16 folder (with CarlaUE4.sh)"
            )
        if not self.running() and self.answering(timeout_s=1.0):
            raise ServerStartError(
                f"another CARLA server already answers on {self.host}:{self.port}; stop it or choose another "
                "--port (the supervisor only watches servers it starts)"
            )
        self.stop()
        self.starts += 1
        logger.info("starting %s (start %d; output in %s)", " ".join(self.command()), self.starts, self.log_path)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command(),
                cwd=self.script.parent,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() ends the UE4 child too
            )
        deadline = time.monotonic() + self.start_timeout_s
        wait_s = FIRST_POLL_S
        while time.monotonic() < deadline:
            if not self.running():
                code = self.process.returncode
                self.process = None
                raise ServerStartError(f"the CARLA server exited with status {code} while starting{self._log_tail()}")
            if self.answering(timeout_s=min(max(wait_s, 0.5), ANSWER_TIMEOUT_S)):
                logger.info("CARLA server on port %d is up", self.port)
                return
            time.sleep(wait_s)
            wait_s = min(2.0 * wait_s, self.poll_s)
        self.stop()
        raise ServerStartError(
            f"the CARLA server on port {self.port} did not answer within {self.start_timeout_s:g} s{self._log_tail()}"
        )

    def ensure_running(self) -> None:
        """Start the server unless the process this supervisor started is alive."""
        if self.running():
            return
        if self.process is not None:
            logger.warning("the CARLA server on port %d exited (status %s): restarting it", self.port, self.process.returncode)
        self.start()

    def recover(self) -> None:
        """After a lost session: restart the server when its process died or it stopped answering."""
        if self.running() and self.answering():
            return
        if self.running():
            logger.warning("the CARLA server on port %d is running but does not answer: restarting it", self.port)
        elif self.process is not None:
            logger.warning("the CARLA server on port %d died (status %s): restarting it", self.port, self.process.returncode)
        self.start()

    def stop(self) -> None:
        """Stop the server's process group: SIGTERM, then SIGKILL after ``STOP_GRACE_S``."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        for sig, wait_s in ((signal.SIGTERM, STOP_GRACE_S), (signal.SIGKILL, STOP_GRACE_S)):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                return
            try:
                process.wait(timeout=wait_s)
                return
            except subprocess.TimeoutExpired:
                continue
        logger.warning("the CARLA server process %d did not stop", process.pid)

    def _log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
        except OSError:
            return ""
        return f"; last lines of {self.log_path}:\n" + "\n".join(lines) if lines else ""
