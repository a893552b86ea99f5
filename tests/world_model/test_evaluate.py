"""Open-loop evaluation: baselines on hand-made sequences, torchmetrics-based scores, refused AUROCs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchmetrics.classification import MultilabelF1Score

from drivesim import spec
from drivesim.world_model.baselines import constant_velocity_bev, speed_distance_score
from drivesim.world_model.eval_report import key_figures, summary_lines
from drivesim.world_model.evaluate import OpenLoopEvaluator
from drivesim.world_model.metrics import BevScores, CameraScores, EventScores, ThresholdSweep
from drivesim.world_model.model import WorldModel

VEHICLES = spec.BEV_CHANNELS.index("vehicles")
EGO = spec.BEV_CHANNELS.index("ego")
DRIVABLE = spec.BEV_CHANNELS.index("drivable")
SIZE = 32  # the debug preset's image size


def _moving_cars(steps: int, size: int = SIZE) -> np.ndarray:
    """(T, C, S, S) BEV: one car closing in at 1 px/step, one crossing at 1 px/step, one parked."""
    bev = np.zeros((steps, len(spec.BEV_CHANNELS), size, size), dtype=np.uint8)
    bev[:, DRIVABLE, :, 8:24] = 1
    bev[:, EGO, 24:28, 14:18] = 1
    for t in range(steps):
        bev[t, VEHICLES, 1 + t // 2 : 4 + t // 2, 12:15] = 1  # 0.5 px/step toward the ego
        bev[t, VEHICLES, 18:20, t : t + 3] = 1  # 1 px/step to the right
        bev[t, VEHICLES, 2:5, 26:28] = 1  # parked
    return bev


def test_constant_velocity_is_exact_for_cars_at_constant_speed() -> None:
    bev = _moving_cars(20)
    last, gap, horizons = 7, 4, [2, 4, 8, 12]
    predicted = constant_velocity_bev(bev[None, last - gap], bev[None, last], gap, horizons)[0]
    for index, steps in enumerate(horizons):
        truth = bev[last + steps].astype(bool)
        assert np.array_equal(predicted[index, VEHICLES], truth[VEHICLES]), f"horizon {steps}"
        assert np.array_equal(predicted[index, DRIVABLE], bev[last, DRIVABLE].astype(bool))  # layers copied
    assert not np.array_equal(bev[last, VEHICLES], bev[last + 4, VEHICLES])  # constant position is not exact


def _hand_made_batch(batch_size: int, steps: int) -> dict[str, torch.Tensor]:
    bev = torch.from_numpy(np.stack([_moving_cars(steps)] * batch_size))
    camera = torch.zeros(batch_size, steps, SIZE, SIZE, 3, dtype=torch.uint8)
    for t in range(steps):
        camera[:, t, :, :, 0] = 8 * t  # the frame brightens: copy-last is wrong by a known amount
    shape = (batch_size, steps)
    events = torch.zeros(*shape, len(spec.EVENT_NAMES))
    events[..., spec.EVENT_NAMES.index("progress_m")] = 0.4
    return {
        "camera": camera,
        "bev": bev,
        "measurements": torch.zeros(*shape, len(spec.MEASUREMENT_NAMES)),
        "events": events,
        "action": torch.zeros(*shape, 3),
        "is_first": torch.zeros(shape, dtype=torch.bool),
        "is_last": torch.zeros(shape, dtype=torch.bool),
        "is_terminal": torch.zeros(shape, dtype=torch.bool),
    }


def test_evaluator_scores_the_baselines_on_the_right_rows(debug_config) -> None:
    torch.manual_seed(0)
    model = WorldModel(debug_config).eval()
    context, horizon = 8, 20
    evaluator = OpenLoopEvaluator(model, context, horizon, velocity_gap_steps=4)
    with torch.no_grad():
        evaluator.add(_hand_made_batch(2, context + horizon))
    report = evaluator.report()
    assert list(report["horizons"]) == ["10", "20"]
    for steps, entry in report["horizons"].items():
        vehicles = entry["bev"]["vehicles"]
        assert vehicles["constant_velocity"]["f1"] == pytest.approx(1.0), steps
        assert vehicles["constant_velocity"]["iou_best"] == pytest.approx(1.0), steps
        assert vehicles["constant_position"]["f1"] < 0.6, steps
        assert set(vehicles) == {"posterior", "mode", "sample", "constant_position", "constant_velocity"}
        assert entry["bev"]["walkers"] == {p: {"positives": 0} for p in vehicles}  # nothing to score
        # copy-last is off by 8 * steps grey levels in the red channel: MSE = (8 h / 255)^2 / 3
        expected = (8 * int(steps) / 255) ** 2 / 3
        assert entry["camera"]["copy_last"]["mse"] == pytest.approx(expected, rel=1e-4)
        assert set(entry["camera"]) == {"posterior", "mode", "sample", "copy_last"}
        assert entry["progress_mae_m"]["mode"] >= 0
    assert len(report["curves"]["camera_mse_copy_last"]) == horizon
    assert report["events_within_1s"]["collision"]["positives"] == 0
    lines = summary_lines(report)
    assert any("vehicles F1" in line for line in lines) and any("no AUROC" in line for line in lines)
    assert any("camera PSNR" in label for label, _ in key_figures(report))


def test_threshold_sweep_agrees_with_torchmetrics_and_finds_low_thresholds() -> None:
    generator = torch.Generator().manual_seed(0)
    probs = torch.rand(4, 3, 16, 16, generator=generator)
    target = (torch.rand(4, 3, 16, 16, generator=generator) < 0.3).long()
    sweep = ThresholdSweep(3)
    sweep.update(probs, target)
    half = list(sweep.thresholds).index(0.5)
    reference = MultilabelF1Score(num_labels=3, threshold=0.5, average=None)(probs, target)
    assert torch.allclose(sweep.compute()["f1"][:, half].float(), reference, atol=1e-6)
    # An under-confident model: 0.2 on the car's pixels, 0.01 elsewhere: F1 0 at 0.5, 1 at a low threshold.
    truth = torch.zeros(2, 1, 8, 8, dtype=torch.long)
    truth[:, :, 2:4, 2:4] = 1
    scores = BevScores(("vehicles",))
    scores.update(torch.where(truth.bool(), 0.2, 0.01), truth)
    result = scores.compute()["vehicles"]
    assert result["f1"] == 0.0 and result["f1_best"] == pytest.approx(1.0) and result["iou_best"] == pytest.approx(1.0)
    assert 0.01 < result["threshold_best"] <= 0.2 and result["positives"] == 8


def test_auroc_is_refused_below_20_positives_and_counts_are_reported() -> None:
    few = EventScores(("mode",))
    labels = torch.zeros(200, dtype=torch.bool)
    labels[:19] = True
    few.update(labels, {"mode": labels.float() * 0.9})
    report = few.compute()
    assert report["positives"] == 19 and report["windows"] == 200
    assert report["mode"]["auroc"] is None and report["mode"]["ap"] is None
    assert "19 positive" in report["refused"] and "no AUROC" in report["refused"]
    assert report["mode"]["calibration_error"] == pytest.approx((19 * 0.1 + 0) / 200, abs=1e-6)
    enough = EventScores(("mode",))
    labels[:25] = True
    enough.update(labels, {"mode": labels.float() * 0.9})
    report = enough.compute()
    assert "refused" not in report and report["mode"]["auroc"] == pytest.approx(1.0)
    assert report["mode"]["ap"] == pytest.approx(1.0)


def test_speed_distance_baseline_reads_the_corridor_ahead() -> None:
    bev = np.zeros((3, len(spec.BEV_CHANNELS), 64, 64), dtype=np.uint8)
    bev[:, EGO, 44:52, 30:34] = 1  # front row 44, 2 m wide at 0.5 m/px
    bev[:, DRIVABLE] = 1
    bev[0, VEHICLES, 20:25, 30:34] = 1  # rear at row 24, 20 px = 10 m ahead: reached within 1 s at 10 m/s
    bev[1, VEHICLES, 0:5, 30:34] = 1  # 20 m ahead: half way
    bev[2, VEHICLES, 20:25, 50:54] = 1  # beside the corridor
    scores = speed_distance_score(bev, np.array([10.0, 10.0, 10.0]), "collision", 1.0, 0.5)
    assert scores.tolist() == pytest.approx([1.0, 0.5, 0.0])
    bev[:, DRIVABLE, :25] = 0  # the road ends 10 m ahead
    assert speed_distance_score(bev, np.array([5.0, 0.0, 5.0]), "off_road", 1.0, 0.5).tolist() == pytest.approx(
        [0.5, 0.0, 0.5]
    )


def test_demo_summary_prints_the_new_metrics(debug_config, tmp_path, monkeypatch) -> None:
    import json
    import subprocess

    from rich.console import Console

    from drivesim.cli import demo_commands

    torch.manual_seed(0)
    evaluator = OpenLoopEvaluator(WorldModel(debug_config).eval(), 8, 20)
    with torch.no_grad():
        evaluator.add(_hand_made_batch(2, 28))
    (tmp_path / "wm_eval").mkdir()
    (tmp_path / "wm_eval" / "report.json").write_text(json.dumps(evaluator.report()))
    monkeypatch.setattr(demo_commands.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 1, "", ""))
    console = Console(width=200, record=True)
    console.print(demo_commands._summary(tmp_path, {"train-wm": 1.0}))
    text = console.export_text()
    for expected in ("camera PSNR at 1 s", "copy-last", "const-vel", "collision within 1 s", "AUROC not reported"):
        assert expected in text, expected


def test_camera_scores_are_computed_in_float32_under_bf16_autocast() -> None:
    real = torch.full((2, 32, 32, 3), 0.4)  # flat road and sky with a lane line: small local variances,
    real[:, :16] = 0.7  # which bf16 convolutions get wrong (SSIM 0.68 instead of 0.65 here, < 0 on driving frames)
    real[:, :, 10] = 0.9
    predicted = real.clone()
    predicted[:, :, 10], predicted[:, :, 11] = 0.4, 0.9  # the line one pixel to the right
    plain = CameraScores()
    plain.update(predicted, real)
    mixed = CameraScores()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed.update(predicted, real)
    assert mixed.compute() == pytest.approx(plain.compute(), rel=1e-5)
    assert 0.5 < plain.compute()["ssim"] < 0.8


def _episode_with_collision(length: int, collision_step: int, terminated: bool, seed: int) -> dict[str, np.ndarray]:
    from drivesim.data.synthetic import synthetic_steps

    steps = synthetic_steps(length, np.random.default_rng(seed), camera_size=SIZE, bev_size=SIZE)
    steps["events"][collision_step, spec.EVENT_NAMES.index("collision")] = 1.0
    steps["is_terminal"][-1] = terminated
    return steps


def test_anchors_before_a_terminal_collision_are_evaluated_and_counted_right(debug_config, tmp_path) -> None:
    from drivesim.data.episode import write_episode
    from drivesim.world_model.evaluate import heldout_loader
    from drivesim.world_model.train import model_fields

    meta = {"simulator": "synthetic", "map_name": "none", "seed": 0, "driver": "clean", "dt_s": 0.05}
    # ep 0: 150 steps ended by a collision at its last step; ep 1: 120 steps, a collision at step 60, truncated.
    write_episode(tmp_path, 0, _episode_with_collision(150, 149, True, 0), meta)
    write_episode(tmp_path, 1, _episode_with_collision(120, 60, False, 1), meta)
    context, horizon, stride = 8, 40, 3
    loader = heldout_loader(tmp_path, model_fields(debug_config), context + horizon, 16, 0.0, 0, True, stride, context)
    torch.manual_seed(0)
    model = WorldModel(debug_config).eval()
    evaluator = OpenLoopEvaluator(model, context, horizon)
    events_only = OpenLoopEvaluator(model, context, horizon, images=False)
    with torch.no_grad():
        for batch in loader:
            evaluator.add(batch)
            events_only.add(batch)
    report = evaluator.report()
    fast = events_only.report()  # no frames decoded: the same event figures, no image ones
    assert fast["events_within_1s"] == report["events_within_1s"]
    assert "camera" not in fast["horizons"]["10"] and "camera" in report["horizons"]["10"]
    # By hand: anchors a = 7 + 3k up to the second-to-last step: 48 in ep 0 (a <= 148), 38 in ep 1 (a <= 118).
    assert report["sequences"] == 48 + 38
    # A collision within 1 s of a: a < c <= a + 20. Ep 0 (c = 149): a = 130..148, k = 41..47: 7 positives, and
    # all 48 anchors count (a full second seen, or the episode was terminated within it). Ep 1 (c = 60):
    # a = 40..58, k = 11..17: 7 positives; its last 7 anchors (a >= 100) see less than 1 s of a truncated
    # episode without an event: unknown, left out (31 counted).
    collision = report["events_within_1s"]["collision"]
    assert collision["positives"] == 7 + 7
    assert collision["windows"] == 48 + 31
    # Horizon h counts anchors with a + h inside the episode: h = 10: a <= 139 / 109; 20: a <= 129 / 99; 40: a <= 109 / 79.
    assert [report["horizons"][h]["windows"] for h in ("10", "20", "40")] == [45 + 35, 41 + 31, 35 + 25]
    curve = report["curves"]["camera_mse_copy_last"]
    assert len(curve) == horizon and all(np.isfinite(curve))
