"""World-model commands: `drivesim train-wm`, `drivesim eval-wm` and `drivesim bench wm`.

Heavy imports (torch, Lightning) happen inside the commands so that `drivesim --help` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from drivesim.cli.options import ConfigOption, OverridesArgument, console, fail, load_cli_config

PRESET_DIR = Path(__file__).resolve().parents[2] / "configs" / "world_model"


def _preset_path(preset: str) -> Path:
    path = Path(preset)
    if path.suffix in (".yaml", ".yml"):
        return path
    path = PRESET_DIR / f"{preset}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))
        fail(f"unknown world-model preset {preset!r}; known: {known}", code=2)
    return path


def train_wm(
    data: Path = typer.Option(..., "--data", "-d", help="Dataset folder written by `drivesim collect`."),
    out: Path = typer.Option(Path("runs/world_model"), "--out", "-o", help="Run folder (checkpoints, logs)."),
    config: Path | None = ConfigOption,
    accelerator: str = typer.Option("auto", help="Lightning accelerator: cpu, cuda (= gpu), auto."),
    devices: str = typer.Option("auto", help="Devices per node (several use DDP)."),
    num_nodes: int = typer.Option(1, help="Nodes for multi-node DDP."),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT/checkpoints/last.ckpt."),
    max_minutes: float | None = typer.Option(None, help="Wall-clock budget [min]."),
    compile_model: bool = typer.Option(
        False, "--compile", help="torch.compile the RSSM step functions (CUDA graphs on a GPU); see train.compile."
    ),
    precision: str | None = typer.Option(None, help="Override train.precision (bf16-mixed, 32-true)."),
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide the progress bar."),
    overrides: list[str] | None = OverridesArgument,
) -> None:
    """Train the DreamerV3-style world model on a dataset with Lightning."""
    from drivesim.world_model.config import WorldModelConfig

    extra = list(overrides or [])
    if compile_model:
        extra.append("train.compile=true")
    if precision:
        extra.append(f"train.precision={precision}")
    wm_config = load_cli_config(WorldModelConfig, config, extra)
    from drivesim.world_model.lightning_module import NonFiniteLossError
    from drivesim.world_model.train import DatasetMismatchError, train_world_model

    try:
        checkpoints = train_world_model(
            wm_config,
            data,
            out,
            accelerator=accelerator,
            devices=int(devices) if devices.isdigit() else devices,
            num_nodes=num_nodes,
            resume=resume,
            max_minutes=max_minutes,
            progress_bar=not no_progress,
        )
    except (NonFiniteLossError, DatasetMismatchError, FileNotFoundError) as error:
        fail(str(error))
    console.print(f"checkpoints in {checkpoints}")


def eval_wm(
    ckpt: Path = typer.Option(..., "--ckpt", help="World-model checkpoint (.ckpt)."),
    data: Path = typer.Option(..., "--data", "-d", help="Dataset folder; its held-out episodes are used."),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Report folder (default: next to the checkpoint)."
    ),
    context: int = typer.Option(8, min=2, help="Observed steps before the open-loop rollout."),
    horizon: int = typer.Option(80, min=1, help="Imagined steps (80 = 4 s at 20 Hz; reported at 0.5, 1, 2, 4 s)."),
    batch_size: int = typer.Option(16, help="Windows per batch."),
    max_batches: int | None = typer.Option(None, help="Evaluate at most this many batches."),
    device: str = typer.Option("cpu", help="Torch device."),
    precision: str = typer.Option("bf16-mixed", help="bf16-mixed or 32-true."),
    all_episodes: bool = typer.Option(
        False, "--all-episodes", help="Use every episode, not only held-out ones."
    ),
    stride: int = typer.Option(
        10,
        min=1,
        help="Steps between anchors (ends of the context); anchors reach each episode's last second, where "
        "collisions end it, and rows past the end are left out.",
    ),
    events_only: bool = typer.Option(
        False,
        "--events-only",
        help="Score events and progress only: no frames decoded (for dense --stride 1-2 event evaluations).",
    ),
) -> None:
    """Open-loop evaluation against copy-last, constant-position and constant-velocity baselines.

    Per horizon (0.5 / 1 / 2 / 4 s): posterior reconstruction and prior rollouts (latent mode and samples),
    camera MSE / PSNR / SSIM and BEV per-channel F1 / IoU; events within 1 s: AUROC / AP / calibration
    against a speed-and-distance score (no AUROC from fewer than 20 positive windows).
    """
    from drivesim.world_model.eval_report import summary_lines
    from drivesim.world_model.evaluate import bev_resolution, evaluate_open_loop, heldout_loader
    from drivesim.world_model.model import load_world_model
    from drivesim.world_model.train import DatasetMismatchError, check_dataset, model_fields

    if not ckpt.is_file():
        fail(f"checkpoint not found: {ckpt}")
    model, wm_config = load_world_model(ckpt)
    try:
        check_dataset(wm_config, data)
        loader = heldout_loader(
            data,
            model_fields(wm_config),
            context + horizon,
            batch_size,
            wm_config.train.val_fraction,
            wm_config.train.seed,
            all_episodes,
            stride,
            context=context,
        )
    except (FileNotFoundError, DatasetMismatchError) as error:
        fail(str(error))
    out = out or ckpt.parent.parent / "eval"
    report = evaluate_open_loop(
        model, loader, context, horizon, out, max_batches, device, precision, bev_resolution(data), not events_only
    )
    for line in summary_lines(report):
        console.print(line, markup=False, highlight=False)
    console.print(f"report: {out / 'report.json'}")


def bench_wm(
    preset: str = typer.Option("small", help="Preset name in configs/world_model or a YAML path."),
    device: str = typer.Option("cpu", help="Torch device: cpu or cuda (benchmarks/gpu.py runs the GPU figures)."),
    precision: str = typer.Option("bf16-mixed", help="bf16-mixed, 16-mixed or 32-true."),
    threads: int | None = typer.Option(None, help="torch CPU threads (default: torch's choice)."),
    train_steps: int = typer.Option(5, help="Timed training steps."),
    imagine_batch: int = typer.Option(1024, help="Start states per imagination rollout."),
    imagine_horizon: int = typer.Option(15, help="Imagined steps per rollout."),
    compile_model: bool = typer.Option(
        False,
        "--compile",
        help="torch.compile the RSSM step functions first (CUDA graphs on cuda; compile time not timed).",
    ),
    overrides: list[str] | None = OverridesArgument,
) -> None:
    """Training steps/s, frames/s and imagination latent steps/s on a synthetic batch."""
    import torch

    from drivesim.world_model.bench import run_benchmark
    from drivesim.world_model.config import WorldModelConfig

    if threads:
        torch.set_num_threads(threads)
    wm_config = load_cli_config(WorldModelConfig, _preset_path(preset), overrides)
    result = run_benchmark(
        wm_config,
        preset,
        device=device,
        precision=precision,
        train_steps=train_steps,
        imagine_batch=imagine_batch,
        imagine_horizon=imagine_horizon,
        compile_model=compile_model,
    )
    typer.echo(
        f"preset {preset}: {result.params / 1e6:.2f}M parameters on {device} ({precision}, {result.threads} threads)"
    )
    typer.echo(
        f"train: {result.train_steps_per_s:.3f} steps/s, {result.train_frames_per_s:.0f} frames/s "
        f"(batch {result.batch_size} x {result.window_steps})"
    )
    typer.echo(f"imagine: {result.imagine_steps_per_s:.0f} latent steps/s (batch {result.imagine_batch})")
    typer.echo(json.dumps(result.as_dict()))


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add the world-model commands to the `drivesim` app and its `bench` sub-app."""
    app.command("train-wm")(train_wm)
    app.command("eval-wm")(eval_wm)
    bench_app.command("wm")(bench_wm)
