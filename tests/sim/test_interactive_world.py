"""The interactive world's mechanisms, each in a scripted situation: lights, walkers, blockers, cut-ins,
contact, friction, and a careless driver that is not made way for."""

import math

import numpy as np
import pytest

from drivesim import spec
from drivesim.sim.config import SimConfig
from drivesim.sim.env import EmbeddedSimEnv
from drivesim.sim.geometry import world_to_ego
from drivesim.sim.props import add_broken_down_car
from drivesim.sim.signals import GREEN, RED
from drivesim.sim.vehicle import VehicleState, step_vehicle

EMPTY = {"npcs": 0, "walkers": 0, "parked": 0, "blockers": 0}


def make_env(map_name: str, lane_changes: bool = True, **episode) -> EmbeddedSimEnv:
    config = SimConfig()
    config.map.name = map_name
    config.traffic.lane_changes = lane_changes
    for key, value in episode.items():
        setattr(config.episode, key, value)
    return EmbeddedSimEnv(config)


def segment_of(env: EmbeddedSimEnv, road_id: int, lane_id: int, in_junction: bool = False) -> int:
    network = env.network
    return next(s for s, key in enumerate(network.segment_road_lane)
                if key == (road_id, lane_id) and bool(network.segment_in_junction[s]) == in_junction)


def junction_approach(env: EmbeddedSimEnv, lane_id: int = 1) -> tuple[int, int]:
    """On the ``junction`` map: the westbound approach lane of road 0 and its straight junction lane."""
    approach = segment_of(env, 0, lane_id)
    network = env.network
    straight = min(network.successors[approach],
                   key=lambda s: abs(math.remainder(network.yaw_rad[network.segment_start[s] + network.segment_count[s] - 1]
                                                    - network.yaw_rad[network.segment_start[approach]], math.tau)))
    return approach, int(straight)


def start_on(env: EmbeddedSimEnv, segments: list[int], start_s_m: float, length_m: float, driver: str = "clean",
             **counts) -> None:
    options = {**EMPTY, **counts, "driver": driver,
               "route": {"segments": segments, "start_s_m": start_s_m, "length_m": length_m}}
    env.reset(seed=0, options=options)


def drive(env: EmbeddedSimEnv, seconds: float, until=None) -> list[dict]:
    """Step the env's driver for ``seconds``; returns the infos (stops early when ``until(env)`` holds)."""
    infos = []
    for _ in range(int(seconds / env.sim_config.episode.dt_s)):
        obs, _, terminated, truncated, info = env.step(env.driver_action())
        info["events"] = obs[spec.OBS_EVENTS]
        infos.append(info)
        if terminated or truncated or (until is not None and until(env)):
            break
    return infos


def event_count(infos: list[dict], name: str) -> float:
    return float(sum(info["events"][spec.EVENT_NAMES.index(name)] for info in infos))


def test_red_light_stops_expert_and_npc_at_the_line_and_green_releases_them():
    env = make_env("junction", lane_changes=False)  # the NPC stays beside the ego
    world = env.world
    approach, straight = junction_approach(env, 1)
    other_approach, _ = junction_approach(env, 2)
    pole = int(world.layout.light_of_segment[straight])
    assert pole >= 0 and world.layout.light_of_segment[junction_approach(env, 2)[1]] == pole
    length = env.network.segment_length_m[approach]
    start_on(env, [approach, straight], length - 70.0, 150.0)
    npc = world.add_npc(other_approach, length - 60.0, 8.0, 8.0)
    world.lights.set_state(pole, RED)
    infos = drive(env, 25.0)
    stop_xy = env.network.points[env.network.segment_start[straight]]
    ego_front = world.ego.xy + world.config.vehicle.length_m / 2 * np.array([math.cos(world.ego.yaw_rad), math.sin(world.ego.yaw_rad)])
    npc_index = world.traffic.index_of(npc)
    assert world.ego.speed_mps < 0.1 and world.traffic.speed_mps[npc_index] < 0.1
    # Both wait before the line, within a few metres of it (the ego drives west: -x).
    assert 0.0 < ego_front[0] - stop_xy[0] < 4.0
    assert 0.0 < world.traffic.xy[npc_index, 0] - stop_xy[0] < 8.0
    assert event_count(infos, "red_light") == 0
    world.lights.set_state(pole, GREEN)
    drive(env, 8.0)
    assert world.ego.x_m < stop_xy[0] - 5.0 and world.traffic.xy[world.traffic.index_of(npc), 0] < stop_xy[0] - 5.0


