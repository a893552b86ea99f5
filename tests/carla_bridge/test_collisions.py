"""Collisions count as the Leaderboard's CollisionTest counts them (ScenarioRunner atomic_criteria.py)."""

from __future__ import annotations

import numpy as np
import pytest

from carla_bridge.criteria import CollisionCriterion, collision_kind
from carla_bridge.fake import FakeCarlaServer

STRAIGHT = {"route": {"segments": [0], "start_s_m": 1.0, "length_m": 60.0}, "npcs": 0}
BRAKE = np.array([0.0, 0.0, 1.0], np.float32)


def _run(env, steps: int, action: np.ndarray | None = None) -> list[dict]:
    """Step ``steps`` times (the expert, or a fixed ``action``); the events row and info of each step."""
    rows = []
    for _ in range(steps):
        obs, _, terminated, truncated, info = env.step(env.expert_action() if action is None else action)
        rows.append({"events": dict(zip(("collision", "off_road"), obs["events"][:2], strict=True)), **info})
        rows[-1]["static"] = float(obs["events"][6])
        if terminated or truncated:
            break
    return rows


def test_curb_contacts_are_no_collisions(make_env, fake_server: FakeCarlaServer):
    env = make_env(sensors=None)
    env.reset(seed=0, options=STRAIGHT)
    fake_server.inject_collision("static.sidewalk", ticks_from_now=10)
    rows = _run(env, 20)
    assert len(rows) == 20 and not any(row["events"]["collision"] for row in rows)


def test_a_pole_is_a_static_collision(make_env, fake_server: FakeCarlaServer):
    env = make_env(sensors=None)
    env.reset(seed=0, options=STRAIGHT)
    fake_server.inject_collision("static.pole", ticks_from_now=10)
    rows = _run(env, 20)
    assert len(rows) == 10 and rows[-1]["termination"] == "collision"
    assert rows[-1]["collision_actor"] == "static" and rows[-1]["static"] == 1.0


def test_being_rear_ended_while_stopped_is_not_the_egos_collision(make_env, fake_server: FakeCarlaServer):
    env = make_env(sensors=None)
    env.reset(seed=0, options=STRAIGHT)
    fake_server.inject_collision("vehicle.audi.a2", actor_id=999, ticks_from_now=5)
    rows = _run(env, 10, BRAKE)
    assert len(rows) == 10 and not any(row["events"]["collision"] for row in rows)
    fake_server.inject_collision("vehicle.audi.a2", actor_id=999, ticks_from_now=10)
    rows = _run(env, 20)  # moving: counts
    assert rows[-1]["termination"] == "collision" and rows[-1]["collision_actor"] == "vehicle:999"


def test_repeated_contacts_close_in_time_or_space_count_once(make_env, fake_server, sim_config):
    sim_config.episode.terminate_on_collision = False
    env = make_env(sensors=None)
    env.reset(seed=0, options=STRAIGHT)
    for tick in (10, 11, 12):  # scraping along one car
        fake_server.inject_collision("vehicle.audi.a2", actor_id=999, ticks_from_now=tick)
    fake_server.inject_collision("static.pole", ticks_from_now=13)  # another actor, but within 5 m
    rows = _run(env, 14)
    assert [i for i, row in enumerate(rows) if row["events"]["collision"]] == [9]


class _Actor:
    def __init__(self, actor_id: int, type_id: str) -> None:
        self.id, self.type_id = actor_id, type_id


class _Event:
    def __init__(self, actor_id: int, type_id: str) -> None:
        self.other_actor = _Actor(actor_id, type_id)


def test_collision_test_rules():
    assert [collision_kind(t) for t in ("static.sidewalk", "static.pole", "traffic.traffic_light")] == [
        None,
        "static",
        "static",
    ]
    assert collision_kind("vehicle.tesla.model3") == "vehicle" and collision_kind("walker.pedestrian.0001") == "walker"
    criterion = CollisionCriterion()
    here, far = np.zeros(2), np.array([20.0, 0.0])
    first = criterion.count(_Event(7, "vehicle.audi.a2"), here, 5.0, 1.0)
    assert first is not None and first.label == "vehicle:7" and first.kind == "vehicle"
    criterion.update(far, 2.0)  # moved away: the place is forgotten, the actor not yet
    assert criterion.count(_Event(7, "vehicle.audi.a2"), far, 5.0, 2.0) is None
    criterion.update(far, 6.5)  # 5.5 s later: the actor is forgotten too
    assert criterion.count(_Event(7, "vehicle.audi.a2"), far, 5.0, 6.5) is not None
    assert criterion.count(_Event(0, "static.building"), far + 3.0, 5.0, 6.6) is None  # within 5 m
    criterion.update(np.array([40.0, 0.0]), 7.0)
    assert criterion.count(_Event(8, "vehicle.audi.a2"), np.array([40.0, 0.0]), 0.05, 7.0) is None  # standing
    sidewalk = criterion.count(_Event(0, "static.sidewalk"), np.array([40.0, 0.0]), 3.0, 7.1)
    assert sidewalk is None  # remembered, but no collision event ...
    assert criterion.count(_Event(8, "vehicle.audi.a2"), np.array([41.0, 0.0]), 3.0, 7.2) is None  # ... so this one is within 5 m


@pytest.mark.parametrize("speed", [0.0, 0.099])
def test_a_standing_ego_collides_with_nothing(speed):
    assert CollisionCriterion().count(_Event(3, "vehicle.audi.a2"), np.zeros(2), speed, 0.0) is None
