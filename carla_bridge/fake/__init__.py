"""In-process fake of a CARLA server and its client API, backed by the embedded simulator (for tests).

Use ``FakeCarlaServer(port=...)`` and give the bridge ``client_factory=FakeClient`` and
``command_module=carla_bridge.fake.commands``.
"""

from carla_bridge.fake import commands
from carla_bridge.fake.client import FakeClient, FakeTrafficManager, FakeWorld
from carla_bridge.fake.server import FakeCarlaServer

__all__ = ["FakeCarlaServer", "FakeClient", "FakeTrafficManager", "FakeWorld", "commands"]
