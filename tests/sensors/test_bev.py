"""BEV rasteriser: channels line up with the map, the ego and each other, heading-up for any yaw."""

from __future__ import annotations

import carla
import numpy as np
import pytest

from drivesim.sensors.bev import BevRenderer, bev_to_rgb
from drivesim.sensors.config import BevConfig
from drivesim.sensors.geometry import box_corners, heading_vectors
from drivesim.sensors.map_raster import render_map_raster
from drivesim.sensors.scene import STOP_GREEN, STOP_RED, STOP_SIGN, Scene
from drivesim.sim.opendrive import straight_map, town_map
from drivesim.sim.road import RoadNetwork
from drivesim.spec import BEV_CHANNELS

DRIVABLE, MARKINGS, ROUTE, EGO, VEHICLES = (BEV_CHANNELS.index(name) for name in
                                            ("drivable", "lane_markings", "route", "ego", "vehicles"))
EGO_SIZE = (4.8, 2.0)
NO_BOXES = np.zeros((0, 5))


@pytest.fixture(scope="module")
def town() -> RoadNetwork:
    return RoadNetwork(carla.Map("town", town_map(0)))


@pytest.fixture(scope="module")
def renderer(town: RoadNetwork) -> BevRenderer:
    return BevRenderer(town, BevConfig())


def lane_pose(network: RoadNetwork, index: int) -> tuple[np.ndarray, float]:
    return network.points[index].copy(), float(np.degrees(network.yaw_rad[index]))


def ego_to_world(ego_xy: np.ndarray, ego_yaw_deg: float, local_xy: np.ndarray) -> np.ndarray:
    """Ego-frame points (x forward, y right) to world points."""
    forward, right = heading_vectors(ego_yaw_deg)
    local_xy = np.atleast_2d(local_xy)
    return ego_xy + local_xy[:, :1] * forward + local_xy[:, 1:] * right


def centroid(layer: np.ndarray) -> np.ndarray:
    rows, cols = np.nonzero(layer)
    assert len(rows), "empty layer"
    return np.array([rows.mean(), cols.mean()])


def test_box_corners_order_and_frame() -> None:
    corners = box_corners(np.array([[10.0, 20.0, 90.0, 4.0, 2.0]]))[0]
    # Yaw 90 deg faces +y; the box's right (+90 deg) is -x in CARLA's left-handed frame.
    np.testing.assert_allclose(corners, [[11.0, 22.0], [9.0, 22.0], [9.0, 18.0], [11.0, 18.0]], atol=1e-12)
    forward, right = heading_vectors(90.0)
    local = np.stack([(corners - [10.0, 20.0]) @ forward, (corners - [10.0, 20.0]) @ right], axis=1)
    np.testing.assert_allclose(local, [[2.0, -1.0], [2.0, 1.0], [-2.0, 1.0], [-2.0, -1.0]], atol=1e-12)


def test_shape_dtype_and_ego_pixel(renderer: BevRenderer, town: RoadNetwork) -> None:
    ego_xy, ego_yaw = lane_pose(town, 500)
    bev = renderer.render(ego_xy, ego_yaw, EGO_SIZE, ego_xy[None], NO_BOXES)
    assert bev.shape == (len(BEV_CHANNELS), 64, 64) and bev.dtype == np.uint8
    assert set(np.unique(bev)) <= {0, 1}
    np.testing.assert_allclose(centroid(bev[EGO]), [0.75 * 64 - 0.5, 31.5], atol=0.01)  # centre on a pixel corner
    rows, cols = np.nonzero(bev[EGO])
    assert (np.ptp(rows) + 1, np.ptp(cols) + 1) == (10, 4), "4.8 m x 2 m: the pixels whose centres lie inside"
    assert bev[DRIVABLE, 47:49, 31:33].all(), "the ego stands on a lane"


def test_static_layers_match_map_raster(renderer: BevRenderer, town: RoadNetwork) -> None:
    raster = render_map_raster(town, 0.5)
    for index in (100, 3000, 7000):
        ego_xy, ego_yaw = lane_pose(town, index)
        bev = renderer.render(ego_xy, ego_yaw + 17.0, EGO_SIZE, ego_xy[None], NO_BOXES)
        rows, cols = np.mgrid[0:64, 0:64]
        local = np.stack([(48 - rows - 0.5) * 0.5, (cols + 0.5 - 32) * 0.5], axis=-1).reshape(-1, 2)  # pixel centres
        world = ego_to_world(ego_xy, ego_yaw + 17.0, local)
        raster_px = np.rint(raster.to_pixels(world)).astype(int)  # cv2 pixel centres are integers
        expected = raster.drivable[raster_px[:, 1], raster_px[:, 0]].reshape(64, 64)
        assert (bev[DRIVABLE] == expected).mean() > 0.99
        assert bev[MARKINGS].sum() > 0


