"""Lightning training on a tiny synthetic dataset: checkpoints, weights-only loading, resume, logs, NaN stop."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from drivesim.data.synthetic import write_synthetic_dataset
from drivesim.world_model.lightning_module import NonFiniteLossError, check_finite
from drivesim.world_model.model import load_world_model
from drivesim.world_model.train import DatasetMismatchError, check_dataset, train_world_model

OVERRIDES = (
    "train.max_steps=5",  # not a multiple of val_every_steps: the final save keeps step 5
    "train.val_every_steps=2",
    "train.val_batches=1",
    "train.log_every_steps=1",
    "train.image_log_every_steps=2",
    "train.batch_size=2",
    "train.window_steps=12",
)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("wm_data")
    write_synthetic_dataset(
        data_dir, episodes=6, length=30, seed=0, camera_size=32, bev_size=32, event_probability=0.1
    )
    return data_dir


def test_train_checkpoint_round_trip_and_resume(dataset: Path, tmp_path: Path, preset) -> None:
    config = preset("debug", *OVERRIDES)
    out = tmp_path / "run"
    checkpoints = train_world_model(config, dataset, out, accelerator="cpu", devices=1, progress_bar=False)
    last = checkpoints / "last.ckpt"
    assert last.is_file() and list(checkpoints.glob("best-*.ckpt"))
    payload = torch.load(last, map_location="cpu", weights_only=True)
    assert payload["global_step"] == 5
    assert payload["hyper_parameters"]["config"]["rssm"]["deter_size"] == config.rssm.deter_size
    model, loaded_config = load_world_model(last)
    assert loaded_config == config
    prefix = "model."
    for key, value in model.state_dict().items():
        assert torch.equal(value, payload["state_dict"][prefix + key]), key

    rows = list(csv.DictReader((out / "csv" / "metrics.csv").open()))
    columns = set(rows[0])
    for name in (
        "train/loss",
        "train/loss/camera",
        "train/latent/kl",
        "train/grad_norm",
        "train/frames_per_s",
        "val/loss",
    ):
        assert name in columns, name
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))

    first_rows = [row for row in rows if int(row["step"]) < 5]
    resumed = preset("debug", *OVERRIDES[1:], "train.max_steps=7")
    train_world_model(resumed, dataset, out, accelerator="cpu", devices=1, resume=True, progress_bar=False)
    assert torch.load(last, map_location="cpu", weights_only=True)["global_step"] == 7
    # The resumed run appends to the run's logs: the CSV keeps the first run's rows, TensorBoard its file.
    after = list(csv.DictReader((out / "csv" / "metrics.csv").open()))
    assert [row["step"] for row in after[: len(first_rows)]] == [row["step"] for row in first_rows]
    assert after[0]["train/loss"] == first_rows[0]["train/loss"]
    assert {int(row["step"]) for row in after} == set(range(7)), [row["step"] for row in after]
    assert len(list((out / "tensorboard").glob("events.out.tfevents.*"))) == 2


def test_image_size_mismatch_fails_at_once_naming_both_sizes(tmp_path: Path, preset, monkeypatch) -> None:
    data_dir = tmp_path / "data64"
    write_synthetic_dataset(data_dir, episodes=2, length=20, seed=0, camera_size=64, bev_size=64)
    from drivesim.world_model import train as train_module

    def no_model(*args, **kwargs):
        raise AssertionError("the model was built before the dataset check")

    monkeypatch.setattr(train_module, "WorldModelModule", no_model)
    with pytest.raises(DatasetMismatchError, match=r"camera images are 64x64 px.*expects 32x32"):
        train_world_model(preset("debug"), data_dir, tmp_path / "run", accelerator="cpu", progress_bar=False)
    assert not (tmp_path / "run").exists()  # failed before the run folder, the model or the trainer was made
    check_dataset(preset("debug", "encoder.image_size_px=64"), data_dir)  # the fix it names works
    with pytest.raises(DatasetMismatchError, match=r"no 'bev' field"):
        data_cam = tmp_path / "camera_only"
        write_synthetic_dataset(data_cam, episodes=1, length=20, camera_size=32, bev_size=None)
        check_dataset(preset("debug"), data_cam)


def test_non_finite_loss_names_step_and_term() -> None:
    metrics = {"loss/camera": torch.tensor(1.0), "loss/progress": torch.tensor(float("nan"))}
    with pytest.raises(NonFiniteLossError, match=r"step 17.*loss/progress"):
        check_finite(torch.tensor(float("nan")), metrics, step=17, stage="train")
    check_finite(torch.tensor(1.0), metrics, step=17, stage="train")
