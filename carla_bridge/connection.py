"""CARLA bridge: client connection, version check, town loading, synchronous mode, the per-connection session."""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import carla

from carla_bridge.actors import (
    CleanupCalls,
    LaneFollowingPaths,
    destroy_leftovers,
    npc_blueprints,
    spawn_candidates,
)
from carla_bridge.config import BridgeConfig
from drivesim.sensors.map_raster import render_map_raster
from drivesim.sim.config import SimConfig
from drivesim.sim.road import RoadNetwork
from drivesim.utils import SimulatorLostError

logger = logging.getLogger(__name__)

ClientFactory = Callable[[str, int], Any]  # carla.Client or the fake's client (host, port) -> client
NETWORK_CACHE_SIZE = 4  # road networks of different maps kept per process
LOAD_TIMEOUT_S = 120.0  # loading a town takes 10-60 s on a real server; the RPC timeout is raised meanwhile
CLEANUP_TIMEOUT_S = 1.0  # client time-out of the cleanup calls after the server failed [s]


class ServerConnectionError(SimulatorLostError):
    """The CARLA server cannot be reached or stopped answering; the episode in progress is discarded."""


class TrafficManagerPortError(ValueError):
    """The Traffic Manager port is held by another Traffic Manager on this host (another server's run)."""


def open_traffic_manager(client: Any, config: BridgeConfig) -> Any:
    """The server's Traffic Manager on ``config.tm_port`` (started in this process when the server has none).

    Raises:
        TrafficManagerPortError: The port is taken on this host, typically by the Traffic Manager of a run
            on another server; the message names the port and how to choose another.
        RuntimeError: From the client, when the server does not answer.
    """
    port = config.tm_port
    try:
        return client.get_trafficmanager(port)
    except RuntimeError as error:
        if "bind" not in str(error):
            raise
        raise TrafficManagerPortError(
            f"Traffic Manager port {port} is taken on this host ({error}): another run (on another server?) "
            f"holds it; give each server its own port (traffic_manager_port, drivesim collect --tm-port)"
        ) from None


def start_hint(port: int) -> str:
    """How to start a server that this bridge can reach on ``port``."""
    return (
        f"start one with `./CarlaUE4.sh -RenderOffScreen -carla-rpc-port={port}` in the CARLA folder "
        f"(or `docker run -d --rm --privileged --gpus all --net=host carlasim/carla:0.9.16 /bin/bash "
        f"./CarlaUE4.sh -RenderOffScreen -carla-rpc-port={port}`), then retry"
    )


def connect(config: BridgeConfig, client_factory: ClientFactory) -> tuple[Any, str]:
    """A client connected to the server at ``config.host:config.port`` and the server's version.

    Warns when the client and server versions differ (the RPC protocol changes between releases).

    Raises:
        ServerConnectionError: No server answered within ``config.timeout_s``; the message names the host, the
            port and how to start a server.
    """
    try:
        client = client_factory(config.host, config.port)
        client.set_timeout(config.timeout_s)
        server_version = client.get_server_version()
    except RuntimeError as error:
        raise ServerConnectionError(
            f"no CARLA server answered at {config.host}:{config.port} within {config.timeout_s:g} s ({error}); "
            + start_hint(config.port)
        ) from None
    client_version = client.get_client_version()
    if server_version != client_version:
        logger.warning(
            "CARLA client %s and server %s differ (%s:%d): install the matching client (pip install carla==%s)",
            client_version,
            server_version,
            config.host,
            config.port,
            server_version,
        )
    return client, server_version


def _short_name(map_name: str) -> str:
    """'Carla/Maps/Town10HD_Opt' -> 'Town10HD': the road network's name (both variants share the OpenDRIVE,
    and the embedded simulator names it so); the server's map itself is never chosen by this name."""
    name = map_name.rsplit("/", 1)[-1]
    return name[: -len("_Opt")] if name.endswith("_Opt") else name


