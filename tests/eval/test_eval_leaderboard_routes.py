"""Leaderboard route files (1.0 XML + scenario JSON, 2.0 XML with inline scenarios) imported into suites."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from drivesim.eval import leaderboard_routes
from drivesim.eval.leaderboard_routes import import_routes, next_turn, read_route_file, trigger_route_s
from drivesim.eval.routes import check_route, generate_suite, load_network, load_suite, save_suite

DATA = Path(__file__).resolve().parent / "data"
ROOT = Path(__file__).resolve().parents[2]
FILE_2_0, FILE_1_0 = DATA / "leaderboard_2_0_town01.xml", DATA / "leaderboard_1_0_town01.xml"
SCENARIOS_1_0 = DATA / "leaderboard_1_0_town01_scenarios.json"


def _rebuilt(route):
    return load_network(route.map, route.map_seed).route_through(route.segments, route.start_s_m, route.length_m)


def test_reading_both_formats() -> None:
    (route,) = read_route_file(FILE_2_0)
    assert (route.id, route.town, route.waypoints.shape) == ("7", "Town01", (11, 3))
    assert np.isnan(route.waypoints[:, 2]).all()  # 2.0 positions carry no yaw
    by_type = {scenario.type: scenario for scenario in route.scenarios}
    assert by_type["ParkingCutIn"].params == {"direction": "right"}
    assert by_type["SignalizedJunctionLeftTurn"].params == {"flow_speed": 16.6, "source_dist_interval": [30, 65]}
    assert by_type["Accident"].trigger == (200.0, 330.0, 0.0) and by_type["Accident"].params == {"distance": 120}
    first, second = read_route_file(FILE_1_0)
    assert (first.town, second.town, first.waypoints[0, 2]) == ("Town01", "Town03", pytest.approx(269.98))


def test_leaderboard_2_route_file_round_trips_into_a_suite(carla_town_path, tmp_path: Path) -> None:
    town01 = str(carla_town_path("Town01"))
    suite, warnings = import_routes(FILE_2_0, town01, "lb20")
    (route,) = suite.routes
    assert route.id == "lb20_7" and route.map == town01
    rebuilt = _rebuilt(route)
    for waypoint in read_route_file(FILE_2_0)[0].waypoints:  # the route passes every waypoint
        assert np.hypot(*(rebuilt.points - waypoint[:2]).T).min() < 1.0
    assert [(s.type, s.trigger_route_s) for s in route.scenarios] == [
        ("ParkingCutIn", pytest.approx(48.0, abs=2.0)),
        ("SignalizedJunctionLeftTurn", pytest.approx(242.0, abs=2.0)),
        ("NotARealScenario", pytest.approx(374.0, abs=2.0)),  # unknown types are kept
    ]
    for scenario, (x, y) in zip(route.scenarios, [(317.2, 195.0), (122.4, 195.2), (88.2, 297.4)], strict=True):
        at = rebuilt.points[int(round(scenario.trigger_route_s / rebuilt.spacing_m))]
        assert np.hypot(at[0] - x, at[1] - y) < 2.0
    assert route.scenarios[1].params == {"flow_speed": 16.6, "source_dist_interval": [30, 65]}
    dropped = [text for text in warnings if "dropped" in text]
    assert len(dropped) == 2 and any("Accident_1" in text for text in dropped)
    assert any("HardBreakRoute_1" in text for text in dropped)  # on the route's road, heading the other way
    registry = leaderboard_routes._implemented_types()
    if registry is None:
        assert any("no SCENARIO_TYPES registry" in text for text in warnings)
    else:
        assert any("NotARealScenario is not implemented" in text for text in warnings)
    save_suite(suite, tmp_path / "lb20.yaml")
    loaded = load_suite(tmp_path / "lb20.yaml")
    assert loaded == suite
    assert check_route(load_network(town01, 0), loaded.routes[0]) is loaded.routes[0]  # fits the map as stored


def test_leaderboard_1_routes_and_scenario_sampling(carla_town_path) -> None:
    town01 = str(carla_town_path("Town01"))
    suite, warnings = import_routes(FILE_1_0, town01, "lb10", scenario_file=SCENARIOS_1_0)
    assert len(suite.routes) == 1 and any("other towns skipped (Town03)" in text for text in warnings)
    (route,) = suite.routes
    # Same waypoints as the 2.0 file: the same lanes.
    assert route.segments == import_routes(FILE_2_0, town01, "lb20")[0].routes[0].segments
    assert [(s.type, round(s.trigger_route_s)) for s in route.scenarios] == [
        ("VehicleTurningRoute", 0),  # Scenario4: the route turns left at the next junction
        ("DynamicObjectCrossing", 48),  # Scenario3 wins over Scenario1 at one trigger (the higher number)
        ("SignalizedJunctionRightTurn", 374),  # Scenario9 there; Scenario8 needs a left turn: dropped
        ("ControlLoss", 492),  # Scenario1
    ]
    with pytest.raises(ValueError, match="no route of town 'Town02'"):
        import_routes(FILE_1_0, town01, "x", town="Town02")


def test_import_on_the_built_in_town_follows_the_lanes(tmp_path: Path) -> None:
    """A Leaderboard 2.0 file written from a generated route on `town` comes back as that route."""
    original = generate_suite("gen", 5, ["town:0"], num_routes=1, length_range_m=(400.0, 500.0)).routes[0]
    rebuilt = _rebuilt(original)
    waypoints = rebuilt.points[::40].tolist() + [rebuilt.points[-1].tolist()]
    trigger_xy, trigger_yaw = rebuilt.points[150], np.degrees(rebuilt.yaw_rad[150])
    positions = "\n".join(f'<position x="{x:.2f}" y="{y:.2f}" z="0"/>' for x, y in waypoints)
    xml = (f'<routes><route id="3" town="town"><waypoints>{positions}</waypoints><scenarios>'
           f'<scenario name="HardBreakRoute_1" type="HardBreakRoute"><trigger_point x="{trigger_xy[0]:.2f}" '
           f'y="{trigger_xy[1]:.2f}" z="0" yaw="{trigger_yaw:.1f}"/></scenario></scenarios></route></routes>')
    path = tmp_path / "town_routes.xml"
    path.write_text(xml)
    suite, _ = import_routes(path, "town:0", "gen")
    (route,) = suite.routes
    assert route.segments == original.segments
    assert route.length_m == pytest.approx(original.length_m, abs=2.0)
    assert np.hypot(*(np.asarray(route.start[:2]) - np.asarray(original.start[:2]))) < 1.0
    assert [(s.type, s.trigger_route_s) for s in route.scenarios] == [("HardBreakRoute", pytest.approx(150.0, abs=1.5))]
    assert check_route(load_network("town", 0), route) is route


def test_turns_and_bad_files(tmp_path: Path) -> None:
    route = _rebuilt(generate_suite("gen", 5, ["town:0"], num_routes=1, length_range_m=(400.0, 500.0)).routes[0])
    assert next_turn(route, 0.0) in ("left", "right", "straight")
    assert next_turn(route, route.length_m) is None
    assert trigger_route_s(route, (1e4, 1e4, 0.0)) is None
    bad = tmp_path / "bad.xml"
    bad.write_text("<routes><route id='1' town='town'><waypoints><position x='0' y='0'/></waypoints></route></routes>")
    with pytest.raises(ValueError, match="at least two waypoints"):
        read_route_file(bad)
    bad.write_text("<routes><route id='1' town='town'><waypoints><position x='9000' y='9000'/>"
                   "<position x='9010' y='9000'/></waypoints></route></routes>")
    with pytest.raises(ValueError, match="from the nearest lane"):
        import_routes(bad, "town:0", "bad")
    bad.write_text("not xml")
    with pytest.raises(ValueError, match="not a readable route XML"):
        read_route_file(bad)


def test_import_routes_cli(carla_town_path, tmp_path: Path) -> None:
    out = tmp_path / "lb.yaml"
    result = subprocess.run(
        [sys.executable, "-m", "drivesim.cli.main", "eval", "import-routes", str(FILE_1_0), "--map",
         str(carla_town_path("Town01")), "--scenarios", str(SCENARIOS_1_0), "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    output = " ".join((result.stdout + result.stderr).split())
    assert "1 routes" in output and "4 scenarios" in output and "warning: 1 routes of other towns skipped" in output
    assert load_suite(out).routes[0].scenarios[0].type == "VehicleTurningRoute"
