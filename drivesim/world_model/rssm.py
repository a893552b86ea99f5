"""World model stage: the recurrent state-space model (block GRU + grouped categorical latents).

Structure after DreamerV3 (dreamerv3/rssm.py): the deterministic state h_t comes from a block-diagonal GRU fed
with h_{t-1}, z_{t-1} and the control a_{t-1}; the prior p(z_t | h_t) and posterior q(z_t | h_t, e_t) are
G groups of C-way categoricals with a 1% uniform mixture, sampled with straight-through gradients.

Speed (the time loops are bound by per-op overhead at training batch sizes): ``observe`` and ``imagine`` run
one per-step function per time step (``_obs_step`` / ``_img_step``) that draws no random numbers (they are
drawn for the whole sequence before the loop) and reads h with a single matmul against weights assembled
once per call (``_deter_weights``); ``compile_steps`` wraps both step functions in ``torch.compile`` with
``fullgraph=True`` (a graph break is an error), CUDA graphs on a GPU.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from drivesim.world_model.config import RSSMConfig
from drivesim.world_model.distributions import group_uniforms, mode_one_hot, sample_one_hot, unimix_probs
from drivesim.world_model.networks import BlockLinear, DenseBlock, make_norm, to_autocast_dtype

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
        # The per-step functions; ``compile_steps`` replaces them with compiled ones.
        self._obs_fn: Callable[..., tuple[Tensor, ...]] = self._obs_step
        self._img_fn: Callable[..., tuple[Tensor, ...]] = self._img_step
        self._clone_outputs = False
        self.compiled = False

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

    def compile_steps(self, mode: str | None = None, backend: str = "inductor") -> None:
        """``torch.compile`` the per-step functions of ``observe``, ``imagine`` and ``img_step``.

        ``fullgraph=True``: a graph break raises instead of silently running eager. ``mode`` is passed on
        (``"reduce-overhead"`` records CUDA graphs on a GPU); ``backend="aot_eager"`` traces without code
        generation (tests). The first calls per shape pay the compile time.
        """
        options = {"fullgraph": True, "dynamic": False, "backend": backend, "mode": mode}
        self._obs_fn = torch.compile(self._obs_step, **options)
        self._img_fn = torch.compile(self._img_step, **options)
        self._clone_outputs = mode == "reduce-overhead"
        self.compiled = True

    def _probs(self, logits: Tensor) -> Tensor:
        """Unimix probabilities (..., G, C) from flat logits (..., G * C)."""
        grouped = logits.reshape(*logits.shape[:-1], self.config.stoch_groups, self.config.stoch_classes)
        return unimix_probs(grouped, self.config.unimix)

    def _uniforms(
        self, prefix: tuple[int, ...], generator: torch.Generator | None, device: torch.device, sample: bool
    ) -> Tensor | None:
        return group_uniforms(prefix, self.config.stoch_groups, generator, device) if sample else None

    def _deter_weights(self, posterior: bool) -> Tensor:
        """The weights that read h, side by side: (D, hidden + D [+ hidden]).

        Columns: ``deter_in``'s linear map, the block-diagonal part of the GRU's hidden layer (as a dense
        block-diagonal matrix) and, for ``posterior``, the posterior's h-part ``post_deter``. One matmul of h
        with this replaces two or three small ones per time step (the same function). Cast once to the
        autocast dtype: a cast inside the loop would run (and be differentiated) at every step.
        """
        parts = [self.deter_in.linear.weight.t(), torch.block_diag(*self.gru_hidden_deter.weight)]
        if posterior:
            parts.append(self.post_deter.weight.t())
        return to_autocast_dtype(torch.cat(parts, 1))

    def _core(self, deter: Tensor, stoch: Tensor, action_proj: Tensor, reads: Tensor) -> Tensor:
        """One block-GRU step.

        Args:
            deter: (B, D) h_{t-1}.
            stoch: (B, G, C) z_{t-1}.
            action_proj: (B, hidden) ``action_in(a_{t-1})``.
            reads: (B, hidden + D) h_{t-1} times the first two column blocks of ``_deter_weights``.

        Returns:
            h_t (B, D), in h_{t-1}'s dtype (float32 state; the gates run in the autocast dtype).
        """
        hidden, blocks = self.config.hidden_size, self.config.blocks
        batch = deter.shape[0]
        deter_proj = F.silu(self.deter_in.norm(reads[:, :hidden]))
        inputs = torch.cat([deter_proj, self.stoch_in(stoch.flatten(-2)), action_proj.to(deter_proj.dtype)], -1)
        x = self.gru_hidden_inputs(inputs) + reads[:, hidden:]
        x = F.silu(self.gru_hidden_norm(x))
        reset, candidate, update = self.gru_gates(x).reshape(batch, blocks, 3, -1).unbind(2)
        candidate = torch.tanh(torch.sigmoid(reset) * candidate).reshape(batch, -1)
        update = torch.sigmoid(update - 1.0).reshape(batch, -1)  # bias towards keeping the state (DreamerV3)
        return torch.lerp(deter, candidate.to(deter.dtype), update.to(deter.dtype))

    def _choose(self, probs: Tensor, uniform: Tensor | None) -> Tensor:
        return mode_one_hot(probs) if uniform is None else sample_one_hot(probs, uniform=uniform)

    def _obs_step(
        self,
        deter: Tensor,
        stoch: Tensor,
        reads: Tensor,
        keep: Tensor,
        action_proj: Tensor,
        embed_proj: Tensor,
        uniform: Tensor | None,
        weights: Tensor,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """One posterior step (the body of ``observe``'s time loop).

        Args:
            deter, stoch: the previous state (B, D), (B, G, C).
            reads: (B, hidden + D) the previous h times ``weights[:, :hidden + D]``.
            keep: (B, 1) 0 where the episode starts at this step (the state is reset), else 1.
            action_proj: (B, hidden) projected previous control.
            embed_proj: (B, hidden) projected embedding e_t.
            uniform: (B, G, 1) uniform numbers to sample z_t, or None for the mode.
            weights: ``_deter_weights(posterior=True)``.

        Returns:
            h_t, z_t, the reads of h_t for the next step and the posterior probabilities (B, G, C).
        """
        keep = keep.to(deter.dtype)
        deter = self._core(deter * keep, stoch * keep.unsqueeze(-1), action_proj, reads * keep.to(reads.dtype))
        proj = torch.matmul(deter, weights)  # the next step's reads and the posterior's h-part in one matmul
        split = self.config.hidden_size + self.config.deter_size
        x = F.silu(self.post_norm(proj[:, split:] + embed_proj.to(proj.dtype)))
        probs = self._probs(self.post_out(self.post_net(x)))
        return deter, self._choose(probs, uniform), proj[:, :split], probs

    def _img_step(
        self, deter: Tensor, stoch: Tensor, action: Tensor, uniform: Tensor | None, weights: Tensor
    ) -> tuple[Tensor, Tensor]:
        """One prior step: h, z, a (B, 3), uniforms (B, G, 1) or None, ``_deter_weights(False)`` -> h', z'."""
        deter = self._core(deter, stoch, self.action_in(action), torch.matmul(deter, weights))
        return deter, self._choose(self.prior_probs(deter), uniform)

    def _outputs(self, *tensors: Tensor) -> tuple[Tensor, ...]:
        """Clone step outputs that CUDA-graph replays would overwrite (no-op unless compiled for CUDA graphs)."""
        return tuple(t.clone() for t in tensors) if self._clone_outputs else tensors

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
        uniform = self._uniforms((state.deter.shape[0],), generator, state.deter.device, sample)
        deter, stoch = self._img_fn(state.deter, state.stoch, action, uniform, self._deter_weights(False))
        return LatentState(*self._outputs(deter, stoch))

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
        keep = (~is_first.bool()).unsqueeze(-1).to(embed.dtype)  # (B, T, 1)
        # Everything that does not depend on the recurrence is computed for all T steps before the loop.
        action_proj = self.action_in(prev_action * keep.to(prev_action.dtype)).transpose(0, 1)  # (T, B, hidden)
        embed_proj = self.post_embed(embed).transpose(0, 1)  # (T, B, hidden)
        keep = keep.transpose(0, 1)
        uniforms = self._uniforms((steps, batch), generator, embed.device, sample)
        weights = self._deter_weights(posterior=True)
        deter, stoch = state
        reads = torch.matmul(deter, weights[:, : self.config.hidden_size + self.config.deter_size])
        deters, stochs, probs = [], [], []
        for t in range(steps):
            uniform = None if uniforms is None else uniforms[t]
            deter, stoch, reads, step_probs = self._outputs(
                *self._obs_fn(deter, stoch, reads, keep[t], action_proj[t], embed_proj[t], uniform, weights)
            )
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
        """Roll the prior forward from ``start`` (batched: the loop runs over time only).

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
        uniforms = self._uniforms((horizon, start.deter.shape[0]), generator, start.deter.device, sample)
        weights = self._deter_weights(posterior=False)
        state = start
        deters, stochs, actions = [], [], []
        for t in range(horizon):
            if isinstance(actions_or_policy, Tensor):
                action = actions_or_policy[:, t]
            else:
                action = actions_or_policy(self.features(state), state)
            uniform = None if uniforms is None else uniforms[t]
            state = LatentState(*self._outputs(*self._img_fn(state.deter, state.stoch, action, uniform, weights)))
            deters.append(state.deter)
            stochs.append(state.stoch)
            actions.append(action)
        states = LatentState(torch.stack(deters, 1), torch.stack(stochs, 1))
        return states, torch.stack(actions, 1)
