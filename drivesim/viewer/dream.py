"""Viewer stage: world-model dreams for display: open-loop rollouts from a recorded frame, and driving in the dream.

Open-loop dreams use ``WorldModel.open_loop``; driving in the dream runs the learned simulator
(``drivesim.policy.dreamsim.DreamSimVectorEnv``) from one real context window. Images are resized to the
model's resolution on the way in; predictions come back at that resolution and are upscaled by the layout.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from drivesim import spec
from drivesim.viewer.layout import resize_nearest
from drivesim.viewer.replay import Episode
from drivesim.world_model.model import WorldModel, load_world_model

DEBUG_PRESET = Path(__file__).resolve().parents[2] / "configs" / "world_model" / "debug.yaml"
CONTEXT_FIELDS = ("route", "expert_waypoints", "ego_pose")  # DreamSim carries these from the context
SPEED_INDEX = spec.MEASUREMENT_NAMES.index("speed_mps")
MODEL_FIELDS = ("measurements", "action", "is_first", "is_last", "is_terminal", "events", "reward")


def resize_images(images: np.ndarray, key: str, size_px: int) -> np.ndarray:
    """Resize (T, H, W, 3) camera or (T, C, H, W) BEV frames to ``size_px`` squares.

    Integer downscales of the camera average pixel blocks; everything else (BEV masks, upscales) is nearest.
    """
    channels_first = key == spec.OBS_BEV
    height, width = images.shape[-2:] if channels_first else images.shape[1:3]
    if (height, width) == (size_px, size_px):
        return images
    if not channels_first and height % size_px == 0 and width % size_px == 0:
        fy, fx = height // size_px, width // size_px
        blocks = images.reshape(images.shape[0], size_px, fy, size_px, fx, 3).astype(np.float32)
        return (blocks.mean((2, 4)) + 0.5).astype(np.uint8)
    moved = np.moveaxis(images, 1, -1) if channels_first else images  # (T, H, W, C)
    resized = np.stack([resize_nearest(frame, (size_px, size_px)) for frame in moved])
    return np.moveaxis(resized, -1, 1) if channels_first else resized


def model_batch(model: WorldModel, episode: Episode, start: int, stop: int) -> dict[str, Tensor]:
    """Rows ``[start, stop)`` of an episode as a (1, T, ...) batch for ``model`` (images at its resolution).

    Raises:
        ValueError: the episode lacks an image input the model needs.
    """
    missing = [key for key in model.image_keys if key not in episode.fields]
    if missing:
        raise ValueError(f"the world model reads {missing}, which episode {episode.name} does not have "
                         f"(it has {list(episode.sensors)})")
    batch = {key: torch.from_numpy(np.ascontiguousarray(episode.fields[key][start:stop]))[None] for key in MODEL_FIELDS}
    size_px = model.config.encoder.image_size_px
    for key in model.image_keys:
        batch[key] = torch.from_numpy(resize_images(episode.fields[key][start:stop], key, size_px))[None]
    return batch


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
    def rollout(self, episode: Episode, anchor: int) -> DreamRollout:
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


class EpisodeContext:
    """One real context window of an episode (rows ``start_step - context_steps + 1 .. start_step``), in the
    form ``DreamSimVectorEnv`` draws its contexts from (``__len__`` and ``get(indices, device)``).

    Args:
        model: the world model (images are resized to its resolution).
        episode: the episode.
        start_step: last real frame of the window.
        context_steps: window length (shorter at the episode start).
    """

    def __init__(self, model: WorldModel, episode: Episode, start_step: int, context_steps: int) -> None:
        first = max(0, start_step - context_steps + 1)
        self.window = model_batch(model, episode, first, start_step + 1)
        for key in CONTEXT_FIELDS:
            self.window[key] = torch.from_numpy(np.ascontiguousarray(episode.fields[key][first : start_step + 1]))[None]

    def __len__(self) -> int:
        return 1

    def get(self, indices: list[int], device: torch.device | str = "cpu") -> dict[str, Tensor]:
        """The window (N, T, ...) repeated for each requested index."""
        return {key: value.expand(len(indices), *value.shape[1:]).to(device) for key, value in self.window.items()}


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
    """Drive one learned-simulator episode (``drivesim.policy.dreamsim.DreamSimVectorEnv``) from a real context.

    Args:
        model: the world model.
        episode: the episode that gives the real context.
        start_step: last real frame observed (default ``context_steps - 1``); the dream starts after it.
        context_steps: real frames observed up to ``start_step``.
        seed: seed of latent sampling.
        terminate_below_cont: end the dream when P(continue) drops below this (None: DreamSim's default;
            0 never ends it).
    """

    def __init__(self, model: WorldModel, episode: Episode, start_step: int | None = None, context_steps: int = 8,
                 seed: int = 0, terminate_below_cont: float | None = None) -> None:
        from drivesim.policy.config import ControllerConfig, DreamSimConfig
        from drivesim.policy.dreamsim import DreamSimVectorEnv

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


def dream_observation(driver: DreamDriver, sensor_size_px: int | None = None) -> dict[str, np.ndarray]:
    """The dream's current observation for an agent, with images resized to ``sensor_size_px`` (the size the
    agent sees in the real simulator; None keeps the model's resolution)."""
    observation = dict(driver.current.observation)
    if sensor_size_px is not None:
        for key in (spec.OBS_CAMERA, spec.OBS_BEV):
            if key in observation:
                observation[key] = resize_images(observation[key][None], key, sensor_size_px)[0]
    return observation


