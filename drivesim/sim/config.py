"""Configuration sections of the embedded simulator: map, ego vehicle, traffic, expert, episode limits."""

from __future__ import annotations

from pydantic import Field

from drivesim.config import Section


class MapConfig(Section):
    name: str = Field("town", description="Built-in map ('straight', 'junction', 'town') or a path to an .xodr file.")
    seed: int = Field(0, description="Seed of the procedural map generator (built-in maps only).")
    lane_sample_m: float = Field(1.0, gt=0.1, le=5.0, description="Spacing of lane centre-line samples [m].")
    raster_m_per_px: float = Field(0.25, gt=0.02, le=2.0, description="Resolution of the static map raster [m/px].")


class VehicleConfig(Section):
    """Kinematic bicycle model of the ego (defaults: a mid-size car like vehicle.tesla.model3)."""

    length_m: float = Field(4.8, gt=1.0, description="Bounding-box length [m].")
    width_m: float = Field(2.0, gt=0.5, description="Bounding-box width [m].")
    wheelbase_m: float = Field(2.9, gt=0.5, description="Distance between axles [m].")
    rear_axle_to_centre_m: float = Field(1.45, ge=0.0, description="Rear axle to bounding-box centre [m].")
    max_steer_deg: float = Field(35.0, gt=1.0, le=80.0, description="Front-wheel angle at steer=1 [deg].")
    steer_rate_per_s: float = Field(4.0, gt=0.0, description="Max change of the applied steer per second [1/s].")
    max_accel_mps2: float = Field(3.5, gt=0.0, description="Acceleration at full throttle from standstill [m/s^2].")
    max_brake_mps2: float = Field(8.0, gt=0.0, description="Deceleration at full brake [m/s^2].")
    drag_per_m: float = Field(0.0012, ge=0.0, description="Quadratic drag coefficient [1/m] (a = -c v^2).")
    rolling_mps2: float = Field(0.15, ge=0.0, description="Rolling resistance [m/s^2].")
    max_speed_mps: float = Field(30.0, gt=0.0, description="Top speed [m/s].")
    friction_mu: float = Field(
        0.9, gt=0.05, le=1.5, description="Tyre-road friction: lateral and longitudinal acceleration share mu * g (0.9 dry asphalt)."
    )
    actuator_lag_s: float = Field(
        0.0, ge=0.0, le=1.0, description="First-order lag of throttle and brake [s] (0: applied at once)."
    )


class TrafficConfig(Section):
    """NPC vehicles: IDM car following with per-driver parameters, MOBIL lane changes, lights and signs."""

    npcs: int = Field(20, ge=0, le=500, description="Number of NPC vehicles.")
    min_spawn_gap_m: float = Field(12.0, gt=0.0, description="Minimum distance between spawned vehicles [m].")
    desired_speed_mps: tuple[float, float] = Field(
        (6.0, 10.0), description="Range of NPC desired speeds [m/s]; a driver also keeps to 80-100 % of the speed limit."
    )
    aggressive_share: float = Field(
        0.15, ge=0.0, le=1.0, description="Share of aggressive drivers: 0.6 s headway, late hard braking, impolite cut-ins."
    )
    ignore_lights_share: float = Field(
        0.05, ge=0.0, le=1.0, description="Share of drivers that run red lights and stop signs (Traffic Manager's ignore_lights_percentage / 100)."
    )
    politeness: float = Field(0.3, ge=0.0, le=1.0, description="MOBIL politeness of normal drivers.")
    safe_decel_mps2: float = Field(
        3.0, gt=0.0, description="MOBIL safety: a lane change may make the new follower brake at most this hard [m/s^2]."
    )
    lane_change_gain_mps2: float = Field(
        0.3, ge=0.0, description="MOBIL threshold: the acceleration a lane change must gain [m/s^2]."
    )
    collision_hold_s: float = Field(10.0, ge=0.0, description="An NPC stands still this long after a collision [s].")
    lane_changes: bool = Field(True, description="NPCs change lanes (MOBIL) to pass slower traffic and blockers.")
    time_headway_s: float = Field(1.5, gt=0.0, description="IDM desired time headway [s].")
    min_gap_m: float = Field(2.5, gt=0.0, description="IDM standstill gap [m].")
    max_accel_mps2: float = Field(2.0, gt=0.0, description="IDM maximum acceleration [m/s^2].")
    comfort_decel_mps2: float = Field(3.0, gt=0.0, description="IDM comfortable deceleration [m/s^2].")
    max_decel_mps2: float = Field(8.0, gt=0.0, description="Hard braking limit [m/s^2].")
    lookahead_m: float = Field(36.0, gt=5.0, description="How far along its path a vehicle looks for obstacles [m].")
    path_points: int = Field(12, ge=4, le=64, description="Samples of the look-ahead path per vehicle.")
    decision_interval_steps: int = Field(
        3, ge=1, le=10, description="Traffic decisions (gaps, yielding, IDM, lane changes) every this many steps (3: 6.7 Hz at 20 Hz)."
    )


