"""`drivesim eval ...`: closed-loop evaluation on route suites, comparing runs, generating suites."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from drivesim.cli.options import ConfigOption, OverridesArgument, console, fail, load_cli_config

if TYPE_CHECKING:
    from drivesim.eval.routes import RouteSuite

EVAL_HELP = (
    "Closed-loop evaluation with CARLA Leaderboard metrics (DS = RC x IP; 2.0 rules by default, "
    "scoring=leaderboard-1.0 or scoring=bench2drive to change), success rate and per-scenario-type breakdowns.\n\n"
    "drivesim eval run --agent expert --routes configs/routes/test.yaml --out results/expert\n\n"
    "The shorthand `drivesim eval --agent expert --out results/expert` runs too (no key=value overrides)."
)
AgentOption = typer.Option(
    None, "--agent", "-a", help="Agent: expert, careless, noisy, random, constant[:T,S,B], policy:PATH, ..."
)
RoutesOption = typer.Option(Path("configs/routes/test.yaml"), "--routes", "-r", help="Route suite YAML.")
SimOption = typer.Option(
    "embedded", "--sim", help="Simulator: embedded, carla, dream (the learned simulator; needs --wm), fake (tests) or module:Class."
)
WorldModelOption = typer.Option(None, "--wm", help="World-model checkpoint of --sim dream (drivesim train-wm).")
OutOption = typer.Option(None, "--out", "-o", help="Output folder (resumes when it holds this run's results).")
WorkersOption = typer.Option(1, "--workers", "-w", min=1, help="Parallel worker processes.")
RecordOption = typer.Option(False, "--record", help="Also write each route as a dataset episode.")
OverwriteOption = typer.Option(False, "--overwrite", help="Discard earlier results in --out instead of resuming.")
ProgressOption = typer.Option(True, "--progress/--no-progress", help="Show a progress bar.")
LimitOption = typer.Option(None, "--limit", min=1, help="Evaluate only the suite's first N routes (quick runs).")


def _load_suite(routes: Path, limit: int | None) -> RouteSuite:
    """The route suite of ``routes`` (its first ``limit`` routes); a bad file exits naming it (code 2)."""
    from drivesim.config import ConfigError
    from drivesim.eval.routes import load_suite

    try:
        suite = load_suite(routes)
    except ConfigError as error:
        fail(str(error), code=2)
    if limit is not None and limit < len(suite.routes):
        suite = suite.model_copy(update={"routes": suite.routes[:limit]})
    return suite


def _run(
    agent: str | None,
    routes: Path,
    sim: str,
    out: Path | None,
    workers: int,
    record: bool,
    overwrite: bool,
    progress: bool,
    config_path: Path | None,
    overrides: list[str] | None,
    limit: int | None = None,
    world_model: Path | None = None,
) -> None:
    from drivesim.eval.config import EvalConfig
    from drivesim.eval.runner import RunMismatchError, run_suite

    if agent is None or out is None:
        fail("--agent and --out are required", code=2)
    config = load_cli_config(EvalConfig, config_path, overrides)
    suite = _load_suite(routes, limit)
    try:
        results = run_suite(suite, agent, out, config, sim, workers, record, overwrite, progress, str(routes), world_model)
    except (RunMismatchError, RuntimeError, ValueError, FileNotFoundError) as error:
        fail(str(error))
    _print_summary(results)
    console.print(f"results in {out}/results.json, results.md, ds_per_route.png, infractions.png, ds_per_type.png")


def _print_summary(results: dict) -> None:
    from drivesim.eval.report import SUMMARY_ROWS, format_value

    aggregate = results["aggregate"]
    table = Table(title=f"{results['agent']} on {results['suite']['name']} ({aggregate['num_routes']} routes)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, label, _ in SUMMARY_ROWS:
        table.add_row(escape(label), format_value(key, aggregate[key]))
    output = Console()
    output.print(table)
    groups = results.get("by_scenario_type") or {}
    if len(groups) > 1 or set(groups) - {"lane_following"}:
        per_type = Table(title="per scenario type")
        per_type.add_column("type", overflow="fold")
        for column in ("routes", "DS", "success", "RC [%]"):
            per_type.add_column(column, justify="right", no_wrap=True)
        for name, group in groups.items():
            per_type.add_row(escape(name), str(group["num_routes"]), f"{group['driving_score']:.1f}",
                             f"{group['success_rate']:.2f}", f"{group['route_completion']:.1f}")
        output.print(per_type)


def eval_callback(
    ctx: typer.Context,
    agent: str | None = AgentOption,
    routes: Path = RoutesOption,
    sim: str = SimOption,
    out: Path | None = OutOption,
    workers: int = WorkersOption,
    record: bool = RecordOption,
    overwrite: bool = OverwriteOption,
    progress: bool = ProgressOption,
    config: Path | None = ConfigOption,
) -> None:
    """Closed-loop evaluation; without a sub-command, `--agent ... --out ...` runs a suite."""
    if ctx.invoked_subcommand is not None:
        return
    if agent is None:
        typer.echo(ctx.get_help())
        raise typer.Exit(0)
    _run(agent, routes, sim, out, workers, record, overwrite, progress, config, None)


def run_command(
    agent: str | None = AgentOption,
    routes: Path = RoutesOption,
    sim: str = SimOption,
    out: Path | None = OutOption,
    workers: int = WorkersOption,
    record: bool = RecordOption,
    overwrite: bool = OverwriteOption,
    progress: bool = ProgressOption,
    config: Path | None = ConfigOption,
    limit: int | None = LimitOption,
    world_model: Path | None = WorldModelOption,
    overrides: list[str] | None = OverridesArgument,
) -> None:
    """Run an agent on every route of a suite; writes per-route results, results.json/.md and plots.

    With --sim dream --wm CKPT the learned simulator drives the routes: each starts in the embedded simulator
    (reset + dream.context_steps expert steps), then the world model predicts the rest (drivesim.eval.dream_env)."""
    _run(agent, routes, sim, out, workers, record, overwrite, progress, config, overrides, limit, world_model)


def compare_command(
    first: Path = typer.Argument(..., help="Results folder (or results.json) of run A."),
    second: Path = typer.Argument(..., help="Results folder (or results.json) of run B."),
    samples: int = typer.Option(10000, "--samples", min=100, help="Bootstrap resamples."),
    confidence: float = typer.Option(0.95, "--confidence", min=0.5, max=0.999, help="Interval coverage."),
    seed: int = typer.Option(0, "--seed", help="Bootstrap seed."),
) -> None:
    """Side-by-side aggregate metrics of two runs, paired by route id, with a bootstrap CI of the DS change."""
    from drivesim.eval.report import compare_results, format_value, load_results

    try:
        runs = [load_results(first), load_results(second)]
    except FileNotFoundError as error:
        fail(str(error))
    comparison = compare_results(*runs, samples=samples, confidence=confidence, seed=seed)
    if not comparison["shared_routes"]:
        fail("the two runs share no route ids")
    name_a, name_b = f"A: {comparison['names'][0]}", f"B: {comparison['names'][1]}"
    table = Table(title=f"{first} vs {second} ({comparison['shared_routes']} shared routes)")
    for column in ("metric", name_a, name_b, "B - A"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for key, label, value_a, value_b, difference in comparison["rows"]:
        table.add_row(escape(label), format_value(key, value_a), format_value(key, value_b), f"{difference:+.3f}")
    output = Console()
    output.print(table)
    ds = comparison["ds_difference"]
    output.print(
        f"mean DS difference B - A: {ds['mean']:+.2f}, {100 * ds['confidence']:.0f}% bootstrap CI "
        f"[{ds['low']:+.2f}, {ds['high']:+.2f}] (paired by route, {ds['samples']} resamples, seed {seed})"
    )
    if comparison["by_type"]:
        per_type = Table(title="per scenario type (shared routes; success A / B)")
        per_type.add_column("type", overflow="fold")
        for column in ("n", "DS A", "DS B", "B - A", "CI", "success"):
            per_type.add_column(column, justify="right", no_wrap=True)
        for name, routes, ds_a, ds_b, mean, low, high, success_a, success_b in comparison["by_type"]:
            per_type.add_row(escape(name), str(routes), f"{ds_a:.1f}", f"{ds_b:.1f}", f"{mean:+.1f}",
                             f"[{low:+.1f}, {high:+.1f}]", f"{success_a:.2f} / {success_b:.2f}")
        output.print(per_type)
    for label, ids in (("only in A", comparison["only_first"]), ("only in B", comparison["only_second"])):
        if ids:
            output.print(f"{label} (ignored): {', '.join(ids)}")


def _panel(agents: list[str] | None, defaults: bool) -> list[tuple[str, str]]:
    """(name, agent spec) pairs: the reference panel (when ``defaults``) plus ``NAME=AGENT`` entries."""
    from drivesim.eval.proxy import DEFAULT_PANEL

    panel = list(DEFAULT_PANEL) if defaults else []
    for text in agents or []:
        name, sep, agent = text.partition("=")
        if not sep or not name or not agent:
            fail(f"--agent takes NAME=AGENT (e.g. bc=policy:runs/bc/checkpoints/last.ckpt), got {text!r}", code=2)
        panel.append((name, agent))
    names = [name for name, _ in panel]
    if len(set(names)) != len(names):
        fail(f"policy names must be unique, got {names}", code=2)
    if len(panel) < 3:
        fail(f"a ranking needs at least 3 policies, got {len(panel)}", code=2)
    return panel


def proxy_command(
    wm: Path = typer.Option(..., "--wm", help="World-model checkpoint: the learned simulator under test."),
    routes: Path = typer.Option(Path("configs/routes/scenarios_dev.yaml"), "--routes", "-r", help="Route suite YAML."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (embedded/<name>, dream/<name>, proxy.json/.png)."),
    agents: list[str] | None = typer.Option(
        None, "--agent", "-a", help="Extra policy NAME=AGENT (repeatable), e.g. bc=policy:runs/bc/checkpoints/last.ckpt."
    ),
    reference: bool = typer.Option(
        True, "--reference/--no-reference", help="Include the reference panel: expert, careless, noisy, constant, random."
    ),
    limit: int | None = LimitOption,
    workers: int = WorkersOption,
    samples: int = typer.Option(2000, "--samples", min=100, help="Bootstrap resamples of the routes."),
    seed: int = typer.Option(0, "--seed", help="Bootstrap seed."),
    label: str = typer.Option("", "--label", help="What the world model is (printed with the table and plot)."),
    progress: bool = ProgressOption,
    config: Path | None = ConfigOption,
    overrides: list[str] | None = OverridesArgument,
) -> None:
    """Rank a panel of policies in the embedded simulator and in the dream: Spearman / Kendall of DS and of
    collisions per km with bootstrap CIs over routes, per-policy rows, proxy.json and a scatter plot proxy.png."""
    from drivesim.eval.config import EvalConfig
    from drivesim.eval.proxy import run_proxy
    from drivesim.eval.runner import RunMismatchError

    panel = _panel(agents, reference)
    eval_config = load_cli_config(EvalConfig, config, overrides)
    if not wm.is_file():
        fail(f"world-model checkpoint not found: {wm}")
    suite = _load_suite(routes, limit)
    try:
        report = run_proxy(panel, suite, wm, out, eval_config, workers, samples, seed, str(routes), progress, label)
    except (RunMismatchError, RuntimeError, ValueError, FileNotFoundError) as error:
        fail(str(error))
    Console().print(proxy_table(report))
    console.print(f"proxy report in {out}/proxy.json, proxy.png; runs in {out}/embedded, {out}/dream")


def proxy_table(report: dict) -> Table:
    """The ranking table (embedded vs dream per policy) with the correlations in its caption."""
    table = Table(title=escape(report["title"]))
    for column in ("policy", "DS embedded", "DS dream", "coll/km embedded", "coll/km dream"):
        table.add_column(column, justify="left" if column == "policy" else "right")
    for name, row in report["policies"].items():
        table.add_row(escape(name), f"{row['embedded_driving_score']:.1f}", f"{row['dream_driving_score']:.1f}",
                      f"{row['embedded_collisions_per_km']:.2f}", f"{row['dream_collisions_per_km']:.2f}")
    from drivesim.eval.proxy import format_number

    lines = []
    for metric, label in (("driving_score", "DS"), ("collisions_per_km", "collisions/km")):
        entry = {key: format_number(value) for key, value in report[metric].items() if not key.endswith("_samples")}
        confidence = 100 * report["bootstrap"]["confidence"]
        lines.append(
            f"{label}: Spearman {entry['spearman']} [{entry['spearman_low']}, {entry['spearman_high']}], "
            f"Kendall {entry['kendall']} [{entry['kendall_low']}, {entry['kendall_high']}] "
            f"({confidence:.0f}% bootstrap over {report['num_routes']} routes; n/a: a constant ranking)"
        )
    table.caption = "\n".join(lines)
    return table


def make_suite_command(
    out: Path = typer.Option(..., "--out", "-o", help="Suite YAML to write."),
    seed: int = typer.Option(0, "--seed", help="Generator seed."),
    maps: str = typer.Option("town:0", "--maps", help="Comma-separated maps name[:seed]; repeat one for more routes."),
    num_routes: int = typer.Option(20, "--num-routes", "-n", min=1, help="Number of routes."),
    min_length_m: float = typer.Option(300.0, "--min-length-m", min=10.0, help="Shortest route [m]."),
    max_length_m: float = typer.Option(1500.0, "--max-length-m", min=10.0, help="Longest route [m]."),
    name: str | None = typer.Option(None, "--name", help="Suite name (default: the file name)."),
    description: str = typer.Option("", "--description", help="What the suite is for."),
) -> None:
    """Generate a route suite from a seed (deterministic: the same arguments give the same file)."""
    from drivesim.eval.routes import generate_suite, save_suite

    if max_length_m < min_length_m:
        fail("--max-length-m must not be below --min-length-m", code=2)
    map_refs = [text for text in maps.split(",") if text.strip()]
    try:
        suite = generate_suite(
            name or out.stem, seed, map_refs, num_routes, (min_length_m, max_length_m), description=description
        )
    except (ValueError, FileNotFoundError) as error:
        fail(str(error))
    save_suite(suite, out)
    per_map = Counter(f"{route.map}:{route.map_seed}" for route in suite.routes)
    lengths = [route.length_m for route in suite.routes]
    console.print(
        f"wrote {out}: {len(suite.routes)} routes ({', '.join(f'{k} x{v}' for k, v in per_map.items())}), "
        f"{min(lengths):.0f}-{max(lengths):.0f} m, {sum(lengths) / 1000:.1f} km in all"
    )


def make_scenario_suite_command(
    out: Path = typer.Option(..., "--out", "-o", help="Suite YAML to write."),
    seed: int = typer.Option(0, "--seed", help="Generator seed."),
    maps: str = typer.Option("town:0", "--maps", help="Comma-separated maps name[:seed], used round-robin."),
    types: str = typer.Option("", "--types", help="Comma-separated scenario types (default: all implemented)."),
    draws: int = typer.Option(6, "--draws", min=1, help="Routes (parameter draws) per scenario type."),
    min_length_m: float = typer.Option(150.0, "--min-length-m", min=50.0, help="Shortest route [m]."),
    max_length_m: float = typer.Option(300.0, "--max-length-m", min=50.0, help="Longest route [m]."),
    npcs_per_km: float = typer.Option(2.0, "--npcs-per-km", min=0.0, help="Background NPCs per lane-km of the map."),
    name: str | None = typer.Option(None, "--name", help="Suite name (default: the file name)."),
    description: str = typer.Option("", "--description", help="What the suite is for."),
) -> None:
    """Generate a Bench2Drive-style scenario suite: short routes, each with one ScenarioRunner scenario placed
    where it can happen (deterministic in the seed)."""
    from drivesim.eval.routes import save_suite
    from drivesim.eval.scenario_suites import generate_scenario_suite

    if max_length_m < min_length_m:
        fail("--max-length-m must not be below --min-length-m", code=2)
    type_list = [text.strip() for text in types.split(",") if text.strip()] or None
    try:
        suite = generate_scenario_suite(name or out.stem, seed, [m for m in maps.split(",") if m.strip()], type_list,
                                        draws, (min_length_m, max_length_m), npcs_per_km, description=description)
    except (ValueError, FileNotFoundError) as error:
        fail(str(error))
    save_suite(suite, out)
    per_type = Counter(route.scenarios[0].type for route in suite.routes)
    console.print(f"wrote {out}: {len(suite.routes)} routes, {len(per_type)} scenario types x {draws} draws")

def import_routes_command(
    route_file: Path = typer.Argument(..., help="Leaderboard route XML (1.0: <waypoint> lists; 2.0: inline <scenarios>)."),
    map_ref: str = typer.Option(..., "--map", help="Map of the routes: an .xodr file (e.g. Town01.xodr) or name[:seed]."),
    out: Path = typer.Option(..., "--out", "-o", help="Suite YAML to write (e.g. configs/routes/NAME.yaml)."),
    scenarios: Path | None = typer.Option(None, "--scenarios", help="Leaderboard 1.0 scenario JSON for a 1.0 route file."),
    town: str | None = typer.Option(None, "--town", help="Import routes of this town (default: the map's file stem; '' for all)."),
    name: str | None = typer.Option(None, "--name", help="Suite name (default: the output file's stem)."),
    seed: int = typer.Option(0, "--seed", help="Seed the route seeds derive from."),
    npcs_per_km: float = typer.Option(2.5, "--npcs-per-km", min=0.0, help="NPC vehicles per lane-km of the map."),
) -> None:
    """Import a Leaderboard 1.0 or 2.0 route file into a drivesim suite (routes planned on the map's lanes,
    scenario triggers turned into route distances)."""
    from drivesim.eval.leaderboard_routes import import_routes
    from drivesim.eval.routes import save_suite

    try:
        suite, warnings = import_routes(route_file, map_ref, name or out.stem, scenarios, town, seed, npcs_per_km)
    except (ValueError, FileNotFoundError) as error:
        fail(str(error))
    save_suite(suite, out)
    types = Counter(scenario.type for route in suite.routes for scenario in route.scenarios)
    for text in warnings:
        console.print(f"warning: {escape(text)}")
    console.print(
        f"wrote {out}: {len(suite.routes)} routes, {sum(route.length_m for route in suite.routes) / 1000:.1f} km, "
        f"{sum(types.values())} scenarios ({', '.join(f'{k} x{v}' for k, v in sorted(types.items())) or 'none'})"
    )


def controllability_command(
    ckpt: Path = typer.Option(..., "--ckpt", help="World-model checkpoint (.ckpt)."),
    data: Path | None = typer.Option(
        None, "--data", "-d", help="Dataset the model was trained on: the simulator runs with its sim and sensor configs."
    ),
    out: Path | None = typer.Option(None, "--out", "-o", help="Report folder (default: next to the checkpoint)."),
    states: int = typer.Option(30, "--states", min=1, help="Held-out states (one episode each)."),
    context: int = typer.Option(8, "--context", min=2, help="Observed steps up to the state."),
    horizon: int = typer.Option(40, "--horizon", min=20, help="Steps each action sequence is driven (40 = 2 s)."),
    seed: int = typer.Option(1_000_000, "--seed", help="First episode seed (held out: not one the data used)."),
    device: str = typer.Option("cpu", help="Torch device."),
    sample: bool = typer.Option(False, "--sample", help="Sampled prior rollouts instead of the latent mode."),
) -> None:
    """Action controllability of a world model: from held-out states of the embedded simulator, drive hard left,
    hard right, full brake, full throttle and the expert's actions for the horizon, in the simulator (restored to
    the state each time) and in the world model; ego position and heading errors at 1 and 2 s against the
    ignore-the-actions baseline (the model's rollout under the expert's actions)."""
    from drivesim.eval.controllability import run_controllability
    from drivesim.world_model.controllability import summary_lines
    from drivesim.world_model.train import DatasetMismatchError

    if not ckpt.is_file():
        fail(f"checkpoint not found: {ckpt}")
    out = out or ckpt.parent.parent / "controllability"
    try:
        report = run_controllability(ckpt, data, out, states, context, horizon, seed, device, sample)
    except (FileNotFoundError, DatasetMismatchError, ValueError) as error:
        fail(str(error))
    for line in summary_lines(report):
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    console.print(f"report: {out / 'report.json'}")


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add the `eval` command group."""
    eval_app = typer.Typer(help=EVAL_HELP, invoke_without_command=True, rich_markup_mode=None)
    eval_app.callback(invoke_without_command=True)(eval_callback)
    eval_app.command("run")(run_command)
    eval_app.command("compare")(compare_command)
    eval_app.command("proxy")(proxy_command)
    eval_app.command("make-suite")(make_suite_command)
    eval_app.command("make-scenario-suite")(make_scenario_suite_command)
    eval_app.command("import-routes")(import_routes_command)
    eval_app.command("controllability")(controllability_command)
    app.add_typer(eval_app, name="eval")
