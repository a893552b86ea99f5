"""Proxy arithmetic on hand-made tables: per-policy aggregates, Spearman/Kendall and their bootstrap intervals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from drivesim.eval.proxy import RouteTable, plot_proxy, proxy_correlations, rank_correlations


def _table(ds: list[float], collisions: list[int], km: list[float]) -> RouteTable:
    return RouteTable(np.array(ds, float), np.array(collisions, float), np.array(km, float))


def test_rank_correlations_by_hand() -> None:
    assert rank_correlations([1, 2, 3, 4], [10, 20, 30, 40]) == {"spearman": 1.0, "kendall": 1.0}
    swapped = rank_correlations([1, 2, 3, 4], [10, 30, 20, 40])  # one adjacent pair swapped
    assert swapped["spearman"] == pytest.approx(1 - 6 * 2 / (4 * 15))  # 1 - 6 sum d^2 / (n (n^2 - 1)) = 0.8
    assert swapped["kendall"] == pytest.approx((5 - 1) / 6)  # (concordant - discordant) / pairs
    assert rank_correlations([1, 2, 3], [3, 2, 1])["spearman"] == pytest.approx(-1.0)
    assert np.isnan(rank_correlations([1, 2, 3], [5, 5, 5])["spearman"])  # a constant ranking says nothing


def test_route_table_aggregates_as_the_leaderboard() -> None:
    table = _table([100.0, 50.0, 0.0], [0, 1, 2], [0.2, 0.1, 0.0])
    point = table.aggregate()
    assert point["driving_score"][0] == pytest.approx(50.0)
    assert point["collisions_per_km"][0] == pytest.approx(3 / 0.3)
    resampled = table.aggregate(np.array([[0, 0, 0], [2, 2, 2]]))
    assert resampled["driving_score"].tolist() == [100.0, 0.0]
    assert resampled["collisions_per_km"][1] == pytest.approx(6 / 0.001)  # the Leaderboard's 0.001 km floor


def test_proxy_correlations_of_hand_made_tables(tmp_path: Path) -> None:
    km = [0.1] * 4
    embedded = {"a": [90, 95, 85, 100], "b": [70, 60, 80, 70], "c": [40, 50, 45, 45], "d": [10, 0, 20, 10]}
    dream_same_order = {"a": [80, 85, 75, 90], "b": [60, 50, 70, 60], "c": [30, 40, 35, 35], "d": [5, 0, 10, 5]}
    collisions = {"a": [0, 0, 0, 0], "b": [0, 1, 0, 0], "c": [1, 1, 0, 1], "d": [2, 1, 2, 3]}
    dream_collisions = {"a": [0, 0, 0, 0], "b": [1, 1, 0, 1], "c": [0, 1, 0, 0], "d": [2, 2, 2, 2]}  # b, c swapped
    tables = {name: {"embedded": _table(embedded[name], collisions[name], km),
                     "dream": _table(dream_same_order[name], dream_collisions[name], km)} for name in embedded}
    report = proxy_correlations(tables, samples=500, seed=1)
    ds = report["driving_score"]
    assert ds["spearman"] == pytest.approx(1.0) and ds["kendall"] == pytest.approx(1.0)
    assert ds["spearman_low"] <= 1.0 and ds["spearman_high"] == pytest.approx(1.0)
    per_km = report["collisions_per_km"]
    assert per_km["spearman"] == pytest.approx(0.8) and per_km["kendall"] == pytest.approx(4 / 6)
    assert -1.0 <= per_km["spearman_low"] <= per_km["spearman"] <= per_km["spearman_high"] <= 1.0
    assert report["policies"]["b"]["embedded_driving_score"] == pytest.approx(70.0)
    assert report["policies"]["d"]["dream_collisions_per_km"] == pytest.approx(8 / 0.4)
    assert report["num_policies"] == 4 and report["num_routes"] == 4
    json.dumps(report)  # JSON-ready
    plot_proxy(report, tmp_path / "proxy.png")
    assert (tmp_path / "proxy.png").stat().st_size > 1000


def test_cli_eval_proxy_smoke(tmp_path: Path) -> None:
    """`drivesim eval proxy` on one short route with an untrained debug world model (numbers meaningless)."""
    import subprocess
    import sys

    import torch

    from drivesim.config import load_config
    from drivesim.eval.routes import RouteSpec, RouteSuite, save_suite
    from drivesim.world_model.config import WorldModelConfig
    from drivesim.world_model.model import WorldModel

    root = Path(__file__).resolve().parents[2]
    config = load_config(WorldModelConfig, root / "configs" / "world_model" / "debug.yaml")
    torch.manual_seed(0)
    checkpoint = tmp_path / "wm.ckpt"
    torch.save({"config": config.model_dump(mode="json"), "state_dict": WorldModel(config).state_dict()}, checkpoint)
    routes = [RouteSpec(id=f"s{i}", map="straight", seed=i, npcs=0, start=(0.0, 0.0, 0.0), goal=(30.0, 0.0),
                        segments=[0], start_s_m=0.0, length_m=30.0) for i in range(1)]
    save_suite(RouteSuite(name="one_straight", routes=routes), tmp_path / "suite.yaml")
    result = subprocess.run(
        [sys.executable, "-m", "drivesim.cli.main", "eval", "proxy", "--wm", str(checkpoint), "--routes",
         str(tmp_path / "suite.yaml"), "--out", str(tmp_path / "proxy"), "--no-reference", "--no-progress",
         "--samples", "100", "-a", "expert=expert", "-a", "constant=constant:0.5", "-a", "stop=constant:0,0,1",
         "check_routes=false", "scoring=leaderboard-1.0", "route_timeout_s_per_m=0.3", "route_timeout_initial_s=0",
         "blocked_limit_s=2", "sensors.bev.size_px=32", "sensors.camera=null"],
        cwd=root, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "proxy" / "proxy.json").read_text())
    assert set(report["policies"]) == {"expert", "constant", "stop"}
    assert (tmp_path / "proxy" / "proxy.png").is_file() and "Spearman" in result.stdout
    dream = json.loads((tmp_path / "proxy" / "dream" / "stop" / "results.json").read_text())
    assert dream["sim"] == "dream" and len(dream["routes"]) == 1
