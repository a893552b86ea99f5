"""Evaluation stage: results.json, the Markdown tables, plots, and comparing two runs with a paired bootstrap.

Results carry the aggregate, per-infraction totals, and breakdowns per scenario type and per Bench2Drive ability
(``drivesim.eval.breakdown``).
"""

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
from drivesim.eval.breakdown import ability_breakdown, group_routes, route_types, type_breakdown
from drivesim.eval.metrics import COLLISION_KINDS, INFRACTION_TYPES, aggregate_metrics
from drivesim.utils import atomic_write_bytes, atomic_write_json

RESULTS_FILE, MARKDOWN_FILE = "results.json", "results.md"
DS_PLOT_FILE, INFRACTIONS_PLOT_FILE, TYPES_PLOT_FILE = "ds_per_route.png", "infractions.png", "ds_per_type.png"
# Aggregate rows shown in tables: (key, label, format).
SUMMARY_ROWS: tuple[tuple[str, str, str], ...] = (
    ("driving_score", "driving score DS", "{:.1f}"),
    ("route_completion", "route completion RC [%]", "{:.1f}"),
    ("infraction_penalty", "infraction penalty IP", "{:.3f}"),
    ("success_rate", "success rate (Bench2Drive)", "{:.2f}"),
    ("completed_share", "routes completed", "{:.2f}"),
    ("collisions_per_km", "collisions / completed km", "{:.3f}"),
    ("outside_route_lanes_pct", "outside route lanes [% of route]", "{:.2f}"),
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
        "scoring": config.scoring,
        "aggregate": aggregate_metrics([route["metrics"] for route in routes]),
        "by_scenario_type": type_breakdown(routes),
        "by_ability": ability_breakdown(routes),
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


def _group_table(title: str, groups: dict[str, dict]) -> list[str]:
    """Markdown table of group aggregates: DS, success, RC, IP and the infractions that occurred."""
    if not groups:
        return []
    present = [name for name in INFRACTION_TYPES if any(group["infractions"][name] for group in groups.values())]
    lines = [
        "",
        f"| {title} | routes | DS | success | RC [%] | IP |" + "".join(f" {name} |" for name in present),
        "|---|---|---|---|---|---|" + "---|" * len(present),
    ]
    for key, group in groups.items():
        lines.append(
            f"| {key} | {group['num_routes']} | {group['driving_score']:.1f} | {group['success_rate']:.2f} | "
            f"{group['route_completion']:.1f} | {group['infraction_penalty']:.3f} |"
            + "".join(f" {group['infractions'][name]} |" for name in present)
        )
    return lines


def infraction_rows(routes: Sequence[dict[str, Any]]) -> list[tuple[str, int, int, float]]:
    """Per infraction type: (name, total count, routes affected, mean IP factor over the routes)."""
    rows = []
    for name in INFRACTION_TYPES:
        counts = [route["metrics"]["infractions"].get(name, 0) for route in routes]
        factors = [route["metrics"].get("infraction_factors", {}).get(name, 1.0) for route in routes]
        rows.append((name, int(sum(counts)), sum(1 for count in counts if count), float(np.mean(factors)) if routes else 1.0))
    return rows


def markdown_report(results: dict[str, Any]) -> str:
    """A Markdown summary: aggregate, infractions, per-type and per-ability tables, one row per route."""
    aggregate = results["aggregate"]
    lines = [
        f"# Evaluation: {results['agent']} on {results['suite']['name']} ({results['sim']})",
        "",
        f"code {results['code_version'].get('git_commit') or results['code_version']['package']}, "
        f"config {results['config_hash']}, scoring {results.get('scoring', 'leaderboard-2.0')}, {results['created_utc']}",
        "",
        "| metric | value |",
        "|---|---|",
        *(f"| {label} | {format_value(key, aggregate[key])} |" for key, label, _ in SUMMARY_ROWS if key in aggregate),
        "",
        "| infraction | count | routes | per completed km | mean IP factor |",
        "|---|---|---|---|---|",
        *(
            f"| {name} | {count} | {affected} | {aggregate['infractions_per_km'][name]:.3f} | {factor:.3f} |"
            for name, count, affected, factor in infraction_rows(results["routes"])
        ),
        *_group_table("scenario type", results.get("by_scenario_type", {})),
        *_group_table("ability", results.get("by_ability", {})),
        "",
        "| route | map | type | length [m] | DS | RC [%] | IP | collisions | outside lanes [%] | success | status |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for route in results["routes"]:
        m = route["metrics"]
        lines.append(
            f"| {route['route_id']} | {route['map']}:{route['map_seed']} | {', '.join(route_types(route))} | "
            f"{m['route_length_m']:.0f} | {m['driving_score']:.1f} | {m['route_completion']:.1f} | "
            f"{m['infraction_penalty']:.3f} | {m['collisions']} | {m.get('outside_route_lanes_pct', 0.0):.1f} | "
            f"{'yes' if m.get('success') else 'no'} | {m['status']} |"
        )
    return "\n".join(lines) + "\n"


def plot_results(results: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """Bar charts: DS per route, infraction counts by type, and DS / success rate per scenario type."""
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
    paths = [out_dir / DS_PLOT_FILE, out_dir / INFRACTIONS_PLOT_FILE, out_dir / TYPES_PLOT_FILE]
    figure.savefig(paths[0], dpi=100)

    aggregate = results["aggregate"]
    figure = Figure(figsize=(6.0, 4.0))
    axis = figure.subplots()
    axis.barh(list(INFRACTION_TYPES), [aggregate["infractions"][name] for name in INFRACTION_TYPES], color="tab:orange")
    axis.set(xlabel="count", title=f"{results['agent']}: infractions ({aggregate['completed_km']:.2f} route km completed)")
    figure.tight_layout()
    figure.savefig(paths[1], dpi=100)

    groups = results.get("by_scenario_type") or {}
    names = list(groups)
    figure = Figure(figsize=(max(6.0, 0.6 * len(names) + 2.0), 3.8))
    axis = figure.subplots()
    positions = np.arange(len(names))
    axis.bar(positions - 0.2, [groups[name]["driving_score"] for name in names], 0.4, label="DS", color="tab:blue")
    axis.bar(positions + 0.2, [100.0 * groups[name]["success_rate"] for name in names], 0.4,
             label="success [%]", color="tab:green")
    axis.set(xticks=positions, ylim=(0, 115), title=f"{results['agent']}: per scenario type")
    axis.set_xticklabels(names, rotation=45, ha="right", fontsize=7)
    axis.legend(loc="upper center", ncol=2, fontsize=8)
    figure.tight_layout()
    figure.savefig(paths[2], dpi=100)
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
        ``by_type``: per scenario type, (type, shared routes, DS first, DS second, the DS difference's mean, low,
        high, success first, success second); ``shared_routes`` and the ids only in one run.
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
    by_type = []
    for name, members in group_routes([by_id[0][route_id] for route_id in shared], route_types).items():
        pairs = [(by_id[0][route["route_id"]]["metrics"], by_id[1][route["route_id"]]["metrics"]) for route in members]
        ds = np.array([[a["driving_score"], b["driving_score"]] for a, b in pairs])
        difference = bootstrap_mean_ci(ds[:, 1] - ds[:, 0], samples, confidence, seed)
        success = [float(np.mean([bool(pair[side].get("success")) for pair in pairs])) for side in (0, 1)]
        by_type.append((name, len(pairs), float(ds[:, 0].mean()), float(ds[:, 1].mean()), *difference, *success))
    return {
        "names": (first["agent"], second["agent"]),
        "shared_routes": len(shared),
        "only_first": sorted(set(by_id[0]) - set(shared)),
        "only_second": sorted(set(by_id[1]) - set(shared)),
        "rows": rows,
        "by_type": by_type,
        "collision_kinds": {
            kind: (aggregates[0]["infractions"][kind], aggregates[1]["infractions"][kind]) for kind in COLLISION_KINDS
        }
        if shared
        else {},
        "ds_difference": {"mean": mean, "low": low, "high": high, "confidence": confidence, "samples": samples},
    }
