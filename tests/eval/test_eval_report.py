"""Report helpers: bootstrap intervals, paired comparison, Markdown table."""

from __future__ import annotations

import numpy as np
import pytest

from drivesim.eval.metrics import INFRACTION_TYPES, MEAN_KEYS, aggregate_metrics
from drivesim.eval.report import bootstrap_mean_ci, compare_results, markdown_report


def _run(agent: str, scores: dict[str, float]) -> dict:
    routes = []
    for route_id, score in scores.items():
        metrics = {**dict.fromkeys(MEAN_KEYS, 0.5), "driving_score": score, "distance_km": 1.0,
                   "infractions": dict.fromkeys(INFRACTION_TYPES, 0), "status": "completed",
                   "route_length_m": 500.0, "route_completion": 100.0, "infraction_penalty": score / 100.0,
                   "collisions": 0, "off_road_share": 0.0}
        routes.append({"route_id": route_id, "map": "town", "map_seed": 0, "metrics": metrics})
    return {
        "agent": agent, "sim": "fake", "suite": {"name": "unit"}, "config_hash": "x", "created_utc": "now",
        "code_version": {"package": "0", "git_commit": None},
        "routes": routes, "aggregate": aggregate_metrics([route["metrics"] for route in routes]),
    }


def test_bootstrap_interval_is_seeded_and_covers_the_mean() -> None:
    values = np.random.default_rng(0).normal(50.0, 10.0, 40)
    mean, low, high = bootstrap_mean_ci(values, samples=2000, seed=1)
    assert low < mean < high
    assert (mean, low, high) == bootstrap_mean_ci(values, samples=2000, seed=1)
    assert high - low == pytest.approx(2 * 1.96 * values.std() / np.sqrt(40), rel=0.25)
    constant = bootstrap_mean_ci(np.full(5, 3.0), samples=100)
    assert constant == pytest.approx((3.0, 3.0, 3.0))


def test_compare_pairs_by_route_id() -> None:
    first = _run("a", {"r0": 50.0, "r1": 70.0, "r2": 90.0, "only_a": 0.0})
    second = _run("b", {"r2": 100.0, "r0": 60.0, "r1": 80.0})
    comparison = compare_results(first, second, samples=500, seed=0)
    assert comparison["shared_routes"] == 3
    assert comparison["only_first"] == ["only_a"]
    assert comparison["ds_difference"]["mean"] == pytest.approx(10.0)
    assert comparison["ds_difference"]["low"] == pytest.approx(10.0)  # identical paired differences
    row = next(row for row in comparison["rows"] if row[0] == "driving_score")
    assert row[2:] == pytest.approx((70.0, 80.0, 10.0))


def test_markdown_has_one_row_per_route_and_valid_tables() -> None:
    text = markdown_report(_run("a", {"r0": 50.0, "r1": 70.0}))
    assert "| r0 | town:0 |" in text and "| r1 | town:0 |" in text
    for line in text.splitlines():
        if line.startswith("|"):
            assert line.count("|") in (3, 4, 10), line
