"""CARLA bridge: the ego's sensors (front RGB camera, collision, lane invasion) with frame-keyed queues.

As in CARLA's synchronous-mode example, every sensor callback only puts the data into a queue, holding a
weak reference to its owner; after each ``world.tick()`` the bridge takes exactly that frame's image and
every event with a frame at or before it.
"""

from __future__ import annotations

import logging
import queue
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import carla
import numpy as np

from carla_bridge.actors import SENSOR_ROLE, EpisodeActors
from drivesim.sensors.config import CameraConfig

CAMERA_BLUEPRINT = "sensor.camera.rgb"
COLLISION_BLUEPRINT = "sensor.other.collision"
LANE_INVASION_BLUEPRINT = "sensor.other.lane_invasion"

logger = logging.getLogger(__name__)


class SensorTimeoutError(RuntimeError):
    """A sensor's data for the current frame did not arrive in time (``skipped``: a later frame came instead)."""

    def __init__(self, message: str, skipped: bool = False) -> None:
        super().__init__(message)
        self.skipped = skipped


def image_to_rgb(image: Any) -> np.ndarray:
    """A ``carla.Image`` (BGRA bytes) as an (H, W, 3) uint8 RGB array."""
    bgra = np.frombuffer(image.raw_data, dtype=np.uint8).reshape(image.height, image.width, 4)
    return np.ascontiguousarray(bgra[:, :, 2::-1])


class SensorQueue:
    """Data of one sensor, in arrival order; the callback only enqueues.

    Args:
        sensor: A listening-capable ``carla.Sensor``; ``listen`` is called here.
        name: Used in error messages.
    """

    def __init__(self, sensor: Any, name: str) -> None:
        self.sensor = sensor
        self.name = name
        self._queue: queue.Queue = queue.Queue()
        self._held: list[Any] = []  # data of later frames taken out while draining
        owner = weakref.ref(self)
        sensor.listen(lambda data: SensorQueue._on_data(owner, data))

    @staticmethod
    def _on_data(owner: weakref.ref, data: Any) -> None:
        queue_owner = owner()
        if queue_owner is not None:
            queue_owner._queue.put(data)

    def frame(self, frame: int, timeout_s: float) -> Any:
        """The item of exactly ``frame``; older items are dropped.

        Raises:
            SensorTimeoutError: Nothing for ``frame`` arrived within ``timeout_s`` or the sensor skipped it.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            if self._held:
                data = self._held.pop(0)
            else:
                try:
                    data = self._queue.get(timeout=max(deadline - time.monotonic(), 1e-3))
                except queue.Empty:
                    raise SensorTimeoutError(
                        f"{self.name}: no data for frame {frame} within {timeout_s:g} s "
                        "(server overloaded or stalled?)"
                    ) from None
            if data.frame == frame:
                return data
            if data.frame > frame:
                self._held.insert(0, data)
                raise SensorTimeoutError(
                    f"{self.name}: frame {frame} is missing (next data is frame {data.frame})", skipped=True
                )

    def drain(self, frame: int) -> list[Any]:
        """Every queued event with a frame at or before ``frame`` (event sensors report only when it happens)."""
        items = self._held
        self._held = []
        while True:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                break
        self._held = [data for data in items if data.frame > frame]
        return [data for data in items if data.frame <= frame]


@dataclass
class FrameData:
    """What the ego's sensors reported for one frame."""

    camera: np.ndarray | None = None
    collisions: list[Any] = field(default_factory=list)
    lane_invasions: list[Any] = field(default_factory=list)


def camera_transform(config: CameraConfig, bounding_box: carla.BoundingBox) -> carla.Transform:
    """The camera mount relative to the ego actor: the embedded camera's mount, relative to the box centre on the ground."""
    return carla.Transform(
        carla.Location(
            x=bounding_box.location.x + config.mount_x_m,
            y=bounding_box.location.y + config.mount_y_m,
            z=config.mount_z_m,
        ),
        carla.Rotation(pitch=config.pitch_deg),
    )


class SensorRig:
    """The ego's sensors: optional front RGB camera, collision and lane-invasion detectors.

    Args:
        world: The ``carla.World``.
        ego: The ego ``carla.Vehicle``; every sensor is attached to it.
        camera: Image size, field of view and mount of the camera (as the embedded camera), or None.
        actors: Registry the sensors are added to (destroyed first at cleanup).
    """

    def __init__(self, world: Any, ego: Any, camera: CameraConfig | None, actors: EpisodeActors) -> None:
        library = world.get_blueprint_library()

        def find(blueprint_id: str) -> Any:
            blueprint = library.find(blueprint_id)
            blueprint.set_attribute("role_name", SENSOR_ROLE)
            return blueprint

        self.camera: SensorQueue | None = None
        if camera is not None:
            blueprint = find(CAMERA_BLUEPRINT)
            blueprint.set_attribute("image_size_x", str(camera.width_px))
            blueprint.set_attribute("image_size_y", str(camera.height_px))
            blueprint.set_attribute("fov", f"{camera.fov_deg:g}")
            blueprint.set_attribute("sensor_tick", "0.0")  # every tick (a tick = dt would drift)
            actor = actors.add_sensor(
                world.spawn_actor(blueprint, camera_transform(camera, ego.bounding_box), attach_to=ego)
            )
            self.camera = SensorQueue(actor, "front camera")
        collision = actors.add_sensor(
            world.spawn_actor(find(COLLISION_BLUEPRINT), carla.Transform(), attach_to=ego)
        )
        self.collision = SensorQueue(collision, "collision sensor")
        invasion = actors.add_sensor(
            world.spawn_actor(find(LANE_INVASION_BLUEPRINT), carla.Transform(), attach_to=ego)
        )
        self.lane_invasion = SensorQueue(invasion, "lane-invasion sensor")

    def read(
        self, frame: int, timeout_s: float, retries: int = 0, check_server: Callable[[], object] | None = None
    ) -> FrameData:
        """The camera image of ``frame`` and the events up to it.

        Args:
            frame: The frame just ticked.
            timeout_s: Wait this long for the image.
            retries: Wait this many more times for a late image (a render hiccup of a loaded server);
                before each, ``check_server`` is called, which raises when the server no longer answers.
            check_server: A cheap server round trip (e.g. ``client.get_server_version``).

        Raises:
            SensorTimeoutError: The image did not come after the retries, or the server skipped the frame.
        """
        data = FrameData()
        if self.camera is not None:
            for attempt in range(retries + 1):
                try:
                    image = self.camera.frame(frame, timeout_s)
                    break
                except SensorTimeoutError as error:
                    if error.skipped or attempt == retries:
                        raise
                    logger.warning("%s; waiting again (%d of %d)", error, attempt + 1, retries)
                    if check_server is not None:
                        check_server()
            data.camera = image_to_rgb(image)
        data.collisions = self.collision.drain(frame)
        data.lane_invasions = self.lane_invasion.drain(frame)
        return data