def test_careless_driver_runs_the_red_light_and_it_is_counted():
    env = make_env("junction")
    approach, straight = junction_approach(env, 1)
    start_on(env, [approach, straight], env.network.segment_length_m[approach] - 70.0, 150.0, driver="careless")
    env.world.lights.set_state(int(env.world.layout.light_of_segment[straight]), RED)
    infos = drive(env, 20.0)
    assert event_count(infos, "red_light") == 1


def test_walker_crossing_in_front_makes_the_expert_stop():
    env = make_env("straight", terminate_on_collision=True)
    world = env.world
    lane = segment_of(env, 0, -1)
    start_on(env, [lane], 50.0, 300.0)
    walker_xy = env.network.points[env.network.segment_start[lane] + 95]  # 45 m ahead of the ego
    walker = world.walkers.place_near(walker_xy, speed_mps=1.4)
    world.walkers.jaywalk(walker)
    infos = drive(env, 6.0)
    assert all(info["collision_actor"] is None for info in infos)
    assert min(info_speed(env, infos)) < 0.5, "the expert stops for the walker"
    infos = drive(env, 15.0)
    assert world.tracker.route_s_m > 60.0 and all(info["collision_actor"] is None for info in infos)


def info_speed(env: EmbeddedSimEnv, infos: list[dict]) -> list[float]:
    poses = np.array([info["ego_pose"][:2] for info in infos])
    return list(np.hypot(*np.diff(poses, axis=0).T) / env.sim_config.episode.dt_s)


def test_blocked_lane_makes_the_expert_change_lanes_and_pass():
    env = make_env("straight", terminate_on_collision=True)
    world = env.world
    lane = segment_of(env, 0, -1)
    start_on(env, [lane], 20.0, 260.0)
    add_broken_down_car(env.network, world.statics, lane, 110.0)
    blocker_xy = world.statics.boxes[0, :2]
    infos = drive(env, 40.0)
    assert infos[-1]["termination"] == "route_done", infos[-1]["termination"]
    assert all(info["collision_actor"] is None for info in infos)
    poses = np.array([info["ego_pose"][:2] for info in infos])
    beside = np.abs(poses[:, 0] - blocker_xy[0]) < 2.0
    assert beside.any()
    lateral = np.abs(poses[beside, 1] - blocker_xy[1])
    assert lateral.min() > 2.5, "the ego passes in the neighbour lane"


def test_npc_cuts_in_and_the_expert_brakes():
    env = make_env("straight", terminate_on_collision=True)
    world = env.world
    ego_lane, left_lane = segment_of(env, 0, -2), segment_of(env, 0, -1)
    start_on(env, [ego_lane], 20.0, 300.0)
    drive(env, 6.0)  # up to speed
    speed_before = world.ego.speed_mps
    npc = world.add_npc(left_lane, world.tracker.route_s_m + 20.0 + 12.0, 5.0, 5.0)
    world.traffic.start_lane_change(world.traffic.index_of(npc), ego_lane)
    infos = drive(env, 8.0)
    assert all(info["collision_actor"] is None for info in infos)
    index = world.traffic.index_of(npc)
    assert world.traffic.chain[index, 0] == ego_lane, "the NPC is in the ego's lane"
    accel = np.diff(info_speed(env, infos)) / env.sim_config.episode.dt_s
    assert min(info_speed(env, infos)) < speed_before - 2.0 and accel.min() < -2.0


@pytest.mark.parametrize("driver", ["careless", "clean"])
def test_careless_ego_hits_a_crossing_car_that_has_right_of_way(driver):
    """The crossing NPC has green and does not make way for an ego that runs its red: the careless driver hits
    it, the clean expert on the same start waits at the line."""
    env = make_env("junction", terminate_on_collision=True)
    world = env.world
    network = env.network
    approach, straight = junction_approach(env, 1)
    start_on(env, [approach, straight], network.segment_length_m[approach] - 40.0, 150.0, driver=driver)
    world.lights.set_state(int(world.layout.light_of_segment[straight]), RED)
    cross = segment_of(env, 1, 1)  # northbound, crossing the ego's path
    for junction_lane in network.successors[cross]:
        world.lights.set_state(int(world.layout.light_of_segment[junction_lane]), GREEN)
    npc = world.add_npc(cross, network.segment_length_m[cross] - 36.0, 9.0, 9.0)
    infos = drive(env, 15.0)
    if driver == "careless":
        assert infos[-1]["collision_actor"] == f"vehicle:{npc}"
    else:
        assert all(info["collision_actor"] is None for info in infos)


