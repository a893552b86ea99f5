"""Viewer stage: driving a dream with an evaluation agent, and the world model a view shows.

The dreams themselves (open-loop rollouts, driving in the learned simulator from a recorded context) live in
``drivesim.dream.episode``; this module adds what the viewer needs around them: an agent driving the dream with
observations at its sensors' size, and loading a model (or a random ``debug`` one) with its on-screen label.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from drivesim import spec
from drivesim.dream.episode import DreamDriver
from drivesim.dream.frames import resize_images
from drivesim.world_model.model import WorldModel, load_world_model

DEBUG_PRESET = Path(__file__).resolve().parents[2] / "configs" / "world_model" / "debug.yaml"
SPEED_INDEX = spec.MEASUREMENT_NAMES.index("speed_mps")


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
