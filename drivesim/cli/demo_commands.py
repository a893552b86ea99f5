"""`drivesim demo`: the whole loop end to end on the embedded simulator, by chaining the stage commands.

collect -> train-wm -> eval-wm -> train-bc (and an early BC) -> train-rl -> eval (expert, BC, BC+RL) -> replay
export -> eval proxy (the policy ranking in the embedded simulator vs in the dream, on a short suite).
Each stage is the same CLI command a user would run alone (run here as a subprocess); finished stages are
recorded in OUT/stages.json so an interrupted demo resumes where it stopped.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

console = Console()


@dataclass(frozen=True)
class DemoSizes:
    """Budgets of the demo; the defaults fit in about 15 minutes on 2 CPU cores.

    Measured stage times at 600 world-model steps and 4 routes per agent (19.4 min in all): collect 12 s,
    train-wm 629 s, eval-wm 8 s, train-bc 98 s, train-rl 34 s, eval 4 / 216 / 156 s, video 8 s.
    """

    episodes: int = 24
    route_length_m: tuple[float, float] = (200.0, 400.0)
    wm_steps: int = 400
    bc_steps: int = 400
    rl_steps: int = 60
    eval_routes: int = 2
    video_frames: int = 200
    early_bc_steps: int = 40  # the panel's "early BC checkpoint"
    proxy_routes: int = 2  # short routes of the ranking (embedded vs dream)
    proxy_route_length_m: tuple[float, float] = (60.0, 80.0)


def _stages(out: Path, sizes: DemoSizes, seed: int) -> list[tuple[str, list[str]]]:
    data, wm, bc, rl = out / "data", out / "world_model", out / "bc", out / "rl"
    low, high = sizes.route_length_m
    eval_common = ["--routes", "configs/routes/test.yaml", "--limit", str(sizes.eval_routes), "--workers", "2", "--no-progress"]
    sensors = ["sensors.bev.size_px=64", "sensors.camera.width_px=64", "sensors.camera.height_px=64"]
    return [
        ("collect", ["collect", "--episodes", str(sizes.episodes), "--out", str(data), "--workers", "2", "--seed", str(seed),
                     f"sim.episode.route_length_m=[{low},{high}]"]),
        ("train-wm", ["train-wm", "--config", "configs/world_model/demo.yaml", "--data", str(data), "--out", str(wm),
                      "--no-progress", f"train.max_steps={sizes.wm_steps}", f"train.seed={seed}"]),
        ("eval-wm", ["eval-wm", "--ckpt", str(wm / "checkpoints" / "last.ckpt"), "--data", str(data), "--out", str(out / "wm_eval"),
                     "--context", "8", "--horizon", "40", "--max-batches", "6"]),
        ("train-bc", ["train-bc", "--wm", str(wm / "checkpoints" / "last.ckpt"), "--data", str(data), "--out", str(bc),
                      "--no-progress", f"bc.max_steps={sizes.bc_steps}", "bc.val_every_steps=200", "bc.num_workers=1"]),
        ("train-rl", ["train-rl", "--bc", str(bc / "checkpoints" / "last.ckpt"), "--data", str(data), "--out", str(rl),
                      "--no-progress", f"rl.max_steps={sizes.rl_steps}", "rl.num_workers=1", "rl.window_steps=16",
                      "imagination.max_start_states=128"]),
        ("eval expert", ["eval", "run", "--agent", "expert", "--out", str(out / "eval" / "expert"), *eval_common]),
        ("eval BC", ["eval", "run", "--agent", f"policy:{bc / 'checkpoints' / 'last.ckpt'}", "--out", str(out / "eval" / "bc"),
                     *eval_common, *sensors]),
        ("eval BC+RL", ["eval", "run", "--agent", f"policy:{rl / 'checkpoints' / 'last.ckpt'}", "--out", str(out / "eval" / "bc_rl"),
                        *eval_common, *sensors]),
        ("replay video", ["replay", str(data), "--wm", str(wm / "checkpoints" / "last.ckpt"), "--export", str(out / "replay_dream.mp4"),
                          "--max-frames", str(sizes.video_frames)]),
        *_proxy_stages(out, sizes, seed),
    ]


def _proxy_stages(out: Path, sizes: DemoSizes, seed: int) -> list[tuple[str, list[str]]]:
    """The ranking: an early BC checkpoint, a short suite, and `eval proxy` over the whole panel."""
    data, wm, bc_early = out / "data", out / "world_model" / "checkpoints" / "last.ckpt", out / "bc_early"
    low, high = sizes.proxy_route_length_m
    suite = out / "proxy_suite.yaml"
    label = (f"demo world model ({sizes.wm_steps} steps on {sizes.episodes} episodes): low fidelity, "
             "a smoke figure of the method, not a measurement of it; agents blocked after 30 s")
    # No `random` and a 30 s agent-blocked limit (Leaderboard: 180 s): a standing agent would otherwise hold each
    # route for 3,600 steps in both simulators and the ranking would not fit the demo's budget.
    policies = ["expert=expert", "careless=careless", "noisy=noisy", "constant=constant:0.5",
                f"bc_early=policy:{bc_early / 'checkpoints' / 'last.ckpt'}",
                f"bc=policy:{out / 'bc' / 'checkpoints' / 'last.ckpt'}", f"bc_rl=policy:{out / 'rl' / 'checkpoints' / 'last.ckpt'}"]
    return [
        ("train-bc early", ["train-bc", "--wm", str(wm), "--data", str(data), "--out", str(bc_early), "--no-progress",
                            f"bc.max_steps={sizes.early_bc_steps}", f"bc.val_every_steps={sizes.early_bc_steps}", "bc.num_workers=1"]),
        ("proxy suite", ["eval", "make-suite", "--out", str(suite), "--seed", str(seed + 5), "--maps", "town:0",
                         "-n", str(sizes.proxy_routes), "--min-length-m", str(low), "--max-length-m", str(high)]),
        ("eval proxy", ["eval", "proxy", "--wm", str(wm), "--routes", str(suite), "--out", str(out / "proxy"), "--no-progress",
                        "--samples", "500", "--label", label, "--no-reference",
                        *[arg for policy in policies for arg in ("-a", policy)], "blocked_limit_s=30",
                        "sensors.bev.size_px=64", "sensors.camera.width_px=64", "sensors.camera.height_px=64"]),
    ]


def _run_stage(name: str, args: list[str]) -> float:
    console.rule(f"[bold]{name}[/bold]: drivesim {' '.join(args)}")
    start = time.perf_counter()
    completed = subprocess.run([sys.executable, "-m", "drivesim.cli.main", *args], check=False)
    if completed.returncode != 0:
        console.print(f"[red]stage {name!r} failed with exit code {completed.returncode}[/red]")
        raise typer.Exit(completed.returncode)
    return time.perf_counter() - start


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def _summary(out: Path, times: dict[str, float]) -> Table:
    from drivesim.world_model.eval_report import key_figures  # numpy: not at CLI start-up

    table = Table(title=f"drivesim demo summary ({out})", show_lines=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    info = subprocess.run([sys.executable, "-m", "drivesim.cli.main", "data", "info", str(out / "data"), "--json"],
                          capture_output=True, text=True, check=False)
    if info.returncode == 0:
        data = json.loads(info.stdout.strip().splitlines()[-1])
        table.add_row("dataset", f"{data.get('episodes')} episodes, {data.get('frames')} frames, {data.get('km', 0.0):.1f} km")
    for label, value in key_figures(_read_json(out / "wm_eval" / "report.json")):
        table.add_row(label, value)
    for label, folder in (("expert", "expert"), ("BC", "bc"), ("BC+RL", "bc_rl")):
        aggregate = _read_json(out / "eval" / folder / "results.json").get("aggregate")
        if aggregate:
            table.add_row(f"{label}: DS / RC [%] / collisions per km",
                          f"{aggregate['driving_score']:.1f} / {aggregate['route_completion']:.1f} / {aggregate['collisions_per_km']:.2f}")
    proxy = _read_json(out / "proxy" / "proxy.json")
    if proxy:
        from drivesim.eval.proxy import format_number

        for metric, label in (("driving_score", "DS"), ("collisions_per_km", "collisions/km")):
            entry = proxy[metric]
            table.add_row(f"dream vs embedded ranking ({proxy['num_policies']} policies, {proxy['num_routes']} routes): "
                          f"Spearman {label} [95% CI]",
                          f"{format_number(entry['spearman'])} [{format_number(entry['spearman_low'])}, {format_number(entry['spearman_high'])}]")
    for name, seconds in times.items():
        table.add_row(f"time: {name} [s]", f"{seconds:.0f}")
    table.add_row("outputs", f"{out}/{{data, world_model, wm_eval, bc, bc_early, rl, eval, replay_dream.mp4, proxy}}")
    return table


def demo(
    out: Path = typer.Option(Path("outputs/demo"), "--out", "-o", help="Output folder (resumes finished stages)."),
    seed: int = typer.Option(0, help="Seed of the whole run (collection, training, evaluation)."),
    episodes: int = typer.Option(DemoSizes.episodes, help="Episodes to collect."),
    wm_steps: int = typer.Option(DemoSizes.wm_steps, help="World-model training steps."),
    bc_steps: int = typer.Option(DemoSizes.bc_steps, help="Behaviour-cloning steps."),
    rl_steps: int = typer.Option(DemoSizes.rl_steps, help="RL (imagination) steps."),
    eval_routes: int = typer.Option(DemoSizes.eval_routes, help="Routes of the test suite per agent."),
    restart: bool = typer.Option(False, help="Run every stage again, even those already finished."),
) -> None:
    """Run the whole loop on the embedded simulator and print a summary table (about 15 min on 2 CPU cores)."""
    sizes = DemoSizes(episodes=episodes, wm_steps=wm_steps, bc_steps=bc_steps, rl_steps=rl_steps, eval_routes=eval_routes)
    out.mkdir(parents=True, exist_ok=True)
    state_path = out / "stages.json"
    state = {} if restart else _read_json(state_path)
    for name, args in _stages(out, sizes, seed):
        if name in state:
            console.print(f"[dim]{name}: done earlier ({state[name]:.0f} s), skipped[/dim]")
            continue
        state[name] = _run_stage(name, args)
        state_path.write_text(json.dumps(state, indent=2))
    console.print(_summary(out, state))
    proxy = _read_json(out / "proxy" / "proxy.json")
    if proxy:
        from drivesim.cli.eval_commands import proxy_table

        console.print(proxy_table(proxy))


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    del bench_app
    app.command("demo")(demo)
