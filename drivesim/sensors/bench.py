"""Sensors stage: micro-benchmark of the BEV rasteriser and the front camera (``drivesim bench sensors``)."""

from __future__ import annotations

import time
import timeit

import carla
import numpy as np

from drivesim.sensors.bev import BevRenderer
from drivesim.sensors.camera import FrontCamera
from drivesim.sensors.config import BevConfig, CameraConfig
from drivesim.sim.opendrive import town_map
from drivesim.sim.road import RoadNetwork

EGO_SIZE_M = (4.8, 2.0)  # (length, width)
BOX_SIZE_M = (4.5, 2.0)


def town_scene(network: RoadNetwork, num_vehicles: int, seed: int = 0,
               ego_xy: tuple[float, float] = (60.0, -100.0), min_gap_m: float = 8.0,
               max_distance_m: float = 50.0) -> dict[str, np.ndarray | float]:
    """A sensor test scene: the ego on the lane sample nearest ``ego_xy``, its route ahead, and vehicles on
    lane spawn points (outside junctions) drawn at random between ``min_gap_m`` and ``max_distance_m`` from
    the ego (the nearest others if too few are that close).

    Returns:
        ``ego_xy`` (2,), ``ego_yaw_deg``, ``route_xy`` (P, 2) and ``boxes`` (N, 5) in the world frame.
    """
    rng = np.random.default_rng(seed)
    sample = network.nearest_sample(np.asarray(ego_xy, dtype=np.float64))
    segment = int(network.segment_of[sample])
    start_s_m = float((sample - network.segment_start[segment]) * network.segment_spacing_m[segment])
    route = network.random_route(rng, 120.0, segment, start_s_m)
    segments, offsets = network.spawn_candidates(spacing_m=9.0)
    xy, yaw_rad = network.pose_at(segments, offsets)
    distance_m = np.hypot(*(xy - network.points[sample]).T)
    in_range = np.flatnonzero((distance_m >= min_gap_m) & (distance_m <= max_distance_m))
    if len(in_range) >= num_vehicles:
        chosen = rng.choice(in_range, size=num_vehicles, replace=False)
    else:
        chosen = np.argsort(np.where(distance_m >= min_gap_m, distance_m, np.inf))[:num_vehicles]
    boxes = np.column_stack([xy[chosen], np.degrees(yaw_rad[chosen]),
                             np.full(len(chosen), BOX_SIZE_M[0]), np.full(len(chosen), BOX_SIZE_M[1])])
    return {"ego_xy": network.points[sample].copy(), "ego_yaw_deg": float(np.degrees(network.yaw_rad[sample])),
            "route_xy": route.points, "boxes": boxes}


def _ms_per_call(function, repeats: int, number: int) -> float:
    """Best-of-``repeats`` CPU time of one call [ms].

    Process CPU time, not wall time, so that other processes sharing the core do not count; the minimum over
    repeats is the least disturbed by cache pollution.
    """
    return min(timeit.repeat(function, repeat=repeats, number=number, timer=time.process_time)) / number * 1e3


def bench_sensors(sizes_px: tuple[int, ...] = (64, 96, 128), num_vehicles: int = 20, repeats: int = 5,
                  number: int = 200, view_extent_m: float = 32.0) -> dict[str, float]:
    """Time one BEV render and one camera render per size in the generated town with ``num_vehicles``.

    The BEV keeps the same ground extent at every size (``m_per_px = view_extent_m / size``); the camera
    keeps its default FOV and mount.

    Returns:
        ``{"bev_64_ms": ..., "camera_64_ms": ..., ...}``: CPU milliseconds per frame on one core.
    """
    network = RoadNetwork(carla.Map("town", town_map(0)))
    scene = town_scene(network, num_vehicles)
    results: dict[str, float] = {}
    for size in sizes_px:
        bev = BevRenderer(network, BevConfig(size_px=size, m_per_px=view_extent_m / size))
        results[f"bev_{size}_ms"] = _ms_per_call(
            lambda bev=bev: bev.render(scene["ego_xy"], scene["ego_yaw_deg"], EGO_SIZE_M, scene["route_xy"],
                                       scene["boxes"]), repeats, number)
        camera = FrontCamera(network, CameraConfig(width_px=size, height_px=size))
        results[f"camera_{size}_ms"] = _ms_per_call(
            lambda camera=camera: camera.render(scene["ego_xy"], scene["ego_yaw_deg"], scene["boxes"]),
            repeats, number)
    return results


if __name__ == "__main__":
    import json

    print(json.dumps(bench_sensors()))