class AgentControl:
    """Drives the dream with an evaluation agent (``drivesim.eval.agents`` names: ``constant``, ``random``,
    ``policy:PATH``...); waypoint answers go through the shared waypoint controller.

    Args:
        agent_spec: agent name with optional argument, as for ``drivesim eval``.
        driver: the dream to drive (its episode gives map name, route length and dt).
        seed: seed of the agent (its ``RouteInfo.seed``).

    Raises:
        ValueError: unknown agent, or a privileged agent (the expert needs the real simulator).
    """

    def __init__(self, agent_spec: str, driver: DreamDriver, seed: int = 0) -> None:
        from drivesim.eval.agents import ControlAdapter, RouteInfo, make_agent
        from drivesim.eval.config import EvalConfig
        from drivesim.sim.config import SimConfig

        self.name = agent_spec
        self.agent = make_agent(agent_spec, EvalConfig())
        if self.agent.privileged:
            raise ValueError(f"agent {agent_spec!r} needs the real simulator's expert; it cannot drive in a dream")
        meta = driver.episode.meta
        self.agent.reset(RouteInfo(route_id=f"dream-{driver.episode.name}", map_name=str(meta.get("map_name", "dream")),
                                   map_seed=0, seed=seed, route_length_m=float(meta.get("route_length_m") or 0.0),
                                   dt_s=driver.episode.dt_s))
        self.adapter = ControlAdapter(SimConfig())
        sizes = [driver.episode.fields[key].shape[-2] for key in driver.episode.sensors]
        self.sensor_size_px = sizes[0] if sizes else None

    def __call__(self, driver: DreamDriver) -> np.ndarray:
        """The agent's control (3,) for the dream's current step."""
        observation = dream_observation(driver, self.sensor_size_px)
        visible = {key: observation[key] for key in self.agent.observation_keys if key in observation}
        speed_mps = float(observation[spec.OBS_MEASUREMENTS][SPEED_INDEX])
        return self.adapter(self.agent.act(visible), speed_mps)


def load_model(checkpoint: str | Path | None, seed: int = 0) -> tuple[WorldModel, str]:
    """A world model and its on-screen label: from a checkpoint, or (None) a randomly initialised ``debug`` one.

    Args:
        checkpoint: a Lightning checkpoint or ``{"config", "state_dict"}`` file (``load_world_model``), or None.
        seed: torch seed of the random initialisation.
    """
    if checkpoint is not None:
        model, _ = load_world_model(checkpoint)
        return model, f"world model {Path(checkpoint).name}"
    from drivesim.config import load_config
    from drivesim.world_model.config import WorldModelConfig

    torch.manual_seed(seed)
    model = WorldModel(load_config(WorldModelConfig, DEBUG_PRESET, [])).eval()
    return model, "untrained debug world model"
