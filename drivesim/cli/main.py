"""`drivesim` command: one sub-command per pipeline stage, plus `drivesim bench ...`."""

from __future__ import annotations

import importlib
import logging

import typer

app = typer.Typer(
    name="drivesim",
    help=(
        "drivesim: a driving-focused learned simulator built on CARLA.\n\n"
        "Collect driving data on the embedded simulator (no CARLA server needed) or a real CARLA server, "
        "train a DreamerV3-style world model, fit a waypoint policy by behaviour cloning and improve it "
        "in imagination, evaluate closed-loop with leaderboard metrics, and replay episodes and dreams."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    rich_markup_mode=None,  # help texts carry units in brackets ("[m]"), not rich markup
)
bench_app = typer.Typer(
    help="Benchmarks of the hot paths; each prints throughput and ends with one JSON line.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(bench_app, name="bench")

# Each stage module exposes register(app, bench_app). Listed in pipeline order, which is also --help order.
COMMAND_MODULES = (
    "drivesim.cli.sim_commands",
    "drivesim.cli.data_commands",
    "drivesim.cli.world_model_commands",
    "drivesim.cli.policy_commands",
    "drivesim.cli.eval_commands",
    "drivesim.cli.viewer_commands",
    "drivesim.cli.demo_commands",
)


@app.callback()
def _main(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug messages.")) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )


def _register_all() -> None:
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as error:
            if error.name == name:
                continue  # stage not built yet
            raise
        module.register(app, bench_app)


_register_all()

if __name__ == "__main__":
    app()