def load_town(client: Any, town: str, timeout_s: float) -> Any:
    """The server's world with ``town`` loaded: a town name, or an OpenDRIVE file (``generate_opendrive_world``).

    A town that is already loaded is kept (reloading takes tens of seconds); see ``resolve_town`` for names.

    Raises:
        ValueError: The town is unknown to the server or the .xodr file is missing.
        RuntimeError: From the client, when the server stops answering while loading.
    """
    client.set_timeout(max(timeout_s, LOAD_TIMEOUT_S))
    try:
        if Path(town).suffix.lower() == ".xodr":
            path = Path(town).expanduser()
            if not path.is_file():
                raise ValueError(f"OpenDRIVE file not found: {path}")
            logger.info("generating a world from %s", path)
            return client.generate_opendrive_world(path.read_text(errors="replace"))
        world = client.get_world()
        loaded = world.get_map().name.rsplit("/", 1)[-1]
        if loaded == town:
            return world
        target = resolve_town(town, [name.rsplit("/", 1)[-1] for name in client.get_available_maps()])
        if loaded == target:
            return world
        logger.info("loading %s (this takes a while)", target)
        return client.load_world(target)
    finally:
        client.set_timeout(timeout_s)


def resolve_town(town: str, available: list[str]) -> str:
    """The server's map for ``town``: itself, else its layered '_Opt' variant when only that one exists.

    'Town01' and 'Town01_Opt' are different maps on a server (the layered one can unload buildings,
    foliage, parked cars): a name that exists is loaded as given, never swapped for the other.

    Raises:
        ValueError: The server has neither.
    """
    if town in available:
        return town
    if f"{town}_Opt" in available:
        return f"{town}_Opt"
    raise ValueError(
        f"the CARLA server has no town {town!r}; available: {sorted(available)} (or give an .xodr path)"
    )


def asynchronous(settings: carla.WorldSettings) -> carla.WorldSettings:
    """``settings`` to restore at the end: synchronous mode found on entry is a crashed client's, not the original.

    A client killed while the server was synchronous (SIGKILL, a lost machine) cannot switch it back; taking
    those settings as the original would leave the server waiting for ticks after this run too. They are
    replaced by asynchronous mode with a variable step, as the Leaderboard's evaluator resets a server.
    """
    if settings.synchronous_mode:
        logger.warning(
            "the server was already in synchronous mode (left by a crashed client?); it is restored to "
            "asynchronous mode with a variable step at the end"
        )
        settings.synchronous_mode = False
        settings.fixed_delta_seconds = None
    return settings


class SynchronousMode:
    """Context manager putting the world and the Traffic Manager into synchronous mode, as CARLA's examples do.

    On entry the server's settings are saved, then ``synchronous_mode``, ``fixed_delta_seconds`` (and
    ``no_rendering_mode``) are applied and the Traffic Manager is switched to synchronous mode with a fixed
    seed (and hybrid physics on request). On exit, also after an exception or Ctrl-C, the Traffic Manager is
    switched back and the saved settings are re-applied. A server that no longer answers cannot be restored:
    that is logged, not raised, so that the original error propagates.

    Args:
        world: The ``carla.World``.
        traffic_manager: The ``carla.TrafficManager`` driving the NPCs.
        delta_s: Fixed simulation step [s].
        config: Seed, hybrid physics and rendering options.
    """

    def __init__(
        self,
        world: Any,
        traffic_manager: Any,
        delta_s: float,
        config: BridgeConfig,
        cleanup: CleanupCalls | None = None,
    ) -> None:
        self.world = world
        self.traffic_manager = traffic_manager
        self.delta_s = delta_s
        self.config = config
        self.cleanup = cleanup or CleanupCalls()
        self.original_settings: carla.WorldSettings | None = None
        self._traffic_manager_synchronous = False

    def __enter__(self) -> SynchronousMode:
        self.original_settings = asynchronous(self.world.get_settings())
        try:
            settings = self.world.get_settings()
            settings.synchronous_mode = True
            settings.fixed_delta_seconds = self.delta_s
            settings.no_rendering_mode = self.config.no_rendering
            self.world.apply_settings(settings)
            self._traffic_manager_synchronous = True
            self.traffic_manager.set_synchronous_mode(True)
            self.traffic_manager.set_random_device_seed(self.config.seed)
            self.traffic_manager.set_hybrid_physics_mode(self.config.hybrid_physics)
            if self.config.hybrid_physics:
                self.traffic_manager.set_hybrid_physics_radius(self.config.hybrid_physics_radius_m)
        except BaseException:
            self.restore()
            raise
        return self

    def tick(self, timeout_s: float) -> int:
        """Advance the simulation one fixed step; returns the new frame number."""
        return self.world.tick(timeout_s)

    def restore(self) -> None:
        """Switch the Traffic Manager back and re-apply the saved settings (errors are logged)."""
        if self._traffic_manager_synchronous:
            self._traffic_manager_synchronous = False
            self.cleanup.run(
                "switching the Traffic Manager back to asynchronous mode",
                lambda: self.traffic_manager.set_synchronous_mode(False),
            )
        if self.original_settings is not None:
            settings, self.original_settings = self.original_settings, None
            self.cleanup.run("restoring the server's world settings", lambda: self.world.apply_settings(settings))

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.restore()


