"""Signals from the map: lights grouped and cycled as CARLA does, signs, speed limits, shared entries."""

import carla
import numpy as np
import pytest

from drivesim.sim.config import SignalsConfig
from drivesim.sim.opendrive import junction_map, town_map
from drivesim.sim.road import RoadNetwork
from drivesim.sim.signals import GREEN, RED, SIGN_STOP, YELLOW, TrafficLights, build_signal_layout


@pytest.fixture(scope="module")
def town() -> RoadNetwork:
    return RoadNetwork(carla.Map("town", town_map(0)))


def test_town01_lights_come_from_its_landmarks(carla_town_path):
    network = RoadNetwork(carla.Map("Town01", carla_town_path("Town01").read_text()))
    landmarks = network.map.get_all_landmarks()
    assert sum(landmark.type == "1000001" for landmark in landmarks) == 72
    layout = build_signal_layout(network, SignalsConfig())
    assert not layout.inferred_lights
    assert layout.num_poles == 36 and len(layout.group_size) == 12 and set(layout.group_size) == {3}  # T-junctions
    lit = layout.light_of_segment >= 0
    assert np.all(network.segment_in_junction[lit]), "lights control junction lanes"
    assert np.all(np.isin(np.round(layout.speed_limit_mps * 3.6), [30, 90]))


def test_generated_town_has_lights_stop_signs_and_speed_limits(town):
    layout = build_signal_layout(town, SignalsConfig())
    types = [landmark.type for landmark in town.map.get_all_landmarks()]
    assert types.count("1000001") > 0 and types.count("206") > 0 and types.count("274") > 0
    assert layout.num_poles == 16 and list(layout.group_size) == [4, 4, 4, 4]  # the four 4-way junctions
    assert (layout.sign_of_segment == SIGN_STOP).sum() > 0
    assert set(np.round(layout.speed_limit_mps * 3.6)) == {30.0, 50.0}


def test_one_pole_green_at_a_time_with_carla_timings():
    """A group cycles its poles in turn: green 10 s, yellow 3 s, then red while the others run (CARLA's)."""
    network = RoadNetwork(carla.Map("junction", junction_map()))
    config = SignalsConfig()
    layout = build_signal_layout(network, config)
    lights = TrafficLights(layout, config, np.random.default_rng(0))
    states, dt = [], 0.05
    for _ in range(int(2 * 4 * 15.0 / dt)):
        lights.step(dt)
        states.append(lights.state.copy())
    states = np.array(states)
    assert np.all((states != RED).sum(1) <= 1), "never two poles of one junction non-red"
    for pole in range(4):
        green_s = (states[:, pole] == GREEN).mean() * len(states) * dt
        yellow_s = (states[:, pole] == YELLOW).mean() * len(states) * dt
        assert green_s == pytest.approx(2 * config.green_s, abs=0.2) and yellow_s == pytest.approx(2 * config.yellow_s, abs=0.2)
    assert lights.time_to_change_s(0) <= config.green_s + config.yellow_s + 3 * 15.0


def test_twin_junction_lanes_share_their_entry_control(carla_town_path):
    """Town03 has overlapping junction lanes from one entry with different predecessors: each obeys the light
    of the entry it starts at (otherwise the expert drove the unlit twin through red)."""
    network = RoadNetwork(carla.Map("Town03", carla_town_path("Town03").read_text()))
    layout = build_signal_layout(network, SignalsConfig())
    junction = np.flatnonzero(network.segment_in_junction)
    start = network.points[network.segment_start[junction]]
    yaw = network.yaw_rad[network.segment_start[junction]]
    lit = layout.light_of_segment[junction] >= 0
    for k in np.flatnonzero(~lit & (layout.sign_of_segment[junction] == 0)):
        twin = (np.hypot(*(start[lit] - start[k]).T) < 1.0) & (np.cos(yaw[lit] - yaw[k]) > np.cos(np.radians(20.0)))
        assert not twin.any(), f"junction lane {junction[k]} starts at a lit entry but has no light"
