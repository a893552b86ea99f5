"""Policy commands: `drivesim train-bc`, `drivesim train-rl` and `drivesim bench dreamsim`.

Heavy imports (torch, Lightning) happen inside the commands so that `drivesim --help` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from drivesim.cli.options import OverridesArgument, console, fail, load_cli_config

POLICY_PRESETS = Path(__file__).resolve().parents[2] / "configs" / "policy"
WM_PRESETS = Path(__file__).resolve().parents[2] / "configs" / "world_model"


def _devices(devices: str) -> str | int:
    return int(devices) if devices.isdigit() else devices


def train_bc(
    wm: Path = typer.Option(..., "--wm", help="World-model checkpoint (drivesim train-wm)."),
    data: Path = typer.Option(..., "--data", "-d", help="Dataset folder with expert_waypoints and route."),
    out: Path = typer.Option(Path("runs/bc"), "--out", "-o", help="Run folder (checkpoints, logs)."),
    config: Path | None = typer.Option(
        POLICY_PRESETS / "bc.yaml", "--config", "-c", help="Policy config YAML."
    ),
    accelerator: str = typer.Option("auto", help="Lightning accelerator: cpu, gpu, auto."),
    devices: str = typer.Option("auto", help="Lightning devices."),
    max_minutes: float | None = typer.Option(None, help="Wall-clock budget in minutes."),
    finetune_wm: bool = typer.Option(False, "--finetune-wm", help="Train the world model jointly."),
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide the progress bar."),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT/checkpoints/last.ckpt."),
    overrides: list[str] | None = OverridesArgument,
) -> None:
    """Behaviour cloning: world-model features -> expert waypoints (L1), reports validation ADE/FDE."""
    from drivesim.policy.config import PolicyConfig

    extra = list(overrides or []) + (["bc.finetune_world_model=true"] if finetune_wm else [])
    policy_config = load_cli_config(PolicyConfig, config, extra)
    if not wm.is_file():
        fail(f"world-model checkpoint not found: {wm}")
    from drivesim.policy.bc import train_bc as run

    try:
        checkpoints = run(
            policy_config, wm, data, out, accelerator, _devices(devices), max_minutes, not no_progress, resume
        )
    except (FileNotFoundError, ValueError) as error:
        fail(str(error))
    console.print(f"checkpoints in {checkpoints}")


def train_rl(
    bc: Path = typer.Option(
        ..., "--bc", help="BC checkpoint (drivesim train-bc); holds the world model too."
    ),
    data: Path = typer.Option(
        ..., "--data", "-d", help="Dataset folder: replayed windows give the start states."
    ),
    wm: Path | None = typer.Option(None, "--wm", help="Use this world model instead of the BC checkpoint's."),
    out: Path = typer.Option(Path("runs/rl"), "--out", "-o", help="Run folder (checkpoints, logs)."),
    config: Path | None = typer.Option(
        POLICY_PRESETS / "rl.yaml", "--config", "-c", help="Policy config YAML."
    ),
    accelerator: str = typer.Option("auto", help="Lightning accelerator: cpu, gpu, auto."),
    devices: str = typer.Option("auto", help="Lightning devices."),
    max_minutes: float | None = typer.Option(None, help="Wall-clock budget in minutes."),
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide the progress bar."),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT/checkpoints/last.ckpt."),
    overrides: list[str] | None = OverridesArgument,
) -> None:
    """Train the RL delta head on the BC waypoints with actor-critic in imagination (DreamerV3)."""
    from drivesim.policy.config import PolicyConfig

    policy_config = load_cli_config(PolicyConfig, config, overrides)
    for path in (bc, wm):
        if path is not None and not path.is_file():
            fail(f"checkpoint not found: {path}")
    from drivesim.policy.rl import train_rl as run

    try:
        checkpoints = run(
            policy_config,
            bc,
            data,
            out,
            wm,
            accelerator,
            _devices(devices),
            max_minutes,
            not no_progress,
            resume,
        )
    except (FileNotFoundError, ValueError) as error:
        fail(str(error))
    console.print(f"checkpoints in {checkpoints}")


def bench_dreamsim(
    wm: Path | None = typer.Option(
        None, "--wm", help="World-model checkpoint (default: a random preset model)."
    ),
    preset: str = typer.Option("small", help="World-model preset when no --wm is given."),
    batch_sizes: str = typer.Option("1,64,1024", help="Comma-separated batch sizes."),
    steps: int = typer.Option(20, help="Timed steps per batch size."),
    device: str = typer.Option("cpu", help="Torch device."),
    precision: str = typer.Option("bf16-mixed", help="bf16-mixed or 32-true."),
    no_images: bool = typer.Option(False, "--no-images", help="Skip frame decoding (latent-only stepping)."),
    threads: int | None = typer.Option(None, help="torch CPU threads."),
) -> None:
    """Batched learned-simulator steps/s (env steps summed over the batch)."""
    import torch

    from drivesim.dream.bench import run_dreamsim_benchmark
    from drivesim.world_model.config import WorldModelConfig
    from drivesim.world_model.model import WorldModel, load_world_model

    if threads:
        torch.set_num_threads(threads)
    if wm is not None:
        if not wm.is_file():
            fail(f"world-model checkpoint not found: {wm}")
        model, _ = load_world_model(wm)
        name = str(wm)
    else:
        path = WM_PRESETS / f"{preset}.yaml"
        if not path.is_file():
            fail(f"unknown world-model preset {preset!r}", code=2)
        model = WorldModel(load_cli_config(WorldModelConfig, path, [])).eval()
        name = preset
    sizes = [int(part) for part in batch_sizes.split(",") if part]
    result = run_dreamsim_benchmark(model, sizes, steps, device, precision, not no_images)
    typer.echo(f"dreamsim {name} on {device} ({precision}, {result.threads} threads, images={not no_images})")
    for size, rate in result.steps_per_s.items():
        typer.echo(f"batch {size:5d}: {rate:10.1f} env steps/s ({rate / size:8.2f} steps/s per env)")
    typer.echo(
        json.dumps(
            {
                "benchmark": "dreamsim",
                "model": name,
                "device": device,
                "precision": precision,
                "decode_images": not no_images,
                "threads": result.threads,
                "steps_per_s": {str(k): v for k, v in result.steps_per_s.items()},
            }
        )
    )


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add the policy commands to the `drivesim` app and its `bench` sub-app."""
    app.command("train-bc")(train_bc)
    app.command("train-rl")(train_rl)
    bench_app.command("dreamsim")(bench_dreamsim)
