"""`make bench`: run every `drivesim bench ...` and write a Markdown table of the results.

Each benchmark runs in its own process (so no benchmark warms up another's caches) and its last output
line is parsed as JSON.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import torch

BENCHMARKS: list[tuple[str, list[str], str]] = [
    ("sim, no sensors (town, 20 NPCs)", ["sim", "--map", "town", "--npcs", "20", "--steps", "2000"], "steps_per_s"),
    ("sim + BEV 64 px", ["sim", "--map", "town", "--npcs", "20", "--steps", "2000", "--sensors", "bev"], "steps_per_s"),
    ("sim + BEV + camera 64 px", ["sim", "--map", "town", "--npcs", "20", "--steps", "1000", "--sensors", "bev,camera"], "steps_per_s"),
    ("sim on CARLA Town03", ["sim", "--map", "{town03}", "--npcs", "20", "--steps", "2000"], "steps_per_s"),
    ("dataset windows, 2 workers", ["data", "--synthetic", "--workers", "2"], "frames_per_s"),
    ("world model `dreamerv3_torch_small` train (bf16, 2 threads)", ["wm", "--preset", "dreamerv3_torch_small", "--threads", "2"], "train_frames_per_s"),
    ("world model `small` train (bf16)", ["wm", "--preset", "small", "--device", "cpu"], "train_frames_per_s"),
    ("world model `small` imagination (batch 1024)", ["wm", "--preset", "small", "--device", "cpu"], "imagine_steps_per_s"),
    ("learned simulator (DreamSim), env steps/s per batch size", ["dreamsim"], "steps_per_s"),
]


def machine_description() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} logical CPUs, Python {platform.python_version()}, torch {torch.__version__}"


def run_benchmark(args: list[str], timeout_s: float) -> dict:
    command = [sys.executable, "-m", "drivesim.cli.main", "bench", *args]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
    lines = [line for line in completed.stdout.strip().splitlines() if line.strip()]
    if completed.returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(command)} failed ({completed.returncode}): {completed.stderr[-2000:]}")
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results.md"))
    parser.add_argument("--timeout-s", type=float, default=900.0)
    options = parser.parse_args()
    town03 = Path(__file__).resolve().parents[2].parent / "shared" / "maps" / "carla" / "Town03.xodr"
    rows, cache = [], {}
    for title, args, key in BENCHMARKS:
        if "{town03}" in args and not town03.is_file():
            rows.append((title, "skipped (shared CARLA maps absent)", ""))
            continue
        args = [arg.replace("{town03}", str(town03)) for arg in args]
        cache_key = tuple(args)
        try:
            result = cache[cache_key] if cache_key in cache else run_benchmark(args, options.timeout_s)
        except (RuntimeError, subprocess.TimeoutExpired) as error:
            rows.append((title, "failed", str(error).splitlines()[0][:120]))
            continue
        cache[cache_key] = result
        value = result[key]
        if isinstance(value, dict):  # one figure per batch size
            text = ", ".join(f"{size}: {figure:,.0f}" for size, figure in value.items())
        else:
            text = f"{value:,.0f}"
        shown = " ".join(args).replace(str(town03), "../shared/maps/carla/Town03.xodr")
        rows.append((title, text, f"`drivesim bench {shown}` → `{key}`"))
        print(f"{title}: {text} {key}", flush=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# drivesim benchmarks",
        "",
        f"Machine: {machine_description()}. Measured {stamp} by `make bench`.",
        "",
        "| benchmark | throughput | command → key |",
        "|---|---:|---|",
        *[f"| {title} | {value} | {detail} |" for title, value, detail in rows],
        "",
        "World-model speed (profiles, before/after, GPU script, DDP): benchmarks/world_model_speed.md.",
        "",
    ]
    options.out.parent.mkdir(parents=True, exist_ok=True)
    options.out.write_text("\n".join(lines))
    print(f"wrote {options.out}")


if __name__ == "__main__":
    main()
