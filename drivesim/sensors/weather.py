"""Weather of the embedded camera, from CARLA's own presets (``carla.WeatherParameters.ClearNoon`` ...).

A route's ``weather`` names a CARLA preset; the real server applies it with ``world.set_weather`` and the
embedded camera reads the same preset's parameters and turns them into a few image effects:
- daylight from ``sun_altitude_angle`` (night below the horizon) and ``cloudiness``: scene brightness and
  the sky's colours;
- ``precipitation_deposits`` (puddles) and ``precipitation``: a darker, bluish road and a grey veil;
- ``fog_density`` from ``fog_distance`` on: colours fade to the fog colour with distance;
- at night the ego's headlights light a cone of road ahead.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

DEFAULT_WEATHER = "ClearNoon"
HEADLIGHT_RANGE_M = 35.0  # the headlights light the road this far ahead [m]
HEADLIGHT_HALF_ANGLE_DEG = 28.0


@dataclass(frozen=True)
class CameraWeather:
    """Image effects of one weather preset (see the module docstring)."""

    name: str
    brightness: float  # multiplies every lit colour (1 at a clear noon)
    sky_zenith_rgb: np.ndarray
    sky_horizon_rgb: np.ndarray
    fog_rgb: np.ndarray
    fog_density: float  # 0..1: share of the fog colour far away
    fog_start_m: float
    fog_scale_m: float  # distance over which fog builds up past ``fog_start_m`` [m]
    road_tint: np.ndarray  # (3,) multiplies the road surface colour (wet roads are darker, bluish)
    veil: float  # 0..1 grey veil of rain
    headlights: bool

    def fog_share(self, distance_m: np.ndarray) -> np.ndarray:
        """Share of the fog colour (0..fog_density) at ``distance_m``."""
        past = np.maximum(np.asarray(distance_m, dtype=np.float64) - self.fog_start_m, 0.0)
        return self.fog_density * (1.0 - np.exp(-past / self.fog_scale_m))


def weather_names() -> list[str]:
    """Names of the CARLA weather presets the camera understands (all of ``carla.WeatherParameters``)."""
    import carla

    return sorted(name for name in dir(carla.WeatherParameters) if name[0].isupper() and name != "Default")


@functools.lru_cache(maxsize=32)
def camera_weather(name: str | None) -> CameraWeather:
    """The image effects of CARLA's weather preset ``name`` (None: ``ClearNoon``)."""
    import carla

    name = name or DEFAULT_WEATHER
    names = weather_names()
    if name not in names:
        raise ValueError(f"unknown weather {name!r}; expected a CARLA preset: {', '.join(names)}")
    preset = getattr(carla.WeatherParameters, name)
    daylight = float(np.clip((preset.sun_altitude_angle + 6.0) / 30.0, 0.0, 1.0))  # 0 at night, 1 by 24 deg
    clouds = max(preset.cloudiness / 100.0 - 0.1, 0.0) / 0.9  # a few clouds (ClearNoon's 5 %) change nothing
    rain = preset.precipitation / 100.0
    wet = max(preset.precipitation_deposits, preset.wetness) / 100.0
    brightness = (0.18 + 0.82 * daylight) * (1.0 - 0.3 * clouds) * (1.0 - 0.15 * rain)
    night_sky = np.array([10.0, 14.0, 30.0])
    clear_zenith, clear_horizon = np.array([70.0, 120.0, 200.0]), np.array([185.0, 205.0, 230.0])
    grey = np.array([150.0, 152.0, 158.0])
    zenith = (1 - clouds) * clear_zenith + clouds * grey * 0.8
    horizon = (1 - clouds) * clear_horizon + clouds * grey
    zenith = daylight * zenith + (1 - daylight) * night_sky
    horizon = daylight * horizon + (1 - daylight) * night_sky * 1.6
    fog_density = float(np.clip(max(preset.fog_density / 100.0 - 0.05, 0.0) / 0.95 + 0.25 * rain, 0.0, 1.0))
    return CameraWeather(
        name=name,
        brightness=brightness,
        sky_zenith_rgb=zenith,
        sky_horizon_rgb=horizon,
        fog_rgb=horizon * (0.6 + 0.4 * daylight),
        fog_density=fog_density,
        fog_start_m=float(preset.fog_distance),
        fog_scale_m=40.0,
        road_tint=np.array([1.0, 1.0, 1.0]) * (1.0 - 0.55 * wet) + np.array([0.0, 0.02, 0.08]) * wet,
        veil=0.25 * rain,
        headlights=daylight < 0.5,
    )