def test_route_lies_on_drivable(renderer: BevRenderer, town: RoadNetwork) -> None:
    rng = np.random.default_rng(3)
    for _ in range(6):
        route = town.random_route(rng, 200.0)
        for start in (0, 60, 120):  # includes junction turns
            ego_xy = route.points[start]
            ego_yaw = float(np.degrees(route.yaw_rad[start]))
            bev = renderer.render(ego_xy, ego_yaw, EGO_SIZE, route.points[start:], NO_BOXES)
            assert bev[ROUTE].sum() >= 20
            assert np.all(bev[DRIVABLE][bev[ROUTE] > 0] == 1)
            assert bev[ROUTE, 40, 32] == 1, "the route leaves the ego straight ahead"


def test_vehicle_offsets_in_pixels(renderer: BevRenderer, town: RoadNetwork) -> None:
    ego_xy, ego_yaw = lane_pose(town, 1234)
    ahead = ego_to_world(ego_xy, ego_yaw, np.array([10.0, 0.0]))[0]
    bev = renderer.render(ego_xy, ego_yaw, EGO_SIZE, ego_xy[None], np.array([[*ahead, ego_yaw, 4.5, 2.0]]))
    np.testing.assert_allclose(centroid(bev[VEHICLES]), [47.5 - 20, 31.5], atol=0.5)  # 4.5 m: 9 px, not centred
    right = ego_to_world(ego_xy, ego_yaw, np.array([0.0, 5.0]))[0]
    bev = renderer.render(ego_xy, ego_yaw, EGO_SIZE, ego_xy[None], np.array([[*right, ego_yaw, 4.5, 2.0]]))
    row, col = centroid(bev[VEHICLES])
    assert row == pytest.approx(47.5, abs=0.5) and col == pytest.approx(31.5 + 10, abs=0.01)
    assert not np.any(bev[VEHICLES] & bev[EGO])


@pytest.mark.parametrize("ego_yaw", [0.0, 37.0, 90.0, 180.0, -123.4])
def test_heading_up_for_any_yaw(renderer: BevRenderer, ego_yaw: float) -> None:
    """The same scene in the ego frame gives the same dynamic channels whatever the world yaw."""
    ego_xy = np.array([120.0, -140.0])
    route_local = np.stack([np.arange(0.0, 40.0), 0.05 * np.arange(0.0, 40.0) ** 1.5], axis=1)
    boxes_local = np.array([[12.0, 0.3, 10.0], [6.0, -3.6, -5.0], [-9.0, 3.4, 180.0], [2.0, 8.0, 90.0]])

    def render(yaw: float) -> np.ndarray:
        boxes = np.column_stack([ego_to_world(ego_xy, yaw, boxes_local[:, :2]), yaw + boxes_local[:, 2],
                                 np.full(4, 4.5), np.full(4, 2.0)])
        return renderer.render(ego_xy, yaw, EGO_SIZE, ego_to_world(ego_xy, yaw, route_local), boxes)

    reference, rotated = render(0.0), render(ego_yaw)
    for channel in (ROUTE, EGO, VEHICLES):
        assert np.sum(reference[channel] != rotated[channel]) <= 2, BEV_CHANNELS[channel]
    # Box centres at 0.5 m/px: ahead = up (row 48 - 2 x), right = right (column 32 + 2 y).
    for x_m, y_m in boxes_local[:2, :2].tolist() + [boxes_local[3, :2].tolist()]:
        assert rotated[VEHICLES, int(48 - 2 * x_m), int(32 + 2 * y_m)] == 1
    assert rotated[ROUTE, 30, 35] == 1 and rotated[ROUTE, 10, 40] == 1 and rotated[ROUTE, 10, 32] == 0  # bends right


