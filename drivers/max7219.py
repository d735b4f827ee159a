"""luma's MAX7219 device with the frame packed here, so that any Pillow version drives it.

luma.led_matrix (1.9) reads a frame's pixels with ``Image.getdata``, which
Pillow 13 deprecates and Pillow 14 removes; that alone held Pillow below 14.
``Max7219.display`` packs the same SPI bytes from ``Image.tobytes``: for
each digit register (one row of 8 LEDs on every chip of the chain) one
``(register, byte)`` pair per chip, all chips in one write.  The rest (the
init sequence, contrast, power, block orientation, reversed blocks) is
luma's.  Imported only when a max7219 display is configured.
"""

from __future__ import annotations

from luma.led_matrix.device import max7219
from PIL import Image


class Max7219(max7219):
    def display(self, image: Image.Image) -> None:
        # luma's checks, kept: the panel's caller turns their AssertionError into a PanelError.
        assert image.mode == self.mode
        assert image.size == self.size
        # One byte a pixel, row by row from the top left (0 dark); the layout luma indexes.  A copy:
        # luma's preprocess reverses the blocks in the image it is given (the caller's frame).
        pixels = self.preprocess(image.copy()).convert("L").tobytes()
        width: int = self._w
        rows: list[int] = self._rows
        first_digit: int = self._const.DIGIT_0
        step = 2 * self.cascaded
        out = bytearray()
        for digit in range(8):
            for chip in self._offsets:  # index of the chip's first pixel in the frame
                byte = 0
                index = chip + digit
                for bit in rows:
                    if pixels[index]:
                        byte |= 1 << bit
                    index += width
                out += bytes((first_digit + digit, byte))
        for start in range(0, len(out), step):
            self.data(list(out[start : start + step]))
