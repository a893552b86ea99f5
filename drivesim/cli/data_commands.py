"""Data stage commands: `drivesim collect`, `drivesim data info|verify`, `drivesim bench data`."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from drivesim.cli.options import ConfigOption, OverridesArgument, console, fail, load_cli_config

data_app = typer.Typer(help="Inspect and check episode datasets.", no_args_is_help=True, rich_markup_mode=None)
stdout = Console()


def _apply_flags(config: Any, flags: dict[str, Any]) -> None:
    """Set dotted config attributes from command-line flags that were given (None = not given)."""
    for dotted, value in flags.items():
        if value is None:
            continue
        *parents, name = dotted.split(".")
        node = config
        for part in parents:
            node = getattr(node, part)
        try:
            setattr(node, name, value)
        except ValidationError as error:
            fail(f"--{name}: {error.errors()[0]['msg']}", code=2)


def _parse_ports(text: str) -> list[int]:
    """'2000' or '2000,2010,2020' -> the ports; anything else exits with status 2."""
    parts = [part.strip() for part in text.split(",")]
    if not all(part.isdigit() for part in parts):
        fail(f"--port: expected a port or comma-separated ports like 2000,2010, got {text!r}", code=2)
    return [int(part) for part in parts]


def collect_command(
    overrides: list[str] | None = OverridesArgument,
    config: Path | None = ConfigOption,
    sim: str | None = typer.Option(None, "--sim", help="Simulator: embedded, carla or fake."),
    map_name: str | None = typer.Option(None, "--map", help="Embedded simulator map (sim.map.name)."),
    episodes: int | None = typer.Option(None, "--episodes", "-n", help="Number of episodes."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Dataset folder."),
    workers: int | None = typer.Option(None, "--workers", "-w", help="Parallel worker processes."),
    seed: int | None = typer.Option(None, "--seed", help="Run seed (episode seeds derive from it)."),
    host: str | None = typer.Option(None, "--host", help="CARLA server host (--sim carla)."),
    port: str | None = typer.Option(
        None, "--port", help="CARLA server RPC port, or several servers' (2000,2010,...: one worker each)."
    ),
    town: str | None = typer.Option(None, "--town", help="CARLA town (--sim carla)."),
    tm_port: int | None = typer.Option(
        None, "--tm-port", help="Traffic Manager port (--sim carla; default: the RPC port + 6000; server i: +i)."
    ),
    carla_root: Path | None = typer.Option(
        None,
        "--carla-root",
        help="CARLA folder: start CarlaUE4.sh on each port, restart it after a crash, redo the lost episode.",
    ),
) -> None:
    """Collect driving episodes into a dataset folder (resumable: re-running skips finished episodes)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from drivesim.data.collect import CollectError, check_backend, collect, worker_count
    from drivesim.data.config import CollectConfig

    run_config = load_cli_config(CollectConfig, config, overrides)
    flags = {
        "collect.sim": sim,
        "sim.map.name": map_name,
        "collect.episodes": episodes,
        "collect.out": out,
        "collect.workers": workers,
        "collect.seed": seed,
        "collect.carla.host": host,
        "collect.carla.town": town,
        "collect.carla.traffic_manager_port": tm_port,
        "collect.carla.carla_root": carla_root,
    }
    if port is not None:
        ports = _parse_ports(port)
        flags["collect.carla.port"], flags["collect.carla.ports"] = ports[0], ports if len(ports) > 1 else []
    _apply_flags(run_config, flags)
    try:
        worker_count(run_config)
        check_backend(run_config)
    except CollectError as error:
        fail(str(error))
    counts = {"frames": 0, "collision": 0, "off_road": 0}
    start = time.perf_counter()
    columns = (
        TextColumn("[bold]collect"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[stats]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("collect", total=run_config.collect.episodes, stats="")

        def on_progress(steps: int, episode: Any) -> None:
            counts["frames"] += steps
            if episode is not None:
                counts["collision"] += episode.collision
                counts["off_road"] += episode.off_road
            rate = counts["frames"] / max(time.perf_counter() - start, 1e-6)
            stats = (
                f"{counts['frames']} frames  {rate:.0f} frames/s  "
                f"collision {counts['collision']}  off-road {counts['off_road']}"
            )
            bar.update(task, advance=1 if episode is not None else 0, stats=stats)

        try:
            summary = collect(run_config, progress=on_progress)
        except (CollectError, FileExistsError) as error:
            fail(str(error))
            return
        bar.update(task, completed=summary.skipped_existing + len(summary.collected))
    result = summary.to_dict()
    console.print(
        f"{result['collected']} episodes ({result['frames']} frames) collected, "
        f"{result['skipped_existing']} already there -> {result['out']}"
    )
    typer.echo(json.dumps(result))
    if summary.interrupted:
        console.print("[yellow]interrupted[/yellow]: re-run the same command to resume")
        raise typer.Exit(130)


def _info_table(info: dict[str, Any]) -> Table:
    table = Table(title=f"dataset {info['data_dir']}", show_header=False)
    table.add_column("key", style="bold")
    table.add_column("value")
    rows = [
        ("episodes", f"{info['episodes']}"),
        ("frames", f"{info['frames']} (mean length {info['mean_length']:.1f})"),
        ("hours driven", f"{info['hours']:.3f}"),
        ("km driven", f"{info['km']:.2f}"),
    ]
    for name, rates in info["events"].items():
        rows.append(
            (f"{name}", f"{rates['episode_share']:.1%} of episodes, {rates['step_share']:.2%} of steps")
        )
    rows.append(("collision or off-road", f"{info['collision_or_off_road_episode_share']:.1%} of episodes"))
    for key in ("terminations", "drivers", "maps", "simulators"):
        rows.append((key, ", ".join(f"{name}: {count}" for name, count in info[key].items()) or "-"))
    rows.append(("disk size", f"{info['disk_bytes'] / 2**20:.1f} MiB"))
    rows.append(("bytes/frame", f"{info['bytes_per_frame']:.0f}"))
    largest = sorted(info["field_bytes_per_frame"].items(), key=lambda item: -item[1])[:3]
    rows.append(("largest fields", ", ".join(f"{name} {size:.0f} B/frame" for name, size in largest) or "-"))
    if info["unreadable"]:
        rows.append(("[red]unreadable[/red]", ", ".join(info["unreadable"])))
    for key, value in rows:
        table.add_row(key, value)
    return table


@data_app.command("info")
def info_command(
    data_dir: Path = typer.Argument(..., help="Dataset folder."),
    as_json: bool = typer.Option(False, "--json", help="Print the statistics as one JSON object."),
) -> None:
    """Episodes, frames, hours and km driven, event rates, maps and disk size of a dataset."""
    from drivesim.data.info import dataset_info

    try:
        info = dataset_info(data_dir)
    except FileNotFoundError as error:
        fail(str(error))
        return
    if as_json:
        typer.echo(json.dumps(info))
    else:
        stdout.print(_info_table(info))


@data_app.command("verify")
def verify_command(
    data_dir: Path = typer.Argument(..., help="Dataset folder."),
    quarantine: bool = typer.Option(False, "--quarantine", help="Move bad episodes into DATA_DIR/quarantine/."),
    checksums: bool = typer.Option(True, "--checksums/--no-checksums", help="Hash every file (slower)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as one JSON object."),
) -> None:
    """Find truncated, corrupt or schema-mismatched episodes (exit status 1 if any)."""
    from drivesim.data.verify import verify_dataset

    try:
        report = verify_dataset(data_dir, checksums=checksums, quarantine=quarantine)
    except FileNotFoundError as error:
        fail(str(error))
        return
    if as_json:
        typer.echo(json.dumps(report.to_dict()))
    else:
        for name, problems in report.bad.items():
            moved = " (quarantined)" if name in report.quarantined else ""
            stdout.print(f"[red]BAD[/red] {name}{moved}")
            for problem in problems:
                stdout.print(f"    {problem}", soft_wrap=True, markup=False, highlight=False)
        if report.stale_temporaries:
            stdout.print(f"stale temporaries (dead writers): {', '.join(report.stale_temporaries)}")
        stdout.print(f"{report.checked} episodes checked: {len(report.ok)} ok, {len(report.bad)} bad")
    if report.bad:
        raise typer.Exit(1)


def bench_data_command(
    data_dir: Path | None = typer.Argument(None, help="Dataset folder (omit for a synthetic dataset)."),
    synthetic: bool = typer.Option(False, "--synthetic", help="Benchmark a synthetic 64x64 camera + BEV dataset."),
    window: int = typer.Option(64, help="Steps per window."),
    batch_size: int = typer.Option(16, help="Windows per batch."),
    workers: int = typer.Option(2, help="DataLoader worker processes."),
    batches: int = typer.Option(100, help="Batches to time."),
    synthetic_episodes: int = typer.Option(8, help="Episodes of the synthetic dataset."),
    synthetic_length: int = typer.Option(512, help="Steps per synthetic episode."),
    image_size: int = typer.Option(64, help="Camera and BEV size of the synthetic dataset [px]."),
) -> None:
    """Window-loading throughput of the training DataLoader; the last line is JSON with `frames_per_s`."""
    from drivesim.data.bench import run_data_bench

    result = run_data_bench(
        None if synthetic else data_dir,
        window,
        batch_size,
        workers,
        batches,
        synthetic_episodes,
        synthetic_length,
        image_size,
    )
    typer.echo(
        f"data loading: {result['frames_per_s']:.0f} frames/s ({result['windows_per_s']:.1f} windows/s of "
        f"{window} steps, batch {batch_size}, {workers} workers, {result['batches']} batches)"
    )
    typer.echo(json.dumps({"bench": "data", **result}))


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add the data stage's commands to the `drivesim` app and its benchmarks to `drivesim bench`."""
    app.command("collect")(collect_command)
    app.add_typer(data_app, name="data")
    bench_app.command("data")(bench_data_command)
