"""CLI of the embedded simulator: `drivesim drive` (expert episodes) and `drivesim bench sim`."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from drivesim.cli.options import ConfigOption, OverridesArgument, fail, load_cli_config

console = Console()


def drive(
    config: Path | None = ConfigOption,
    overrides: list[str] | None = OverridesArgument,
    map_name: str | None = typer.Option(None, "--map", help="Map: straight, junction, town or a path to an .xodr file."),
    episodes: int = typer.Option(3, min=1, help="Number of episodes."),
    driver: str = typer.Option("clean", help="Driver: clean (expert), noisy or careless."),
    seed: int = typer.Option(0, help="Seed of the first episode (episode i uses seed + i)."),
) -> None:
    """Drive the privileged expert on the embedded simulator and print a summary per episode."""
    from drivesim.sim.config import SimConfig
    from drivesim.sim.env import EmbeddedSimEnv
    from drivesim.sim.maps import MapError

    sim_config = load_cli_config(SimConfig, config, overrides)
    if map_name is not None:
        sim_config.map.name = map_name
    try:
        env = EmbeddedSimEnv(sim_config)
    except MapError as error:
        fail(str(error))
    table = Table(title=f"expert on {env.network.name} ({sim_config.traffic.npcs} NPCs, driver={driver})")
    for column in ("episode", "steps", "sim time [s]", "distance [m]", "route [%]", "collisions", "max off-road", "end"):
        table.add_column(column, justify="right")
    for index in range(episodes):
        env.reset(seed=seed + index, options={"driver": driver})
        collisions, off_road = 0, 0.0
        while True:
            obs, _, terminated, truncated, info = env.step(env.driver_action())
            collisions += int(obs["events"][0] > 0)
            off_road = max(off_road, float(obs["events"][1]))
            if terminated or truncated:
                break
        table.add_row(
            str(index), str(env.world.step_count), f"{info['time_s']:.1f}", f"{info['distance_m']:.0f}",
            f"{100 * obs['events'][4]:.1f}", str(collisions), f"{off_road:.2f}", str(info["termination"]),
        )
    console.print(table)


def bench_sim_command(
    map_name: str = typer.Option("town", "--map", help="Map: straight, junction, town or a path to an .xodr file."),
    npcs: int = typer.Option(20, min=0, help="NPC vehicles."),
    steps: int = typer.Option(2000, min=1, help="Simulation steps to time."),
    sensors: str = typer.Option("", help="Comma-separated sensors to render: bev, camera (empty = none)."),
    size: int = typer.Option(64, help="Sensor image size [px]."),
    seed: int = typer.Option(0),
) -> None:
    """Simulation steps per second (sim + expert [+ sensors]); last line is JSON with `steps_per_s`."""
    from drivesim.sim.bench import bench_sim

    names = [name.strip() for name in sensors.split(",") if name.strip()]
    try:
        result = bench_sim(map_name, npcs, steps, names, size, seed)
    except ValueError as error:
        fail(str(error))
    console.print(
        f"{result['map']}: {result['steps']} steps, {result['npcs']} NPCs, sensors={names or 'none'}: "
        f"{result['steps_per_s']:.0f} steps/s ({result['ms_per_step']:.3f} ms/step, one process)"
    )
    print(json.dumps(result))


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    app.command("drive")(drive)
    bench_app.command("sim")(bench_sim_command)
