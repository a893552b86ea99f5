"""World model stage: the recurrent state-space model (block GRU + grouped categorical latents).

Structure after DreamerV3 (dreamerv3/rssm.py): the deterministic state h_t comes from a block-diagonal GRU fed
with h_{t-1}, z_{t-1} and the control a_{t-1}; the prior p(z_t | h_t) and posterior q(z_t | h_t, e_t) are
G groups of C-way categoricals with a 1% uniform mixture, sampled with straight-through gradients.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor, nn

from drivesim.world_model.config import RSSMConfig
from drivesim.world_model.distributions import mode_one_hot, sample_one_hot, unimix_probs
from drivesim.world_model.networks import BlockLinear, DenseBlock, make_norm

ACTION_SIZE = 3  # [throttle, steer, brake], drivesim.spec.ACTION_NAMES


class LatentState(NamedTuple):
    """RSSM state; every field has the same leading batch shape (B,) or (B, T).

    Attributes:
        deter: (..., D) deterministic GRU state h.
        stoch: (..., G, C) one-hot (straight-through) categorical sample z.
    """

    deter: Tensor
    stoch: Tensor


Policy = Callable[[Tensor, LatentState], Tensor]
"""A policy ``policy(features (B, F), state) -> action (B, 3)`` used by imagination."""


class RSSM(nn.Module):
    """Block-GRU RSSM. ``feature_size`` = D + G * C is the size of [h_t, z_t] given to every head."""

    def __init__(self, config: RSSMConfig, embed_size: int, action_size: int = ACTION_SIZE) -> None:
        super().__init__()
        self.config = config
        deter, hidden, blocks = config.deter_size, config.hidden_size, config.blocks
        self.stoch_size = config.stoch_groups * config.stoch_classes
        self.feature_size = deter + self.stoch_size
        # GRU inputs, each projected, normed and activated separately (DreamerV3 dynin0..2).
        self.deter_in = DenseBlock(deter, hidden, config.norm)
        self.stoch_in = DenseBlock(self.stoch_size, hidden, config.norm)
        self.action_in = DenseBlock(action_size, hidden, config.norm)
        # Each block sees its slice of h plus all three projections (DreamerV3 dynhid0). DreamerV3 repeats
        # the projections per block and applies one block-diagonal layer; we split that layer's weight into
        # its block-diagonal part on h and a dense part on the shared projections: the same function without
        # materialising the (B, blocks, D / blocks + 3 * hidden) copy.
        self.gru_hidden_deter = BlockLinear(deter, deter, blocks, bias=False)
        self.gru_hidden_inputs = nn.Linear(3 * hidden, deter)
        self.gru_hidden_norm = make_norm(config.norm, deter)
        self.gru_gates = BlockLinear(deter, 3 * deter, blocks)
        # Prior p(z | h).
        self.prior_net = nn.Sequential(
            *(
                DenseBlock(deter if i == 0 else hidden, hidden, config.norm)
                for i in range(config.prior_layers)
            )
        )
        self.prior_out = nn.Linear(hidden, self.stoch_size)
        # Posterior q(z | h, e): the first layer's input [h, e] is split so that the embedding part is
        # projected for all T steps at once outside the sequential loop (same function, fewer small matmuls).
        self.post_deter = nn.Linear(deter, hidden, bias=False)
        self.post_embed = nn.Linear(embed_size, hidden, bias=False)
        self.post_norm = make_norm(config.norm, hidden)
        self.post_net = nn.Sequential(
            *(DenseBlock(hidden, hidden, config.norm) for _ in range(config.posterior_layers - 1))
        )
        self.post_out = nn.Linear(hidden, self.stoch_size)

    # ----------------------------------------------------------------------------------------- helpers
    def initial(self, batch_size: int, device: torch.device | str = "cpu") -> LatentState:
        """Zero state (DreamerV3 ``initial``) for a batch: deter (B, D), stoch (B, G, C)."""
        c = self.config
        return LatentState(
            torch.zeros(batch_size, c.deter_size, device=device),
            torch.zeros(batch_size, c.stoch_groups, c.stoch_classes, device=device),
        )

    def features(self, state: LatentState) -> Tensor:
        """[h, flatten(z)] of shape (..., D + G * C)."""
        stoch = state.stoch.flatten(-2).to(state.deter.dtype)
        return torch.cat([state.deter, stoch], -1)

    def _probs(self, logits: Tensor) -> Tensor:
        """Unimix probabilities (..., G, C) from flat logits (..., G * C)."""
        grouped = logits.reshape(*logits.shape[:-1], self.config.stoch_groups, self.config.stoch_classes)
        return unimix_probs(grouped, self.config.unimix)

    def _sample(self, probs: Tensor, generator: torch.Generator | None, sample: bool) -> Tensor:
        return sample_one_hot(probs, generator) if sample else mode_one_hot(probs)

    def _core(self, deter: Tensor, stoch: Tensor, action_proj: Tensor) -> Tensor:
        """One block-GRU step. deter (B, D), stoch (B, G, C), action_proj (B, hidden) -> new deter (B, D)."""
        blocks = self.config.blocks
        batch = deter.shape[0]
        inputs = torch.cat([self.deter_in(deter), self.stoch_in(stoch.flatten(-2)), action_proj], -1)
        x = self.gru_hidden_inputs(inputs) + self.gru_hidden_deter(deter)
        x = torch.nn.functional.silu(self.gru_hidden_norm(x))
        gates = self.gru_gates(x).reshape(batch, blocks, 3, -1).float()
        reset, candidate, update = gates.unbind(2)
        reset = torch.sigmoid(reset)
        candidate = torch.tanh(reset * candidate)
        update = torch.sigmoid(update - 1.0)  # bias towards keeping the state (DreamerV3)
        return (
            update.reshape(batch, -1) * candidate.reshape(batch, -1) + (1 - update.reshape(batch, -1)) * deter
        )

    def prior_probs(self, deter: Tensor) -> Tensor:
        """Prior p(z | h) probabilities (..., G, C) for deter (..., D) of any leading shape."""
        return self._probs(self.prior_out(self.prior_net(deter)))

    def prior_log_probs(self, deter: Tensor) -> Tensor:
        """Prior p(z | h) log-probabilities (..., G, C) for deter (..., D) of any leading shape."""
        return torch.log(self.prior_probs(deter))

    # ------------------------------------------------------------------------------------ public steps
    def img_step(
        self,
        state: LatentState,
        action: Tensor,
        generator: torch.Generator | None = None,
        sample: bool = True,
    ) -> LatentState:
        """Advance one step with the prior: (h, z), a -> (h', z' ~ p(z' | h')).

        Args:
            state: deter (B, D), stoch (B, G, C).
            action: (B, 3) control applied in ``state``.
            generator: optional generator for reproducible latent sampling.
            sample: sample z' (True) or take the mode.

        Returns:
            The next state.
        """
        deter = self._core(state.deter, state.stoch, self.action_in(action))
        return LatentState(deter, self._sample(self.prior_probs(deter), generator, sample))

    def observe(
        self,
        embed: Tensor,
        prev_action: Tensor,
        is_first: Tensor,
        state: LatentState | None = None,
        generator: torch.Generator | None = None,
        sample: bool = True,
    ) -> tuple[LatentState, Tensor, LatentState]:
        """Filter a sequence with the posterior.

        Args:
            embed: (B, T, E) encoder embeddings e_t.
            prev_action: (B, T, 3) control a_{t-1} that led to o_t (zero where ``is_first``).
            is_first: (B, T) bool; the state is reset to zeros before such steps.
            state: carry from a previous call (deter (B, D), stoch (B, G, C)); zeros when None.
            generator: optional generator for reproducible sampling.
            sample: sample the posterior (training) or take its mode.

        Returns:
            Posterior states with (B, T) leading shape, posterior log-probabilities (B, T, G, C) and the
            last state (the carry for the next call).
        """
        batch, steps = embed.shape[:2]
        if state is None:
            state = self.initial(batch, embed.device)
        keep = (~is_first.bool()).unsqueeze(-1)  # (B, T, 1)
        action_proj = self.action_in(prev_action * keep)  # (B, T, hidden), outside the loop
        embed_proj = self.post_embed(embed)  # (B, T, hidden)
        deter, stoch = state
        deters, stochs, probs = [], [], []
        for t in range(steps):
            keep_t = keep[:, t].to(deter.dtype)
            deter = deter * keep_t
            stoch = stoch * keep_t.unsqueeze(-1)
            deter = self._core(deter, stoch, action_proj[:, t])
            x = torch.nn.functional.silu(self.post_norm(self.post_deter(deter) + embed_proj[:, t]))
            step_probs = self._probs(self.post_out(self.post_net(x)))
            stoch = self._sample(step_probs, generator, sample)
            deters.append(deter)
            stochs.append(stoch)
            probs.append(step_probs)
        posterior = LatentState(torch.stack(deters, 1), torch.stack(stochs, 1))
        return posterior, torch.log(torch.stack(probs, 1)), LatentState(deter, stoch)

    def imagine(
        self,
        start: LatentState,
        actions_or_policy: Tensor | Policy,
        horizon: int,
        generator: torch.Generator | None = None,
        sample: bool = True,
    ) -> tuple[LatentState, Tensor]:
        """Roll the prior forward from ``start``.

        Args:
            start: deter (B, D), stoch (B, G, C).
            actions_or_policy: (B, H, 3) controls, or ``policy(features (B, F), state) -> (B, 3)`` called at
                each step on the current state.
            horizon: steps H to imagine.
            generator: optional generator for reproducible sampling.
            sample: sample latents (True) or take the prior's mode.

        Returns:
            States s_1..s_H with leading (B, H) and the actions a_0..a_{H-1} (B, H, 3) (a_t is applied in
            s_t; s_0 = start).
        """
        if isinstance(actions_or_policy, Tensor):
            assert actions_or_policy.shape[1] >= horizon, (
                f"actions have {actions_or_policy.shape[1]} steps, fewer than horizon {horizon}"
            )
        state = start
        deters, stochs, actions = [], [], []
        for t in range(horizon):
            if isinstance(actions_or_policy, Tensor):
                action = actions_or_policy[:, t]
            else:
                action = actions_or_policy(self.features(state), state)
            state = self.img_step(state, action, generator, sample)
            deters.append(state.deter)
            stochs.append(state.stoch)
            actions.append(action)
        states = LatentState(torch.stack(deters, 1), torch.stack(stochs, 1))
        return states, torch.stack(actions, 1)
