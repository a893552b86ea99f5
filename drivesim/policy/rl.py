"""Policy stage: actor-critic in imagination for the RL delta head, as DreamerV3 (Lightning).

Per update (dreamerv3/agent.py ``ImagActorCritic``; numbers in ``drivesim.policy.config``):
1. replayed real windows are filtered by the frozen world model; every posterior state after the burn-in
   (``rl.burn_in_steps``) starts a rollout;
2. the policy imagines H decisions, one every ``imagination.decision_every_steps`` simulator steps: waypoints
   (BC + sampled delta), held and followed by the controller (predicted speed) through the prior's steps;
3. rewards come from the component heads, discounts from the continue head (gamma = 1 - 1/333 per decision),
   values from a symexp two-hot critic; lambda-returns (0.95) are normalised by the EMA 5th-95th percentile
   range (floor 1);
4. the delta head is trained with REINFORCE plus an entropy bonus (3e-4), weighted by the alive probability,
   plus (off by default, ``rl.bc_anchor``) an L1 anchor of its mean waypoints on the real states to the expert's;
5. the critic regresses the returns with a regulariser toward its slow EMA copy (rate 0.02), and (scaled 0.3,
   DreamerV3 ``repval``) the lambda-returns of the replayed real window, in decisions of the same length,
   computed from its recorded events.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import Tensor

from drivesim import spec
from drivesim.config import dump_yaml
from drivesim.dream.driver import DriveState, LatentDriver
from drivesim.dream.rollout import PolicyRollout, aggregate_decisions, imagine_policy
from drivesim.policy.actor import WaypointPolicy, input_size
from drivesim.policy.bc import SPEED
from drivesim.policy.config import PolicyConfig
from drivesim.policy.critic import Critic, SlowCritic
from drivesim.policy.returns import ReturnNormalizer, lambda_returns, trajectory_weights
from drivesim.policy.runs import (
    SaveLastAtEnd,
    build_datamodule,
    load_policy,
    resume_path,
    sub_state_dict,
)
from drivesim.world_model.config import WorldModelConfig
from drivesim.world_model.losses import make_targets
from drivesim.world_model.model import WorldModel, load_world_model
from drivesim.world_model.optim import build_optimizer
from drivesim.world_model.rssm import LatentState
from drivesim.world_model.train import build_trainer, checkpoint_step

logger = logging.getLogger(__name__)
ROUTE_COMPLETION = spec.EVENT_NAMES.index("route_completion")


def start_states(
    posterior: LatentState,
    batch: dict[str, Tensor],
    max_states: int,
    generator: torch.Generator | None = None,
    burn_in_steps: int = 0,
) -> DriveState:
    """Flatten (B, T) posteriors and their real route/speed into up to ``max_states`` imagination starts.

    The first ``burn_in_steps`` rows of each window are left out: their posteriors are filtered from a zero
    state. The controller's PID integral starts at zero (the data does not record it); the pose at the origin.
    """
    skip = min(burn_in_steps, posterior.deter.shape[1] - 1)

    def rows(value: Tensor) -> Tensor:
        return value[:, skip:].flatten(0, 1)

    flat = {
        "deter": rows(posterior.deter),
        "stoch": rows(posterior.stoch),
        "route": rows(batch["route"]).float(),
        "waypoints": rows(batch["expert_waypoints"]).float(),
        "speed": rows(batch["measurements"][..., SPEED]).float(),
        "completion": rows(batch["events"][..., ROUTE_COMPLETION]).float(),
    }
    count = flat["deter"].shape[0]
    if count > max_states:
        rows = torch.randperm(count, generator=generator, device=generator.device if generator else "cpu")[
            :max_states
        ]
        flat = {key: value[rows.to(value.device)] for key, value in flat.items()}
        count = max_states
    zeros = flat["speed"].new_zeros(count)
    return DriveState(
        latent=LatentState(flat["deter"], flat["stoch"]),
        route=flat["route"],
        expert_waypoints=flat["waypoints"],
        speed_mps=flat["speed"],
        integral=zeros,
        pose=flat["speed"].new_zeros(count, 3),
        route_completion=flat["completion"],
    )


class RLModule(pl.LightningModule):
    """Delta-head actor-critic in imagination on a frozen world model.

    Args:
        config: ``PolicyConfig`` as a plain dict.
        world_model_config: ``WorldModelConfig`` as a plain dict (the world model is part of the checkpoint).
    """

    def __init__(self, config: dict[str, Any], world_model_config: dict[str, Any]) -> None:
        super().__init__()
        self.save_hyperparameters({"config": config, "world_model_config": world_model_config})
        self.config = PolicyConfig.model_validate(config)
        self.world_model = WorldModel(WorldModelConfig.model_validate(world_model_config))
        self.world_model.requires_grad_(False)
        c = self.config
        self.policy = WaypointPolicy(self.world_model.feature_size, c.inputs, c.actor, c.delta)
        self.policy.actor.requires_grad_(not c.rl.freeze_bc_trunk)
        self.critic = Critic(input_size(self.world_model.feature_size, c.inputs), c.critic)
        self.slow_critic = SlowCritic(self.critic)
        self.return_norm = ReturnNormalizer(c.return_norm)
        self.driver = LatentDriver(
            self.world_model, c.controller, c.actor.waypoint_dt_s, c.imagination.reward_weights
        )
        self.discount = 1.0 - 1.0 / c.imagination.discount_horizon
        self._generator: torch.Generator | None = None

    def generator(self) -> torch.Generator:
        """The imagination generator on this module's device, seeded by ``rl.seed`` (created once)."""
        if self._generator is None or self._generator.device != self.device:
            self._generator = torch.Generator(device=self.device).manual_seed(self.config.rl.seed)
        return self._generator

    def load_bc(self, state_dict: dict[str, Tensor], world_model_state: dict[str, Tensor]) -> None:
        """Initialise the BC trunk (and the world model) from a BC checkpoint's state."""
        self.policy.actor.load_state_dict(sub_state_dict(state_dict, "policy.actor."))
        self.world_model.load_state_dict(world_model_state)
        self.slow_critic.critic.load_state_dict(self.critic.state_dict())

    def actor_critic_losses(self, rollout: PolicyRollout) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """REINFORCE + entropy loss of the delta head and the critic loss of one imagined rollout."""
        c = self.config
        inputs = rollout.inputs.detach()
        with torch.no_grad():
            value = self.critic.value(inputs)  # (N, H+1)
            returns = lambda_returns(
                rollout.reward, rollout.cont, value, self.discount, c.imagination.return_lambda
            )
            weights = trajectory_weights(rollout.cont, self.discount)
            _, scale = self.return_norm(returns, update=self.training)
            advantage = (returns - value[:, :-1]) / scale
        step_inputs = inputs[:, :-1]
        bc = self.policy.bc_waypoints(step_inputs)
        dist = self.policy.distribution(step_inputs, bc)
        log_prob = dist.log_prob(rollout.samples)
        entropy = dist.entropy()
        actor_loss = (weights * -(log_prob * advantage + c.rl.actor_entropy * entropy)).mean()
        critic_terms = self.critic_terms(step_inputs, returns)
        critic_loss = (weights * critic_terms).mean()
        delta = self.policy.delta
        residual = delta.residual(rollout.samples) if delta is not None else bc * 0
        mean_residual = delta.residual(dist.base_dist.loc.detach()) if delta is not None else bc * 0
        metrics = {
            "imagined/return": returns.mean(),
            "imagined/reward": rollout.reward.mean(),
            "imagined/value": value.mean(),
            "imagined/cont": rollout.cont.mean(),
            "actor/advantage": advantage.mean(),
            "actor/entropy": entropy.mean(),
            "actor/delta_sampled_m": torch.linalg.vector_norm(residual, dim=-1).mean(),
            "actor/delta_mean_m": torch.linalg.vector_norm(mean_residual, dim=-1).mean(),
            "actor/delta_mean_x0_m": mean_residual[..., 0, 0].mean(),
            "actor/std": dist.base_dist.scale.mean(),
            "actor/return_scale": scale,
            "losses/actor": actor_loss,
            "losses/critic": critic_loss,
        }
        for name, values in rollout.components.items():
            metrics[f"imagined/{name}"] = values.mean()
        return actor_loss, critic_loss, metrics

    def critic_terms(self, inputs: Tensor, returns: Tensor) -> Tensor:
        """Two-hot loss (...,) toward the returns plus the regulariser toward the slow critic (DreamerV3)."""
        slow_value = self.slow_critic.value(inputs)
        return self.critic.loss(inputs, returns) + self.config.critic.slow_reg * self.critic.loss(
            inputs, slow_value
        )

    def replay_value_loss(self, inputs: Tensor, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """Critic loss on the replayed real window (DreamerV3 ``repval``) and its mean return.

        Rewards and continuation flags come from the recorded events, with the world model's head definitions
        (``make_targets``) and the same reward weights as imagination, grouped into decisions of
        ``decision_every_steps`` from the end of the burn-in (as imagination's); returns bootstrap from the critic.

        Args:
            inputs: (B, T, I) policy inputs of the real posterior states (detached).
            batch: the replayed window.
        """
        wm_config = self.world_model.config
        every = self.config.imagination.decision_every_steps
        first = min(self.config.rl.burn_in_steps, inputs.shape[1] - 1)
        decisions = (inputs.shape[1] - 1 - first) // every
        targets = make_targets(batch, wm_config.heads, self.world_model.measurement_index)
        reward = self.world_model.heads.reward(targets, self.driver.reward_weights)
        steps = slice(first + 1, first + 1 + decisions * every)
        reward, cont = aggregate_decisions(reward[:, steps], targets["cont"][:, steps].float(), every)
        decision_inputs = inputs[:, first : first + decisions * every + 1 : every]
        with torch.no_grad():
            value = self.critic.value(decision_inputs)
            returns = lambda_returns(reward, cont, value, self.discount, self.config.imagination.return_lambda)
        return self.critic_terms(decision_inputs[:, :-1], returns).mean(), returns.mean()

    def anchor_loss(self, inputs: Tensor, batch: dict[str, Tensor]) -> Tensor:
        """L1 of the policy's mean waypoints on the real posterior states (inputs (B, T, I)) to the expert's."""
        waypoints, _ = self.policy.act(inputs, sample=False)
        return (waypoints - batch["expert_waypoints"].float()).abs().mean()

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        c = self.config
        generator = self.generator()
        with torch.no_grad():
            posterior, _, _ = self.world_model.observe(batch, generator=generator)
            start = start_states(
                posterior, batch, c.imagination.max_start_states, generator, c.rl.burn_in_steps
            )
            rollout = imagine_policy(
                self.driver,
                self.policy,
                start,
                c.imagination.horizon,
                c.imagination.decision_every_steps,
                generator=generator,
                sample_latents=c.imagination.sample_latents,
            )
        actor_loss, critic_loss, metrics = self.actor_critic_losses(rollout)
        real_inputs = self.policy.inputs(
            self.world_model.features(posterior).detach(), batch["route"], batch["measurements"][..., SPEED]
        )
        anchor = self.anchor_loss(real_inputs, batch)
        replay_loss, replay_return = self.replay_value_loss(real_inputs.detach(), batch)
        loss = actor_loss + c.rl.bc_anchor * anchor + critic_loss + c.critic.replay_scale * replay_loss
        metrics.update(
            {"losses/bc_anchor": anchor, "losses/replay_value": replay_loss, "replay/return": replay_return}
        )
        metrics["losses/total"] = loss
        self.log_dict(
            {f"train/{k}": v for k, v in metrics.items()}, on_step=True, batch_size=batch["action"].shape[0]
        )
        self.log(
            "return", metrics["imagined/return"], prog_bar=True, on_step=True, batch_size=1, logger=False
        )
        return loss

    def on_train_batch_end(self, outputs: Any, batch: dict[str, Tensor], batch_idx: int) -> None:
        self.slow_critic.update(self.critic, self.config.critic.slow_rate)

    def configure_optimizers(self) -> dict[str, Any]:
        params = [
            p
            for name, p in self.named_parameters()
            if p.requires_grad and not name.startswith("slow_critic.")
        ]
        rl = self.config.rl
        warmup = min(rl.optim.warmup_steps, rl.max_steps // 10)
        if warmup < rl.optim.warmup_steps:
            logger.info("RL warm-up capped at %d steps (10 %% of rl.max_steps=%d)", warmup, rl.max_steps)
        optimizer, scheduler = build_optimizer(params, rl.optim.model_copy(update={"warmup_steps": warmup}))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def train_rl(
    config: PolicyConfig,
    bc_path: str | Path,
    data_dir: str | Path,
    out_dir: str | Path,
    world_model_path: str | Path | None = None,
    accelerator: str = "auto",
    devices: str | int = "auto",
    max_minutes: float | None = None,
    progress_bar: bool = True,
    resume: bool = False,
) -> Path:
    """Train the delta head in imagination from a BC checkpoint; returns the checkpoint folder.

    The world model comes from the BC checkpoint unless ``world_model_path`` is given (then it must have the
    same architecture; use it only when the BC run kept the world model frozen). ``resume`` continues from
    ``out_dir/checkpoints/last.ckpt`` (weights, critic, return normaliser, optimiser, step count).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dump_yaml(config, out_dir / "config.yaml")
    rl = config.rl
    pl.seed_everything(rl.seed, workers=True)
    bc = load_policy(bc_path)
    world_model = bc.world_model
    if world_model_path is not None:
        world_model, _ = load_world_model(world_model_path)
    wm_config = world_model.config
    if config.inputs != bc.config.inputs or config.actor != bc.config.actor:
        logger.warning("inputs/actor config differ from the BC checkpoint's; using the BC checkpoint's")
        config = config.model_copy(update={"inputs": bc.config.inputs, "actor": bc.config.actor})
    module = RLModule(config.model_dump(mode="json"), wm_config.model_dump(mode="json"))
    module.load_bc(bc.state_dict, world_model.state_dict())
    checkpoints = ModelCheckpoint(
        dirpath=str(out_dir / "checkpoints"),
        filename="{step}",
        every_n_train_steps=rl.checkpoint_every_steps,
        save_top_k=-1,
        save_last=True,
    )
    datamodule = build_datamodule(
        wm_config,
        data_dir,
        rl.window_steps,
        rl.batch_size,
        rl.num_workers,
        wm_config.train.val_fraction,
        rl.seed,
    )
    ckpt_path = resume_path(out_dir, resume)
    trainer = build_trainer(
        out_dir,
        rl.precision,
        rl.max_steps,
        rl.log_every_steps,
        [checkpoints, SaveLastAtEnd(checkpoints)],
        accelerator,
        devices,
        max_minutes,
        progress_bar,
        val_batches=0,
        resume_step=checkpoint_step(ckpt_path) if ckpt_path else None,
    )
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    return out_dir / "checkpoints"
