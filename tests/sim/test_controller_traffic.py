"""The shared waypoint controller and the traffic rules."""

import numpy as np
import pytest

from drivesim.sim.config import SimConfig, TrafficConfig, VehicleConfig
from drivesim.sim.controller import WaypointController
from drivesim.sim.env import EmbeddedSimEnv
from drivesim.sim.gaps import Paths, idm_acceleration, vehicle_gaps


def straight_waypoints(speed_mps, lateral_m=0.0):
    times = np.arange(1, 9) * 0.5
    return np.stack([speed_mps * times, np.full(8, lateral_m)], axis=1)


def test_controller_steers_towards_waypoints():
    controller = WaypointController(VehicleConfig())
    assert controller.control(straight_waypoints(8.0), 8.0)[1] == pytest.approx(0.0)
    assert controller.control(straight_waypoints(8.0, 2.0), 8.0)[1] > 0.05  # right of us: positive steer
    assert controller.control(straight_waypoints(8.0, -2.0), 8.0)[1] < -0.05


def test_controller_speed_loop():
    controller = WaypointController(VehicleConfig())
    throttle, _, brake = controller.control(straight_waypoints(10.0), 5.0)
    assert throttle > 0.3 and brake == 0.0
    throttle, _, brake = controller.control(straight_waypoints(2.0), 10.0)
    assert brake > 0.3 and throttle == 0.0
    assert controller.control(np.zeros((8, 2)), 0.0)[2] == 1.0  # hold at standstill


def test_leader_on_path_gives_gap_and_junction_conflict_yields():
    distance = np.arange(1, 13) * 3.0
    follower_path = np.stack([distance, np.zeros(12)], 1)
    positions = np.array([[0.0, 0.0], [20.0, 0.3]])
    paths = Paths(np.stack([follower_path, follower_path + [20.0, 0.0]]), distance, np.zeros((2, 12), bool))
    gaps, speeds = vehicle_gaps(positions, np.zeros(2), np.array([8.0, 3.0]), np.array([4.6, 4.6]), np.full(2, 0.95), paths)
    assert gaps[0] == pytest.approx(21.0 - 4.6) and speeds[0] == pytest.approx(3.0)
    assert np.isinf(gaps[1])
    # Two vehicles crossing a junction: the one arriving later stops before the conflict point.
    crossing = np.stack([np.full(12, 15.0), distance - 18.0], 1)  # comes from y=-15 heading +y through (15, 0)
    positions = np.array([[0.0, 0.0], [15.0, -15.0]])
    paths = Paths(np.stack([follower_path, crossing]), distance, np.ones((2, 12), bool))
    paths.in_junction[:, 0] = False
    gaps, _ = vehicle_gaps(positions, np.array([0.0, np.pi / 2]), np.array([8.0, 2.0]), np.full(2, 4.6), np.full(2, 0.95),
                           paths)
    assert np.isfinite(gaps[1]) and np.isinf(gaps[0])  # the slower arrival yields


def test_idm_brakes_for_a_stopped_leader():
    c = TrafficConfig()
    params = (np.array([c.time_headway_s]), np.array([c.min_gap_m]), np.array([c.max_accel_mps2]),
              np.array([c.comfort_decel_mps2]), c.max_decel_mps2)
    free = idm_acceleration(np.array([5.0]), np.array([10.0]), np.array([np.inf]), np.array([0.0]), *params)
    close = idm_acceleration(np.array([8.0]), np.array([10.0]), np.array([6.0]), np.array([0.0]), *params)
    assert free[0] > 0 and close[0] < -2.0


def test_npcs_do_not_crash_into_each_other():
    env = EmbeddedSimEnv(SimConfig())
    env.reset(seed=11)
    crashes = 0
    for step in range(1200):  # one simulated minute at default density
        env.step(env.expert_action())
        if step % 10 == 0:
            crashes += env.world.npc_collisions()
    assert crashes == 0


def test_npcs_respawn_at_dead_ends_even_when_fewer_fit():
    config = SimConfig()
    config.map.name = "junction"  # four dead-end arms: NPCs leave the map and are re-spawned
    config.traffic.npcs = 40  # more than fit at the minimum spacing
    env = EmbeddedSimEnv(config)
    env.reset(seed=3)
    start_ids = set(env.world.traffic.ids.tolist())
    counts = set()
    for _ in range(1500):  # the world alone: the parked ego never ends the episode
        env.world.step(np.array([0.0, 0.0, 1.0]))
        counts.add(env.world.traffic.count)
    assert set(env.world.traffic.ids.tolist()) - start_ids  # some were re-spawned with new ids
    assert max(counts) <= 40 and min(counts) > 0
