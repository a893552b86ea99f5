"""World model stage: the optimiser (LaProp or Adam) with adaptive gradient clipping and linear warm-up.

DreamerV3 (embodied/jax/opt.py) chains: clip_by_agc(0.3) -> scale_by_rms(beta2, eps) -> scale_by_momentum(beta1)
-> scale(-lr), with a linear warm-up. LaProp normalises the gradient by the RMS *before* momentum, which is
what distinguishes it from Adam (momentum first, then normalisation).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

from drivesim.world_model.config import OptimConfig


@torch.no_grad()
def adaptive_gradient_clip_(params: list[Tensor], ratio: float, min_norm: float = 1e-3) -> None:
    """Rescale each parameter's gradient so that ||g|| <= ratio * max(||w||, min_norm) (per tensor, in place)."""
    grads = [p.grad for p in params]
    grad_norms = torch._foreach_norm(grads)
    param_norms = torch._foreach_norm(params)
    factors = [
        torch.clamp(ratio * torch.clamp(pn, min=min_norm) / torch.clamp(gn, min=1e-12), max=1.0)
        for gn, pn in zip(grad_norms, param_norms, strict=True)
    ]
    torch._foreach_mul_(grads, factors)


class LaPropAGC(torch.optim.Optimizer):
    """LaProp or Adam with adaptive gradient clipping (AGC) applied to the raw gradients first.

    Args:
        params: parameters or parameter groups.
        lr: learning rate (warm-up is done by a scheduler, see ``warmup_lambda``).
        betas: (momentum rate, second-moment rate).
        eps: denominator epsilon.
        agc: AGC ratio; 0 disables clipping.
        agc_min_norm: lower bound on the parameter norm in AGC.
        weight_decay: decoupled weight decay.
        laprop: LaProp (normalise then momentum) if True, else Adam.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict],
        lr: float = 4e-5,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-20,
        agc: float = 0.3,
        agc_min_norm: float = 1e-3,
        weight_decay: float = 0.0,
        laprop: bool = True,
    ) -> None:
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            agc=agc,
            agc_min_norm=agc_min_norm,
            weight_decay=weight_decay,
            laprop=laprop,
        )
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):  # noqa: ANN001, ANN201 - torch.optim.Optimizer signature
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            if group["agc"] > 0:
                adaptive_gradient_clip_(params, group["agc"], group["agc_min_norm"])
            beta1, beta2 = group["betas"]
            grads, moments, variances, steps = [], [], [], []
            for p in params:
                state = self.state[p]
                if not state:
                    state["step"] = torch.zeros((), dtype=torch.float32)
                    state["momentum"] = torch.zeros_like(p)
                    state["variance"] = torch.zeros_like(p)
                grads.append(p.grad)
                moments.append(state["momentum"])
                variances.append(state["variance"])
                steps.append(state["step"])
            torch._foreach_add_(steps, 1.0)
            step = float(steps[0].item())
            correction1 = 1.0 - beta1**step
            correction2 = 1.0 - beta2**step
            torch._foreach_mul_(variances, beta2)
            torch._foreach_addcmul_(variances, grads, grads, value=1.0 - beta2)
            denominators = torch._foreach_sqrt(torch._foreach_div(variances, correction2))
            torch._foreach_add_(denominators, group["eps"])
            if group["laprop"]:
                torch._foreach_mul_(moments, beta1)
                torch._foreach_addcdiv_(moments, grads, denominators, value=1.0 - beta1)
                updates = torch._foreach_div(moments, correction1)
            else:
                torch._foreach_mul_(moments, beta1)
                torch._foreach_add_(moments, grads, alpha=1.0 - beta1)
                updates = torch._foreach_div(torch._foreach_div(moments, correction1), denominators)
            if group["weight_decay"] > 0:
                torch._foreach_mul_(params, 1.0 - group["lr"] * group["weight_decay"])
            torch._foreach_add_(params, updates, alpha=-group["lr"])
        return loss


def warmup_lambda(warmup_steps: int):  # noqa: ANN201 - returns a LambdaLR factor function
    """Linear warm-up factor min(1, (step + 1) / warmup_steps) for ``torch.optim.lr_scheduler.LambdaLR``."""

    def factor(step: int) -> float:
        return 1.0 if warmup_steps <= 0 else min(1.0, (step + 1) / warmup_steps)

    return factor


def build_optimizer(
    params: Iterable[Tensor], config: OptimConfig
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """The configured optimiser and its warm-up scheduler (step it once per optimiser step)."""
    optimizer = LaPropAGC(
        params,
        lr=config.lr,
        betas=(config.beta1, config.beta2),
        eps=config.eps,
        agc=config.agc,
        agc_min_norm=config.agc_min_norm,
        weight_decay=config.weight_decay,
        laprop=config.name == "laprop",
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_lambda(config.warmup_steps))
    return optimizer, scheduler
