"""Dream stage: DreamSim, the learned simulator: a gymnasium env (and a batched vector form) on a world model.

``reset()`` takes a context window from a real dataset (a seeded choice), filters it with the posterior and
returns the first observation; ``step(control)`` advances the prior and returns the decoded camera/BEV frame,
measurements (speed from the speed head, the applied control in the control slots), events (collision and
off-road probabilities, predicted progress), the reward from the component heads and termination from the
continue head (P(continue) < ``terminate_below_cont``).

Fields the world model does not predict (observation spec in ``drivesim.spec``):
- ``route``: the context's last route points, moved into each new ego frame by dead reckoning;
- ``expert_waypoints``: the context's last expert waypoints, carried unchanged (there is no expert);
- ``events.lane_invasion``: zero; ``events.route_completion``: the context's last value, carried;
- info ``expert_action``: zeros; ``route_length_m``: 0; ``ego_pose``: dead-reckoned from the context's pose.
At reset the observation holds the context's real last measurements/route/events and the decoded frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor

from drivesim import spec
from drivesim.dream.config import ControllerConfig, DreamSimConfig
from drivesim.dream.context import ContextSource
from drivesim.dream.driver import DriveState, LatentDriver, StepPrediction
from drivesim.sim.interface import (
    INFO_COLLISION_ACTOR,
    INFO_DISTANCE,
    INFO_EGO_POSE,
    INFO_EXPERT_ACTION,
    INFO_ROUTE_LENGTH,
    INFO_TERMINATION,
    INFO_TIME,
)
from drivesim.world_model.model import WorldModel


def observation_space(
    world_model: WorldModel, num_route_points: int = 16, num_waypoints: int = 8
) -> spaces.Dict:
    """The spec's observation space with the world model's image keys and size (as drivesim.sim.env's)."""
    big = np.float32(1e6)
    size = world_model.config.encoder.image_size_px
    items: dict[str, spaces.Space] = {
        spec.OBS_MEASUREMENTS: spaces.Box(-big, big, (len(spec.MEASUREMENT_NAMES),), np.float32),
        spec.OBS_ROUTE: spaces.Box(-big, big, (num_route_points, 2), np.float32),
        spec.OBS_WAYPOINTS: spaces.Box(-big, big, (num_waypoints, 2), np.float32),
        spec.OBS_EVENTS: spaces.Box(-big, big, (len(spec.EVENT_NAMES),), np.float32),
    }
    if "bev" in world_model.image_keys:
        items[spec.OBS_BEV] = spaces.Box(0, 1, (len(spec.BEV_CHANNELS), size, size), np.uint8)
    if "camera" in world_model.image_keys:
        items[spec.OBS_CAMERA] = spaces.Box(0, 255, (size, size, 3), np.uint8)
    return spaces.Dict(items)


def _frames(images: dict[str, Tensor] | None) -> dict[str, Tensor]:
    """Decoded probabilities -> uint8 frames: camera RGB 0..255, BEV channels thresholded at 0.5."""
    if images is None:
        return {}
    frames = {}
    if "camera" in images:
        frames[spec.OBS_CAMERA] = (images["camera"].float() * 255.0).round().clamp(0, 255).to(torch.uint8)
    if "bev" in images:
        frames[spec.OBS_BEV] = (images["bev"].float() > 0.5).to(torch.uint8)
    return frames


class DreamSimVectorEnv:
    """N learned-simulator episodes stepped at once on one device (torch tensors in and out).

    Finished episodes restart at once from a new context (the returned observation is the new episode's first;
    ``terminated``/``truncated`` refer to the episode that ended). Latent sampling uses one generator for the
    batch, seeded by ``reset(seed=...)``: with ``sample_latents=False`` each env's trajectory is independent of
    the batch it runs in.

    Args:
        world_model: the world model (moved to ``device``, eval mode).
        contexts: a ``ContextSource`` (or anything with ``__len__`` and ``get(indices, device)``).
        num_envs: N.
        config: DreamSim settings.
        controller: the controller config (its ``dt_s`` is the step of ``info[time_s]``).
        device: torch device.
    """

    def __init__(
        self,
        world_model: WorldModel,
        contexts: Any,
        num_envs: int,
        config: DreamSimConfig | None = None,
        controller: ControllerConfig | None = None,
        device: torch.device | str = "cpu",
    ) -> None:
        self.config = config or DreamSimConfig()
        self.device = torch.device(device)
        self.world_model = world_model.to(self.device).eval()
        self.driver = LatentDriver(
            self.world_model, controller or ControllerConfig(), reward_weights=self.config.reward_weights
        )
        self.contexts = contexts
        self.num_envs = num_envs
        self.rng = np.random.default_rng(0)
        self.generator = torch.Generator(device=self.device).manual_seed(0)
        self.state: DriveState | None = None
        self.steps = torch.zeros(num_envs, dtype=torch.long, device=self.device)
        self.distance_m = torch.zeros(num_envs, device=self.device)

    def _start(self, indices: Sequence[int]) -> tuple[DriveState, dict[str, Tensor]]:
        context = self.contexts.get(indices, self.device)
        state, prediction = self.driver.observe_context(
            context, self.generator, self.config.decode_images, self.config.sample_latents
        )
        return state, self._observation(state, prediction)

    def _observation(self, state: DriveState, prediction: StepPrediction) -> dict[str, Tensor]:
        return {
            spec.OBS_MEASUREMENTS: prediction.measurements.float(),
            spec.OBS_ROUTE: state.route.float(),
            spec.OBS_WAYPOINTS: state.expert_waypoints.float(),
            spec.OBS_EVENTS: prediction.events.float(),
            **_frames(prediction.images),
        }

    @torch.no_grad()
    def reset(
        self, seed: int | None = None, window_indices: Sequence[int] | None = None
    ) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """Start all N episodes; ``window_indices`` picks the contexts (else a seeded random choice)."""
        if seed is not None:
            self.rng = np.random.default_rng(seed)
            self.generator.manual_seed(int(seed))
        if window_indices is None:
            window_indices = self.rng.integers(len(self.contexts), size=self.num_envs).tolist()
        assert len(window_indices) == self.num_envs, (
            f"need {self.num_envs} window indices, got {len(window_indices)}"
        )
        self.state, observation = self._start(window_indices)
        self.steps.zero_()
        self.distance_m.zero_()
        return observation, {"window_index": torch.as_tensor(window_indices)}

    @torch.no_grad()
    def step(
        self, control: Tensor, autoreset: bool = True
    ) -> tuple[dict[str, Tensor], Tensor, Tensor, Tensor, dict[str, Any]]:
        """Apply controls (N, 3); returns observation, reward (N,), terminated (N,), truncated (N,), info."""
        assert self.state is not None, "call reset() before step()"
        control = torch.as_tensor(control, dtype=torch.float32, device=self.device).reshape(self.num_envs, 3)
        self.state, prediction = self.driver.step(
            self.state,
            control,
            generator=self.generator,
            sample=self.config.sample_latents,
            decode_images=self.config.decode_images,
        )
        self.steps += 1
        self.distance_m += self.state.speed_mps * self.driver.dt_s
        observation = self._observation(self.state, prediction)
        components = prediction.components
        terminated = components["cont"] < self.config.terminate_below_cont
        truncated = (self.steps >= self.config.max_episode_steps) & ~terminated
        info: dict[str, Any] = {
            "components": components,
            "pose": self.state.pose.clone(),
            "steps": self.steps.clone(),
            "distance_m": self.distance_m.clone(),
        }
        done = terminated | truncated
        if autoreset and bool(done.any()):
            rows = torch.nonzero(done).flatten()
            indices = self.rng.integers(len(self.contexts), size=int(rows.numel())).tolist()
            fresh_state, fresh_obs = self._start(indices)
            self.state = self.state.assign(rows, fresh_state)
            for key, value in fresh_obs.items():
                observation[key][rows] = value.to(observation[key].dtype)
            self.steps[rows] = 0
            self.distance_m[rows] = 0.0
        return observation, prediction.reward.float(), terminated, truncated, info


class DreamSimEnv(gym.Env):
    """One learned-simulator episode behind the common simulator contract (``drivesim.sim.interface``).

    Args:
        world_model: the world model.
        contexts: a ``ContextSource``.
        config: DreamSim settings.
        controller: controller config (step length).
        device: torch device.
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        world_model: WorldModel,
        contexts: Any,
        config: DreamSimConfig | None = None,
        controller: ControllerConfig | None = None,
        device: torch.device | str = "cpu",
    ) -> None:
        super().__init__()
        self.vector = DreamSimVectorEnv(world_model, contexts, 1, config, controller, device)
        self.observation_space = observation_space(world_model)
        self.action_space = spaces.Box(spec.ACTION_LOW, spec.ACTION_HIGH, dtype=np.float32)
        self._seed: int | None = None
        self._window_index = -1

    @staticmethod
    def _numpy(observation: dict[str, Tensor]) -> dict[str, np.ndarray]:
        return {key: value[0].cpu().numpy().copy() for key, value in observation.items()}

    def _info(self, termination: str | None = None) -> dict[str, Any]:
        state = self.vector.state
        assert state is not None
        x, y, yaw = (float(v) for v in state.pose[0])
        return {
            INFO_EGO_POSE: np.array([x, y, 0.0, yaw], dtype=np.float64),
            INFO_EXPERT_ACTION: np.zeros(3, dtype=np.float32),
            INFO_TERMINATION: termination,
            INFO_COLLISION_ACTOR: None,
            INFO_ROUTE_LENGTH: 0.0,
            INFO_DISTANCE: float(self.vector.distance_m[0]),
            INFO_TIME: float(self.vector.steps[0]) * self.vector.driver.dt_s,
            "window_index": self._window_index,
        }

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        """Start from a context window: ``options={"window_index": i}`` or a choice seeded by ``seed``."""
        super().reset(seed=seed)
        options = options or {}
        self._seed = int(self.np_random.integers(2**31 - 1))
        index = options.get("window_index")
        if index is None:
            index = int(self.np_random.integers(len(self.vector.contexts)))
        self._window_index = int(index)
        observation, _ = self.vector.reset(self._seed, [self._window_index])
        return self._numpy(observation), self._info()

    def step(self, action: np.ndarray) -> tuple[dict, float, bool, bool, dict]:
        control = torch.as_tensor(np.asarray(action, dtype=np.float32).reshape(1, 3))
        observation, reward, terminated, truncated, info = self.vector.step(control, autoreset=False)
        termination = None
        if bool(terminated[0]):
            components = info["components"]
            termination = (
                "collision"
                if float(components["collision"][0]) >= float(components["off_road"][0])
                else "off_road"
            )
        elif bool(truncated[0]):
            termination = "timeout"
        return (
            self._numpy(observation),
            float(reward[0]),
            bool(terminated[0]),
            bool(truncated[0]),
            self._info(termination),
        )

    def expert_action(self) -> np.ndarray:
        """A learned simulator has no privileged expert: zeros (documented in the module docstring)."""
        return np.zeros(3, dtype=np.float32)

    def driver_action(self) -> np.ndarray:
        """Same as ``expert_action`` (no expert, no driver noise)."""
        return self.expert_action()

    def episode_metadata(self) -> dict[str, Any]:
        return {
            "simulator": "dreamsim",
            "map_name": "learned",
            "seed": self._seed,
            "window_index": self._window_index,
            "driver": "none",
            "dt_s": self.vector.driver.dt_s,
            "config": self.vector.config.model_dump(mode="json"),
        }

    def close(self) -> None:
        self.vector.state = None


def make_dreamsim(
    world_model_path: str | Path,
    data_dir: str | Path,
    config: DreamSimConfig | None = None,
    controller: ControllerConfig | None = None,
    device: torch.device | str = "cpu",
) -> DreamSimEnv:
    """A ``DreamSimEnv`` from a world-model checkpoint and a dataset (contexts from the model's held-out split)."""
    from drivesim.world_model.model import load_world_model
    from drivesim.world_model.train import model_fields

    config = config or DreamSimConfig()
    world_model, wm_config = load_world_model(world_model_path, map_location=device)
    contexts = ContextSource(
        data_dir,
        model_fields(wm_config),
        config.context_steps,
        wm_config.train.val_fraction,
        wm_config.train.seed,
        config.val_episodes_only,
    )
    return DreamSimEnv(world_model, contexts, config, controller, device)
