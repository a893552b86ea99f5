"""CARLA bridge: the drivesim simulator contract on a real CARLA server, plus a fake server for tests.

``BridgeConfig`` imports without the carla package; ``CarlaBridgeEnv`` is imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from carla_bridge.config import BridgeConfig

if TYPE_CHECKING:
    from carla_bridge.connection import ServerConnectionError
    from carla_bridge.env import CarlaBridgeEnv

__all__ = ["BridgeConfig", "CarlaBridgeEnv", "ServerConnectionError"]


def __getattr__(name: str) -> Any:
    if name == "CarlaBridgeEnv":
        from carla_bridge.env import CarlaBridgeEnv

        return CarlaBridgeEnv
    if name == "ServerConnectionError":
        from carla_bridge.connection import ServerConnectionError

        return ServerConnectionError
    raise AttributeError(f"module 'carla_bridge' has no attribute {name!r}")
