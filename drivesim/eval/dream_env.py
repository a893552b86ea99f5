"""Evaluation stage: the learned simulator on the evaluation's routes (``drivesim eval run --sim dream --wm CKPT``).

A route starts in the embedded simulator: ``reset`` builds the route's world (traffic, scenarios, driver mode) and
the expert drives ``dream.context_steps`` steps, which the world model's posterior observes. From there the dream
runs alone: each ``step(control)`` advances the world model's prior and the observation is what it predicts.

What the dream predicts, and so what the Leaderboard scoring reads from it (``drivesim.eval.metrics``):
- speed (speed head), the applied control, camera/BEV frames (decoder, resized to the eval's sensor sizes);
- ``events``: collision and off-road probabilities (counted above 0.5, as the embedded events), route progress
  (progress head; route completion = the context's + the predicted progress over the route length);
- the ego pose, dead-reckoned from the predicted speed and yaw rate; the route points are the real route's,
  seen from that pose (so route deviation follows the dead-reckoned pose);
- the end of the episode: P(continue) below ``dream.terminate_below_cont`` ends the route (as a collision or
  off-road, whichever is likelier); the data's episodes end at collisions, so the dream cannot drive past one.
What it cannot score: red lights, stop signs, wrong-lane driving, collision types (every collision counts as a
vehicle collision), the minimum-speed test (no traffic speed) and scenario timeouts (no scenario events).

Privileged agents (``expert``, ``careless``, ``noisy``) ask a shadow embedded simulator, stepped with the same
controls: their dream evaluation is the dream's prediction for the actions they take in the real world.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from drivesim import spec
from drivesim.dream.config import ControllerConfig, DreamEvalConfig
from drivesim.dream.driver import DriveState, LatentDriver, StepPrediction
from drivesim.dream.frames import resize_images
from drivesim.sensors.config import SensorsConfig
from drivesim.sim.config import SimConfig
from drivesim.sim.env import EmbeddedSimEnv
from drivesim.sim.interface import (
    INFO_COLLISION_ACTOR,
    INFO_DISTANCE,
    INFO_EGO_POSE,
    INFO_EXPERT_ACTION,
    INFO_ROUTE_LENGTH,
    INFO_TERMINATION,
    INFO_TIME,
)
from drivesim.sim.observation import route_points

PROGRESS = spec.EVENT_NAMES.index("progress_m")
COMPLETION = spec.EVENT_NAMES.index("route_completion")
TRACK_AHEAD_M = 30.0  # how far ahead of the last route index the dead-reckoned pose is looked up [m]


class DreamRouteEnv:
    """The simulator contract (``drivesim.sim.interface``) on a world model, started from the embedded simulator.

    Args:
        sim_config: the route's simulator config (map, vehicle, step), as for ``EmbeddedSimEnv``.
        sensors_config: sensors the agent reads; the embedded simulator renders them for the context and the
            dream's frames are resized to their sizes.
        world_model_path: world-model checkpoint (``drivesim train-wm``; a policy checkpoint's own model works
            through ``load_world_model`` too when saved as one).
        dream_config: context length, sampling, termination, device.
    """

    def __init__(
        self,
        sim_config: SimConfig,
        sensors_config: SensorsConfig | None = None,
        world_model_path: str | Path | None = None,
        dream_config: DreamEvalConfig | None = None,
    ) -> None:
        from drivesim.world_model.model import load_world_model

        if world_model_path is None:
            raise ValueError("--sim dream needs a world model: --wm CKPT")
        self.config = dream_config or DreamEvalConfig()
        self.device = torch.device(self.config.device)
        if self.device.type == "cpu":
            # One route steps a batch of 1: one thread is fastest, and spinning intra-op threads on a busy CPU
            # cost 300 ms a step against 8-25 ms on one thread (tiny model, loaded 2-core machine, 2026-12-02).
            torch.set_num_threads(1)
        self.world_model, _ = load_world_model(world_model_path, map_location=self.device)
        self.world_model = self.world_model.to(self.device).eval()
        self.world_model_path = str(world_model_path)
        self.sim_config = sim_config
        self.sensors_config = sensors_config
        self.real = EmbeddedSimEnv(sim_config, self._context_sensors(sensors_config))
        self._renderers = (self.real.bev, self.real.camera)
        controller = ControllerConfig(vehicle=sim_config.vehicle, dt_s=sim_config.episode.dt_s)
        self.driver = LatentDriver(self.world_model, controller)
        self.dt_s = sim_config.episode.dt_s
        self.generator = torch.Generator(device=self.device)
        self.state: DriveState | None = None
        self.shadow = False  # a privileged agent asked for the expert: keep the embedded simulator in step
        self.route_index = 0
        self.route_s0_m = 0.0
        self.progress_m = 0.0
        self.steps = 0
        self.distance_m = 0.0

    def _context_sensors(self, sensors: SensorsConfig | None) -> SensorsConfig:
        """The agent's sensors plus those the world model reads (the context needs its inputs)."""
        from drivesim.sensors.config import BevConfig, CameraConfig

        sensors = (sensors or SensorsConfig(bev=None, camera=None)).model_copy(deep=True)
        size = self.world_model.config.encoder.image_size_px
        if "bev" in self.world_model.image_keys and sensors.bev is None:
            sensors.bev = BevConfig(size_px=size)
        if "camera" in self.world_model.image_keys and sensors.camera is None:
            sensors.camera = CameraConfig(width_px=size, height_px=size)
        return sensors

    # ---------------------------------------------------------------------------------------- reset
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        """Reset the embedded simulator on the route, let the expert drive the context, then start dreaming."""
        self.real.bev, self.real.camera = self._renderers
        observation, info = self.real.reset(seed=seed, options=options)
        rows, actions = [observation], []
        for _ in range(self.config.context_steps - 1):
            action = np.asarray(self.real.expert_action(), dtype=np.float32)
            observation, _, _, _, info = self.real.step(action)
            rows.append(observation)
            actions.append(action)
        actions.append(np.zeros(3, np.float32))  # a_t of the last row: not used by the posterior
        self.generator.manual_seed(int(seed or 0))
        context = self._context_batch(rows, actions, info)
        self.state, _ = self.driver.observe_context(context, self.generator, False, self.config.sample_latents)
        self.real.bev = self.real.camera = None  # the shadow simulator's frames are never seen: skip rendering
        route = self.real.world.route
        self.route_index = int(self.real.world.tracker.route_index)
        self.route_length_m = route.length_m
        self.route_s0_m = float(observation[spec.OBS_EVENTS][COMPLETION]) * route.length_m
        self.progress_m, self.steps, self.distance_m = 0.0, 0, 0.0
        self.shadow = False
        observation = {key: self._agent_image(key, value) for key, value in observation.items()}
        return observation, {**info, "context_steps": self.config.context_steps}

    def _context_batch(self, rows: list[dict], actions: list[np.ndarray], info: dict) -> dict[str, torch.Tensor]:
        size = self.world_model.config.encoder.image_size_px
        batch: dict[str, torch.Tensor] = {}
        for key in (spec.OBS_MEASUREMENTS, spec.OBS_ROUTE, spec.OBS_WAYPOINTS, spec.OBS_EVENTS):
            batch[key] = torch.from_numpy(np.stack([row[key] for row in rows]).astype(np.float32))[None]
        for key in self.world_model.image_keys:
            frames = resize_images(np.stack([row[key] for row in rows]), key, size)
            batch[key] = torch.from_numpy(np.ascontiguousarray(frames))[None]
        steps = len(rows)
        batch["action"] = torch.from_numpy(np.stack(actions))[None]
        batch["is_first"] = torch.zeros(1, steps, dtype=torch.bool)
        batch["is_first"][0, 0] = True
        batch["is_last"] = torch.zeros(1, steps, dtype=torch.bool)
        batch["is_terminal"] = torch.zeros(1, steps, dtype=torch.bool)
        batch["reward"] = torch.zeros(1, steps)
        pose = np.asarray(info[INFO_EGO_POSE], dtype=np.float32)
        batch["ego_pose"] = torch.from_numpy(np.tile(pose, (steps, 1)))[None]
        return {key: value.to(self.device) for key, value in batch.items()}

    # ----------------------------------------------------------------------------------------- step
    def step(self, action: np.ndarray) -> tuple[dict, float, bool, bool, dict]:
        """Apply a control (3,) in the dream (and in the shadow simulator when a privileged agent drives)."""
        assert self.state is not None, "call reset() before step()"
        action = spec.action_from_control(*np.asarray(action, dtype=np.float32).reshape(3))
        if self.shadow:
            self.real.step(action)
        control = torch.from_numpy(action)[None].to(self.device)
        with torch.no_grad():
            self.state, prediction = self.driver.step(
                self.state, control, generator=self.generator, sample=self.config.sample_latents,
                decode_images=self.config.decode_images,
            )
        self.steps += 1
        speed = float(self.state.speed_mps[0])
        self.distance_m += speed * self.dt_s
        observation = self._observation(prediction)
        cont = float(prediction.components["cont"][0])
        terminated = cont < self.config.terminate_below_cont
        termination = None
        if terminated:
            components = prediction.components
            termination = "collision" if float(components["collision"][0]) >= float(components["off_road"][0]) else "off_road"
        reward = float(prediction.reward[0])
        return observation, reward, terminated, False, self._info(termination)

    def _observation(self, prediction: StepPrediction) -> dict[str, np.ndarray]:
        state = self.state
        assert state is not None
        x, y, yaw_deg = (float(v) for v in state.pose[0])
        route = self.real.world.route
        self.route_index = self._track(route, np.array([x, y]))
        points = route_points(route, self.route_index, np.array([x, y]), math.radians(yaw_deg), self.sim_config)
        events = prediction.events[0].cpu().numpy().astype(np.float32)
        self.progress_m += max(float(events[PROGRESS]), 0.0)
        events[COMPLETION] = min((self.route_s0_m + self.progress_m) / max(self.route_length_m, 1e-6), 1.0)
        observation = {
            spec.OBS_MEASUREMENTS: prediction.measurements[0].cpu().numpy().astype(np.float32),
            spec.OBS_ROUTE: points.astype(np.float32),
            spec.OBS_WAYPOINTS: state.expert_waypoints[0].cpu().numpy().astype(np.float32),
            spec.OBS_EVENTS: events,
        }
        for key, value in (prediction.images or {}).items():
            frame = value[0].float().cpu().numpy()
            frame = (frame * 255.0).round().clip(0, 255).astype(np.uint8) if key == "camera" else (frame > 0.5).astype(np.uint8)
            observation[key] = self._agent_image(key, frame)
        return observation

    def _track(self, route: Any, xy: np.ndarray) -> int:
        """Index of the route point nearest ``xy`` within ``TRACK_AHEAD_M`` ahead of the last one (never back)."""
        stop = min(len(route.points), self.route_index + int(TRACK_AHEAD_M / route.spacing_m) + 1)
        window = route.points[self.route_index : stop]
        return self.route_index + int(np.argmin(np.hypot(*(window - xy).T)))

    def _agent_image(self, key: str, value: np.ndarray) -> np.ndarray:
        """A frame at the size of the agent's sensor (the model's frames are at its own resolution)."""
        sensors = self.sensors_config
        if key == spec.OBS_BEV and sensors is not None and sensors.bev is not None:
            return resize_images(value[None], key, sensors.bev.size_px)[0]
        if key == spec.OBS_CAMERA and sensors is not None and sensors.camera is not None:
            return resize_images(value[None], key, sensors.camera.width_px)[0]
        return value

    def _info(self, termination: str | None) -> dict[str, Any]:
        state = self.state
        assert state is not None
        x, y, yaw_deg = (float(v) for v in state.pose[0])
        return {
            INFO_EGO_POSE: np.array([x, y, 0.0, yaw_deg]),
            INFO_EXPERT_ACTION: self.real.expert_action() if self.shadow else np.zeros(3, np.float32),
            INFO_TERMINATION: termination,
            INFO_COLLISION_ACTOR: None,
            INFO_ROUTE_LENGTH: self.route_length_m,
            INFO_DISTANCE: self.distance_m,
            INFO_TIME: self.steps * self.dt_s,
        }

    # ----------------------------------------------------------------------------- privileged access
    def expert_action(self) -> np.ndarray:
        """The clean expert's control in the shadow embedded simulator (which from now on steps along)."""
        self.shadow = True
        return self.real.expert_action()

    def driver_action(self) -> np.ndarray:
        """The route's driver (careless / noisy) in the shadow embedded simulator."""
        self.shadow = True
        return self.real.driver_action()

    def episode_metadata(self) -> dict[str, Any]:
        return {
            **self.real.episode_metadata(),
            "simulator": "dream",
            "world_model": self.world_model_path,
            "dream_config": self.config.model_dump(mode="json"),
        }

    def close(self) -> None:
        self.real.close()
        self.state = None
