"""Numerical guard of the fast RSSM path (fused h-matmul, pre-drawn random numbers, compiled step functions).

The reference below is the plain formulation (DreamerV3's block GRU with one small matmul per input, the
state reset and sampling inline); the fast path must give the same posterior, loss and gradients: exactly
(float32 rounding) in float32 and within bf16 tolerance under bf16 autocast. ``backend="aot_eager"`` traces
the step functions like ``torch.compile`` does (full graph, AOT autograd) without generating code, so the test
takes seconds.
"""

from __future__ import annotations

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
    return float((a - b).norm() / b.norm())


def test_fused_compiled_observe_matches_the_plain_step_in_float32(debug_config, synthetic_batch) -> None:
    torch.manual_seed(0)
    model = WorldModel(debug_config)
    batch = synthetic_batch(3, 10)
    batch["is_first"][1, 4] = True  # a reset inside the window
    embed = model.embed(batch).detach().requires_grad_()
    prev_action = torch.rand(3, 10, 3)
    uniforms = group_uniforms((10, 3), debug_config.rssm.stoch_groups, torch.Generator().manual_seed(1))

    def run(observe) -> tuple[Tensor, Tensor, Tensor]:  # noqa: ANN001
        model.zero_grad()
        embed.grad = None
        posterior, log_probs, _ = observe()
        (posterior.deter.square().mean() + (posterior.stoch * log_probs).sum()).backward()
        return posterior.deter.detach(), log_probs.detach(), torch.cat([_gradients(model), embed.grad.flatten()])

    plain = run(lambda: plain_observe(model.rssm, embed, prev_action, batch["is_first"], uniforms))
    eager = run(lambda: model.rssm.observe(embed, prev_action, batch["is_first"], generator=torch.Generator().manual_seed(1)))
    model.rssm.compile_steps(backend="aot_eager")
    compiled = run(lambda: model.rssm.observe(embed, prev_action, batch["is_first"], generator=torch.Generator().manual_seed(1)))
    for fast in (eager, compiled):
        for got, want in zip(fast, plain, strict=True):
            assert _relative(got, want) < 1e-5


def test_fast_path_loss_and_gradients_within_bf16_tolerance(debug_config, synthetic_batch) -> None:
    """Fast path (fused, compiled, bf16 autocast) vs plain path (reference step, eager, float32)."""
    torch.manual_seed(0)
    model = WorldModel(debug_config)
    batch = synthetic_batch(3, 10)
    rssm = model.rssm
    plain_rssm_observe = rssm.observe

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
    rssm.observe = plain_rssm_observe  # type: ignore[method-assign]
    rssm.compile_steps(backend="aot_eager")
    fast_loss, fast_grads, fast_latents = loss_and_gradients(bf16=True)
    assert torch.equal(fast_latents, plain_latents), "bf16 rounding changed a sampled latent; pick another seed"
    assert abs(fast_loss - plain_loss) <= 1e-2 * abs(plain_loss)
    assert _relative(fast_grads, plain_grads) < 0.05
    assert float(F.cosine_similarity(fast_grads, plain_grads, 0)) > 0.999
