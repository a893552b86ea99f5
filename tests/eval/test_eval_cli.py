"""Subprocess smoke tests of `drivesim eval make-suite`, `eval run` (and the `eval --agent` shorthand), `eval compare`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from drivesim.eval.routes import RouteSuite, load_network, load_suite, save_suite
from drivesim.eval.runner import run_suite
from drivesim.scenarios.spec import ScenarioSpec

ROOT = Path(__file__).resolve().parents[2]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "drivesim.cli.main", "eval", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def short_suite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated 2-route suite, shortened so that the fake simulator runs it in a blink."""
    path = tmp_path_factory.mktemp("suite") / "tiny.yaml"
    result = _cli("make-suite", "--seed", "7", "--out", str(path), "--maps", "straight:0", "-n", "2")
    assert result.returncode == 0, result.stderr
    suite = load_suite(path)
    assert len(suite.routes) == 2 and suite.generator["seed"] == 7
    network = load_network("straight", 0)
    routes = [
        route.model_copy(
            update={"length_m": 50.0, "goal": tuple(network.route_through(route.segments, route.start_s_m, 50.0).points[-1]),
                    "scenarios": [ScenarioSpec(type="HardBreakRoute", trigger_route_s=10.0)] if index else []}
        )
        for index, route in enumerate(suite.routes)
    ]
    save_suite(RouteSuite(name="tiny", routes=routes), path)
    return path


def test_eval_run_and_shorthand(short_suite: Path, tmp_path: Path) -> None:
    common = ["--routes", str(short_suite), "--sim", "fake", "--no-progress"]
    result = _cli("run", "--agent", "expert", "--out", str(tmp_path / "expert"), *common, "check_routes=false")
    assert result.returncode == 0, result.stderr
    assert "driving score" in result.stdout and "per scenario type" in result.stdout
    results = json.loads((tmp_path / "expert" / "results.json").read_text())
    assert results["aggregate"]["success_rate"] == 1.0 and results["aggregate"]["route_completion"] == 100.0
    assert set(results["by_scenario_type"]) == {"HardBreakRoute", "lane_following"}
    result = _cli("--agent", "constant", "--out", str(tmp_path / "constant"), *common)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "constant" / "results.md").is_file()
    bad = _cli("run", "--agent", "expert", "--out", str(tmp_path / "bad"), *common, "no_such_key=1")
    assert bad.returncode == 2 and "unknown key" in bad.stderr


def test_eval_compare(short_suite: Path, tmp_path: Path) -> None:
    for agent in ("expert", "random"):
        run_suite(load_suite(short_suite), agent, tmp_path / agent, sim="fake", show_progress=False)
    result = _cli("compare", str(tmp_path / "expert"), str(tmp_path / "random"), "--samples", "200")
    assert result.returncode == 0, result.stderr
    assert "bootstrap CI" in result.stdout and "driving score" in result.stdout
    assert "HardBreakRoute" in result.stdout and "lane_following" in result.stdout
