"""Pure-numpy layout and compositing: BEV colours, nearest-neighbour scaling, panel placement."""

from __future__ import annotations

import numpy as np

from drivesim.spec import BEV_CHANNELS
from drivesim.viewer.layout import (
    BEV_BACKGROUND_RGB,
    BEV_COLOURS_RGB,
    PAST_VEHICLE_RGB,
    Rect,
    colorize_bev,
    even_size,
    fit_rect,
    new_canvas,
    paste,
    resize_nearest,
    sensor_row,
)


def _bev(*channels: str, size: int = 4, extra: int = 0) -> np.ndarray:
    bev = np.zeros((len(BEV_CHANNELS) + extra, size, size), np.uint8)
    for name in channels:
        bev[BEV_CHANNELS.index(name)] = 1
    return bev


def test_bev_channels_get_their_colours_and_ego_is_on_top() -> None:
    assert tuple(colorize_bev(_bev())[0, 0]) == BEV_BACKGROUND_RGB
    for name, colour in BEV_COLOURS_RGB.items():
        assert tuple(colorize_bev(_bev(name))[1, 1]) == colour, name
    assert tuple(colorize_bev(_bev("drivable", "route", "vehicles", "ego"))[2, 2]) == BEV_COLOURS_RGB["ego"]
    assert tuple(colorize_bev(_bev("drivable", "lane_markings"))[0, 0]) == BEV_COLOURS_RGB["lane_markings"]


def test_bev_probabilities_blend_and_past_vehicles_are_drawn() -> None:
    soft = _bev().astype(np.float32)
    soft[BEV_CHANNELS.index("vehicles")] = 0.5
    pixel = colorize_bev(soft)[0, 0].astype(int)
    expected = (np.array(BEV_BACKGROUND_RGB) + np.array(BEV_COLOURS_RGB["vehicles"])) / 2
    np.testing.assert_allclose(pixel, expected, atol=1)
    past = _bev(extra=2)
    past[-1] = 1
    assert tuple(colorize_bev(past)[0, 0]) == PAST_VEHICLE_RGB


def test_resize_nearest_keeps_pixels_crisp() -> None:
    image = np.arange(4 * 4 * 3, dtype=np.uint8).reshape(4, 4, 3)
    big = resize_nearest(image, (16, 12))
    assert big.shape == (12, 16, 3)
    np.testing.assert_array_equal(big[:3, :4], np.broadcast_to(image[0, 0], (3, 4, 3)))
    np.testing.assert_array_equal(big[-1, -1], image[-1, -1])


def test_paste_scales_by_an_integer_and_centres() -> None:
    canvas = new_canvas(300, 200, (0, 0, 0))
    image = np.full((64, 64, 3), 255, np.uint8)
    covered = paste(canvas, image, Rect(10, 10, 200, 150))
    assert covered == Rect(10 + (200 - 128) // 2, 10 + (150 - 128) // 2, 128, 128) == fit_rect((64, 64), Rect(10, 10, 200, 150))
    assert canvas[covered.y, covered.x].tolist() == [255, 255, 255]
    assert canvas[covered.y - 1, covered.x].tolist() == [0, 0, 0]
    assert int(canvas.sum() // 765) == 128 * 128


def test_sensor_row_orders_camera_then_bev() -> None:
    row = sensor_row(("bev", "camera"), 100, x=5, y=7, gap=4)
    assert row.panels == {"camera": Rect(5, 7, 100, 100), "bev": Rect(109, 7, 100, 100)}
    assert row.bounds == Rect(5, 7, 204, 100)
    assert sensor_row(("bev",), 100).panels == {"bev": Rect(0, 0, 100, 100)}
    assert Rect(0, 0, 100, 50).split_columns(2, gap=10) == [Rect(0, 0, 45, 50), Rect(55, 0, 45, 50)]
    assert Rect(0, 0, 10, 50).split_rows([20, 0]) == [Rect(0, 0, 10, 20), Rect(0, 20, 10, 30)]
    assert even_size(81, 61) == (82, 62)
