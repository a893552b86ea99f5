"""Map loading: built-in procedural maps or any OpenDRIVE file, as a cached ``RoadNetwork``."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import carla

from drivesim.sim.config import MapConfig
from drivesim.sim.opendrive import BUILTIN_MAPS
from drivesim.sim.road import RoadNetwork


class MapError(ValueError):
    """A map could not be loaded; the message names the file or map and the reason."""


def opendrive_source(name: str, seed: int = 0) -> tuple[str, str]:
    """(map name, OpenDRIVE XML) for a built-in map name or an .xodr path."""
    if name in BUILTIN_MAPS:
        return f"{name}_{seed}" if name != "junction" else name, BUILTIN_MAPS[name](seed)
    path = Path(name).expanduser()
    if path.suffix.lower() != ".xodr" and not path.exists():
        raise MapError(f"unknown map {name!r}: use one of {sorted(BUILTIN_MAPS)} or a path to an .xodr file")
    if not path.is_file():
        raise MapError(f"OpenDRIVE file not found: {path}")
    return path.stem, path.read_text(errors="replace")


@functools.lru_cache(maxsize=8)
def _network_from_xml(map_name: str, xml_hash: str, xml: str, sample_m: float) -> RoadNetwork:
    del xml_hash  # part of the cache key only
    try:
        carla_map = carla.Map(map_name, xml)
    except RuntimeError as error:
        raise MapError(f"invalid OpenDRIVE for map {map_name!r}: carla.Map could not parse it ({error})") from None
    if not carla_map.get_topology():
        raise MapError(f"invalid OpenDRIVE for map {map_name!r}: no drivable lanes (empty or malformed <road> data)")
    return RoadNetwork(carla_map, sample_m=sample_m, name=map_name)


def load_road_network(config: MapConfig) -> RoadNetwork:
    """The road network for ``config.name`` (cached per process: loading a town takes ~0.2 s)."""
    map_name, xml = opendrive_source(config.name, config.seed)
    return _network_from_xml(map_name, hashlib.sha256(xml.encode()).hexdigest(), xml, config.lane_sample_m)
