"""Drive whole episodes with a data-collection driver and count what happened (``drivesim drive``, tests)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from drivesim import spec

EVENT = {name: spec.EVENT_NAMES.index(name) for name in spec.EVENT_NAMES}


@dataclass
class EpisodeStats:
    """Counts of one episode; collisions are contact onsets (a contact lasting several steps counts once)."""

    seed: int
    driver: str
    steps: int
    time_s: float
    distance_m: float
    route_completion: float
    termination: str | None
    collisions_vehicle: int
    collisions_walker: int
    collisions_static: int
    red_lights: int
    stop_signs: int
    wrong_lane_s: float
    max_off_road: float

    @property
    def collisions(self) -> int:
        return self.collisions_vehicle + self.collisions_walker + self.collisions_static

    @property
    def dangerous(self) -> bool:
        """A collision or a red-light run happened."""
        return self.collisions > 0 or self.red_lights > 0


def drive_episode(env: Any, seed: int, driver: str) -> EpisodeStats:
    """Run one episode of ``env`` (the simulator contract) with ``driver`` to its end."""
    obs, info = env.reset(seed=seed, options={"driver": driver})
    events = [obs[spec.OBS_EVENTS]]
    while True:
        obs, _, terminated, truncated, info = env.step(env.driver_action())
        events.append(obs[spec.OBS_EVENTS])
        if terminated or truncated:
            break
    table = np.stack(events)
    contact = table[:, EVENT["collision"]] > 0.5
    onset = contact & ~np.concatenate([[False], contact[:-1]])
    walker, static = table[:, EVENT["collision_walker"]] > 0.5, table[:, EVENT["collision_static"]] > 0.5
    dt_s = float(info["time_s"]) / max(len(table) - 1, 1)
    return EpisodeStats(
        seed=seed,
        driver=driver,
        steps=len(table) - 1,
        time_s=float(info["time_s"]),
        distance_m=float(info["distance_m"]),
        route_completion=float(table[:, EVENT["route_completion"]].max()),
        termination=info["termination"],
        collisions_vehicle=int((onset & ~walker & ~static).sum()),
        collisions_walker=int((onset & walker).sum()),
        collisions_static=int((onset & static).sum()),
        red_lights=int((table[:, EVENT["red_light"]] > 0.5).sum()),
        stop_signs=int((table[:, EVENT["stop_sign"]] > 0.5).sum()),
        wrong_lane_s=float((table[:, EVENT["wrong_lane"]] > 0.5).sum() * dt_s),
        max_off_road=float(table[:, EVENT["off_road"]].max()),
    )


def summarize(episodes: list[EpisodeStats]) -> dict[str, Any]:
    """Aggregate figures: shares of episodes, per-km rates (with the counts they rest on)."""
    count = len(episodes)
    km = sum(e.distance_m for e in episodes) / 1000.0
    collisions = sum(e.collisions for e in episodes)
    return {
        "episodes": count,
        "km": km,
        "route_done_share": sum(e.termination == "route_done" for e in episodes) / max(count, 1),
        "dangerous_share": sum(e.dangerous for e in episodes) / max(count, 1),
        "collision_share": sum(e.collisions > 0 for e in episodes) / max(count, 1),
        "red_light_share": sum(e.red_lights > 0 for e in episodes) / max(count, 1),
        "collisions": collisions,
        "collisions_per_km": collisions / max(km, 1e-9),
        "collisions_by_kind": {kind: sum(getattr(e, f"collisions_{kind}") for e in episodes)
                               for kind in ("vehicle", "walker", "static")},
        "red_lights": sum(e.red_lights for e in episodes),
        "stop_signs": sum(e.stop_signs for e in episodes),
        "terminations": {t: sum(str(e.termination) == t for e in episodes) for t in sorted({str(e.termination) for e in episodes})},
    }


def stats_row(stats: EpisodeStats) -> dict[str, Any]:
    return {**asdict(stats), "collisions": stats.collisions}
