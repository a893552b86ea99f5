"""Policy stage: the ``policy:PATH`` evaluation agent (a BC or BC+RL checkpoint driving closed loop).

The agent reads only non-privileged keys (the world model's images, ``measurements`` and ``route``), keeps a
recurrent posterior state (each observation is embedded by the world model's encoder and filtered with the
previous control), and answers the policy's mean waypoints. It decides every ``imagination.decision_every_steps``
steps of its checkpoint's config (the rate RL imagined at) and holds the waypoints in between, which the
controller keeps following at the current speed. The evaluation runner turns those into a control
with the shared numpy ``WaypointController``; the agent computes the same control with the torch twin (same
math, same PID state) so that it can feed it to the world model as a_{t-1} at the next step.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from drivesim import spec
from drivesim.dream.controller import TorchWaypointController
from drivesim.eval.agents import Agent, RouteInfo, register_agent
from drivesim.eval.config import EvalConfig
from drivesim.policy.runs import load_policy
from drivesim.world_model.rssm import LatentState

SPEED = spec.MEASUREMENT_NAMES.index("speed_mps")


class PolicyAgent(Agent):
    """Drives with a policy checkpoint.

    Args:
        path: BC or RL checkpoint (``drivesim train-bc`` / ``train-rl``).
        config: evaluation config (vehicle, step and waypoint timing of the controller).
        device: torch device for the world model and policy.
    """

    def __init__(self, path: str | Path, config: EvalConfig, device: str = "cpu") -> None:
        loaded = load_policy(path, map_location=device)
        self.device = torch.device(device)
        self.world_model = loaded.world_model.to(self.device)
        self.policy = loaded.policy.to(self.device)
        self.image_keys = tuple(self.world_model.image_keys)
        self.image_size = self.world_model.config.encoder.image_size_px
        self.observation_keys = (spec.OBS_MEASUREMENTS, spec.OBS_ROUTE, *self.image_keys)
        self.controller = TorchWaypointController(config.sim.vehicle, config.sim.waypoint_dt_s)
        self.dt_s = config.sim.episode.dt_s
        self.decision_every = loaded.config.imagination.decision_every_steps
        self._steps = 0
        self._waypoints: torch.Tensor | None = None
        self._state: LatentState | None = None
        self._previous_action = torch.zeros(1, 3, device=self.device)
        self._integral = torch.zeros(1, device=self.device)

    def reset(self, route_info: RouteInfo) -> None:
        self._state = None
        self._steps = 0
        self._waypoints = None
        self._previous_action.zero_()
        self._integral.zero_()

    def _batch(self, observation: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
        batch = {}
        for key in (spec.OBS_MEASUREMENTS, *self.image_keys):
            value = torch.as_tensor(np.asarray(observation[key]), device=self.device)
            if key in self.image_keys:
                size = value.shape[:2] if key == spec.OBS_CAMERA else value.shape[-2:]
                if tuple(size) != (self.image_size, self.image_size):
                    raise ValueError(
                        f"the policy's world model reads {key} at {self.image_size} px, the simulator gives "
                        f"{tuple(value.shape)}; set the eval config's sensors.{key} size to {self.image_size}"
                    )
            batch[key] = value[None, None]
        return batch

    @torch.no_grad()
    def act(self, observation: Mapping[str, np.ndarray]) -> np.ndarray:
        """Mean waypoints (K, 2) in the ego frame for one observation (a new decision every N steps)."""
        batch = self._batch(observation)
        embed = self.world_model.embed(batch)
        is_first = torch.tensor([[self._state is None]], device=self.device)
        _, _, self._state = self.world_model.rssm.observe(
            embed, self._previous_action[:, None], is_first, self._state, sample=False
        )
        speed = batch[spec.OBS_MEASUREMENTS][0, :, SPEED].float()
        route = torch.as_tensor(np.asarray(observation[spec.OBS_ROUTE]), device=self.device)[None]
        if self._waypoints is None or self._steps % self.decision_every == 0:
            inputs = self.policy.inputs(self.world_model.features(self._state), route, speed)
            self._waypoints, _ = self.policy.act(inputs, sample=False)
        self._steps += 1
        waypoints = self._waypoints
        self._previous_action, self._integral = self.controller.control(
            waypoints, speed, self._integral, self.dt_s
        )
        return waypoints[0].cpu().numpy().astype(np.float32)

    @property
    def previous_action(self) -> np.ndarray:
        """The control (3,) the runner's controller applies for the last answer (fed back as a_{t-1})."""
        return self._previous_action[0].cpu().numpy()


def _policy_factory(argument: str | None, config: EvalConfig) -> Agent:
    """``policy:PATH`` with PATH a BC or RL checkpoint."""
    if not argument:
        raise ValueError("the policy agent needs a checkpoint: --agent policy:runs/bc/checkpoints/last.ckpt")
    if not Path(argument).is_file():
        raise ValueError(f"policy checkpoint not found: {argument}")
    return PolicyAgent(argument, config)


register_agent("policy", _policy_factory, overwrite=True)
