"""Report helpers: bootstrap intervals, paired comparison, Markdown table."""

from __future__ import annotations

import numpy as np
import pytest

from drivesim.eval.breakdown import ability_breakdown, type_breakdown
from drivesim.eval.metrics import INFRACTION_TYPES, MEAN_KEYS, aggregate_metrics
from drivesim.eval.report import bootstrap_mean_ci, compare_results, markdown_report


def _run(agent: str, scores: dict[str, float], types: dict[str, list[str]] | None = None) -> dict:
    routes = []
    for route_id, score in scores.items():
        infractions = dict.fromkeys(INFRACTION_TYPES, 0)
        infractions["collision_vehicle"] = int(score < 100.0)
        metrics = {**dict.fromkeys(MEAN_KEYS, 0.5), "driving_score": score, "distance_km": 1.0, "completed_km": 0.5,
                   "infractions": infractions, "status": "completed", "success": score == 100.0,
                   "route_length_m": 500.0, "route_completion": 100.0, "infraction_penalty": score / 100.0,
                   "collisions": infractions["collision_vehicle"], "off_road_share": 0.0,
                   "infraction_factors": {"collision_vehicle": score / 100.0}}
        scenario_types = (types or {}).get(route_id, [])
        routes.append({"route_id": route_id, "map": "town", "map_seed": 0, "metrics": metrics,
                       "scenario_types": scenario_types})
    return {
        "agent": agent, "sim": "fake", "suite": {"name": "unit"}, "config_hash": "x", "created_utc": "now",
        "code_version": {"package": "0", "git_commit": None},
        "routes": routes, "aggregate": aggregate_metrics([route["metrics"] for route in routes]),
        "by_scenario_type": type_breakdown(routes), "by_ability": ability_breakdown(routes),
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


TYPES = {"r0": ["HardBreakRoute"], "r1": ["HardBreakRoute", "DynamicObjectCrossing"], "r2": []}


def test_compare_per_scenario_type() -> None:
    first = _run("a", {"r0": 50.0, "r1": 70.0, "r2": 90.0}, TYPES)
    second = _run("b", {"r0": 60.0, "r1": 100.0, "r2": 90.0}, TYPES)
    rows = {row[0]: row for row in compare_results(first, second, samples=200)["by_type"]}
    assert set(rows) == {"HardBreakRoute", "DynamicObjectCrossing", "lane_following"}
    name, routes, ds_a, ds_b, mean, low, high, success_a, success_b = rows["HardBreakRoute"]
    assert (routes, ds_a, ds_b, mean) == (2, pytest.approx(60.0), pytest.approx(80.0), pytest.approx(20.0))
    assert (success_a, success_b) == (0.0, 0.5)
    assert rows["lane_following"][4] == pytest.approx(0.0)


def test_markdown_has_one_row_per_route_and_valid_tables() -> None:
    text = markdown_report(_run("a", {"r0": 50.0, "r1": 70.0, "r2": 100.0}, TYPES))
    assert "| r0 | town:0 | HardBreakRoute |" in text and "| r1 | town:0 | HardBreakRoute, DynamicObjectCrossing |" in text
    assert "| r2 | town:0 | lane_following |" in text
    assert "| HardBreakRoute | 2 | 60.0 | 0.00 |" in text and "| lane_following | 1 | 100.0 | 1.00 |" in text
    assert "| emergency_brake | 2 |" in text  # Bench2Drive ability of both types
    assert "| collision_vehicle | 2 | 2 | 1.333 |" in text  # 2 over 1.5 completed route km
    widths = set()
    for line in text.splitlines():
        if line.startswith("|"):
            widths.add(line.count("|"))
    assert widths == {3, 6, 8, 12}, widths  # metric, infraction, group (+1 infraction column) and route tables