class WalkersConfig(Section):
    """Pedestrians on sidewalks, crossings and jaywalking (drivesim.sim.walkers)."""

    count: int = Field(20, ge=0, le=500, description="Number of walkers.")
    near_route_share: float = Field(0.6, ge=0.0, le=1.0, description="Share of walkers spawned within 40 m of the ego's route.")
    speed_mps: tuple[float, float] = Field((1.0, 1.6), description="Range of walking speeds [m/s].")
    crossing_speed_factor: float = Field(1.15, gt=0.0, description="Walkers cross roads this much faster.")
    cross_probability: float = Field(0.5, ge=0.0, le=1.0, description="Chance to take a crossing where one starts.")
    jaywalk_per_min: float = Field(0.5, ge=0.0, description="Rate of jaywalks per walker [1/min].")
    behind_parked_probability: float = Field(
        0.1, ge=0.0, le=1.0, description="Chance to step out into the road from behind each parked car a walker passes."
    )
    yield_to_vehicles: bool = Field(False, description="Walkers wait at the kerb for vehicles within 20 m (default: they stop for nobody).")


class PropsConfig(Section):
    """Static things: parked cars, lane blockers (broken-down cars, construction), buildings."""

    parked_vehicles: int = Field(15, ge=0, le=1000, description="Parked cars in parking lanes and wide shoulders.")
    lane_blockers: int = Field(2, ge=0, le=50, description="Lane-blocking obstacles, each in a lane with a same-direction neighbour.")
    buildings: bool = Field(True, description="Building blocks beside the roads (camera, static collisions).")


class SignalsConfig(Section):
    """Traffic lights (cycled per junction as CARLA's TrafficLightGroup), signs and speed limits from the map."""

    green_s: float = Field(10.0, gt=0.0, description="Green time of a light [s] (CARLA's default).")
    yellow_s: float = Field(3.0, gt=0.0, description="Yellow time of a light [s] (CARLA's default).")
    red_s: float = Field(2.0, ge=0.0, description="All-red time after a light's yellow, before the next pole [s] (CARLA's default).")
    infer_lights: bool = Field(
        True, description="On maps whose OpenDRIVE has no traffic lights, put one per incoming road at junctions entered from 3+ roads."
    )
    default_speed_limit_kmh: float = Field(
        30.0, gt=0.0, description="Speed limit of lanes no speed sign reaches [km/h] (CARLA vehicles' default)."
    )


class ExpertConfig(Section):
    """Privileged expert: route speed plan + gap keeping + junction yielding, and the noise of 'noisy' drivers."""

    target_speed_mps: float = Field(12.0, gt=0.0, description="Cruise speed [m/s] (43 km/h; the lane speed limits bind below it).")
    junction_speed_mps: float = Field(6.0, gt=0.0, description="Speed limit inside junctions [m/s].")
    max_lateral_accel_mps2: float = Field(2.5, gt=0.0, description="Curve speed limit a_lat = v^2 kappa [m/s^2].")
    noise_steer: float = Field(0.6, ge=0.0, le=1.0, description="Amplitude of injected steer noise.")
    noise_burst_s: tuple[float, float] = Field((0.5, 2.0), description="Length range of one noise burst [s].")
    noise_every_s: float = Field(6.0, gt=0.0, description="Mean time between noise bursts [s].")


class EpisodeConfig(Section):
    """One episode: step, route length, when it ends."""

    dt_s: float = Field(0.05, gt=0.0, le=0.5, description="Simulation step [s] (CARLA fixed_delta_seconds).")
    route_length_m: tuple[float, float] = Field((300.0, 600.0), description="Range of random route lengths [m].")
    max_steps: int = Field(8000, ge=1, description="Episode time limit [steps] (truncation), whatever the route's length.")
    timeout_s_per_m: float = Field(
        0.8, gt=0.0, description="Route time limit: this per metre of route plus timeout_initial_s (the Leaderboard's SECONDS_GIVEN_PER_METERS)."
    )
    timeout_initial_s: float = Field(5.0, ge=0.0, description="Route time limit's fixed part [s] (the Leaderboard's INITIAL_SECONDS_DELAY).")
    off_road_limit_s: float = Field(1.0, ge=0.0, description="Terminate after this long mostly off-road [s].")
    stuck_limit_s: float = Field(
        60.0, gt=0.0, description="Terminate when the ego makes no progress this long [s] (longer than a red at a four-way junction)."
    )
    terminate_on_collision: bool = Field(True, description="End the episode at the first collision.")


class SimConfig(Section):
    """Everything the embedded simulator needs (the CARLA bridge reuses traffic/expert/episode)."""

    map: MapConfig = MapConfig()
    vehicle: VehicleConfig = VehicleConfig()
    traffic: TrafficConfig = TrafficConfig()
    signals: SignalsConfig = SignalsConfig()
    walkers: WalkersConfig = WalkersConfig()
    props: PropsConfig = PropsConfig()
    expert: ExpertConfig = ExpertConfig()
    episode: EpisodeConfig = EpisodeConfig()
    num_route_points: int = Field(16, ge=2, description="Route points in the observation.")
    route_spacing_m: float = Field(2.0, gt=0.0, description="Spacing of observed route points [m].")
    num_waypoints: int = Field(8, ge=1, description="Expert future waypoints K.")
    waypoint_dt_s: float = Field(0.5, gt=0.0, description="Time between expert waypoints [s].")
