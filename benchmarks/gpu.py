"""GPU figures of the world model in one short run (< 5 minutes): prints one JSON line per benchmark.

    python benchmarks/gpu.py                  # on a CUDA machine: 12m train steps/s, imagination at 8,192, DreamSim
    python benchmarks/gpu.py --device cpu     # the same runs at tiny sizes, to check the script works anywhere

Each benchmark runs `drivesim bench ...` in its own process with a timeout; a failed or skipped run prints a
JSON line with ``error`` (or ``skipped``) instead of figures, so one run always reports everything it can.
Targets (issue 16): ``12m`` at 16 x 64 >= 50 train steps/s, >= 1M imagined latent steps/s at batch 8,192.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# name -> `drivesim bench` arguments; {device} is filled in. The compiled runs record CUDA graphs for the RSSM
# step functions and compile the CNNs (train.compile_cnns); the eager run shows what the graphs buy.
CUDA_RUNS = {
    "wm_12m_compiled": ["wm", "--preset", "12m", "--compile", "--imagine-batch", "8192", "--train-steps", "20",
                        "train.compile_cnns=true"],
    "wm_12m_eager": ["wm", "--preset", "12m", "--imagine-batch", "8192", "--train-steps", "5"],
    "wm_dreamerv3_torch_small_compiled": ["wm", "--preset", "dreamerv3_torch_small", "--compile",
                                          "--train-steps", "20", "train.compile_cnns=true"],
    "dreamsim_12m": ["dreamsim", "--preset", "12m", "--batch-sizes", "1024,8192", "--steps", "20"],
}  # fmt: skip
# The same runs at sizes a CPU finishes in seconds (the debug preset, small batches).
CPU_RUNS = {
    "wm_debug_compiled": ["wm", "--preset", "debug", "--compile", "--imagine-batch", "64", "--train-steps", "2"],
    "wm_debug_eager": ["wm", "--preset", "debug", "--imagine-batch", "64", "--train-steps", "2"],
    "dreamsim_debug": ["dreamsim", "--preset", "debug", "--batch-sizes", "16,64", "--steps", "3"],
}  # fmt: skip


def run_one(name: str, args: list[str], device: str, timeout_s: float) -> dict:
    """Run one `drivesim bench` command; its last stdout line (JSON) plus ``run`` and ``wall_s``."""
    command = [sys.executable, "-m", "drivesim.cli.main", "bench", args[0], "--device", device, *args[1:]]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    start = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, env=env, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"run": name, "error": f"timed out after {timeout_s:.0f} s"}
    wall_s = round(time.perf_counter() - start, 1)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        return {"run": name, "wall_s": wall_s, "error": (done.stderr or done.stdout).strip()[-2000:]}
    return {"run": name, "wall_s": wall_s, **json.loads(lines[-1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (the GPU figures) or cpu (tiny sizes).")
    parser.add_argument("--budget-s", type=float, default=280.0, help="Total wall-clock budget [s].")
    parser.add_argument("--only", default="", help="Comma-separated run names (default: all).")
    options = parser.parse_args()
    runs = CUDA_RUNS if options.device.startswith("cuda") else CPU_RUNS
    selected = [name for name in runs if not options.only or name in options.only.split(",")]
    deadline = time.perf_counter() + options.budget_s
    for index, name in enumerate(selected):
        left = deadline - time.perf_counter()
        if left < 10:
            print(json.dumps({"run": name, "skipped": "budget spent"}), flush=True)
            continue
        # Share what is left between this and the remaining runs, but let an early run use more if needed.
        timeout_s = max(left / (len(selected) - index), min(left, 120.0))
        print(json.dumps(run_one(name, runs[name], options.device, timeout_s)), flush=True)


if __name__ == "__main__":
    main()