@pytest.mark.parametrize("lane_heading_deg", [0.0, 90.0, 180.0, -90.0])
def test_road_points_up_for_lane_heading(renderer: BevRenderer, town: RoadNetwork, lane_heading_deg: float) -> None:
    straight = ~town.in_junction & (np.abs(np.angle(np.exp(1j * (town.yaw_rad - np.radians(lane_heading_deg))))) < 1e-3)
    index = np.flatnonzero(straight)[len(np.flatnonzero(straight)) // 2]
    ego_xy, ego_yaw = lane_pose(town, index)
    bev = renderer.render(ego_xy, ego_yaw, EGO_SIZE, ego_xy[None], NO_BOXES)
    assert bev[DRIVABLE, 40:56, 31:34].all(), "the lane runs up through the ego"


def test_curved_road_heading_up() -> None:
    network = RoadNetwork(carla.Map("straight", straight_map(0)))
    renderer = BevRenderer(network, BevConfig(size_px=96, m_per_px=1.0 / 3.0))
    curve = np.flatnonzero(np.abs(np.diff(network.yaw_rad)) > 1e-4)
    index = curve[len(curve) // 2]
    ego_xy, ego_yaw = lane_pose(network, index)
    assert ego_yaw % 90.0 > 1.0
    bev = renderer.render(ego_xy, ego_yaw, EGO_SIZE, ego_xy[None], NO_BOXES)
    assert bev[DRIVABLE, 60:80, 47:50].all()


def test_past_vehicle_channels(town: RoadNetwork) -> None:
    renderer = BevRenderer(town, BevConfig(past_vehicle_frames=2, size_px=96, m_per_px=1.0 / 3.0))
    ego_xy, ego_yaw = lane_pose(town, 800)
    now = ego_to_world(ego_xy, ego_yaw, np.array([10.0, 0.0]))[0]
    before = ego_to_world(ego_xy, ego_yaw, np.array([8.0, 0.0]))[0]
    bev = renderer.render(ego_xy, ego_yaw, EGO_SIZE, ego_xy[None], np.array([[*now, ego_yaw, 4.5, 2.0]]),
                          past_boxes=[np.array([[*before, ego_yaw, 4.5, 2.0]])])
    assert bev.shape == (len(BEV_CHANNELS) + 2, 96, 96)
    assert centroid(bev[VEHICLES])[0] == pytest.approx(71.5 - 30, abs=0.01)
    assert centroid(bev[len(BEV_CHANNELS)])[0] == pytest.approx(71.5 - 24, abs=0.01)
    assert bev[len(BEV_CHANNELS) + 1].sum() == 0
    rgb = bev_to_rgb(bev)
    assert rgb.shape == (96, 96, 3) and rgb.dtype == np.uint8


def test_town03_route_on_drivable(carla_town_path) -> None:
    network = RoadNetwork(carla.Map("Town03", carla_town_path("Town03").read_text()))
    renderer = BevRenderer(network, BevConfig(size_px=128, m_per_px=0.25))
    rng = np.random.default_rng(0)
    for _ in range(4):
        route = network.random_route(rng, 150.0)
        for start in (0, 50, 100):
            if start >= len(route.points) - 10:
                continue
            ego_xy, ego_yaw = route.points[start], float(np.degrees(route.yaw_rad[start]))
            bev = renderer.render(ego_xy, ego_yaw, EGO_SIZE, route.points[start:], NO_BOXES)
            assert bev[DRIVABLE, 96, 64] == 1
            assert (bev[DRIVABLE][bev[ROUTE] > 0] == 1).mean() > 0.99


def test_walkers_obstacles_and_stop_lines_in_their_channels(renderer: BevRenderer, town: RoadNetwork) -> None:
    """Each scene actor lands in its own channel, at its place: a walker 8 m ahead, a cone 6 m ahead and 3 m
    right, a red stop line 12 m ahead, a green one 16 m ahead and a stop-sign line 20 m ahead."""
    ego_xy, ego_yaw = lane_pose(town, 500)
    walker_xy, cone_xy = ego_to_world(ego_xy, ego_yaw, [[8.0, 0.0], [6.0, 3.0]])
    lines = np.stack([ego_to_world(ego_xy, ego_yaw, [[ahead, -1.5], [ahead, 1.5]]) for ahead in (12.0, 16.0, 20.0)])
    scene = Scene(walkers=np.array([[*walker_xy, ego_yaw, 0.5, 0.5]]), obstacles=np.array([[*cone_xy, 0.0, 0.4, 0.4]]),
                  stop_lines=lines, stop_kind=np.array([STOP_RED, STOP_GREEN, STOP_SIGN]))
    bev = renderer.render(ego_xy, ego_yaw, EGO_SIZE, np.zeros((0, 2)), scene)
    m_per_px, (ego_row, ego_col) = renderer.m_per_px, (renderer.ego_row_px + 0.5, renderer.ego_col_px + 0.5)
    expect = {"walkers": (8.0, 0.0), "obstacles": (6.0, 3.0), "traffic_light_red": (12.0, 0.0),
              "traffic_light_green": (16.0, 0.0), "stop_signs": (20.0, 0.0)}
    for name, (ahead, right) in expect.items():
        row, col = centroid(bev[BEV_CHANNELS.index(name)])
        np.testing.assert_allclose([row + 0.5, col + 0.5], [ego_row - ahead / m_per_px, ego_col + right / m_per_px],
                                   atol=1.0, err_msg=name)
    assert bev[BEV_CHANNELS.index("traffic_light_yellow")].sum() == 0 and bev[VEHICLES].sum() == 0
    assert bev[BEV_CHANNELS.index("walkers")].sum() >= 4, "walkers are drawn at least 1 m wide"


def test_world_scene_puts_light_states_on_stop_lines() -> None:
    """The embedded world's stop lines carry their light's state, and follow it when it changes."""
    from drivesim.sim.config import SimConfig
    from drivesim.sim.env import EmbeddedSimEnv
    from drivesim.sim.signals import GREEN, RED

    config = SimConfig()
    config.map.name = "junction"
    env = EmbeddedSimEnv(config)
    env.reset(seed=0, options={"npcs": 0, "walkers": 0, "parked": 0, "blockers": 0})
    world = env.world
    for state, kind in ((RED, STOP_RED), (GREEN, STOP_GREEN)):
        for pole in range(world.layout.num_poles):
            world.lights.set_state(pole, state)
        scene = world.scene()
        assert len(scene.stop_lines) == 8 and np.all(scene.stop_kind == kind)  # 4 arms x 2 lanes
    lengths = np.linalg.norm(scene.stop_lines[:, 1] - scene.stop_lines[:, 0], axis=1)
    np.testing.assert_allclose(lengths, 3.5, atol=0.1)  # across one lane
