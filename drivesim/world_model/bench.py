"""World model stage: throughput benchmark of training steps and imagination on a synthetic batch."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from drivesim.spec import BEV_CHANNELS
from drivesim.world_model.config import WorldModelConfig
from drivesim.world_model.model import WorldModel
from drivesim.world_model.optim import build_optimizer

logger = logging.getLogger(__name__)


def synthetic_batch(
    config: WorldModelConfig, batch_size: int, steps: int, device: torch.device | str = "cpu", seed: int = 0
) -> dict[str, Tensor]:
    """A random batch in the dataset's format (docs/ARCHITECTURE.md) with the config's image inputs."""
    generator = torch.Generator().manual_seed(seed)
    size = config.encoder.image_size_px
    shape = (batch_size, steps)
    batch = {
        "measurements": torch.randn(*shape, 6, generator=generator),
        "events": torch.rand(*shape, 5, generator=generator),
        "action": torch.rand(*shape, 3, generator=generator),
        "reward": torch.randn(*shape, generator=generator),
        "is_first": torch.zeros(shape, dtype=torch.bool),
        "is_last": torch.zeros(shape, dtype=torch.bool),
        "is_terminal": torch.zeros(shape, dtype=torch.bool),
    }
    batch["is_first"][:, 0] = True
    if "camera" in config.encoder.image_keys:
        batch["camera"] = torch.randint(
            0, 256, (*shape, size, size, 3), generator=generator, dtype=torch.uint8
        )
    if "bev" in config.encoder.image_keys:
        channels = len(BEV_CHANNELS)
        batch["bev"] = torch.randint(
            0, 2, (*shape, channels, size, size), generator=generator, dtype=torch.uint8
        )
    return {k: v.to(device) for k, v in batch.items()}


def autocast_context(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast for ``bf16-mixed``, fp16 for ``16-mixed``, nothing for ``32-true``."""
    if precision == "32-true":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision.startswith("bf16") else torch.float16
    return torch.autocast(device.type, dtype=dtype)


@dataclass
class BenchResult:
    """Benchmark figures (the last line of ``drivesim bench wm`` as JSON)."""

    preset: str
    device: str
    device_name: str
    precision: str
    threads: int
    params: int
    batch_size: int
    window_steps: int
    train_steps_per_s: float
    train_frames_per_s: float
    imagine_batch: int
    imagine_horizon: int
    imagine_steps_per_s: float
    compiled: bool

    def as_dict(self) -> dict:
        return asdict(self)


def device_name(device: torch.device) -> str:
    """The accelerator's name (``torch.cuda.get_device_name``) or the CPU's model, for benchmark records."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    return platform.processor() or platform.machine()


def _timed(fn, warmup: int, repeats: int, device: torch.device) -> Iterator[float]:  # noqa: ANN001
    for _ in range(warmup):
        fn()
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        yield time.perf_counter() - start


def run_benchmark(
    config: WorldModelConfig,
    preset: str,
    device: str = "cpu",
    precision: str = "bf16-mixed",
    train_steps: int = 5,
    imagine_batch: int = 1024,
    imagine_horizon: int = 15,
    imagine_repeats: int = 3,
    compile_model: bool = False,
    warmup: int = 2,
) -> BenchResult:
    """Measure training steps/s (forward, backward, optimiser) and imagination latent steps/s.

    Args:
        config: model config; its ``train.batch_size`` and ``train.window_steps`` set the training batch.
        preset: name reported in the result.
        device: torch device string.
        precision: ``bf16-mixed``, ``16-mixed`` or ``32-true``.
        train_steps: timed training steps (after ``warmup`` untimed ones).
        imagine_batch: start states per imagination rollout.
        imagine_horizon: imagined steps per rollout.
        imagine_repeats: timed rollouts.
        compile_model: torch.compile the RSSM step functions first (also when the config's ``train.compile``
            is set; ``train.compile_cnns`` adds the CNNs). Compile time is not timed (warm-up).
        warmup: untimed iterations before each measurement.
    """
    torch_device = torch.device(device)
    torch.manual_seed(0)
    model = WorldModel(config).to(torch_device)
    compile_model = compile_model or config.train.compile
    if compile_model:
        model.compile_modules(cnns=config.train.compile_cnns, device=torch_device)
    optimizer, _ = build_optimizer(model.parameters(), config.optim)
    batch_size, steps = config.train.batch_size, config.train.window_steps
    batch = synthetic_batch(config, batch_size, steps, torch_device)

    def train_step() -> None:
        with autocast_context(torch_device, precision):
            loss, _, _ = model.loss(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    model.train()
    train_times = list(_timed(train_step, warmup, train_steps, torch_device))
    train_rate = len(train_times) / sum(train_times)
    logger.info("train: %.3f steps/s", train_rate)

    model.eval()
    generator = torch.Generator(device=torch_device).manual_seed(0)
    start = model.initial(imagine_batch, torch_device)
    actions = torch.rand(imagine_batch, imagine_horizon, 3, device=torch_device)

    def imagine() -> None:
        with torch.no_grad(), autocast_context(torch_device, precision):
            model.imagine(start, actions, imagine_horizon, generator=generator)

    imagine_times = list(_timed(imagine, warmup, imagine_repeats, torch_device))
    imagine_rate = imagine_batch * imagine_horizon * len(imagine_times) / sum(imagine_times)
    return BenchResult(
        preset=preset,
        device=device,
        device_name=device_name(torch_device),
        precision=precision,
        threads=torch.get_num_threads(),
        params=sum(p.numel() for p in model.parameters()),
        batch_size=batch_size,
        window_steps=steps,
        train_steps_per_s=round(train_rate, 4),
        train_frames_per_s=round(train_rate * batch_size * steps, 1),
        imagine_batch=imagine_batch,
        imagine_horizon=imagine_horizon,
        imagine_steps_per_s=round(imagine_rate, 1),
        compiled=compile_model,
    )
