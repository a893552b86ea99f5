"""The learned simulator as the evaluation's simulator: a debug world model fit to one recorded expert route
replays the expert's actions (through the shadow embedded simulator) with the recorded route progress."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from drivesim.config import load_config
from drivesim.data.dataset import WindowDataset, collate_windows
from drivesim.data.episode import list_episodes
from drivesim.eval.config import EvalConfig
from drivesim.eval.routes import RouteSpec, RouteSuite
from drivesim.eval.runner import run_suite
from drivesim.sensors.config import BevConfig, CameraConfig, SensorsConfig
from drivesim.world_model.config import WorldModelConfig
from drivesim.world_model.model import WorldModel
from drivesim.world_model.train import model_fields

REPO = Path(__file__).resolve().parents[2]
WM_DEBUG = REPO / "configs" / "world_model" / "debug.yaml"


def _suite(length_m: float = 80.0) -> RouteSuite:
    route = RouteSpec(id="straight_0", map="straight", seed=3, npcs=0, start=(0.0, 0.0, 0.0), goal=(length_m, 0.0),
                      segments=[0], start_s_m=0.0, length_m=length_m)
    return RouteSuite(name="one_straight", routes=[route])


def _config() -> EvalConfig:
    sensors = SensorsConfig(bev=BevConfig(size_px=32), camera=CameraConfig(width_px=32, height_px=32))
    return EvalConfig(check_routes=False, scoring="leaderboard-1.0", sensors=sensors)


def _fit_debug_model(episodes: Path, out: Path, steps: int = 300) -> Path:
    """A ``debug`` world model trained on the recorded episode(s); saved as ``{"config", "state_dict"}``."""
    torch.manual_seed(0)
    config = load_config(WorldModelConfig, WM_DEBUG)
    model = WorldModel(config)
    dataset = WindowDataset(list_episodes(episodes), 16, model_fields(config), stride=2)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    generator = torch.Generator().manual_seed(0)
    model.init_output_biases(collate_windows(dataset.__getitems__(list(range(min(8, len(dataset)))))))
    for _ in range(steps):
        rows = torch.randint(len(dataset), (8,), generator=generator).tolist()
        loss, _, _ = model.loss(collate_windows(dataset.__getitems__(rows)))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    path = out / "wm.ckpt"
    torch.save({"config": config.model_dump(mode="json"), "state_dict": model.eval().state_dict()}, path)
    return path


@pytest.mark.slow
def test_dream_replays_the_recorded_route_progress(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    suite, config = _suite(), _config()
    real = run_suite(suite, "expert", tmp_path / "real", config, "embedded", record=True, show_progress=False)
    checkpoint = _fit_debug_model(tmp_path / "real" / "episodes", tmp_path)
    dream = run_suite(suite, "expert", tmp_path / "dream", config, "dream", show_progress=False,
                      world_model=checkpoint)
    real_rc = real["routes"][0]["metrics"]["route_completion"]
    dream_rc = dream["routes"][0]["metrics"]["route_completion"]
    assert real_rc == pytest.approx(100.0)
    assert dream["sim"] == "dream" and dream["world_model"] == str(checkpoint)
    assert abs(dream_rc - real_rc) <= 10.0, f"dream route completion {dream_rc:.1f} % vs recorded {real_rc:.1f} %"


def test_dream_needs_a_world_model(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--wm"):
        run_suite(_suite(), "expert", tmp_path / "dream", _config(), "dream", show_progress=False)