def test_collision_stops_both_vehicles():
    env = make_env("straight", terminate_on_collision=False)
    world = env.world
    lane = segment_of(env, 0, -1)
    start_on(env, [lane], 20.0, 300.0, driver="careless")
    npc = world.add_npc(lane, 20.0 + 60.0, 2.0, 2.0)
    infos = drive(env, 20.0)
    hit = next(k for k, info in enumerate(infos) if info["collision_actor"] == f"vehicle:{npc}")
    after = infos[hit + 1 : hit + 20]
    poses = np.array([info["ego_pose"][:2] for info in after])
    assert np.hypot(*(poses[-1] - poses[0])) < 0.5, "the ego stands after the contact"
    assert world.traffic.speed_mps[world.traffic.index_of(npc)] < 0.1 or world.traffic.hold_s[world.traffic.index_of(npc)] > 0
    ego_box = np.array([*world.ego.xy, math.degrees(world.ego.yaw_rad), world.config.vehicle.length_m, world.config.vehicle.width_m])
    npc_box = world.npc_boxes()[world.traffic.index_of(npc)]
    assert abs(ego_box[0] - npc_box[0]) > 0.5 * (ego_box[3] + npc_box[3]) - 0.3, "nobody drives through the other"


def test_too_fast_turn_exceeds_the_friction_limit():
    config = SimConfig().vehicle
    state = VehicleState(x_m=0.0, y_m=0.0, yaw_rad=0.0, speed_mps=25.0)
    slow = VehicleState(x_m=0.0, y_m=0.0, yaw_rad=0.0, speed_mps=5.0)
    for _ in range(20):
        state = step_vehicle(state, np.array([0.3, 0.6, 0.0]), config, 0.05)
        slow = step_vehicle(slow, np.array([0.0, 0.6, 0.0]), config, 0.05)
    grip = config.friction_mu * 9.81
    assert state.sliding and abs(state.yaw_rate_rps) * state.speed_mps <= grip * 1.01
    assert not slow.sliding


@pytest.mark.parametrize(("speed_mps", "slides"), [(16.0, True), (4.0, False)])
def test_too_fast_turn_leaves_the_lane(speed_mps, slides):
    """Tracking a junction's right turn (radius ~7 m) at 16 m/s asks for ~36 m/s^2, over mu g: the car slides
    wide, out of its lane; at 4 m/s it follows the lane."""
    env = make_env("junction", terminate_on_collision=True)
    world, network = env.world, env.network
    approach = segment_of(env, 0, 2)
    turn = min(network.successors[approach], key=lambda s: network.segment_length_m[s])
    start_on(env, [approach, turn], network.segment_length_m[approach] - 25.0, 60.0)
    world.lights.set_state(int(world.layout.light_of_segment[turn]), GREEN)
    world.ego.speed_mps = speed_mps
    route = world.route
    max_offset, slid = 0.0, False
    for _ in range(int(35.0 / speed_mps / 0.05)):
        ahead = world.tracker.route_s_m + speed_mps * world.config.waypoint_dt_s * np.arange(1, world.config.num_waypoints + 1)
        points = route.points[np.minimum((ahead / route.spacing_m).astype(int), len(route.points) - 1)]
        waypoints = world_to_ego(points, world.ego.xy, world.ego.yaw_rad)
        _, _, terminated, _, _ = env.step(world.controller.control(waypoints, world.ego.speed_mps, 0.05))
        slid |= world.ego.sliding
        offset = np.min(np.hypot(*(route.points - world.ego.xy).T))
        max_offset = max(max_offset, float(offset))
        if terminated:
            break
    assert slid == slides
    assert (max_offset > 1.75) == slides, f"largest distance from the lane centre {max_offset:.1f} m"


@pytest.mark.parametrize("driver", ["clean", "careless"])
def test_npcs_see_the_ego_through_its_lane_not_its_route(driver):
    """An NPC following the ego brakes for it whatever the ego's route says (it predicts it from its lane)."""
    env = make_env("straight", lane_changes=False, terminate_on_collision=True)
    world = env.world
    lane = segment_of(env, 0, -1)
    start_on(env, [lane], 80.0, 300.0, driver=driver)
    world.ego.speed_mps = 0.0
    npc = world.add_npc(lane, 40.0, 12.0, 12.0)
    for _ in range(120):
        env.step(np.array([0.0, 0.0, 1.0], dtype=np.float32))  # the ego stands
    assert world.traffic.speed_mps[world.traffic.index_of(npc)] < 0.5
    assert world.npc_contacts == 0 and world.traffic.xy[world.traffic.index_of(npc), 0] < world.ego.x_m - 4.0
