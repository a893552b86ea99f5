"""Dream stage: throughput of the batched learned simulator (DreamSim vector form) at several batch sizes."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from drivesim.dream.config import DreamSimConfig
from drivesim.dream.sim import DreamSimVectorEnv
from drivesim.world_model.bench import autocast_context, synthetic_batch
from drivesim.world_model.model import WorldModel


class TensorContexts:
    """Context windows held in memory (N, T, ...); ``get`` returns rows by index (a ``ContextSource`` stand-in)."""

    def __init__(self, windows: dict[str, Tensor]) -> None:
        self.windows = windows

    def __len__(self) -> int:
        return int(next(iter(self.windows.values())).shape[0])

    def get(self, indices: Sequence[int], device: torch.device | str = "cpu") -> dict[str, Tensor]:
        rows = torch.as_tensor(list(indices), dtype=torch.long)
        return {key: value[rows].to(device) for key, value in self.windows.items()}


def synthetic_contexts(world_model: WorldModel, count: int, steps: int, seed: int = 0) -> TensorContexts:
    """Random context windows with the world model's fields plus route and expert waypoints."""
    batch = synthetic_batch(world_model.config, count, steps, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    batch["route"] = torch.randn(count, steps, 16, 2, generator=generator) * 10
    batch["expert_waypoints"] = torch.randn(count, steps, 8, 2, generator=generator) * 5
    batch["events"][..., :3] = 0.0
    return TensorContexts(batch)


@dataclass
class DreamSimBenchResult:
    """Environment steps per second (env-steps summed over the batch) for each batch size."""

    device: str
    precision: str
    decode_images: bool
    steps_per_s: dict[int, float]
    threads: int


@torch.no_grad()
def run_dreamsim_benchmark(
    world_model: WorldModel,
    batch_sizes: Sequence[int] = (1, 64, 1024),
    steps: int = 20,
    device: str = "cpu",
    precision: str = "bf16-mixed",
    decode_images: bool = True,
    context_steps: int = 8,
) -> DreamSimBenchResult:
    """Time ``steps`` vector-env steps (after two warm-up steps) for each batch size, random controls."""
    config = DreamSimConfig(context_steps=context_steps, decode_images=decode_images, max_episode_steps=10**6)
    contexts = synthetic_contexts(world_model, 64, context_steps)
    dev = torch.device(device)
    results = {}
    for batch_size in batch_sizes:
        env = DreamSimVectorEnv(world_model, contexts, batch_size, config, device=dev)
        generator = torch.Generator(device=dev).manual_seed(0)
        with autocast_context(dev, precision):
            env.reset(seed=0)
            for _ in range(2):
                env.step(torch.rand(batch_size, 3, device=dev, generator=generator), autoreset=False)
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            start = time.perf_counter()
            for _ in range(steps):
                env.step(torch.rand(batch_size, 3, device=dev, generator=generator), autoreset=False)
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            elapsed = time.perf_counter() - start
        results[batch_size] = batch_size * steps / max(elapsed, 1e-9)
    return DreamSimBenchResult(device, precision, decode_images, results, torch.get_num_threads())
