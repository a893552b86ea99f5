"""Evaluation stage: can the learned simulator rank policies like the embedded one? (``drivesim eval proxy``)

A panel of policies runs the same suite in the embedded simulator and in the dream (``--sim dream``). Per policy:
the Leaderboard aggregate DS and collisions per km in each. Across the panel: Spearman and Kendall rank
correlations (``scipy.stats``) of dream vs embedded, with percentile bootstrap intervals over routes (the same
resampled routes for every policy and both simulators, so the interval carries the route sampling noise). The
nearest published anchors: NAVSIM v2 pseudo-simulation R^2 = 0.8 against closed loop; WorldGym r ~ 0.78.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from drivesim import spec
from drivesim.eval.leaderboard import COLLISION_KINDS, MIN_COMPLETED_KM
from drivesim.utils import atomic_write_json

logger = logging.getLogger(__name__)

METRICS: tuple[str, ...] = ("driving_score", "collisions_per_km")
SIMULATORS: tuple[str, ...] = ("embedded", "dream")
DEFAULT_PANEL: tuple[tuple[str, str], ...] = (
    ("expert", "expert"),
    ("careless", "careless"),
    ("noisy", "noisy"),
    ("constant", "constant:0.5"),
    ("random", "random"),
)


@dataclass(frozen=True)
class RouteTable:
    """One policy's per-route numbers in one simulator, in the suite's route order (arrays (R,))."""

    driving_score: np.ndarray
    collisions: np.ndarray
    completed_km: np.ndarray

    @classmethod
    def from_results(cls, results: Mapping[str, Any], route_ids: Sequence[str]) -> RouteTable:
        """From a ``results.json`` document, restricted to (and ordered by) ``route_ids``."""
        by_id = {route["route_id"]: route["metrics"] for route in results["routes"]}
        missing = [route_id for route_id in route_ids if route_id not in by_id]
        if missing:
            raise ValueError(f"results of {results.get('agent')} lack routes {missing}")
        rows = [by_id[route_id] for route_id in route_ids]
        return cls(
            np.array([row["driving_score"] for row in rows], dtype=np.float64),
            np.array([sum(row["infractions"].get(kind, 0) for kind in COLLISION_KINDS) for row in rows], np.float64),
            np.array([row["completed_km"] for row in rows], dtype=np.float64),
        )

    def aggregate(self, rows: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Mean DS and collisions per completed km (the Leaderboard's aggregates) over ``rows``.

        ``rows`` (S, R) holds S resamples of route indices; None uses every route once. Returns arrays (S,).
        """
        rows = np.arange(len(self.driving_score))[None] if rows is None else rows
        km = np.maximum(self.completed_km[rows].sum(-1), MIN_COMPLETED_KM)
        return {"driving_score": self.driving_score[rows].mean(-1), "collisions_per_km": self.collisions[rows].sum(-1) / km}


def rank_correlations(embedded: Sequence[float], dream: Sequence[float]) -> dict[str, float]:
    """Spearman's rho and Kendall's tau-b of two score lists (NaN when either is constant)."""
    x, y = np.asarray(embedded, np.float64), np.asarray(dream, np.float64)
    if len(x) < 2 or np.ptp(x) == 0.0 or np.ptp(y) == 0.0:
        return {"spearman": float("nan"), "kendall": float("nan")}
    return {"spearman": float(stats.spearmanr(x, y).statistic), "kendall": float(stats.kendalltau(x, y).statistic)}


def proxy_correlations(
    tables: Mapping[str, Mapping[str, RouteTable]], samples: int = 2000, confidence: float = 0.95, seed: int = 0
) -> dict[str, Any]:
    """Rank correlations of dream vs embedded aggregates across policies, with bootstrap intervals over routes.

    Args:
        tables: policy name -> {"embedded": RouteTable, "dream": RouteTable}, all over the same routes.
        samples: bootstrap resamples of the routes.
        confidence: interval coverage.
        seed: bootstrap seed.

    Returns:
        ``policies`` (per-policy aggregates), and per metric its ``spearman``/``kendall`` with ``low``/``high``
        bounds and the number of resamples where the correlation was defined.
    """
    names = list(tables)
    routes = len(next(iter(tables[names[0]].values())).driving_score)
    rows = np.random.default_rng(seed).integers(routes, size=(samples, routes))
    point = {name: {sim: tables[name][sim].aggregate() for sim in SIMULATORS} for name in names}
    boot = {name: {sim: tables[name][sim].aggregate(rows) for sim in SIMULATORS} for name in names}
    result: dict[str, Any] = {
        "policies": {name: {f"{sim}_{metric}": float(point[name][sim][metric][0]) for sim in SIMULATORS
                            for metric in METRICS} for name in names},
        "num_policies": len(names),
        "num_routes": routes,
        "bootstrap": {"samples": samples, "confidence": confidence, "seed": seed},
    }
    tail = 100.0 * (1.0 - confidence) / 2.0
    for metric in METRICS:
        entry: dict[str, Any] = rank_correlations(
            [point[name]["embedded"][metric][0] for name in names], [point[name]["dream"][metric][0] for name in names]
        )
        draws = [rank_correlations([boot[name]["embedded"][metric][s] for name in names],
                                   [boot[name]["dream"][metric][s] for name in names]) for s in range(samples)]
        for kind in ("spearman", "kendall"):
            values = np.array([draw[kind] for draw in draws])
            values = values[np.isfinite(values)]
            low, high = np.percentile(values, [tail, 100.0 - tail]) if len(values) else (float("nan"),) * 2
            entry[f"{kind}_low"], entry[f"{kind}_high"] = float(low), float(high)
            entry[f"{kind}_defined_samples"] = len(values)
        result[metric] = entry
    return result


