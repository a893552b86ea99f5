"""CARLA bridge configuration: where the server runs, which town, Traffic Manager and ego settings."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from drivesim.config import Section

TM_PORT_OFFSET = 6000  # default Traffic Manager port = RPC port + this (8000 for CARLA's default 2000)


class BridgeConfig(Section):
    """Connection to a real CARLA server and how the bridge sets it up.

    The simulation step, traffic density, expert and episode limits come from ``SimConfig`` (the same
    sections the embedded simulator reads); this section holds only what is specific to a server.
    """

    host: str = Field("localhost", description="CARLA server host.")
    port: int = Field(
        2000, ge=1, le=65535, description="CARLA server RPC port (CarlaUE4.sh -carla-rpc-port)."
    )
    timeout_s: float = Field(
        20.0, gt=0.0, description="Client RPC timeout [s]; also the limit of one world.tick()."
    )
    town: str = Field(
        "Town03", description="Map to load: a town name (Town01 ... Town10HD) or a path to an .xodr file."
    )
    traffic_manager_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="Traffic Manager port on this host; None: the RPC port + 6000 (8000 for 2000). Each server "
        "driven from one host needs its own.",
    )
    seed: int = Field(
        0, description="Traffic Manager random seed (NPC behaviour); episode seeds come from reset()."
    )
    hybrid_physics: bool = Field(
        False, description="Traffic Manager hybrid physics: full physics only near the ego."
    )
    hybrid_physics_radius_m: float = Field(
        70.0, gt=0.0, description="Radius of full physics in hybrid mode [m]."
    )
    no_rendering: bool = Field(
        False, description="Server no_rendering_mode (no camera images then: keep False with a camera)."
    )
    ego_blueprint: str = Field("vehicle.tesla.model3", description="Blueprint id of the ego vehicle.")
    npc_blueprint_filter: str = Field(
        "vehicle.*", description="Wildcard of NPC blueprints (4-wheeled ones are used)."
    )
    spawn_attempts: int = Field(
        5, ge=1, le=50, description="Rounds of spawn retries at other spawn points (ego routes, NPC batches)."
    )
    sensor_timeout_s: float = Field(
        2.0, gt=0.0, description="Wait this long for a tick's camera frame before checking the server [s]."
    )
    sensor_retries: int = Field(
        2,
        ge=0,
        description="A late camera frame is waited for this many more times (the server answering in between) "
        "before the session counts as lost.",
    )
    max_reconnects: int = Field(
        3, ge=0, description="Reconnections allowed after the server died or stopped answering."
    )
    carla_root: Path | None = Field(
        None,
        description="CARLA folder (with CarlaUE4.sh): the bridge then starts the server on `port` itself, "
        "restarts it after a crash or hang, and stops it at close(). None: connect to a running server.",
    )
    server_args: list[str] = Field(
        ["-RenderOffScreen", "-nosound"],
        description="Arguments of CarlaUE4.sh besides -carla-rpc-port (with carla_root), e.g. -quality-level=Low.",
    )
    server_start_timeout_s: float = Field(
        120.0, gt=0.0, description="A started server must answer within this [s] (with carla_root)."
    )
    expert: Literal["planner", "traffic_manager"] = Field(
        "planner",
        description="Expert: drivesim's route planner + waypoint controller, or CARLA's Traffic Manager autopilot "
        "(then only the 'clean' driver is possible and the applied control is the autopilot's).",
    )


    @property
    def tm_port(self) -> int:
        """The Traffic Manager port in use: ``traffic_manager_port`` or the RPC port + ``TM_PORT_OFFSET``."""
        if self.traffic_manager_port is not None:
            return self.traffic_manager_port
        port = self.port + TM_PORT_OFFSET
        if port > 65535:
            raise ValueError(
                f"RPC port {self.port} + {TM_PORT_OFFSET} is no valid Traffic Manager port: set "
                "traffic_manager_port (drivesim collect --tm-port)"
            )
        return port


def as_bridge_config(config: BaseModel | dict[str, Any] | None) -> BridgeConfig:
    """A ``BridgeConfig`` from itself, None (defaults), a dict, or any config model with a subset of its fields.

    ``drivesim collect`` may hand over its own connection section (host, port, town, timeout_s); unknown
    keys are an error, as everywhere in drivesim's configs.
    """
    if config is None:
        return BridgeConfig()
    if isinstance(config, BridgeConfig):
        return config
    data = config.model_dump() if isinstance(config, BaseModel) else dict(config)
    return BridgeConfig.model_validate(data)


def bridge_config_for_map(map_name: str) -> BridgeConfig:
    """Defaults, with ``town = map_name`` when it names a CARLA town (Town01 ... Town10HD) or an .xodr file."""
    if re.fullmatch(r"Town\d+\w*", map_name) or Path(map_name).suffix.lower() == ".xodr":
        return BridgeConfig(town=map_name)
    return BridgeConfig()