_NETWORKS: dict[tuple[str, str, float], RoadNetwork] = {}


def road_network(carla_map: carla.Map, sample_m: float) -> RoadNetwork:
    """drivesim's road network of a server's map (cached per process by map name and OpenDRIVE content)."""
    key = (carla_map.name, hashlib.sha256(carla_map.to_opendrive().encode()).hexdigest(), sample_m)
    if key not in _NETWORKS:
        if len(_NETWORKS) >= NETWORK_CACHE_SIZE:
            _NETWORKS.pop(next(iter(_NETWORKS)))
        _NETWORKS[key] = RoadNetwork(carla_map, sample_m=sample_m, name=_short_name(carla_map.name))
    return _NETWORKS[key]


class ServerSession:
    """One connection: client, world in synchronous mode, Traffic Manager, and the map's derived data.

    ``close()`` leaves synchronous mode, restores the server's settings and shuts the Traffic Manager down
    (a Traffic Manager left running holds its port: a later session, after a server restart, could not
    start one).

    Args:
        config: Server, town and Traffic Manager settings.
        sim: Step, map sampling and traffic settings shared with the embedded simulator.
        client_factory: ``carla.Client`` or a stand-in.

    Raises:
        ServerConnectionError: No server answers.
    """

    def __init__(self, config: BridgeConfig, sim: SimConfig, client_factory: ClientFactory) -> None:
        self.stack = contextlib.ExitStack()
        self.client, self.server_version = connect(config, client_factory)
        self.world = load_town(self.client, config.town, config.timeout_s)
        destroy_leftovers(self.world)
        self.map = self.world.get_map()
        self.network = road_network(self.map, sim.map.lane_sample_m)
        self.raster = render_map_raster(self.network, sim.map.raster_m_per_px)
        self.npc_blueprints = npc_blueprints(self.world, config.npc_blueprint_filter)
        self.spawn_points = spawn_candidates(self.map, self.network, sim.traffic.min_spawn_gap_m)
        self.lane_paths = LaneFollowingPaths(self.network, sim.traffic)
        self.traffic_manager = open_traffic_manager(self.client, config)
        self.cleanup = CleanupCalls()
        self.stack.callback(  # after synchronous mode is left; also for a dead server: it frees a local port
            self.cleanup.run, "shutting the Traffic Manager down", self.traffic_manager.shut_down, always=True
        )
        # Synchronous mode last: whatever can fail on a user's input (blueprint filter, map) fails before
        # the server is changed; from here on the env's cleanup restores it.
        self.sync = self.stack.enter_context(
            SynchronousMode(self.world, self.traffic_manager, sim.episode.dt_s, config, self.cleanup)
        )
        self.timeout_s = config.timeout_s

    def expect_gone(self) -> None:
        """The server just failed: cleanup calls wait at most ``CLEANUP_TIMEOUT_S`` each from now on."""
        self.client.set_timeout(min(CLEANUP_TIMEOUT_S, self.timeout_s))

    def close(self) -> None:
        self.stack.close()