def plot_proxy(report: Mapping[str, Any], path: str | Path) -> None:
    """Scatter of dream vs embedded DS and collisions/km, one labelled point per policy (a PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    for axis, metric, label in zip(axes, METRICS, ("driving score", "collisions per km"), strict=True):
        for name, row in report["policies"].items():
            x, y = row[f"embedded_{metric}"], row[f"dream_{metric}"]
            axis.scatter([x], [y])
            axis.annotate(name, (x, y), textcoords="offset points", xytext=(4, 3), fontsize=8)
        values = [row[f"{sim}_{metric}"] for row in report["policies"].values() for sim in SIMULATORS]
        low, high = min(values), max(values)
        axis.plot([low, high], [low, high], color="grey", linestyle=":")
        entry = report[metric]
        axis.set(xlabel=f"embedded {label}", ylabel=f"dream {label}",
                 title=f"Spearman {format_number(entry['spearman'])}, Kendall {format_number(entry['kendall'])}")
    figure.suptitle(report.get("title", "dream vs embedded"), fontsize=9)
    figure.tight_layout()
    temporary = Path(path).with_suffix(".tmp.png")
    figure.savefig(temporary, dpi=110)
    plt.close(figure)
    temporary.replace(path)


def format_number(value: float | None) -> str:
    """A correlation for display: two decimals, "n/a" when undefined."""
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.2f}"


def run_proxy(
    panel: Sequence[tuple[str, str]],
    suite: Any,
    world_model: str | Path,
    out_dir: str | Path,
    config: Any = None,
    workers: int = 1,
    samples: int = 2000,
    seed: int = 0,
    suite_path: str | None = None,
    show_progress: bool = False,
    label: str = "",
) -> dict[str, Any]:
    """Run every (name, agent) of ``panel`` on ``suite`` in both simulators and write ``proxy.json``/``proxy.png``.

    Each run is an ordinary ``run_suite`` output folder (``OUT/<sim>/<name>``), resumed when already there.
    """
    from drivesim.eval.agents import make_agent
    from drivesim.eval.config import EvalConfig
    from drivesim.eval.runner import run_suite

    config = config or EvalConfig()
    out_dir = Path(out_dir)
    route_ids = [route.id for route in suite.routes]
    tables: dict[str, dict[str, RouteTable]] = {}
    for name, agent in panel:
        tables[name] = {}
        reads_images = bool({spec.OBS_BEV, spec.OBS_CAMERA} & set(make_agent(agent, config).observation_keys))
        dream_config = config.model_copy(update={"dream": config.dream.model_copy(update={"decode_images": reads_images})})
        for sim in SIMULATORS:
            logger.info("proxy: %s (%s) in the %s simulator", name, agent, sim)
            results = run_suite(suite, agent, out_dir / sim / name, dream_config if sim == "dream" else config, sim,
                                workers, show_progress=show_progress, suite_path=suite_path,
                                world_model=world_model if sim == "dream" else None)
            tables[name][sim] = RouteTable.from_results(results, route_ids)
    report = proxy_correlations(tables, samples, seed=seed)
    report.update(suite=getattr(suite, "name", ""), suite_path=suite_path, world_model=str(world_model),
                  panel=[{"name": name, "agent": agent} for name, agent in panel],
                  title=f"{label + ': ' if label else ''}{len(panel)} policies, {len(route_ids)} routes of {suite.name}")
    plot_proxy(report, out_dir / "proxy.png")
    report = _json_ready(report)
    atomic_write_json(out_dir / "proxy.json", report)
    return report


def _json_ready(value: Any) -> Any:
    """NaN (an undefined correlation: a constant ranking) as None, so that the file is strict JSON."""
    if isinstance(value, dict):
        return {key: _json_ready(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_ready(item) for item in value]
    return None if isinstance(value, float) and not np.isfinite(value) else value
