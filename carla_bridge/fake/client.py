"""Fake CARLA server: the client-side handles ``FakeClient``, ``FakeWorld`` and ``FakeTrafficManager``.

``FakeClient(host, port)`` finds the ``FakeCarlaServer`` registered at that address when it makes a call;
with none there (or after the server was killed) every call raises the real client's time-out
``RuntimeError``, so the bridge's error handling sees what it would see with a real client.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import carla

from carla_bridge.fake import registry
from carla_bridge.fake.actors import (
    FakeActor,
    FakeActorBlueprint,
    FakeActorList,
    FakeBlueprintLibrary,
    FakeWorldSnapshot,
)

if TYPE_CHECKING:
    from carla_bridge.fake.server import FakeCarlaServer


class FakeTrafficManager:
    """Stands in for ``carla.TrafficManager``: records its settings on the server.

    As the real one, it is bound to its port in this process (``registry.bind_traffic_manager``) until
    ``shut_down()``: another server's Traffic Manager on that port, or this server's after a restart,
    cannot bind it.
    """

    def __init__(self, server: FakeCarlaServer, port: int) -> None:
        self._server = server
        self._port = port
        server._check_alive()
        state = server.traffic_managers.get(port)
        if state is None or state["shut_down"]:
            registry.bind_traffic_manager(port, server, server.epoch)
            server.traffic_managers[port] = {"synchronous_mode": False, "paths": {}, "shut_down": False}

    def _state(self) -> dict[str, Any]:
        self._server._check_alive()
        state = self._server.traffic_managers[self._port]
        if state["shut_down"]:
            raise RuntimeError(f"the Traffic Manager on port {self._port} was shut down")
        return state

    def get_port(self) -> int:
        return self._port

    def shut_down(self) -> None:
        """Release the port (in this process) and unregister from the server (which must answer)."""
        registry.release_traffic_manager(self._port)
        self._server._check_alive()
        state = self._server.traffic_managers.get(self._port)
        if state is not None:
            state["shut_down"] = True

    def set_synchronous_mode(self, mode_switch: bool = True) -> None:
        self._state()["synchronous_mode"] = bool(mode_switch)

    def set_random_device_seed(self, value: int) -> None:
        self._state()["seed"] = int(value)

    def set_hybrid_physics_mode(self, enabled: bool = False) -> None:
        self._state()["hybrid_physics"] = bool(enabled)

    def set_hybrid_physics_radius(self, r: float = 50.0) -> None:
        self._state()["hybrid_physics_radius"] = float(r)

    def set_path(self, actor: FakeActor, path: list[carla.Location]) -> None:
        self._state()["paths"][actor.id] = list(path)

    def set_global_distance_to_leading_vehicle(self, distance: float) -> None:
        self._state()["leading_distance"] = float(distance)


class FakeWorld:
    """Stands in for ``carla.World`` on the fake server."""

    def __init__(self, server: FakeCarlaServer) -> None:
        self._server = server
        self.id = server.world_id

    def get_settings(self) -> carla.WorldSettings:
        return self._server._get_settings()

    def apply_settings(self, world_settings: carla.WorldSettings) -> int:
        return self._server._apply_settings(world_settings)

    def tick(self, seconds: float = 10.0) -> int:
        return self._server._tick(seconds)

    def wait_for_tick(self, seconds: float = 10.0) -> FakeWorldSnapshot:
        self._server._tick(seconds)
        return self._server.snapshot

    def get_snapshot(self) -> FakeWorldSnapshot:
        self._server._check_alive()
        return self._server.snapshot

    def get_map(self) -> carla.Map:
        self._server._check_alive()
        return self._server.map

    def get_blueprint_library(self) -> FakeBlueprintLibrary:
        self._server._check_alive()
        return FakeBlueprintLibrary(self._server.blueprints)

    def spawn_actor(
        self,
        blueprint: FakeActorBlueprint,
        transform: carla.Transform,
        attach_to: FakeActor | None = None,
        attachment_type: carla.AttachmentType = carla.AttachmentType.Rigid,
    ) -> FakeActor:
        actor, error = self._server._spawn(blueprint, transform, attach_to)
        if actor is None:
            raise RuntimeError(error)
        return actor

    def try_spawn_actor(
        self,
        blueprint: FakeActorBlueprint,
        transform: carla.Transform,
        attach_to: FakeActor | None = None,
        attachment_type: carla.AttachmentType = carla.AttachmentType.Rigid,
    ) -> FakeActor | None:
        return self._server._spawn(blueprint, transform, attach_to)[0]

    def get_actor(self, actor_id: int) -> FakeActor | None:
        self._server._check_alive()
        return self._server.actors.get(actor_id)

    def get_actors(self, actor_ids: list[int] | None = None) -> FakeActorList:
        self._server._check_alive()
        actors = list(self._server.actors.values())
        if actor_ids is not None:
            actors = [actor for actor in actors if actor.id in set(actor_ids)]
        return FakeActorList(actors)

    def __str__(self) -> str:
        return f"World(id={self.id})"


class FakeClient:
    """Stands in for ``carla.Client``: talks to the ``FakeCarlaServer`` registered at (host, port)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 2000, worker_threads: int = 0) -> None:
        self._host = host
        self._port = port
        self._timeout_s = 5.0

    def _server(self) -> FakeCarlaServer:
        server = registry.lookup(self._host, self._port)
        if server is None or not server.alive:
            raise RuntimeError(
                f"time-out of {int(self._timeout_s * 1000)}ms while waiting for the simulator, make sure the "
                f"simulator is ready and connected to {self._host}:{self._port}"
            )
        return server

    def set_timeout(self, second: float) -> None:
        self._timeout_s = float(second)
        server = registry.lookup(self._host, self._port)
        if server is not None:  # what a call to a dead server waits (the fake's handles share the server)
            server.client_timeout_s = self._timeout_s

    def get_client_version(self) -> str:
        return carla.Client().get_client_version()

    def get_server_version(self) -> str:
        return self._server().version

    def get_world(self) -> FakeWorld:
        return self._server()._world_handle()

    def get_available_maps(self) -> list[str]:
        return [f"/Game/Carla/Maps/{name}" for name in self._server().maps]

    def load_world(
        self, map_name: str, reset_settings: bool = True, map_layers: carla.MapLayer = carla.MapLayer.All
    ) -> FakeWorld:
        server = self._server()
        name = map_name.rsplit("/", 1)[-1]
        if name not in server.maps:
            raise RuntimeError(f"map '{map_name}' not found")
        server._load(f"Carla/Maps/{name}", server.maps[name], reset_settings)
        return server._world_handle()

    def generate_opendrive_world(
        self,
        opendrive: str,
        parameters: carla.OpendriveGenerationParameters | None = None,
        reset_settings: bool = True,
    ) -> FakeWorld:
        server = self._server()
        server._load("Carla/Maps/OpenDriveMap", opendrive, reset_settings)
        return server._world_handle()

    def get_trafficmanager(self, client_connection: int = 8000) -> FakeTrafficManager:
        return FakeTrafficManager(self._server(), client_connection)

    def apply_batch_sync(self, commands: Sequence[Any], do_tick: bool = False) -> list[Any]:
        return self._server()._apply_batch(commands, do_tick)

    def apply_batch(self, commands: Sequence[Any], do_tick: bool = False) -> None:
        self._server()._apply_batch(commands, do_tick)


ClientFactory = Callable[[str, int], FakeClient]
