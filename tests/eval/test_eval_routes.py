"""Route suites: schema, generation, checking against the map, and the committed dev/test suites."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from drivesim.config import ConfigError
from drivesim.eval.routes import (
    RouteSuite,
    check_route,
    generate_suite,
    load_network,
    load_suite,
    parse_map_ref,
    save_suite,
)

ROUTES_DIR = Path(__file__).resolve().parents[2] / "configs" / "routes"


def test_generation_is_deterministic_and_round_trips(tmp_path: Path) -> None:
    first = generate_suite("unit", 3, ["town:0", "straight:0"], num_routes=4, length_range_m=(300.0, 900.0))
    second = generate_suite("unit", 3, ["town:0", "straight:0"], num_routes=4, length_range_m=(300.0, 900.0))
    assert first == second
    assert [route.map for route in first.routes] == ["town", "straight", "town", "straight"]
    assert all(300.0 <= route.length_m <= 900.0 for route in first.routes)
    longer = generate_suite("unit", 3, ["town:0", "straight:0"], num_routes=5, length_range_m=(300.0, 900.0))
    assert longer.routes[:4] == first.routes  # route i depends only on (seed, i)
    save_suite(first, tmp_path / "unit.yaml")
    assert load_suite(tmp_path / "unit.yaml") == first


def test_too_small_map_is_a_clear_error() -> None:
    # The junction map's arms are 138 m and routes stop 5 m before dead ends: at most 295 m.
    with pytest.raises(ValueError, match="too small"):
        generate_suite("j", 0, ["junction"], num_routes=1, length_range_m=(300.0, 400.0))
    suite = generate_suite("j", 0, ["junction"], num_routes=2, length_range_m=(250.0, 400.0))
    assert all(250.0 <= route.length_m <= 295.0 for route in suite.routes)


def test_changed_route_is_replanned_from_start_to_goal() -> None:
    route = generate_suite("unit", 1, ["town:0"], num_routes=1, length_range_m=(300.0, 500.0)).routes[0]
    network = load_network("town", 0)
    assert check_route(network, route) is route
    resampled = route.model_copy(update={"length_m": route.length_m - 12.0})  # as if lane sampling changed
    assert check_route(network, resampled).length_m == pytest.approx(route.length_m, abs=1.0)
    broken = route.model_copy(update={"segments": [route.segments[0], 0], "map_hash": "stale"})
    repaired = check_route(network, broken)
    rebuilt = network.route_through(repaired.segments, repaired.start_s_m, repaired.length_m)
    assert np.hypot(*(rebuilt.points[0] - np.asarray(route.start[:2]))) < 1.0
    assert np.hypot(*(rebuilt.points[-1] - np.asarray(route.goal))) < 1.5


def test_suite_schema_errors_name_the_problem(tmp_path: Path) -> None:
    route = generate_suite("unit", 1, ["straight:0"], num_routes=1).routes[0]
    with pytest.raises(ValueError, match="duplicate route ids"):
        RouteSuite(name="dup", routes=[route, route])
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\nroutes:\n- id: a\n  map: town\n  colour: red\n")
    with pytest.raises(ConfigError, match="colour"):
        load_suite(path)


def test_parse_map_ref() -> None:
    assert parse_map_ref("town:2") == ("town", 2)
    assert parse_map_ref("junction") == ("junction", 0)
    with pytest.raises(ValueError):
        parse_map_ref("town:x")


def test_committed_suites_follow_the_issue() -> None:
    dev, test = load_suite(ROUTES_DIR / "dev.yaml"), load_suite(ROUTES_DIR / "test.yaml")
    for suite in (dev, test):
        assert len(suite.routes) >= 20
        assert all(300.0 <= route.length_m <= 1500.0 for route in suite.routes)
        for route in suite.routes:
            checked = check_route(load_network(route.map, route.map_seed), route)
            assert checked.segments == route.segments, f"{route.id} had to be re-planned"
            assert checked.length_m == pytest.approx(route.length_m, rel=0.1), route.id
    dev_maps = {route.map_key for route in dev.routes}
    test_maps = {route.map_key for route in test.routes}
    assert test_maps - dev_maps, "the test suite needs a map unused in dev"
    assert not {route.seed for route in dev.routes} & {route.seed for route in test.routes}
