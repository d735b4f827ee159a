"""drivers/max7219.py: the same SPI bytes as luma's max7219, without Pillow's Image.getdata."""

from __future__ import annotations

import random
import warnings

import pytest
from display_support import RecordingSPI
from luma.led_matrix.device import max7219
from PIL import Image

from drivers.max7219 import Max7219

GEOMETRIES = [
    {"width": 32, "height": 16, "block_orientation": -90},
    {"width": 128, "height": 32, "block_orientation": 90},
    {"width": 64, "height": 8, "block_orientation": 0, "blocks_arranged_in_reverse_order": True},
    {"width": 16, "height": 8, "rotate": 2, "block_orientation": 180},
]


def spi_bytes(device_class: type, geometry: dict, frame: Image.Image) -> list[list[int]]:
    spi = RecordingSPI()
    cascaded = geometry["width"] // 8 if geometry.get("blocks_arranged_in_reverse_order") else None
    device = device_class(spi, cascaded=cascaded, **geometry)
    spi.writes.clear()
    device.display(frame)
    return spi.writes


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_the_panel_gets_the_same_bytes_as_from_luma_and_pillow_is_not_asked_for_getdata(geometry):
    rng = random.Random(7)
    size = (geometry["width"], geometry["height"])
    if geometry.get("rotate", 0) % 2:
        size = size[::-1]
    for _ in range(5):
        frame = Image.new("1", size)
        for _ in range(size[0] * size[1] // 5):
            frame.putpixel((rng.randrange(size[0]), rng.randrange(size[1])), 1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # luma's own getdata, for reference
            expected = spi_bytes(max7219, geometry, frame.copy())  # luma reverses blocks in place
        with warnings.catch_warnings():
            warnings.simplefilter("error", DeprecationWarning)  # Image.getdata: gone in Pillow 14
            shown = frame.copy()
            assert spi_bytes(Max7219, geometry, shown) == expected
            assert shown.tobytes() == frame.tobytes()  # the frame mirror gets the frame as drawn
