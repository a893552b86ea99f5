"""Policy stage: configuration of the waypoint actor, the RL delta head, the critic, imagination and DreamSim.

Actor-critic numbers follow DreamerV3 (danijar/dreamerv3, dreamerv3/configs.yaml; see ../shared/REFERENCE.md):
horizon 15 (policy decisions, here every 4 simulator steps), discount horizon 333, lambda 0.95, actor entropy 3e-4, slow critic rate 0.02, return normalisation
by the 5th-95th percentile range (EMA rate 0.01, limit 1), bounded normal actions with std in [0.1, 1].
Presets live in ``configs/policy/*.yaml``.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from drivesim.config import Section
from drivesim.dream.config import ControllerConfig, DreamSimConfig
from drivesim.world_model.config import OptimConfig, Precision


class InputConfig(Section):
    """What the actor, delta head and critic read besides the world-model features [h_t, z_t]."""

    use_route: bool = Field(
        True, description="Append the next route points (R, 2) in the ego frame (symlog)."
    )
    use_speed: bool = Field(True, description="Append the ego speed [m/s] (symlog).")
    num_route_points: int = Field(16, ge=1, description="Route points R in the observation (drivesim.spec).")


class ActorConfig(Section):
    """The BC waypoint actor: MLP on the inputs -> K future ego-frame waypoints."""

    units: int = Field(256, ge=8, description="Hidden width (DreamerV3 12m: 256).")
    layers: int = Field(3, ge=1, description="Hidden layers (DreamerV3 actor: 3).")
    num_waypoints: int = Field(8, ge=1, description="Waypoints K (like the expert's, drivesim.spec).")
    waypoint_dt_s: float = Field(0.5, gt=0.0, description="Time between waypoints [s].")


class DeltaConfig(Section):
    """RL delta head: a bounded Normal residual on the BC waypoints (DreamerV3 bounded normal).

    The residual of waypoint k (at time t_k = (k + 1) x ``actor.waypoint_dt_s``) is
    ``t_k x [longitudinal_mps, lateral_mps] * clip(u, -1, 1)`` with ``u ~ Normal(tanh(mean), std)``: a bound that
    grows with the waypoint's time: at full scale the first waypoint (0.5 s, which sets the controller's target
    speed 2 |w_0| / 0.5 s - v) moves 1.5 m forward or back, i.e. +-6 m/s of target speed, and the last (4 s) up to
    4 m sideways, a lane change. The mean layer is zero-initialised: at initialisation the mean waypoints equal the BC waypoints.
    """

    units: int = Field(256, ge=8, description="Hidden width.")
    layers: int = Field(2, ge=1, description="Hidden layers.")
    longitudinal_mps: float = Field(
        3.0, gt=0.0, description="Bound of the forward (x) residual per second of waypoint time [m/s]."
    )
    lateral_mps: float = Field(
        1.0, gt=0.0, description="Bound of the sideways (y) residual per second of waypoint time [m/s]."
    )
    min_std: float = Field(0.1, gt=0.0, description="Lower std bound (unit scale; DreamerV3 minstd: 0.1).")
    max_std: float = Field(1.0, gt=0.0, description="Upper std bound (unit scale; DreamerV3 maxstd: 1.0).")
    init_std: float = Field(
        0.9,
        gt=0.0,
        description="Std at initialisation (unit scale; DreamerV3's bounded normal starts at "
        "0.9 sigmoid(2) + 0.1 = 0.89).",
    )

    @model_validator(mode="after")
    def _check_std(self) -> DeltaConfig:
        if not self.min_std < self.init_std < self.max_std:
            raise ValueError(
                f"need min_std < init_std < max_std, got {self.min_std}, {self.init_std}, {self.max_std}"
            )
        return self


class CriticConfig(Section):
    """Critic: MLP -> symexp two-hot value (zero-initialised output), with a slow EMA target."""

    units: int = Field(256, ge=8, description="Hidden width.")
    layers: int = Field(3, ge=1, description="Hidden layers (DreamerV3 critic: 3).")
    twohot_bins: int = Field(255, ge=3, description="Two-hot bins (DreamerV3: 255).")
    slow_rate: float = Field(
        0.02, gt=0.0, le=1.0, description="EMA rate of the slow target (DreamerV3: 0.02)."
    )
    replay_scale: float = Field(
        0.3, ge=0.0, description="Scale of the critic loss on replayed real windows (DreamerV3 repval: 0.3)."
    )
    slow_reg: float = Field(
        1.0, ge=0.0, description="Weight of the regulariser toward the slow critic (DreamerV3: 1)."
    )


class ImaginationConfig(Section):
    """Rollouts in the world model: waypoints -> controller -> control -> prior step."""

    horizon: int = Field(15, ge=1, description="Imagined policy decisions H (DreamerV3: 15 policy steps).")
    decision_every_steps: int = Field(
        4,
        ge=1,
        description="Simulator steps per policy decision: the waypoints are held (and followed by the controller) "
        "in between; the evaluation agent decides at the same rate. 15 decisions x 4 steps x 0.05 s = 3 s.",
    )
    discount_horizon: float = Field(333.0, gt=1.0, description="gamma = 1 - 1/this (DreamerV3: 333).")
    return_lambda: float = Field(
        0.95, ge=0.0, le=1.0, description="lambda of the lambda-returns (DreamerV3: 0.95)."
    )
    max_start_states: int = Field(
        1024, ge=1, description="Start states per update, sampled from the B x T posteriors (all when fewer)."
    )
    reward_weights: dict[str, float] | None = Field(
        None,
        description="Weights of the reward components (progress, collision, off_road, speed); None: the world model's.",
    )
    sample_latents: bool = Field(True, description="Sample the prior's latents (True) or take their mode.")


class ReturnNormConfig(Section):
    """Percentile return normalisation (DreamerV3 Moments): scale = max(limit, EMA(P95) - EMA(P5))."""

    low_percentile: float = Field(5.0, ge=0.0, lt=50.0, description="Lower percentile.")
    high_percentile: float = Field(95.0, gt=50.0, le=100.0, description="Upper percentile.")
    rate: float = Field(0.01, gt=0.0, le=1.0, description="EMA rate (DreamerV3: 0.01, i.e. decay 0.99).")
    limit: float = Field(1.0, gt=0.0, description="Floor of the scale (DreamerV3: 1.0).")


class BCTrainConfig(Section):
    """Behaviour-cloning run (Lightning)."""

    batch_size: int = Field(16, ge=1, description="Windows per batch.")
    window_steps: int = Field(32, ge=2, description="Steps per window; the posterior is filtered over them.")
    max_steps: int = Field(10000, ge=1, description="Optimiser steps.")
    val_every_steps: int = Field(500, ge=1, description="Validation interval [steps].")
    val_batches: int = Field(20, ge=1, description="Validation batches per run.")
    burn_in_steps: int = Field(
        4, ge=0, description="First steps of a window left out of the loss (posterior warm-up)."
    )
    finetune_world_model: bool = Field(
        False, description="Train the world model jointly (its loss + BC loss)."
    )
    world_model_loss_scale: float = Field(
        1.0, ge=0.0, description="Weight of the world-model loss when fine-tuning."
    )
    optim: OptimConfig = Field(
        OptimConfig(lr=3e-4, warmup_steps=100, eps=1e-8, name="adam"), description="Optimiser of the actor."
    )
    precision: Precision = Field("32-true", description="Lightning precision (bf16-mixed for big models).")
    seed: int = Field(0, description="Seed of Lightning and the data split.")
    num_workers: int = Field(2, ge=0, description="Data loader workers.")
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0, description="Share of episodes held out.")
    log_every_steps: int = Field(50, ge=1, description="Logging interval [steps].")


class RLTrainConfig(Section):
    """Actor-critic in imagination (Lightning; one optimiser, the actor and critic losses touch disjoint parameters)."""

    batch_size: int = Field(16, ge=1, description="Replayed real windows per update (DreamerV3: 16).")
    window_steps: int = Field(
        64, ge=2, description="Steps per replayed window; every posterior is a start state (DreamerV3: 64)."
    )
    max_steps: int = Field(5000, ge=1, description="Updates.")
    actor_entropy: float = Field(
        3e-4, ge=0.0, description="Entropy bonus of the delta head (DreamerV3: 3e-4)."
    )
    bc_anchor: float = Field(
        0.0,
        ge=0.0,
        description="Weight of the L1 anchor of the mean final waypoints to the expert's (0: off; it pulls "
        "against the RL objective).",
    )
    burn_in_steps: int = Field(
        4,
        ge=0,
        description="First steps of a replayed window whose posteriors start no rollout and no replay return "
        "(they are filtered from a zero state).",
    )
    freeze_bc_trunk: bool = Field(
        True, description="Keep the BC actor frozen (else it trains with the anchor + RL)."
    )
    optim: OptimConfig = Field(
        OptimConfig(lr=3e-4, warmup_steps=50),
        description="One optimiser for delta head (and trunk) and critic (DreamerV3: LaProp, lr 4e-5 over 1e5+ "
        "updates; runs here are 1e2-1e4 updates). The warm-up is capped at 10 % of rl.max_steps.",
    )
    precision: Precision = Field("32-true", description="Lightning precision.")
    seed: int = Field(0, description="Seed of Lightning, the data split and imagination.")
    num_workers: int = Field(2, ge=0, description="Data loader workers.")
    log_every_steps: int = Field(10, ge=1, description="Logging interval [steps].")
    checkpoint_every_steps: int = Field(500, ge=1, description="Checkpoint interval [steps].")


class PolicyConfig(Section):
    """The whole policy section; a preset is a YAML file of these keys."""

    inputs: InputConfig = InputConfig()
    actor: ActorConfig = ActorConfig()
    delta: DeltaConfig = DeltaConfig()
    critic: CriticConfig = CriticConfig()
    imagination: ImaginationConfig = ImaginationConfig()
    return_norm: ReturnNormConfig = ReturnNormConfig()
    controller: ControllerConfig = ControllerConfig()
    bc: BCTrainConfig = BCTrainConfig()
    rl: RLTrainConfig = RLTrainConfig()
    dreamsim: DreamSimConfig = DreamSimConfig()

    @model_validator(mode="after")
    def _check_rl_window(self) -> PolicyConfig:
        every, rl = self.imagination.decision_every_steps, self.rl
        if rl.window_steps < rl.burn_in_steps + every + 1:
            raise ValueError(
                f"rl.window_steps ({rl.window_steps}) must hold rl.burn_in_steps ({rl.burn_in_steps}) plus one "
                f"decision of imagination.decision_every_steps ({every}) steps plus one"
            )
        return self
