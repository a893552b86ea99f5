"""Dream stage: configuration of the learned simulator (DreamSim) and of the batched waypoint controller it drives."""

from __future__ import annotations

from pydantic import Field

from drivesim.config import Section
from drivesim.sim.config import VehicleConfig


class ControllerConfig(Section):
    """The shared waypoint controller's vehicle and timing (drivesim.sim.controller.WaypointController)."""

    vehicle: VehicleConfig = Field(VehicleConfig(), description="Ego vehicle model the controller inverts.")
    dt_s: float = Field(0.05, gt=0.0, description="Simulator step [s] (the world model's step).")


class DreamSimConfig(Section):
    """The learned simulator (gymnasium env backed by a world model)."""

    context_steps: int = Field(8, ge=1, description="Real steps observed by the posterior at reset.")
    max_episode_steps: int = Field(400, ge=1, description="Steps before truncation (400 = 20 s at 20 Hz).")
    sample_latents: bool = Field(
        True, description="Sample prior latents (True) or take their mode (deterministic)."
    )
    decode_images: bool = Field(True, description="Decode camera/BEV frames each step (the costly part).")
    terminate_below_cont: float = Field(0.5, ge=0.0, le=1.0, description="Terminate when P(continue) < this.")
    reward_weights: dict[str, float] | None = Field(
        None, description="Reward component weights; None: the world model's."
    )
    val_episodes_only: bool = Field(True, description="Draw contexts from the held-out episodes only.")


class DreamEvalConfig(Section):
    """The learned simulator as the evaluation's simulator (``drivesim eval run --sim dream --wm CKPT``)."""

    context_steps: int = Field(
        8, ge=1, description="Steps of the embedded simulator (reset + the expert driving) the posterior observes."
    )
    sample_latents: bool = Field(
        True, description="Sample the prior's latents (seeded by the route seed) or take their mode."
    )
    terminate_below_cont: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="End the route when P(continue) drops below this (the data's episodes end at a collision); "
        "0 never ends it.",
    )
    decode_images: bool = Field(
        True,
        description="Decode camera/BEV frames every step (agents that read images need them; `eval proxy` switches "
        "them off for agents that do not).",
    )
    device: str = Field("cpu", description="Torch device of the world model.")
