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
    driver: str = typer.Option("clean", help="Driver: clean (expert), noisy or careless (ignores other road users, lights and signs)."),
    seed: int = typer.Option(0, help="Seed of the first episode (episode i uses seed + i)."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the per-episode rows and the summary to this JSON file."),
) -> None:
    """Drive whole episodes on the embedded simulator and print what happened in each: collisions by kind,
    red lights and stop signs run, seconds in opposite-direction lanes, how it ended; then a summary (the last
    line is its JSON)."""
    from drivesim.sim.config import SimConfig
    from drivesim.sim.drive import drive_episode, stats_row, summarize
    from drivesim.sim.env import DRIVER_MODES, EmbeddedSimEnv
    from drivesim.sim.maps import MapError
    from drivesim.utils import atomic_write_json

    if driver not in DRIVER_MODES:
        fail(f"unknown driver {driver!r}: use one of {', '.join(DRIVER_MODES)}")
    sim_config = load_cli_config(SimConfig, config, overrides)
    if map_name is not None:
        sim_config.map.name = map_name
    try:
        env = EmbeddedSimEnv(sim_config)
    except MapError as error:
        fail(str(error))
    traffic = f"{sim_config.traffic.npcs} NPCs, {sim_config.walkers.count} walkers"
    table = Table(title=f"{driver} driver on {env.network.name} ({traffic})")
    columns = ("episode", "seed", "sim time [s]", "distance [m]", "route [%]", "vehicle", "walker", "static",
               "red lights", "stops run", "wrong lane [s]", "end")
    for column in columns:
        table.add_column(column, justify="right")
    rows = []
    for index in range(episodes):
        stats = drive_episode(env, seed + index, driver)
        rows.append(stats)
        table.add_row(
            str(index), str(stats.seed), f"{stats.time_s:.1f}", f"{stats.distance_m:.0f}", f"{100 * stats.route_completion:.1f}",
            str(stats.collisions_vehicle), str(stats.collisions_walker), str(stats.collisions_static),
            str(stats.red_lights), str(stats.stop_signs), f"{stats.wrong_lane_s:.1f}", str(stats.termination),
        )
    env.close()
    console.print(table)
    summary = {"map": env.network.name, "driver": driver, **summarize(rows)}
    console.print(
        f"{summary['episodes']} episodes, {summary['km']:.1f} km: route done {100 * summary['route_done_share']:.0f} %, "
        f"a collision or red-light run in {100 * summary['dangerous_share']:.0f} % "
        f"(collision {100 * summary['collision_share']:.0f} %, red light {100 * summary['red_light_share']:.0f} %), "
        f"{summary['collisions']} collisions = {summary['collisions_per_km']:.2f}/km, {summary['red_lights']} red lights run"
    )
    if json_out is not None:
        atomic_write_json(json_out, {"summary": summary, "episodes": [stats_row(r) for r in rows]})
    print(json.dumps(summary))


def bench_sim_command(
    map_name: str = typer.Option("town", "--map", help="Map: straight, junction, town or a path to an .xodr file."),
    npcs: int = typer.Option(20, min=0, help="NPC vehicles."),
    walkers: int = typer.Option(None, min=0, help="Walkers (default: the config's)."),
    parked: int = typer.Option(None, min=0, help="Parked cars (default: the config's)."),
    steps: int = typer.Option(2000, min=1, help="Simulation steps to time."),
    sensors: str = typer.Option("", help="Comma-separated sensors to render: bev, camera (empty = none)."),
    size: int = typer.Option(64, help="Sensor image size [px]."),
    seed: int = typer.Option(0),
) -> None:
    """Simulation steps per second (sim + expert [+ sensors]); last line is JSON with `steps_per_s`."""
    from drivesim.sim.bench import bench_sim

    names = [name.strip() for name in sensors.split(",") if name.strip()]
    try:
        result = bench_sim(map_name, npcs, steps, names, size, seed, walkers, parked)
    except ValueError as error:
        fail(str(error))
    console.print(
        f"{result['map']}: {result['steps']} steps, {result['npcs']} NPCs, {result['walkers']} walkers, "
        f"{result['parked']} parked cars, {result['lights']} lights, sensors={names or 'none'}: "
        f"{result['steps_per_s']:.0f} steps/s ({result['ms_per_step']:.3f} ms/step, one process)"
    )
    print(json.dumps(result))


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    app.command("drive")(drive)
    bench_app.command("sim")(bench_sim_command)
