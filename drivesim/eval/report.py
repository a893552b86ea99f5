"""Evaluation stage: results.json, the Markdown table, plots, and comparing two runs with a paired bootstrap."""

from __future__ import annotations

import datetime
import json
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

import drivesim
from drivesim.config import config_hash
from drivesim.eval.metrics import COLLISION_KINDS, INFRACTION_TYPES, aggregate_metrics
from drivesim.utils import atomic_write_bytes, atomic_write_json

RESULTS_FILE, MARKDOWN_FILE = "results.json", "results.md"
DS_PLOT_FILE, INFRACTIONS_PLOT_FILE = "ds_per_route.png", "infractions.png"
# Aggregate rows shown in tables: (key, label, format).
SUMMARY_ROWS: tuple[tuple[str, str, str], ...] = (
    ("driving_score", "driving score DS", "{:.1f}"),
    ("route_completion", "route completion RC [%]", "{:.1f}"),
    ("infraction_penalty", "infraction penalty IP", "{:.3f}"),
    ("completed_share", "routes completed", "{:.2f}"),
    ("collisions_per_km", "collisions / km", "{:.3f}"),
    ("off_road_share", "off-road share of time", "{:.3f}"),
    ("mean_speed_mps", "mean speed [m/s]", "{:.2f}"),
    ("mean_abs_jerk_mps3", "mean abs jerk [m/s^3]", "{:.2f}"),
    ("mean_abs_yaw_rate_dps", "mean abs yaw rate [deg/s]", "{:.2f}"),
    ("distance_km", "distance driven [km]", "{:.2f}"),
)


