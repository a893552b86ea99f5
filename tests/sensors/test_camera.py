"""Front camera: CARLA's camera model, horizon and road placement, vehicle boxes, near-plane clipping."""

from __future__ import annotations

import carla
import numpy as np
import pytest

from drivesim.sensors.camera import KERB_RGB, ROAD_RGB, FrontCamera
from drivesim.sensors.config import CameraConfig
from drivesim.sensors.geometry import clip_polygons_near
from drivesim.sensors.scene import STOP_GREEN, STOP_RED, Scene
from drivesim.sim.opendrive import straight_map, town_map
from drivesim.sim.road import RoadNetwork

NO_BOXES = np.zeros((0, 5))


@pytest.fixture(scope="module")
def straight() -> RoadNetwork:
    return RoadNetwork(carla.Map("straight", straight_map(0)))


@pytest.fixture(scope="module")
def ego_on_straight(straight: RoadNetwork) -> tuple[np.ndarray, float]:
    """A sample of an outer lane (no lane on its right) on the first straight of the road, near x = 200 m."""
    on_straight = np.flatnonzero((np.abs(straight.points[:, 0] - 200.0) < 0.6) & (np.abs(np.cos(straight.yaw_rad)) > 0.9999))
    for index in on_straight:
        yaw = straight.yaw_rad[index]
        beside = straight.points[index] + 3.5 * np.array([-np.sin(yaw), np.cos(yaw)])
        if np.hypot(*(straight.points - beside).T).min() > 1.0:
            return straight.points[index].copy(), float(np.degrees(yaw))
    raise AssertionError("no outer lane on the straight")


def ahead_box(ego_xy: np.ndarray, ego_yaw_deg: float, distance_m: float, lateral_m: float = 0.0) -> np.ndarray:
    yaw = np.radians(ego_yaw_deg)
    xy = ego_xy + distance_m * np.array([np.cos(yaw), np.sin(yaw)]) + lateral_m * np.array([-np.sin(yaw), np.cos(yaw)])
    return np.array([[xy[0], xy[1], ego_yaw_deg, 4.5, 2.0]])


@pytest.mark.parametrize(("width_px", "height_px", "fov_deg"), [(64, 64, 90.0), (128, 96, 60.0), (800, 600, 110.0)])
def test_intrinsics_follow_carla(straight: RoadNetwork, width_px: int, height_px: int, fov_deg: float) -> None:
    camera = FrontCamera(straight, CameraConfig(width_px=width_px, height_px=height_px, fov_deg=fov_deg))
    focal = width_px / (2.0 * np.tan(np.radians(fov_deg) / 2.0))
    np.testing.assert_allclose(camera.intrinsics(), [[focal, 0, width_px / 2], [0, focal, height_px / 2], [0, 0, 1]])


def test_camera_pose_matches_carla_transform(straight: RoadNetwork) -> None:
    """World -> camera as CARLA computes it for a sensor attached at (x, y, z, pitch) to the ego."""
    config = CameraConfig(mount_x_m=1.5, mount_y_m=0.3, mount_z_m=2.4, pitch_deg=-12.0)
    camera = FrontCamera(straight, config)
    ego_xy, ego_yaw = np.array([12.0, -7.0]), 33.0
    position, rotation = camera.camera_pose(ego_xy, ego_yaw)
    ego = carla.Transform(carla.Location(x=12.0, y=-7.0, z=0.0), carla.Rotation(yaw=ego_yaw))
    mount = carla.Transform(carla.Location(x=1.5, y=0.3, z=2.4), carla.Rotation(pitch=-12.0))
    world_to_camera = np.array(mount.get_inverse_matrix()) @ np.array(ego.get_inverse_matrix())
    points = np.array([[30.0, 5.0, 0.0], [-3.0, 2.0, 1.0], [14.0, -6.0, 3.0]])
    expected = (np.c_[points, np.ones(3)] @ world_to_camera.T)[:, :3]
    np.testing.assert_allclose((points - position) @ rotation, expected, atol=1e-4)


