"""Sensors stage: preview pictures of the BEV and the front camera side by side (for the README).

Usage: ``python -m drivesim.sensors.preview --out docs/images``
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import carla
import cv2
import numpy as np

from drivesim.sensors.bench import BOX_SIZE_M, EGO_SIZE_M, town_scene
from drivesim.sensors.bev import BevRenderer, bev_to_rgb
from drivesim.sensors.camera import FrontCamera
from drivesim.sensors.config import BevConfig, CameraConfig
from drivesim.sim.opendrive import town_map
from drivesim.sim.road import RoadNetwork

logger = logging.getLogger(__name__)

PANEL_PX = 384  # each sensor image is upscaled to this size
GAP_PX = 8
GAP_RGB = (255, 255, 255)


def render_preview(network: RoadNetwork, size_px: int = 64, num_vehicles: int = 8,
                   ego_xy: tuple[float, float] = (60.0, -100.0), seed: int = 0,
                   lead_distance_m: float = 14.0) -> np.ndarray:
    """BEV (left) and front camera (right) of one scene, upscaled with nearest neighbour.

    Args:
        network: Road network of the map.
        size_px: Sensor resolution (the BEV keeps 32 m of extent at every size).
        num_vehicles: Vehicles on lanes around the ego, plus one lead vehicle on the route.
        ego_xy: Where to put the ego (snapped to the nearest lane sample) [m].
        seed: Seed of the route and the vehicle placement.
        lead_distance_m: Distance of the lead vehicle along the route [m].

    Returns:
        (PANEL_PX, 2 * PANEL_PX + GAP_PX, 3) uint8 RGB image.
    """
    scene = town_scene(network, num_vehicles, seed=seed, ego_xy=ego_xy)
    route_xy = scene["route_xy"]
    lead = min(int(round(lead_distance_m)), len(route_xy) - 2)  # route points are 1 m apart
    lead_yaw_deg = np.degrees(np.arctan2(*(route_xy[lead + 1] - route_xy[lead])[::-1]))
    lead_box = [route_xy[lead, 0], route_xy[lead, 1], lead_yaw_deg, *BOX_SIZE_M]
    scene["boxes"] = np.vstack([scene["boxes"], lead_box])
    bev = BevRenderer(network, BevConfig(size_px=size_px, m_per_px=32.0 / size_px))
    camera = FrontCamera(network, CameraConfig(width_px=size_px, height_px=size_px))
    bev_rgb = bev_to_rgb(bev.render(scene["ego_xy"], scene["ego_yaw_deg"], EGO_SIZE_M, scene["route_xy"],
                                    scene["boxes"]))
    camera_rgb = camera.render(scene["ego_xy"], scene["ego_yaw_deg"], scene["boxes"])
    panels = []
    for image, label in ((bev_rgb, "BEV"), (camera_rgb, "camera")):
        panel = cv2.resize(image, (PANEL_PX, PANEL_PX), interpolation=cv2.INTER_NEAREST)
        text = f"{label} {size_px}x{size_px}"
        for colour, thickness in (((0, 0, 0), 3), ((255, 255, 255), 1)):  # white on a dark outline
            cv2.putText(panel, text, (8, PANEL_PX - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, thickness,
                        cv2.LINE_AA)
        panels.append(panel)
    gap = np.empty((PANEL_PX, GAP_PX, 3), np.uint8)
    gap[:] = GAP_RGB
    return np.concatenate([panels[0], gap, panels[1]], axis=1)


def write_previews(out_dir: Path) -> list[Path]:
    """Write the README pictures: the generated town at 64 and 128 px, and Town03 where it is present."""
    out_dir.mkdir(parents=True, exist_ok=True)
    town = RoadNetwork(carla.Map("town", town_map(0)))
    jobs = [(town, 64, (35.0, -100.0), "sensors_town_64.png"),
            (town, 128, (35.0, -100.0), "sensors_town_128.png")]
    town03 = Path(__file__).resolve().parents[2].parent / "shared" / "maps" / "carla" / "Town03.xodr"
    if town03.exists():
        network = RoadNetwork(carla.Map("Town03", town03.read_text()))
        jobs.append((network, 128, (100.0, -5.0), "sensors_town03_128.png"))
    paths = []
    for network, size, ego_xy, name in jobs:
        path = out_dir / name
        cv2.imwrite(str(path), render_preview(network, size, ego_xy=ego_xy)[..., ::-1])
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
