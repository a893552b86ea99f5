"""Subprocess smoke tests of `drivesim collect`, `drivesim data info|verify` and `drivesim bench data`."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import typer
from typer.testing import CliRunner

from drivesim.cli.data_commands import register

REPO = Path(__file__).resolve().parents[2]

SMALL_SENSORS = ["sensors.bev.size_px=16", "sensors.camera.width_px=16", "sensors.camera.height_px=16"]


def _drivesim(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "drivesim.cli.main", *args], capture_output=True, text=True, timeout=120
    )


def test_collect_info_verify(tmp_path: Path) -> None:
    out = tmp_path / "data"
    result = _drivesim(
        "collect", "--sim", "fake", "--episodes", "4", "--out", str(out), "--seed", "2", "--workers", "1", *SMALL_SENSORS
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1])["collected"] == 4

    result = _drivesim("data", "info", str(out), "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["episodes"] == 4 and info["frames"] > 4 * 20 and info["km"] > 0

    assert _drivesim("data", "verify", str(out)).returncode == 0
    camera = out / "ep_000002" / "camera.npy"
    camera.write_bytes(camera.read_bytes()[:-10])
    result = _drivesim("data", "verify", str(out), "--quarantine")
    assert result.returncode == 1 and "ep_000002" in result.stdout and "camera.npy" in result.stdout
    assert (out / "quarantine" / "ep_000002").is_dir()


def test_bench_data_synthetic() -> None:
    # In-process (torch is already imported here) on an app holding only this stage's commands.
    app, bench_app = typer.Typer(), typer.Typer()
    app.add_typer(bench_app, name="bench")
    register(app, bench_app)
    args = ["--synthetic", "--workers", "0", "--batches", "3", "--window", "8", "--batch-size", "4"]
    args += ["--synthetic-episodes", "2", "--synthetic-length", "40", "--image-size", "16"]
    result = CliRunner().invoke(app, ["bench", "data", *args])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output.strip().splitlines()[-1])["frames_per_s"] > 0


def _module_level_imports(module: str, seen: set[str]) -> set[str]:
    """Top-level package names imported at module level by ``module`` and the drivesim modules it imports."""
    if module in seen:
        return set()
    seen.add(module)
    path = REPO / Path(*module.split("."))
    file = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    if not file.is_file():
        return set()
    found: set[str] = set()
    parents = [".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)]
    for parent in parents:  # importing a.b.c runs a/__init__.py and a/b/__init__.py first
        found |= _module_level_imports(parent, seen)
    for node in ast.parse(file.read_text()).body:
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            if name.startswith("drivesim"):
                found |= _module_level_imports(name, seen)
            else:
                found.add(name.split(".")[0])
    return found


def test_training_side_imports_no_simulator_or_gui_packages() -> None:
    seen: set[str] = set()
    modules = ("dataset", "episode", "recorder", "verify", "info")
    imported = set().union(*(_module_level_imports(f"drivesim.data.{name}", seen) for name in modules))
    assert {"numpy", "torch"} <= imported
    assert not imported & {"carla", "cv2", "pygame"}, sorted(imported)


def test_collect_refuses_several_workers_on_one_carla_server(tmp_path: Path) -> None:
    app, bench_app = typer.Typer(), typer.Typer()
    app.add_typer(bench_app, name="bench")
    register(app, bench_app)
    args = ["collect", "--sim", "carla", "--workers", "3", "--port", "2000", "--out", str(tmp_path / "data")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    assert "--workers 3 --sim carla" in result.output and "its own CARLA server" in result.output
    assert not (tmp_path / "data").exists()


def test_collect_takes_one_worker_per_carla_server(tmp_path: Path) -> None:
    app, bench_app = typer.Typer(), typer.Typer()
    app.add_typer(bench_app, name="bench")
    register(app, bench_app)
    common = ["collect", "--sim", "carla", "--out", str(tmp_path / "data")]
    result = CliRunner().invoke(app, [*common, "--workers", "3", "--port", "2000,2010"])
    assert result.exit_code == 1 and "2 servers are given" in result.output
    result = CliRunner().invoke(app, [*common, "--port", "2000,x"])
    assert result.exit_code == 2 and "comma-separated ports" in result.output