def test_horizon_sky_above_road_below(straight: RoadNetwork, ego_on_straight: tuple[np.ndarray, float]) -> None:
    camera = FrontCamera(straight, CameraConfig(pitch_deg=0.0))
    image = camera.render(*ego_on_straight, NO_BOXES).astype(int)
    assert image.shape == (64, 64, 3) and image.dtype == np.int64
    sky, below = image[:31], image[33:]
    assert np.all(sky[..., 2] > sky[..., 0] + 30), "blue sky above the middle row"
    assert not np.any(below[..., 2] > below[..., 0] + 30), "no sky below the middle row"
    np.testing.assert_array_equal(image[63, 32], ROAD_RGB)  # straight down the lane: road surface
    assert np.all(image[50:, 32] == ROAD_RGB) or np.mean(np.all(image[40:, 32] == ROAD_RGB, axis=1)) > 0.8
    np.testing.assert_array_equal(image[63, 63], KERB_RGB["Sidewalk"])  # right of the outermost lane: sidewalk
    assert (image[48:].min(axis=2) > 150).any(), "lane markings near the car are drawn over the road surface"


def test_default_pitch_raises_horizon(straight: RoadNetwork, ego_on_straight: tuple[np.ndarray, float]) -> None:
    image = FrontCamera(straight, CameraConfig(pitch_deg=-10.0)).render(*ego_on_straight, NO_BOXES).astype(int)
    focal = 32.0
    horizon_row = 32.0 - focal * np.tan(np.radians(10.0))
    is_sky = image[:, 0, 2] > image[:, 0, 0] + 30
    assert np.flatnonzero(~is_sky)[0] == int(np.ceil(horizon_row))


def test_vehicle_ahead_is_centred_and_grows(straight: RoadNetwork, ego_on_straight: tuple[np.ndarray, float]) -> None:
    camera = FrontCamera(straight, CameraConfig())
    empty = camera.render(*ego_on_straight, NO_BOXES)
    areas, bottoms = [], []
    for distance_m in (40.0, 20.0, 10.0):
        image = camera.render(*ego_on_straight, ahead_box(*ego_on_straight, distance_m))
        changed = np.any(image != empty, axis=2)
        rows, cols = np.nonzero(changed)
        assert abs(cols.mean() - 32.0) < 1.0, "a vehicle straight ahead sits in the middle column"
        assert 26.4 < rows.min() <= 30, "its top stays just below the horizon (box lower than the camera)"
        areas.append(changed.sum())
        bottoms.append(rows.max())
    assert areas[0] < areas[1] < areas[2] and bottoms[0] < bottoms[1] < bottoms[2]
    assert changed[30:35, 29:35].all(), "at 10 m it covers the image centre"


def test_vehicle_to_the_right_appears_right(straight: RoadNetwork, ego_on_straight: tuple[np.ndarray, float]) -> None:
    camera = FrontCamera(straight, CameraConfig())
    empty = camera.render(*ego_on_straight, NO_BOXES)
    image = camera.render(*ego_on_straight, ahead_box(*ego_on_straight, 15.0, lateral_m=4.0))
    cols = np.nonzero(np.any(image != empty, axis=2))[1]
    assert cols.min() > 32


def test_vehicle_behind_is_not_drawn(straight: RoadNetwork, ego_on_straight: tuple[np.ndarray, float]) -> None:
    camera = FrontCamera(straight, CameraConfig())
    empty = camera.render(*ego_on_straight, NO_BOXES)
    behind = np.vstack([ahead_box(*ego_on_straight, -8.0), ahead_box(*ego_on_straight, -1.5, lateral_m=3.5)])
    np.testing.assert_array_equal(camera.render(*ego_on_straight, behind), empty)


@pytest.mark.parametrize("offset_m", [1.5, 2.0, 3.0, 1.5 + 2.25])
def test_box_straddling_the_near_plane(straight: RoadNetwork, ego_on_straight: tuple[np.ndarray, float],
                                       offset_m: float) -> None:
    """A box around or just in front of the camera: clipped, not crashed, and covering the image bottom."""
    camera = FrontCamera(straight, CameraConfig())
    box = ahead_box(*ego_on_straight, offset_m)
    image = camera.render(*ego_on_straight, box)
    empty = camera.render(*ego_on_straight, NO_BOXES)
    assert image.shape == (64, 64, 3)
    assert np.any(image[40:] != empty[40:]), "the box in front of the camera covers the bottom of the image"


