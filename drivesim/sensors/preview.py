"""Sensors stage: preview pictures of the BEV and the front camera (day and night) side by side, from a busy
moment of the interactive world (for the README).

Usage: ``python -m drivesim.sensors.preview --out docs/images``
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import cv2
import numpy as np

from drivesim.sensors.bev import bev_to_rgb
from drivesim.sensors.config import BevConfig, CameraConfig, SensorsConfig
from drivesim.spec import BEV_CHANNELS

logger = logging.getLogger(__name__)

PANEL_PX = 384  # each sensor image is upscaled to this size
GAP_PX = 8
GAP_RGB = (255, 255, 255)


def interactive_scene(map_name: str, size_px: int, seed: int = 0, max_steps: int = 8000):
    """An embedded-world episode stepped by the expert until the view is busy: a light's stop line, a walker and
    another vehicle in the BEV. Returns (env, observation)."""
    from drivesim.sim.config import SimConfig
    from drivesim.sim.env import EmbeddedSimEnv

    config = SimConfig()
    config.map.name = map_name
    sensors = SensorsConfig(bev=BevConfig(size_px=size_px, m_per_px=32.0 / size_px),
                            camera=CameraConfig(width_px=size_px, height_px=size_px))
    env = EmbeddedSimEnv(config, sensors)
    channels = [BEV_CHANNELS.index(name) for name in ("traffic_light_red", "traffic_light_yellow", "traffic_light_green")]
    best, best_score = None, -1
    obs, _ = env.reset(seed=seed)
    for step in range(max_steps):
        obs, _, terminated, truncated, _ = env.step(env.expert_action())
        if terminated or truncated:
            obs, _ = env.reset(seed=seed + step)
        counts = obs["bev"].reshape(obs["bev"].shape[0], -1).sum(1)
        score = int(counts[channels].sum() > 0) + int(counts[BEV_CHANNELS.index("walkers")] > 0) + int(
            counts[BEV_CHANNELS.index("vehicles")] > 0)
        if score > best_score:
            best, best_score = (obs, env.world.ego.xy.copy(), env.world.ego.yaw_rad), score
        if score == 3:
            break
    return env, best


def render_preview(map_name: str, size_px: int = 64, seed: int = 0) -> np.ndarray:
    """BEV, front camera at ClearNoon and at ClearNight of one busy scene of the interactive world, upscaled.

    Returns:
        (PANEL_PX, 3 * PANEL_PX + 2 * GAP_PX, 3) uint8 RGB image.
    """
    env, (obs, ego_xy, ego_yaw) = interactive_scene(map_name, size_px, seed)
    night = env.camera.render(ego_xy, np.degrees(ego_yaw), env.world.scene(), "ClearNight")
    panels = []
    for image, label in ((bev_to_rgb(obs["bev"]), "BEV"), (obs["camera"], "camera ClearNoon"), (night, "camera ClearNight")):
        panel = cv2.resize(image, (PANEL_PX, PANEL_PX), interpolation=cv2.INTER_NEAREST)
        text = f"{label} {size_px}x{size_px}"
        for colour, thickness in (((0, 0, 0), 3), ((255, 255, 255), 1)):  # white on a dark outline
            cv2.putText(panel, text, (8, PANEL_PX - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, thickness,
                        cv2.LINE_AA)
        panels.append(panel)
    gap = np.empty((PANEL_PX, GAP_PX, 3), np.uint8)
    gap[:] = GAP_RGB
    return np.concatenate([panels[0], gap, panels[1], gap, panels[2]], axis=1)


def write_previews(out_dir: Path) -> list[Path]:
    """Write the README pictures: the generated town at 64 and 128 px, and Town03 where it is present."""
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs = [("town", 64, "sensors_town_64.png"), ("town", 128, "sensors_town_128.png")]
    town03 = Path(__file__).resolve().parents[2].parent / "shared" / "maps" / "carla" / "Town03.xodr"
    if town03.exists():
        jobs.append((str(town03), 128, "sensors_town03_128.png"))
    paths = []
    for map_name, size, name in jobs:
        path = out_dir / name
        cv2.imwrite(str(path), render_preview(map_name, size)[..., ::-1])
        logger.info("wrote %s", path)
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/images"), help="Folder for the PNG files.")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    write_previews(args.out)


if __name__ == "__main__":
    main()
