"""Decoding image bytes in the runtime: the modes `edgeseg predict` meets, EXIF orientation, limits."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from PIL import Image
from serve_support import encode, rgb

from edgeseg.errors import InputError
from edgeseg.runtime import ImageTooLarge, decode_rgb, load_rgb


def test_rgb_png_round_trips_exactly():
    img = rgb(21, 34)
    assert np.array_equal(decode_rgb(encode(img)), img)


def test_greyscale_and_rgba_become_rgb():
    grey = rgb(9, 7)[..., 0]
    out = decode_rgb(encode(Image.fromarray(grey, "L")))
    assert out.shape == (9, 7, 3) and all(np.array_equal(out[..., c], grey) for c in range(3))
    rgba = np.dstack([rgb(9, 7), np.full((9, 7), 10, np.uint8)])
    assert np.array_equal(decode_rgb(encode(Image.fromarray(rgba, "RGBA"))), rgba[..., :3])


def test_sixteen_bit_greyscale_is_scaled_not_clipped():
    wide = np.array([[0, 257, 65535], [32896, 1000, 60000]], dtype=np.uint16)
    out = decode_rgb(encode(Image.fromarray(wide)))
    expected = np.rint(wide / 257).astype(np.uint8)
    assert np.array_equal(out[..., 0], expected) and np.array_equal(out[..., 2], expected)


def test_exif_orientation_is_applied(tmp_path):
    img = rgb(10, 30)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, displayed rotated 90° clockwise
    data = encode(img, "PNG", exif=exif)
    out = decode_rgb(data)
    assert out.shape == (30, 10, 3)
    assert np.array_equal(out, np.rot90(img, k=-1))
    path = tmp_path / "rotated.png"
    path.write_bytes(data)
    assert np.array_equal(load_rgb(path), out)  # `edgeseg predict` reads files the same way


def _png_header(width: int, height: int) -> bytes:
    """A PNG header claiming ``width``×``height``, then the start of a pixel chunk that is not there."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    head = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))
    return head + struct.pack(">I", 1000) + b"IDAT" + b"\0" * 16


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_pixel_limit_is_checked_from_the_header_before_decoding():
    # Headers with no pixel data behind them: only the header check can answer "too large".
    with pytest.raises(ImageTooLarge, match="9000x9000"):
        decode_rgb(_png_header(9000, 9000), max_pixels=4096 * 4096)
    with pytest.raises(ImageTooLarge, match="pixels"):  # past Pillow's own decompression-bomb limit
        decode_rgb(_png_header(40000, 40000), max_pixels=4096 * 4096)
    assert decode_rgb(encode(rgb(10, 10)), max_pixels=100).shape == (10, 10, 3)
    with pytest.raises(ImageTooLarge):
        decode_rgb(encode(rgb(10, 11)), max_pixels=100)


@pytest.mark.parametrize(
    "data, message",
    [(b"hello", "not an image"), (encode(rgb(40, 40))[:120], "truncated"), (b"", "not an image")],
)
def test_bad_bytes_raise_input_error_naming_the_upload(data, message):
    with pytest.raises(InputError, match=message) as info:
        decode_rgb(data, name="photo.png")
    assert "photo.png" in str(info.value) and not isinstance(info.value, ImageTooLarge)
