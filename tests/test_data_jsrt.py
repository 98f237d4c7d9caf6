"""JSRT reader: byte order, inversion, size checks, PNG conversions, discovery."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from tinyseg.data import (DatasetError, MissingFileError, find_jsrt_images,
                          read_jsrt_image, read_jsrt_raw, write_jsrt_raw)
from tinyseg.data.jsrt import JSRT_FILE_BYTES

SIDE = 2048


def test_big_endian_bytes_are_read_and_inverted(tmp_path):
    """Bytes written by hand: first pixel 0x0FFF (4095, darkest), second
    0x0102 (258); everything else 0, the brightest level."""
    data = bytearray(JSRT_FILE_BYTES)
    data[0:4] = bytes([0x0F, 0xFF, 0x01, 0x02])
    path = tmp_path / "JPCLN001.IMG"
    path.write_bytes(bytes(data))

    raw = read_jsrt_raw(path)
    assert raw.shape == (SIDE, SIDE) and raw[0, 0] == 4095 and raw[0, 1] == 258 and raw[0, 2] == 0

    radiograph = read_jsrt_image(path)
    assert radiograph.bit_depth == 12 and radiograph.pixels.dtype == np.float32
    assert radiograph.pixels[0, 0] == 0.0                       # stored 4095 -> black
    assert radiograph.pixels[0, 1] == pytest.approx((4095 - 258) / 4095)
    assert radiograph.pixels[5, 5] == 1.0                       # stored 0 -> white


@settings(max_examples=4, deadline=None)
@given(tile=arrays(np.uint16, (3, 5), elements=st.integers(0, 4095)),
       row=st.integers(0, SIDE - 3), col=st.integers(0, SIDE - 5))
def test_round_trip_of_12_bit_values(tmp_path_factory, tile, row, col):
    raw = np.zeros((SIDE, SIDE), np.uint16)
    raw[row:row + 3, col:col + 5] = tile
    path = write_jsrt_raw(tmp_path_factory.mktemp("img") / "JPCNN001.IMG", raw)
    assert path.stat().st_size == JSRT_FILE_BYTES
    back = read_jsrt_raw(path)
    np.testing.assert_array_equal(back[row:row + 3, col:col + 5], tile)
    pixels = read_jsrt_image(path).pixels[row:row + 3, col:col + 5]
    np.testing.assert_allclose(pixels, (4095 - tile.astype(np.float64)) / 4095, atol=1e-6)


def test_truncated_file_names_the_file(tmp_path):
    path = tmp_path / "JPCLN002.IMG"
    path.write_bytes(bytes(JSRT_FILE_BYTES - 100))
    with pytest.raises(DatasetError, match="JPCLN002.IMG.*truncated"):
        read_jsrt_image(path)


def test_byte_swapped_file_is_rejected(tmp_path):
    path = tmp_path / "JPCLN003.IMG"
    raw = np.full((SIDE, SIDE), 1000, np.uint16)
    raw.astype("<u2").tofile(path)                               # 1000 = 0x03E8 -> 0xE803
    with pytest.raises(DatasetError, match="JPCLN003.IMG.*byte-swapped"):
        read_jsrt_raw(path)


def test_missing_file_names_the_file(tmp_path):
    with pytest.raises(MissingFileError, match="JPCLN099.IMG"):
        read_jsrt_image(tmp_path / "JPCLN099.IMG")


def test_png_conversions_keep_their_look_and_report_bit_depth(tmp_path):
    eight = np.array([[0, 255], [51, 102]], np.uint8)
    Image.fromarray(eight).save(tmp_path / "JPCLN004.png")
    sixteen = np.array([[0, 65535], [30000, 10]], np.uint16)
    Image.fromarray(sixteen).save(tmp_path / "JPCNN005.PNG")
    twelve = np.array([[0, 4095], [2000, 10]], np.uint16)
    Image.fromarray(twelve).save(tmp_path / "JPCNN006.png")

    r8 = read_jsrt_image(tmp_path / "JPCLN004.png")
    assert r8.bit_depth == 8
    np.testing.assert_allclose(r8.pixels, eight / 255.0, atol=1e-6)
    r16 = read_jsrt_image(tmp_path / "JPCNN005.PNG")
    assert r16.bit_depth == 16
    np.testing.assert_allclose(r16.pixels, sixteen / 65535.0, atol=1e-6)
    r12 = read_jsrt_image(tmp_path / "JPCNN006.png", sixteen_bit_depth=12)   # as a 12-bit dataset reads it
    assert r12.bit_depth == 12
    np.testing.assert_allclose(r12.pixels, twelve / 4095.0, atol=1e-6)
    alone = read_jsrt_image(tmp_path / "JPCNN006.png")          # one file alone: 16-bit data, no guess
    assert alone.bit_depth == 16
    np.testing.assert_allclose(alone.pixels, twelve / 65535.0, atol=1e-6)
    with pytest.raises(DatasetError, match="JPCNN005.PNG.*65535.*12-bit"):
        read_jsrt_image(tmp_path / "JPCNN005.PNG", sixteen_bit_depth=12)


def test_unreadable_png_names_the_file(tmp_path):
    path = tmp_path / "JPCLN007.png"
    path.write_bytes(b"not an image at all")
    with pytest.raises(DatasetError, match="JPCLN007.png"):
        read_jsrt_image(path)


def test_discovery_prefers_originals_and_skips_masks(tmp_path):
    (tmp_path / "png").mkdir()
    (tmp_path / "masks" / "heart").mkdir(parents=True)
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "png" / "JPCLN001.png")
    write_jsrt_raw(tmp_path / "JPCLN001.img", np.zeros((SIDE, SIDE), np.uint16))
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "png" / "jpcnn002.PNG")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "masks" / "heart" / "JPCLN003.png")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "png" / "notes.png")

    found = find_jsrt_images(tmp_path)
    assert list(found) == ["JPCLN001", "JPCNN002"]
    assert found["JPCLN001"].name == "JPCLN001.img"