def test_clip_polygons_near() -> None:
    square = np.array([[[-1.0, -1.0, 0.0], [-1.0, 1.0, 0.0], [3.0, 1.0, 0.0], [3.0, -1.0, 0.0]]])
    in_front = square + [5.0, 0.0, 0.0]
    behind = square - [5.0, 0.0, 0.0]
    vertices, offsets, source = clip_polygons_near(np.concatenate([square, behind, in_front]), 0.5)
    np.testing.assert_array_equal(source, [0, 2])
    clipped = vertices[offsets[0] : offsets[1]]
    assert len(clipped) == 4 and np.all(clipped[:, 0] >= 0.5 - 1e-12)
    np.testing.assert_allclose(sorted(clipped[:, 0]), [0.5, 0.5, 3.0, 3.0])
    np.testing.assert_allclose(vertices[offsets[1] : offsets[2]], in_front[0])


def test_town_scene_with_traffic_and_supersampling() -> None:
    network = RoadNetwork(carla.Map("town", town_map(0)))
    rng = np.random.default_rng(0)
    index = int(rng.integers(len(network.points)))
    ego_xy, ego_yaw = network.points[index], float(np.degrees(network.yaw_rad[index]))
    boxes = np.column_stack([ego_xy + rng.uniform(-30.0, 30.0, (20, 2)), rng.uniform(-180, 180, 20),
                             np.full(20, 4.5), np.full(20, 2.0)])
    for config in (CameraConfig(width_px=96, height_px=96, supersample=1), CameraConfig(supersample=3)):
        image = FrontCamera(network, config).render(ego_xy, ego_yaw, boxes)
        assert image.shape == (config.height_px, config.width_px, 3) and image.dtype == np.uint8


def test_town01_road_below_horizon(carla_town_path) -> None:
    network = RoadNetwork(carla.Map("Town01", carla_town_path("Town01").read_text()))
    camera = FrontCamera(network, CameraConfig(width_px=96, height_px=96))
    rng = np.random.default_rng(1)
    for index in rng.choice(np.flatnonzero(~network.in_junction), size=5, replace=False):
        image = camera.render(network.points[index], float(np.degrees(network.yaw_rad[index])), NO_BOXES)
        road = np.all(image == ROAD_RGB, axis=2)
        assert road[:40].sum() == 0 and road[85:, 40:56].mean() > 0.5, "the ego's lane lies ahead, below the horizon"


def changed_mask(camera: FrontCamera, pose: tuple[np.ndarray, float], scene: Scene, weather: str | None = None) -> np.ndarray:
    return np.any(camera.render(*pose, scene, weather) != camera.render(*pose, Scene(), weather), axis=2)


def test_walker_and_cone_appear_where_they_stand(straight: RoadNetwork, ego_on_straight: tuple[np.ndarray, float]) -> None:
    """A walker 15 m ahead on the left stands taller than wide; a cone 10 m ahead on the right is small, orange."""
    camera = FrontCamera(straight, CameraConfig(width_px=128, height_px=128))
    walker = ahead_box(*ego_on_straight, 15.0, -2.0)
    walker[:, 3:5] = 0.5
    rows, cols = np.nonzero(changed_mask(camera, ego_on_straight, Scene(walkers=walker)))
    assert cols.mean() < 60 and (rows.max() - rows.min()) > 2 * (cols.max() - cols.min()), "upright, left of centre"
    cone = ahead_box(*ego_on_straight, 10.0, 2.0)
    cone[:, 3:5] = 0.4
    image = camera.render(*ego_on_straight, Scene(obstacles=cone))
    mask = changed_mask(camera, ego_on_straight, Scene(obstacles=cone))
    assert 0 < mask.sum() < 120 and np.nonzero(mask)[1].mean() > 68, "small, right of centre"
    colours = image[mask].astype(int)
    assert np.mean(colours[:, 0] > colours[:, 2] + 60) > 0.7, "orange (edges blend with the road)"


