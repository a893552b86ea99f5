"""Numerical guard of the fast RSSM path (fused h-matmul, pre-drawn random numbers, compiled step functions).

The reference below is the plain formulation (DreamerV3's block GRU with one small matmul per input, the
state reset and sampling inline); the fast path must give the same posterior, loss and gradients: exactly
(float32 rounding) in float32 and within bf16 tolerance under bf16 autocast. The compiled step functions are
checked in a slow test: ``backend="aot_eager"`` traces them like ``torch.compile`` does (full graph, so a graph
break fails, and AOT autograd) without generating code; tracing alone takes tens of seconds on 2 cores.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from drivesim.world_model.distributions import group_uniforms, sample_one_hot
from drivesim.world_model.model import WorldModel
from drivesim.world_model.rssm import RSSM, LatentState


def plain_core(rssm: RSSM, deter: Tensor, stoch: Tensor, action_proj: Tensor) -> Tensor:
    """The block-GRU step with each input projected by its own layer."""
    batch, blocks = deter.shape[0], rssm.config.blocks
    inputs = torch.cat([rssm.deter_in(deter), rssm.stoch_in(stoch.flatten(-2)), action_proj], -1)
    x = rssm.gru_hidden_inputs(inputs) + rssm.gru_hidden_deter(deter)
    x = F.silu(rssm.gru_hidden_norm(x))
    gates = rssm.gru_gates(x).reshape(batch, blocks, 3, -1).float()
    reset, candidate, update = gates.unbind(2)
    candidate = torch.tanh(torch.sigmoid(reset) * candidate).reshape(batch, -1)
    update = torch.sigmoid(update - 1.0).reshape(batch, -1)
    return update * candidate + (1 - update) * deter


def plain_observe(
    rssm: RSSM, embed: Tensor, prev_action: Tensor, is_first: Tensor, uniforms: Tensor
) -> tuple[LatentState, Tensor, LatentState]:
    """``RSSM.observe`` written step by step: reset, GRU, posterior layer on [h, e], sample."""
    batch, steps = embed.shape[:2]
    deter, stoch = rssm.initial(batch)
    keep = (~is_first).unsqueeze(-1).float()
    deters, stochs, probs = [], [], []
    for t in range(steps):
        deter, stoch = deter * keep[:, t], stoch * keep[:, t].unsqueeze(-1)
        deter = plain_core(rssm, deter, stoch, rssm.action_in(prev_action[:, t] * keep[:, t]))
        x = F.silu(rssm.post_norm(rssm.post_deter(deter) + rssm.post_embed(embed[:, t])))
        step_probs = rssm._probs(rssm.post_out(rssm.post_net(x)))
        stoch = sample_one_hot(step_probs, uniform=uniforms[t])
        deters.append(deter)
        stochs.append(stoch)
        probs.append(step_probs)
    posterior = LatentState(torch.stack(deters, 1), torch.stack(stochs, 1))
    return posterior, torch.log(torch.stack(probs, 1)), LatentState(deter, stoch)


def _gradients(model: torch.nn.Module) -> Tensor:
    return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])


def _relative(a: Tensor, b: Tensor) -> float:
    return float((a - b).detach().norm() / b.detach().norm())


def _observe_outputs(model: WorldModel, observe) -> tuple[Tensor, Tensor, Tensor]:  # noqa: ANN001
    """Posterior deter, log-probs and the gradients of the parameters and the embedding of one ``observe``."""
    model.zero_grad()
    posterior, log_probs, _ = observe()
    (posterior.deter.square().mean() + (posterior.stoch * log_probs).sum()).backward()
    return posterior.deter.detach(), log_probs.detach(), _gradients(model)


def _observe_case(debug_config, synthetic_batch):  # noqa: ANN001, ANN202
    torch.manual_seed(0)
    model = WorldModel(debug_config)
    batch = synthetic_batch(3, 10)
    batch["is_first"][1, 4] = True  # a reset inside the window
    embed = model.embed(batch).detach()
    prev_action = torch.rand(3, 10, 3)
    uniforms = group_uniforms((10, 3), debug_config.rssm.stoch_groups, torch.Generator().manual_seed(1))

    def plain():  # noqa: ANN202
        return plain_observe(model.rssm, embed, prev_action, batch["is_first"], uniforms)

    def fast():  # noqa: ANN202
        return model.rssm.observe(embed, prev_action, batch["is_first"], generator=torch.Generator().manual_seed(1))

    return model, plain, fast


def test_fused_observe_matches_the_plain_step_in_float32(debug_config, synthetic_batch) -> None:
    model, plain, fast = _observe_case(debug_config, synthetic_batch)
    for got, want in zip(_observe_outputs(model, fast), _observe_outputs(model, plain), strict=True):
        assert _relative(got, want) < 1e-5


@pytest.mark.slow
def test_compiled_steps_match_the_eager_ones(debug_config, synthetic_batch) -> None:
    model, _, fast = _observe_case(debug_config, synthetic_batch)
    eager = _observe_outputs(model, fast)
    model.rssm.compile_steps(backend="aot_eager")
    for got, want in zip(_observe_outputs(model, fast), eager, strict=True):
        assert _relative(got, want) < 1e-5
    start = model.initial(4)
    actions = torch.rand(4, 6, 3)
    compiled_states, _ = model.rssm.imagine(start, actions, 6, torch.Generator().manual_seed(3))
    model.rssm.compile_steps(backend="eager")
    eager_states, _ = model.rssm.imagine(start, actions, 6, torch.Generator().manual_seed(3))
    assert _relative(compiled_states.deter, eager_states.deter) < 1e-5


def test_fast_path_loss_and_gradients_within_bf16_tolerance(debug_config, synthetic_batch) -> None:
    """Fast path (fused h-matmul, pre-drawn numbers, bf16 autocast) vs plain path (reference step, float32)."""
    torch.manual_seed(0)
    model = WorldModel(debug_config)
    batch = synthetic_batch(3, 10)
    rssm = model.rssm
    fast_observe = rssm.observe

    def plain(embed, prev_action, is_first, state=None, generator=None, sample=True):  # noqa: ANN001, ANN202
        uniforms = group_uniforms((embed.shape[1], embed.shape[0]), rssm.config.stoch_groups, generator)
        return plain_observe(rssm, embed, prev_action, is_first, uniforms)

    def loss_and_gradients(bf16: bool) -> tuple[float, Tensor, Tensor]:
        model.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss, _, posterior = model.loss(batch, generator=torch.Generator().manual_seed(2))
        loss.backward()
        return float(loss.detach()), _gradients(model), posterior.stoch.detach().argmax(-1)

    rssm.observe = plain  # type: ignore[method-assign]
    plain_loss, plain_grads, plain_latents = loss_and_gradients(bf16=False)
    rssm.observe = fast_observe  # type: ignore[method-assign]
    fast_loss, fast_grads, fast_latents = loss_and_gradients(bf16=True)
    assert torch.equal(fast_latents, plain_latents), "bf16 rounding changed a sampled latent; pick another seed"
    assert abs(fast_loss - plain_loss) <= 1e-2 * abs(plain_loss)
    assert _relative(fast_grads, plain_grads) < 0.05
    assert float(F.cosine_similarity(fast_grads, plain_grads, 0)) > 0.999
