"""Dream stage: dreams from a recorded episode: open-loop rollouts from any frame, and driving in the dream.

Open-loop dreams use ``WorldModel.open_loop`` with the recorded controls; driving in the dream runs the learned
simulator (``drivesim.dream.sim.DreamSimVectorEnv``) from one real context window of the episode. Images are
resized to the model's resolution on the way in. ``episode`` is anything with ``fields`` (name -> (T, ...)),
``length``, ``dt_s``, ``name``, ``meta`` and ``frame(step)`` (``drivesim.viewer.replay.Episode`` is one).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from drivesim import spec
from drivesim.dream.config import ControllerConfig, DreamSimConfig
from drivesim.dream.context import EpisodeContext, model_batch
from drivesim.dream.sim import DreamSimVectorEnv
from drivesim.world_model.model import WorldModel

SPEED_INDEX = spec.MEASUREMENT_NAMES.index("speed_mps")


@dataclass
class DreamRollout:
    """An open-loop rollout from ``anchor``: predictions for steps anchor+1 .. anchor+H.

    Attributes:
        anchor: last observed step.
        images: per key (H, ...) predicted frames (``camera`` (H, S, S, 3) in [0, 1], ``bev`` (H, 5, S, S)).
        components: per name (H,) predicted reward components (progress [m], speed [m/s], probabilities).
        reward: (H,) predicted reward.
    """

    anchor: int
    images: dict[str, np.ndarray] = field(default_factory=dict)
    components: dict[str, np.ndarray] = field(default_factory=dict)
    reward: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))

    @property
    def horizon(self) -> int:
        return int(self.reward.shape[0])

    def index(self, step: int) -> int | None:
        """Rollout index of episode ``step``, None outside the predicted range."""
        offset = step - self.anchor - 1
        return offset if 0 <= offset < self.horizon else None

    def frame(self, step: int) -> dict[str, np.ndarray] | None:
        """Predicted images of episode ``step`` (None outside the predicted range)."""
        index = self.index(step)
        return None if index is None else {key: value[index] for key, value in self.images.items()}


class OpenLoopDreamer:
    """Rolls the world model open loop from any frame of an episode with the recorded controls (prior only).

    Args:
        model: the world model (evaluation mode is set here).
        context_steps: observed frames up to and including the anchor.
        horizon_steps: predicted frames after the anchor.
        seed: seed of latent sampling (the same anchor gives the same dream).
    """

    def __init__(self, model: WorldModel, context_steps: int = 8, horizon_steps: int = 40, seed: int = 0) -> None:
        self.model = model.eval()
        self.context_steps = max(context_steps, 1)
        self.horizon_steps = max(horizon_steps, 1)
        self.seed = seed

    @torch.no_grad()
    def rollout(self, episode: Any, anchor: int) -> DreamRollout:
        """Observe ``context_steps`` frames ending at ``anchor``, then predict up to ``horizon_steps`` frames."""
        anchor = int(np.clip(anchor, 0, episode.length - 1))
        horizon = min(self.horizon_steps, episode.length - 1 - anchor)
        if horizon <= 0:
            return DreamRollout(anchor)
        start = max(0, anchor - self.context_steps + 1)
        batch = model_batch(self.model, episode, start, anchor + 1 + horizon)
        generator = torch.Generator().manual_seed(self.seed)
        imagination = self.model.open_loop(batch, anchor + 1 - start, horizon, generator=generator)
        return DreamRollout(
            anchor=anchor,
            images={key: value[0].float().cpu().numpy() for key, value in (imagination.images or {}).items()},
            components={key: value[0].float().cpu().numpy() for key, value in imagination.components.items()},
            reward=imagination.reward[0].float().cpu().numpy(),
        )


@dataclass
class DreamStep:
    """One step of driving in the dream.

    Attributes:
        observation: the learned simulator's observation (``drivesim.spec`` keys; uint8 camera, {0, 1} BEV at
            the model's resolution; route dead-reckoned from the context's).
        components: predicted progress [m], speed [m/s], collision/off-road/continue probabilities (the real
            values at the start frame).
        reward: predicted reward (the recorded one at the start frame).
        action: the control that led here (zeros at the start frame).
        terminated: the continue head ended the episode (P(continue) below DreamSim's threshold).
    """

    observation: dict[str, np.ndarray]
    components: dict[str, float]
    reward: float
    action: np.ndarray
    terminated: bool = False

    @property
    def images(self) -> dict[str, np.ndarray]:
        return {key: self.observation[key] for key in (spec.OBS_CAMERA, spec.OBS_BEV) if key in self.observation}


class DreamDriver:
    """Drive one learned-simulator episode (``drivesim.dream.sim.DreamSimVectorEnv``) from a real context.

    Args:
        model: the world model.
        episode: the episode that gives the real context.
        start_step: last real frame observed (default ``context_steps - 1``); the dream starts after it.
        context_steps: real frames observed up to ``start_step``.
        seed: seed of latent sampling.
        terminate_below_cont: end the dream when P(continue) drops below this (None: DreamSim's default;
            0 never ends it).
    """

    def __init__(self, model: WorldModel, episode: Any, start_step: int | None = None, context_steps: int = 8,
                 seed: int = 0, terminate_below_cont: float | None = None) -> None:
        self.model = model.eval()
        self.episode = episode
        self.context_steps = max(context_steps, 1)
        default_start = min(self.context_steps, episode.length) - 1
        self.start_step = int(np.clip(default_start if start_step is None else start_step, 0, episode.length - 1))
        self.seed = seed
        config = DreamSimConfig(context_steps=self.context_steps, max_episode_steps=10**9, val_episodes_only=False)
        if terminate_below_cont is not None:
            config = config.model_copy(update={"terminate_below_cont": terminate_below_cont})
        context = EpisodeContext(model, episode, self.start_step, self.context_steps)
        self.sim = DreamSimVectorEnv(model, context, 1, config, ControllerConfig(dt_s=episode.dt_s))
        self.history: list[DreamStep] = []
        self.reset()

    def reset(self) -> DreamStep:
        """Observe the real context again and clear the dream; returns the real start frame as a step."""
        observation, _ = self.sim.reset(seed=self.seed, window_indices=[0])
        real = self.episode.frame(self.start_step)
        events = real["events"]
        components = {
            "progress": float(events[spec.EVENT_NAMES.index("progress_m")]),
            "speed": float(real["measurements"][SPEED_INDEX]),
            "collision": float(events[spec.EVENT_NAMES.index("collision")]),
            "off_road": float(events[spec.EVENT_NAMES.index("off_road")]),
            "cont": 1.0,
        }
        self.history = [DreamStep(_numpy_observation(observation), components, float(real["reward"]),
                                  np.zeros(3, np.float32))]
        return self.history[0]

    @property
    def current(self) -> DreamStep:
        return self.history[-1]

    @property
    def steps(self) -> int:
        """Dream steps taken since the real context."""
        return len(self.history) - 1

    def step(self, action: np.ndarray) -> DreamStep:
        """Apply a control (3,) [throttle, steer, brake] in the dream and return the predicted step."""
        action = np.clip(np.asarray(action, np.float32).reshape(3), spec.ACTION_LOW, spec.ACTION_HIGH)
        observation, reward, terminated, _, info = self.sim.step(torch.from_numpy(action)[None], autoreset=False)
        components = {key: float(value[0]) for key, value in info["components"].items()}
        step = DreamStep(_numpy_observation(observation), components, float(reward[0]), action, bool(terminated[0]))
        self.history.append(step)
        return step


def _numpy_observation(observation: Mapping[str, Tensor]) -> dict[str, np.ndarray]:
    return {key: value[0].detach().cpu().numpy() for key, value in observation.items()}
