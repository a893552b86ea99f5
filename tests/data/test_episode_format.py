"""Episode format: bit-exact round trip, windowed reads, atomic writes, the recorder's step convention."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from drivesim import spec
from drivesim.data import episode as episode_module
from drivesim.data.episode import (
    EpisodeReader,
    EpisodeRecorder,
    list_episodes,
    read_episode,
    remove_stale_temporaries,
    stale_temporaries,
    write_episode,
)
from drivesim.data.synthetic import FakeDrivingEnv, synthetic_steps
from drivesim.data.verify import file_crc32
from drivesim.sensors.config import BevConfig, CameraConfig, SensorsConfig
from drivesim.sim.config import SimConfig

META = {"simulator": "synthetic", "map_name": "none", "seed": 3, "driver": "clean"}


def _steps(length: int = 37, seed: int = 0) -> dict[str, np.ndarray]:
    return synthetic_steps(length, np.random.default_rng(seed), camera_size=16, bev_size=16, event_probability=0.1)


def test_round_trip_is_bit_exact(tmp_path: Path) -> None:
    steps = _steps()
    steps["bev"] = steps["bev"][:, :, :3, :3]  # 45 bits per step: packing must handle a partial last byte
    path = write_episode(tmp_path, 7, steps, META)
    assert path == tmp_path / "ep_000007"
    loaded = read_episode(path)
    assert set(loaded) == set(steps)
    for name, array in steps.items():
        assert loaded[name].dtype == episode_module.FIELD_DTYPES[name], name
        np.testing.assert_array_equal(loaded[name], array, err_msg=name)
    meta = json.loads((path / "meta.json").read_text())
    assert meta["schema_version"] == spec.SCHEMA_VERSION and meta["length"] == 37 and meta["seed"] == 3
    assert meta["fields"]["bev"]["encoding"] == "packbits"
    for name, info in meta["fields"].items():
        assert file_crc32(path / info["file"]) == info["crc32"], name
        assert (path / info["file"]).stat().st_size == info["bytes"]
        # Plain numpy reads every file memory-mapped without pickle.
        assert np.load(path / info["file"], mmap_mode="r", allow_pickle=False).shape == tuple(info["stored_shape"])


def test_reader_reads_windows(tmp_path: Path) -> None:
    steps = _steps(50)
    reader = EpisodeReader(write_episode(tmp_path, 0, steps, META))
    assert reader.length == 50 and reader.shape("camera") == (50, 16, 16, 3)
    for name in ("bev", "camera", "ego_pose", "is_last", "events"):
        np.testing.assert_array_equal(reader.read(name, 10, 26), steps[name][10:26])
    assert reader.read("reward", 5, 5).shape == (0,)
    with pytest.raises(IndexError):
        reader.read("reward", 40, 51)
    with pytest.raises(KeyError, match="no field 'lidar'"):
        reader.read("lidar", 0, 1)


def test_write_rejects_bad_input(tmp_path: Path) -> None:
    steps = _steps(10)
    with pytest.raises(ValueError, match="lacks fields"):
        write_episode(tmp_path, 0, {k: v for k, v in steps.items() if k != "reward"}, META)
    with pytest.raises(ValueError, match="cannot be stored"):
        write_episode(tmp_path, 0, {**steps, "camera": steps["camera"].astype(np.float64)}, META)
    with pytest.raises(ValueError, match="0/1"):
        write_episode(tmp_path, 0, {**steps, "bev": steps["bev"] * 3}, META)
    with pytest.raises(ValueError, match="reserved"):
        write_episode(tmp_path, 0, steps, {"length": 3})
    write_episode(tmp_path, 0, steps, META)
    with pytest.raises(FileExistsError):
        write_episode(tmp_path, 0, steps, META)


def test_error_inside_writer_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_write = episode_module._write_npy
    calls = []

    def failing_write(path: Path, array: np.ndarray) -> tuple[int, int]:
        calls.append(path)
        if len(calls) == 4:
            raise OSError("disk full")
        return real_write(path, array)

    monkeypatch.setattr(episode_module, "_write_npy", failing_write)
    with pytest.raises(OSError, match="disk full"):
        write_episode(tmp_path, 0, _steps(10), META)
    assert list_episodes(tmp_path) == [] and list(tmp_path.iterdir()) == []


def test_killed_writer_leaves_only_a_hidden_temporary(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys, time
        import numpy as np
        from drivesim.data import episode
        from drivesim.data.synthetic import synthetic_steps
        real = episode._write_npy
        calls = []
        def slow(path, array):
            calls.append(path)
            if len(calls) == 5:
                print("writing", flush=True)
                time.sleep(60)
            return real(path, array)
        episode._write_npy = slow
        episode.write_episode({str(tmp_path)!r}, 0, synthetic_steps(20, np.random.default_rng(0), 16, 16), {{}})
        """
    )
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "writing"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert list_episodes(tmp_path) == []
    leftovers = list(tmp_path.iterdir())
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".") and ".tmp" in leftovers[0].name
    assert stale_temporaries(tmp_path) == leftovers
    assert remove_stale_temporaries(tmp_path) == leftovers and list(tmp_path.iterdir()) == []


def test_recorder_follows_the_step_convention() -> None:
    sensors = SensorsConfig(bev=BevConfig(size_px=16), camera=CameraConfig(width_px=16, height_px=24))
    env = FakeDrivingEnv(SimConfig(), sensors)
    recorder = EpisodeRecorder()
    obs, info = env.reset(seed=11, options={"driver": "careless"})
    recorder.reset(obs, info)
    applied = []
    while not recorder.done:
        action = env.driver_action()
        applied.append(action)
        recorder.step(action, *env.step(action))
    steps = recorder.finish()
    length = len(applied) + 1
    assert steps["camera"].shape == (length, 24, 16, 3) and steps["bev"].shape == (length, len(spec.BEV_CHANNELS), 16, 16)
    np.testing.assert_array_equal(steps["action"][:-1], np.stack(applied))
    assert not steps["action"][-1].any() and steps["reward"][0] == 0.0 and not steps["events"][0].any()
    assert steps["is_first"].tolist() == [True] + [False] * (length - 1)
    assert steps["is_last"].tolist() == [False] * (length - 1) + [True]
    assert steps["is_terminal"][-1] and not steps["is_terminal"][:-1].any()
    assert recorder.termination in ("collision", "route_done")
    assert all(name in steps for name in spec.EPISODE_FIELDS)
    with pytest.raises(RuntimeError, match="after the episode ended"):
        recorder.step(applied[0], *env.step(applied[0]))
