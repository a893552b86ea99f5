"""Data stage configuration: what ``drivesim collect`` runs (simulator, sensors, episodes, driver mix)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from drivesim.config import Section, config_hash
from drivesim.sensors.config import SensorsConfig
from drivesim.sim.config import SimConfig

DRIVER_MODES = ("clean", "noisy", "careless")


class DriverMix(Section):
    """Shares of episodes per driver mode (normalised to sum to one).

    ``clean`` follows the expert; ``noisy`` adds steer/throttle noise bursts (off-road and lane invasions);
    ``careless`` ignores traffic (collisions). The default gave collision or off-road events in 28% of 120
    episodes on the embedded simulator's town (20 NPCs).
    """

    clean: float = Field(0.4, ge=0.0, description="Share of episodes driven by the clean expert.")
    noisy: float = Field(0.35, ge=0.0, description="Share of episodes with noise bursts on the expert's control.")
    careless: float = Field(0.25, ge=0.0, description="Share of episodes whose expert ignores other vehicles.")

    @model_validator(mode="after")
    def _positive_total(self) -> DriverMix:
        if self.clean + self.noisy + self.careless <= 0:
            raise ValueError("driver mix shares must not all be zero")
        return self

    def shares(self) -> dict[str, float]:
        """Normalised shares in ``DRIVER_MODES`` order."""
        total = self.clean + self.noisy + self.careless
        return {mode: getattr(self, mode) / total for mode in DRIVER_MODES}


class CarlaConnection(Section):
    """Where the real CARLA servers run (``collect.sim: carla``): one collection worker per server."""

    host: str = Field("localhost", description="CARLA server host.")
    port: int = Field(2000, ge=1, le=65535, description="CARLA server RPC port (one server).")
    ports: list[int] = Field(
        default_factory=list,
        description="RPC ports of several servers on `host` (replaces `port`): one worker per server.",
    )
    town: str = Field("Town03", description="CARLA map to load (e.g. Town03).")
    timeout_s: float = Field(20.0, gt=0.0, description="Client timeout [s].")
    traffic_manager_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="Traffic Manager port on this host; None: the RPC port + 6000. With several servers, "
        "server i gets this + i.",
    )
    carla_root: Path | None = Field(
        None,
        description="CARLA folder: each worker starts CarlaUE4.sh on its port, restarts it after a crash and "
        "redoes the episode that was running. None: the servers are already running.",
    )
    server_args: list[str] = Field(
        ["-RenderOffScreen", "-nosound"], description="More CarlaUE4.sh arguments (with carla_root)."
    )

    @field_validator("ports")
    @classmethod
    def _valid_ports(cls, ports: list[int]) -> list[int]:
        if any(not 1 <= port <= 65535 for port in ports) or len(set(ports)) != len(ports):
            raise ValueError(f"ports must be distinct RPC ports in 1..65535, got {ports}")
        return ports

    def server_ports(self) -> list[int]:
        """The RPC port of every server, in worker order."""
        return list(self.ports) or [self.port]

    def for_server(self, index: int) -> dict[str, Any]:
        """The bridge config (``carla_bridge.BridgeConfig`` fields) of worker ``index``'s server."""
        ports = self.server_ports()
        if not 0 <= index < len(ports):
            raise IndexError(f"server {index} of {len(ports)}")
        traffic_manager_port = None if self.traffic_manager_port is None else self.traffic_manager_port + index
        return {
            "host": self.host,
            "port": ports[index],
            "town": self.town,
            "timeout_s": self.timeout_s,
            "traffic_manager_port": traffic_manager_port,
            "carla_root": self.carla_root,
            "server_args": list(self.server_args),
        }


class CollectSection(Section):
    """The collection run itself."""

    sim: Literal["embedded", "carla", "fake"] = Field(
        "embedded", description="Simulator: 'embedded' (no server), 'carla' (real server) or 'fake' (tests)."
    )
    episodes: int = Field(200, ge=1, description="Number of episodes; indices 0 .. episodes-1.")
    workers: int = Field(
        1,
        ge=1,
        le=64,
        description="Parallel worker processes, each with its own simulator (sim: carla: one per server, "
        "set from collect.carla.ports).",
    )
    retries: int = Field(
        2,
        ge=0,
        description="An episode whose simulator was lost (a CARLA server crashed) is discarded and redone "
        "up to this many times.",
    )
    seed: int = Field(0, ge=0, description="Run seed; episode i uses derive_seed(seed, i).")
    out: Path = Field(Path("data/town"), description="Dataset folder.")
    driver_mix: DriverMix = Field(default_factory=DriverMix, description="Shares of driver modes.")
    carla: CarlaConnection = Field(default_factory=CarlaConnection, description="CARLA server (sim: carla).")


class CollectConfig(Section):
    """Root config of ``drivesim collect``."""

    sim: SimConfig = Field(
        default_factory=SimConfig, description="Embedded simulator (traffic/expert/episode are reused by the bridge)."
    )
    sensors: SensorsConfig = Field(default_factory=SensorsConfig, description="BEV and camera.")
    collect: CollectSection = Field(default_factory=CollectSection, description="Episodes, workers, seed, output.")



class _EpisodeDefining(BaseModel):
    sim: SimConfig
    sensors: SensorsConfig
    backend: str
    seed: int
    driver_mix: DriverMix
    carla_town: str | None


def episode_config_hash(config: CollectConfig) -> str:
    """Hash of everything that determines the episodes' content.

    Excludes the episode count, worker count and output folder, so a run can be resumed or extended with
    more episodes or workers.
    """
    collect = config.collect
    defining = _EpisodeDefining(
        sim=config.sim,
        sensors=config.sensors,
        backend=collect.sim,
        seed=collect.seed,
        driver_mix=collect.driver_mix,
        carla_town=collect.carla.town if collect.sim == "carla" else None,
    )
    return config_hash(defining)
