"""Subprocess smoke tests of `drivesim train-wm`, `drivesim eval-wm` and `drivesim bench wm` (tiny budgets)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from drivesim.data.synthetic import write_synthetic_dataset

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _drivesim(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "drivesim.cli.main", *args],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_bench_wm_prints_json_last_line() -> None:
    result = _drivesim(
        "bench",
        "wm",
        "--preset",
        "debug",
        "--precision",
        "32-true",
        "--train-steps",
        "1",
        "--imagine-batch",
        "8",
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    for key in ("train_steps_per_s", "train_frames_per_s", "imagine_steps_per_s", "device", "precision"):
        assert key in report
    assert report["train_frames_per_s"] > 0


def test_train_then_eval_world_model(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_synthetic_dataset(
        data, episodes=4, length=30, seed=1, camera_size=32, bev_size=32, event_probability=0.1
    )
    out = tmp_path / "run"
    config = ROOT / "configs" / "world_model" / "debug.yaml"
    result = _drivesim(
        "train-wm", "--data", str(data), "--out", str(out), "--config", str(config), "--accelerator", "cpu",
        "--devices", "1", "--no-progress", "train.max_steps=2", "train.val_every_steps=2", "train.val_batches=1",
        "train.batch_size=2", "train.window_steps=12", "train.val_fraction=0.25",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    ckpt = out / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()
    result = _drivesim(
        "eval-wm", "--ckpt", str(ckpt), "--data", str(data), "--context", "4", "--horizon", "10",
        "--out", str(tmp_path / "eval"), "--precision", "32-true",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert list(report["horizons"]) == ["10"]
    camera = report["horizons"]["10"]["camera"]
    assert set(camera) == {"posterior", "mode", "sample", "copy_last"} and "ssim" in camera["mode"]
    assert "constant_velocity" in report["horizons"]["10"]["bev"]["vehicles"]
    assert "collision" in report["events_within_1s"]
    assert "horizon 10 steps (0.5 s, " in result.stderr and "positive of" in result.stderr
    assert (tmp_path / "eval" / "camera_mse.png").is_file() and (tmp_path / "eval" / "sample.gif").is_file()
    # action controllability on the embedded simulator (default configs at the model's 32 px)
    result = _drivesim(
        "eval", "controllability", "--ckpt", str(ckpt), "--states", "1", "--context", "4", "--horizon", "20",
        "--out", str(tmp_path / "control"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "control" / "report.json").read_text())
    assert report["states"] == 1 and list(report["counterfactual"]) == ["1"]
    assert set(report["sequences"]) == {"recorded", "hard_left", "hard_right", "full_brake", "full_throttle"}
    assert "ignore-actions" in result.stdout + result.stderr
    result = _drivesim("eval", "controllability", "--ckpt", str(ckpt), "--data", str(data), "--states", "1")
    assert result.returncode == 1 and "no collection config" in result.stderr  # synthetic data: no sim config


def test_train_wm_rejects_a_dataset_of_another_image_size(tmp_path: Path) -> None:
    data = tmp_path / "data64"
    write_synthetic_dataset(data, episodes=2, length=20, seed=0, camera_size=64, bev_size=64)
    config = ROOT / "configs" / "world_model" / "debug.yaml"
    result = _drivesim("train-wm", "--data", str(data), "--out", str(tmp_path / "run"), "--config", str(config))
    assert result.returncode == 1
    assert "64x64" in result.stderr and "32x32" in result.stderr and "encoder.image_size_px" in result.stderr
    assert "mat1 and mat2" not in result.stderr


def test_bad_override_exits_with_code_2(tmp_path: Path) -> None:
    result = _drivesim("bench", "wm", "--preset", "debug", "rssm.no_such_key=1")
    assert result.returncode == 2
    assert "rssm.no_such_key" in result.stderr
