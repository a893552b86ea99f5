"""Throughput of the embedded simulator (sim + expert, optionally with sensors)."""

from __future__ import annotations

import time
from typing import Any

from drivesim.sensors.config import BevConfig, CameraConfig, SensorsConfig
from drivesim.sim.config import SimConfig
from drivesim.sim.env import EmbeddedSimEnv

SENSOR_NAMES = ("bev", "camera")


def sensors_from_names(names: list[str], size_px: int = 64) -> SensorsConfig | None:
    """A SensorsConfig with only the named sensors on (None when the list is empty)."""
    unknown = set(names) - set(SENSOR_NAMES)
    if unknown:
        raise ValueError(f"unknown sensors {sorted(unknown)}; choose from {SENSOR_NAMES}")
    if not names:
        return None
    return SensorsConfig(
        bev=BevConfig(size_px=size_px) if "bev" in names else None,
        camera=CameraConfig(width_px=size_px, height_px=size_px) if "camera" in names else None,
    )


def bench_sim(map_name: str, npcs: int, steps: int, sensors: list[str], size_px: int = 64, seed: int = 0,
              walkers: int | None = None, parked: int | None = None) -> dict[str, Any]:
    """Step the expert for ``steps`` steps (resetting at episode ends); returns throughput figures.

    ``walkers`` and ``parked`` (parked cars) default to the config's counts; lights and lane blockers are on.
    """
    config = SimConfig()
    config.map.name = map_name
    config.traffic.npcs = npcs
    if walkers is not None:
        config.walkers.count = walkers
    if parked is not None:
        config.props.parked_vehicles = parked
    env = EmbeddedSimEnv(config, sensors_from_names(sensors, size_px))
    env.reset(seed=seed)
    episodes = 1
    wall_start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(env.expert_action())
        if terminated or truncated:
            env.reset(seed=seed + episodes)
            episodes += 1
    wall, cpu = time.perf_counter() - wall_start, time.process_time() - cpu_start
    return {
        "benchmark": "sim",
        "map": env.network.name,
        "npcs": npcs,
        "walkers": config.walkers.count,
        "parked": config.props.parked_vehicles,
        "lights": env.world.layout.num_poles,
        "sensors": sensors,
        "size_px": size_px,
        "steps": steps,
        "episodes": episodes,
        "steps_per_s": steps / wall,
        "steps_per_cpu_s": steps / max(cpu, 1e-9),
        "ms_per_step": 1000.0 * wall / steps,
    }