def code_version() -> dict[str, Any]:
    """Package version and, inside a git checkout, the commit hash and whether the tree is dirty."""
    version: dict[str, Any] = {"package": drivesim.__version__, "git_commit": None, "git_dirty": None}
    root = Path(drivesim.__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return version
    if commit.returncode == 0:
        version.update(git_commit=commit.stdout.strip(), git_dirty=bool(status.stdout.strip()))
    return version


def build_results(
    routes: Sequence[dict[str, Any]],
    suite: Any,
    agent: str,
    sim: str,
    config: Any,
    suite_path: str | None = None,
) -> dict[str, Any]:
    """The results document: run identity, code version, config, the aggregate and every route."""
    return {
        "agent": agent,
        "sim": sim,
        "suite": {"name": suite.name, "fingerprint": suite.fingerprint(), "path": suite_path},
        "code_version": code_version(),
        "config_hash": config_hash(config),
        "config": config.model_dump(mode="json"),
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "aggregate": aggregate_metrics([route["metrics"] for route in routes]),
        "routes": list(routes),
    }


def load_results(path: str | Path) -> dict[str, Any]:
    """Read ``results.json`` from a file or a run folder."""
    path = Path(path)
    if path.is_dir():
        path = path / RESULTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no results found at {path}")
    return json.loads(path.read_text())


def format_value(key: str, value: float) -> str:
    """A metric value formatted as in the report tables."""
    fmt = next((fmt for name, _, fmt in SUMMARY_ROWS if name == key), "{:.3f}")
    return fmt.format(value)


def markdown_report(results: dict[str, Any]) -> str:
    """A Markdown summary: aggregate table, infraction totals and one row per route."""
    aggregate = results["aggregate"]
    lines = [
        f"# Evaluation: {results['agent']} on {results['suite']['name']} ({results['sim']})",
        "",
        f"code {results['code_version'].get('git_commit') or results['code_version']['package']}, "
        f"config {results['config_hash']}, {results['created_utc']}",
        "",
        "| metric | value |",
        "|---|---|",
        *(f"| {label} | {format_value(key, aggregate[key])} |" for key, label, _ in SUMMARY_ROWS if key in aggregate),
        "",
        "| infraction | count | per km |",
        "|---|---|---|",
        *(
            f"| {name} | {aggregate['infractions'][name]} | {aggregate['infractions_per_km'][name]:.3f} |"
            for name in INFRACTION_TYPES
        ),
        "",
        "| route | map | length [m] | DS | RC [%] | IP | collisions | off-road | status |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for route in results["routes"]:
        m = route["metrics"]
        lines.append(
            f"| {route['route_id']} | {route['map']}:{route['map_seed']} | {m['route_length_m']:.0f} | "
            f"{m['driving_score']:.1f} | {m['route_completion']:.1f} | {m['infraction_penalty']:.3f} | "
            f"{m['collisions']} | {m['off_road_share']:.3f} | {m['status']} |"
        )
    return "\n".join(lines) + "\n"


def plot_results(results: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """Bar charts of the driving score per route and of the infraction counts by type (matplotlib Agg)."""
    from matplotlib.figure import Figure  # no pyplot: writing files must not switch the caller's backend

    out_dir = Path(out_dir)
    routes = results["routes"]
    ids = [route["route_id"] for route in routes]
    scores = [route["metrics"]["driving_score"] for route in routes]
    figure = Figure(figsize=(max(6.0, 0.35 * len(ids)), 3.5))
    axis = figure.subplots()
    axis.bar(range(len(ids)), scores, color="tab:blue")
    axis.axhline(results["aggregate"]["driving_score"], color="tab:red", linestyle="--", label="mean")
    axis.set(xticks=range(len(ids)), ylim=(0, 100), ylabel="driving score", title=f"{results['agent']}: DS per route")
    axis.set_xticklabels(ids, rotation=90, fontsize=7)
    axis.legend()
    figure.tight_layout()
    paths = [out_dir / DS_PLOT_FILE, out_dir / INFRACTIONS_PLOT_FILE]
    figure.savefig(paths[0], dpi=100)

    counts = results["aggregate"]["infractions"]
    figure = Figure(figsize=(6.0, 3.5))
    axis = figure.subplots()
    axis.barh(list(INFRACTION_TYPES), [counts[name] for name in INFRACTION_TYPES], color="tab:orange")
    axis.set(xlabel="count", title=f"{results['agent']}: infractions ({results['aggregate']['distance_km']:.2f} km)")
    figure.tight_layout()
    figure.savefig(paths[1], dpi=100)
    return paths


def write_report(results: dict[str, Any], out_dir: str | Path) -> None:
    """Write results.json, results.md and the plots into ``out_dir``."""
    out_dir = Path(out_dir)
    atomic_write_json(out_dir / RESULTS_FILE, results)
    atomic_write_bytes(out_dir / MARKDOWN_FILE, markdown_report(results).encode())
    plot_results(results, out_dir)


def bootstrap_mean_ci(
    values: np.ndarray, samples: int = 10000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """Mean of ``values`` and its percentile-bootstrap confidence interval (seeded, vectorised).

    Returns:
        (mean, low, high).
    """
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(samples, values.size))].mean(axis=1)
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(means, [tail, 100.0 - tail])
    return float(values.mean()), float(low), float(high)


def compare_results(
    first: dict[str, Any], second: dict[str, Any], samples: int = 10000, confidence: float = 0.95, seed: int = 0
) -> dict[str, Any]:
    """Compare two runs on the routes they share (paired by route id).

    Returns:
        ``rows``: (key, label, first, second, difference) for the aggregate metrics recomputed on the shared
        routes; ``ds_difference``: mean of (second - first) DS per route with its bootstrap interval;
        ``shared_routes`` and the ids only in one run.
    """
    by_id = [{route["route_id"]: route for route in run["routes"]} for run in (first, second)]
    shared = [route_id for route_id in by_id[0] if route_id in by_id[1]]
    aggregates = [aggregate_metrics([runs[route_id]["metrics"] for route_id in shared]) for runs in by_id]
    rows = [
        (key, label, aggregates[0][key], aggregates[1][key], aggregates[1][key] - aggregates[0][key])
        for key, label, _ in SUMMARY_ROWS
        if shared
    ]
    scores = np.array([[runs[route_id]["metrics"]["driving_score"] for route_id in shared] for runs in by_id])
    mean, low, high = bootstrap_mean_ci(scores[1] - scores[0] if shared else np.array([]), samples, confidence, seed)
    return {
        "names": (first["agent"], second["agent"]),
        "shared_routes": len(shared),
        "only_first": sorted(set(by_id[0]) - set(shared)),
        "only_second": sorted(set(by_id[1]) - set(shared)),
        "rows": rows,
        "collision_kinds": {
            kind: (aggregates[0]["infractions"][kind], aggregates[1]["infractions"][kind]) for kind in COLLISION_KINDS
        }
        if shared
        else {},
        "ds_difference": {"mean": mean, "low": low, "high": high, "confidence": confidence, "samples": samples},
    }