@pytest.mark.parametrize(("state", "channel"), [(STOP_RED, 0), (STOP_GREEN, 1)])
def test_traffic_light_shows_its_lit_lamp(straight: RoadNetwork, ego_on_straight: tuple[np.ndarray, float],
                                          state: int, channel: int) -> None:
    """A light 25 m ahead on the right, facing the ego: its lamp glows in the state's colour (red on top, green
    below), also at night; a light facing away shows no lamp."""
    camera = FrontCamera(straight, CameraConfig(width_px=128, height_px=128, supersample=1))
    xy = ahead_box(*ego_on_straight, 25.0, 4.0)[0, :2]
    facing_ego = np.radians(ego_on_straight[1] + 180.0)
    scene = Scene(light_poles=np.array([[*xy, facing_ego]]), light_state=np.array([state]))
    for weather in ("ClearNoon", "ClearNight"):
        image = camera.render(*ego_on_straight, scene, weather).astype(int)
        lamp = (image[..., channel] > 200) & (image[..., 1 - channel] < 120) & (image[..., 2] < 120)
        assert lamp.any(), weather
        rows, cols = np.nonzero(lamp)
        assert cols.mean() > 64, "right of centre"
    red_row, green_row = (np.nonzero(_lamp(camera, ego_on_straight, xy, facing_ego, s, c))[0].mean()
                          for s, c in ((STOP_RED, 0), (STOP_GREEN, 1)))
    assert red_row < green_row, "red above green"
    away = Scene(light_poles=np.array([[*xy, facing_ego + np.pi]]), light_state=np.array([state]))
    image = camera.render(*ego_on_straight, away).astype(int)
    assert not ((image[..., channel] > 200) & (image[..., 1 - channel] < 120)).any()


def _lamp(camera, pose, xy, yaw, state, channel):
    image = camera.render(*pose, Scene(light_poles=np.array([[*xy, yaw]]), light_state=np.array([state]))).astype(int)
    return (image[..., channel] > 200) & (image[..., 1 - channel] < 120) & (image[..., 2] < 120)


def test_weather_presets_change_the_image(straight: RoadNetwork, ego_on_straight: tuple[np.ndarray, float]) -> None:
    """CARLA's presets: night is dark but the headlights light the road ahead; wet roads are darker;
    an unknown name fails naming the presets."""
    camera = FrontCamera(straight, CameraConfig())
    noon = camera.render(*ego_on_straight, NO_BOXES, "ClearNoon").astype(float)
    night = camera.render(*ego_on_straight, NO_BOXES, "ClearNight").astype(float)
    wet = camera.render(*ego_on_straight, NO_BOXES, "WetNoon").astype(float)
    assert night.mean() < 0.5 * noon.mean()
    assert night[54:, 28:36].mean() > 2.0 * night[54:, :4].mean(), "headlights light the lane ahead"
    road = np.all(noon.astype(int) == ROAD_RGB, axis=2)
    assert wet[road].mean() < noon[road].mean() - 8.0
    np.testing.assert_array_equal(camera.render(*ego_on_straight, NO_BOXES), noon)  # ClearNoon is the default
    with pytest.raises(ValueError, match="ClearNoon"):
        camera.render(*ego_on_straight, NO_BOXES, "Sunny")


def test_buildings_stand_beside_the_road(straight: RoadNetwork, ego_on_straight: tuple[np.ndarray, float]) -> None:
    from drivesim.sim.props import build_buildings

    buildings = build_buildings(straight, 0.25)
    assert len(buildings.boxes) > 10
    plain = FrontCamera(straight, CameraConfig()).render(*ego_on_straight, NO_BOXES)
    built = FrontCamera(straight, CameraConfig(), (buildings.boxes, buildings.height_m)).render(*ego_on_straight, NO_BOXES)
    changed = np.any(plain != built, axis=2)
    assert changed[:32].sum() > 20, "buildings rise above the horizon"
    assert not changed[40:, 24:40].any(), "not on the road ahead"
