"""Configuration of the sensors shared by every simulator: the BEV raster and the front camera."""

from __future__ import annotations

from pydantic import Field

from drivesim.config import Section


class BevConfig(Section):
    """Ego-centred, heading-up bird's-eye view (channels in ``drivesim.spec.BEV_CHANNELS``)."""

    size_px: int = Field(64, ge=16, le=512, description="Width and height of the raster [px].")
    m_per_px: float = Field(0.5, gt=0.01, le=5.0, description="Resolution [m/px].")
    ego_row_fraction: float = Field(
        0.75, gt=0.0, lt=1.0, description="Row of the ego centre as a share of the height from the top (0.75 sees 24 m ahead at 64 px, 0.5 m/px)."
    )
    past_vehicle_frames: int = Field(0, ge=0, le=8, description="Extra channels with vehicles k steps ago.")
    route_width_m: float = Field(
        1.75, gt=0.0, le=10.0, description="Width of the route line [m] (half a lane); at least 2 px are drawn."
    )


class CameraConfig(Section):
    """Front RGB pinhole camera, mounted like CARLA's usual front camera (x=1.5, z=2.4 from the ego centre)."""

    width_px: int = Field(64, ge=16, le=1024, description="Image width [px].")
    height_px: int = Field(64, ge=16, le=1024, description="Image height [px].")
    fov_deg: float = Field(90.0, gt=10.0, lt=170.0, description="Horizontal field of view [deg] (CARLA's 'fov').")
    mount_x_m: float = Field(1.5, description="Mount position forward of the ego centre [m].")
    mount_y_m: float = Field(0.0, description="Mount position right of the ego centre [m].")
    mount_z_m: float = Field(2.4, description="Mount height above the ground [m].")
    pitch_deg: float = Field(-10.0, ge=-45.0, le=45.0, description="Camera pitch [deg], negative looks down.")
    max_distance_m: float = Field(60.0, gt=5.0, description="Geometry farther than this is not drawn [m].")
    near_clip_m: float = Field(0.1, gt=0.0, le=2.0, description="Depth of the near clipping plane [m].")
    road_chunk_m: float = Field(6.0, gt=0.5, le=50.0, description="Longest road quad precomputed along a lane [m].")
    chunk_turn_deg: float = Field(
        12.0, gt=0.5, le=90.0, description="Largest heading change within one road quad on curves [deg]."
    )
    marking_width_m: float = Field(0.15, gt=0.0, le=1.0, description="Width of painted lane markings [m].")
    vehicle_height_m: float = Field(1.5, gt=0.1, le=5.0, description="Height of the drawn vehicle boxes [m].")
    supersample: int = Field(
        2, ge=1, le=4, description="Render at this multiple of the size, then average down (anti-aliasing)."
    )


class SensorsConfig(Section):
    """Which sensors are on; ``None`` switches a sensor off."""

    bev: BevConfig | None = BevConfig()
    camera: CameraConfig | None = CameraConfig()
