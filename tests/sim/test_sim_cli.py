"""Smoke tests of the simulator's CLI commands (subprocess, tiny budgets)."""

import json
import subprocess
import sys


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "drivesim.cli.main", *args], capture_output=True, text=True, timeout=120)


def test_bench_sim_prints_json_last_line():
    result = run_cli("bench", "sim", "--map", "junction", "--npcs", "4", "--steps", "50", "--sensors", "bev")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert record["steps"] == 50 and record["steps_per_s"] > 0 and record["sensors"] == ["bev"]


def test_drive_prints_summary_and_bad_config_key_fails(tmp_path):
    result = run_cli("drive", "--map", "junction", "--episodes", "1", "traffic.npcs=2", "episode.max_steps=40")
    assert result.returncode == 0, result.stderr
    assert "clean driver on junction" in result.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("traffic:\n  npcz: 3\n")
    result = run_cli("drive", "--config", str(bad))
    assert result.returncode == 2
    assert "traffic.npcz" in result.stderr and "bad.yaml" in result.stderr
