"""Slow learning test: the debug world model learns a toy driving world (minutes on a CPU).

The toy world is written with ``drivesim.data.episode.write_episode``: the ego drives along a straight road
whose dashed centre line scrolls with the speed; in half of the episodes a stopped car stands ahead and the
ego hits it (collision, terminal) unless it brakes. Collisions are therefore predictable from the images and
the speed, and 1 s-ahead frames differ from the last context frame (scrolling dashes, approaching car).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from drivesim import spec
from drivesim.data.episode import write_episode
from drivesim.world_model.evaluate import evaluate_open_loop, heldout_loader
from drivesim.world_model.model import load_world_model
from drivesim.world_model.train import model_fields, train_world_model

SIZE = 32  # [px], the debug preset's image size
DT = 0.05  # [s]
M_PER_PX = 1.0  # BEV resolution [m/px]
EGO_ROW = 24  # BEV row of the ego's front


def _render(distance_m: float | None, odometer_m: float) -> tuple[np.ndarray, np.ndarray]:
    """BEV (C, S, S) and camera (S, S, 3) of the toy road for an obstacle ``distance_m`` ahead (None: none)."""
    channel = spec.BEV_CHANNELS.index
    bev = np.zeros((len(spec.BEV_CHANNELS), SIZE, SIZE), dtype=np.uint8)
    bev[channel("drivable"), :, 8:24] = 1
    dash_rows = (np.arange(SIZE) + int(odometer_m / M_PER_PX)) % 6 < 3
    bev[channel("lane_markings"), dash_rows, 15:17] = 1  # scrolling
    bev[channel("route"), :EGO_ROW, 19:21] = 1
    bev[channel("ego"), EGO_ROW : EGO_ROW + 4, 17:22] = 1
    camera = np.zeros((SIZE, SIZE, 3), dtype=np.uint8)
    camera[: SIZE // 2] = (90, 140, 220)  # sky
    camera[SIZE // 2 :] = (70, 70, 70)  # road
    camera[SIZE // 2 :, :, 1] += 120 * dash_rows[SIZE // 2 :, None].astype(np.uint8)  # scrolling texture
    if distance_m is not None:
        row = int(round(EGO_ROW - distance_m / M_PER_PX))
        if row > -3:
            bev[channel("vehicles"), max(row - 3, 0) : max(row, 0) + 1, 17:22] = 1
        half = int(np.clip(40.0 / max(distance_m, 1.0), 1, SIZE // 2))
        top = SIZE // 2 - 1
        camera[top - half // 2 : top + half, SIZE // 2 - half : SIZE // 2 + half] = (220, 40, 40)
    return bev, camera


def _toy_episode(rng: np.random.Generator, length: int = 120) -> dict[str, np.ndarray]:
    obstacle = rng.random() < 0.5
    distance = float(rng.uniform(10.0, 30.0)) if obstacle else None
    speed, odometer = float(rng.uniform(6.0, 10.0)), 0.0
    rows: dict[str, list] = {name: [] for name in ("bev", "camera", "measurements", "events", "action")}
    prev_action = np.zeros(3, dtype=np.float32)
    collided = False
    for t in range(length):
        progress = speed * DT if t > 0 else 0.0
        odometer += progress
        if distance is not None and t > 0:
            distance -= progress
        collided = distance is not None and distance <= 0.5
        bev, camera = _render(distance, odometer)
        throttle = float(rng.uniform(0.2, 0.8))
        brake = float(rng.random() < 0.1) * 0.5
        action = np.array([throttle, 0.0, brake], dtype=np.float32)
        rows["bev"].append(bev)
        rows["camera"].append(camera)
        rows["measurements"].append([speed, 0.0, 0.0, *prev_action[[1, 0, 2]]])
        events = np.zeros(len(spec.EVENT_NAMES), dtype=np.float32)
        events[[spec.EVENT_NAMES.index(n) for n in ("collision", "progress_m", "route_completion")]] = (
            float(collided), progress, t / length,
        )  # fmt: skip
        rows["events"].append(events)
        rows["action"].append(action)
        if collided:
            break
        speed = float(np.clip(speed + (2.0 * throttle - 1.0 - 8.0 * brake) * DT, 2.0, 14.0))
        prev_action = action
    steps = len(rows["action"])
    arrays = {name: np.asarray(value, dtype=np.float32) for name, value in rows.items()}
    arrays["bev"], arrays["camera"] = arrays["bev"].astype(np.uint8), arrays["camera"].astype(np.uint8)
    arrays.update(
        route=np.zeros((steps, 16, 2), np.float32),
        expert_waypoints=np.zeros((steps, 8, 2), np.float32),
        expert_action=arrays["action"].copy(),
        reward=arrays["events"][:, spec.EVENT_NAMES.index("progress_m")] - 10.0 * arrays["events"][:, 0],
        ego_pose=np.zeros((steps, 4), np.float64),
        is_first=np.arange(steps) == 0,
        is_last=np.arange(steps) == steps - 1,
        is_terminal=(np.arange(steps) == steps - 1) & collided,
    )
    assert set(spec.EPISODE_FIELDS) <= set(arrays)
    return arrays


def write_toy_dataset(data_dir: Path, episodes: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for index in range(episodes):
        write_episode(
            data_dir, index, _toy_episode(rng), {"simulator": "toy", "map_name": "straight", "seed": seed}
        )


@pytest.mark.slow
def test_debug_model_learns_toy_driving(tmp_path: Path, preset) -> None:
    data_dir = tmp_path / "toy"
    write_toy_dataset(data_dir, episodes=80)
    config = preset(
        "debug",
        "train.max_steps=800",
        "train.batch_size=8",
        "train.window_steps=32",
        "train.val_every_steps=200",
        "train.val_fraction=0.25",
        "train.oversample_events=3.0",
        "train.image_log_every_steps=0",
        "heads.event_horizon_steps=0",
    )
    checkpoints = train_world_model(
        config, data_dir, tmp_path / "run", accelerator="cpu", devices=1, progress_bar=False
    )
    model, config = load_world_model(checkpoints / "last.ckpt")
    context, horizon = 8, 20
    loader = heldout_loader(
        data_dir, model_fields(config), context + horizon, 16, config.train.val_fraction, config.train.seed,
        stride=4,
    )
    report = evaluate_open_loop(model, loader, context, horizon, tmp_path / "eval")
    camera = report["horizons"]["20"]["camera"]
    assert camera["mode"]["mse"] < camera["copy_last"]["mse"], camera
    collision = report["events_within_1s"]["collision"]
    assert collision["positives"] >= 20, collision
    assert collision["mode"]["auroc"] > 0.8, collision
    assert (tmp_path / "eval" / "report.json").is_file() and (tmp_path / "eval" / "sample.gif").is_file()
