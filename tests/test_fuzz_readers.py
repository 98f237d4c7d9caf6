"""Every reader meets random, truncated and mutated bytes: only tinyseg's own errors come out
(DatasetError for data files, CheckpointError for checkpoints), each naming the file, and no
crafted file makes anything be unpickled."""
import io
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from PIL import Image

from tinyseg.app.checkpoint import CheckpointError, read_checkpoint, save_checkpoint
from tinyseg.data import DatasetError, read_grayscale, read_jsrt_image
from tinyseg.data.folder import read_splits_csv
from tinyseg.data.imagefile import read_binary_mask, read_label_map
from tinyseg.nn import Conv2d

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def image_bytes(fmt, mode="L", shape=(12, 10)):
    values = (np.arange(shape[0] * shape[1]).reshape(shape) % 3).astype(np.uint8)
    image = Image.fromarray(values).convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


VALID = {".png": image_bytes("PNG"), ".jpg": image_bytes("JPEG"), ".tif": image_bytes("TIFF"),
         ".gif": image_bytes("GIF", "P"), ".IMG": bytes(2048 * 2048 * 2)}


@st.composite
def damaged(draw, valid):
    """Random bytes, a truncation of a valid file, or a valid file with some bytes changed."""
    kind = draw(st.sampled_from(["random", "truncated", "mutated"]))
    if kind == "random":
        return draw(st.binary(max_size=400))
    if kind == "truncated":
        return valid[:draw(st.integers(0, max(0, len(valid) - 1)))]
    data = bytearray(valid)
    for _ in range(draw(st.integers(1, 8))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data)


def assert_only_our_error(read, path, error_type):
    try:
        read(path)
    except error_type as err:
        assert path.name in str(err), f"the message does not name the file: {err}"
    # no exception: the bytes happened to make a valid file, which is fine


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".tif", ".gif"])
@FUZZ
@given(data=st.data())
def test_image_readers_raise_only_dataset_errors(tmp_path, suffix, data):
    path = tmp_path / f"chest{suffix}"
    path.write_bytes(data.draw(damaged(VALID[suffix])))
    for read in (read_grayscale, read_binary_mask, read_label_map):
        assert_only_our_error(read, path, DatasetError)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_jsrt_raw_reader_raises_only_dataset_errors(tmp_path, data):
    path = tmp_path / "JPCLN001.IMG"
    raw = VALID[".IMG"]
    kind = data.draw(st.sampled_from(["truncated", "longer", "random"]))
    content = {"truncated": raw[:data.draw(st.integers(0, len(raw) - 1))],
               "longer": raw + data.draw(st.binary(min_size=1, max_size=10)),
               "random": data.draw(st.binary(max_size=200))}[kind]
    path.write_bytes(content)
    with pytest.raises(DatasetError, match="JPCLN001"):
        read_jsrt_image(path)


CSV = b"name,split\nimg01,train\nimg02,test\n"


@FUZZ
@given(data=st.data())
def test_splits_csv_raises_only_dataset_errors(tmp_path, data):
    path = tmp_path / "splits.csv"
    path.write_bytes(data.draw(damaged(CSV)))
    assert_only_our_error(lambda p: read_splits_csv(p, ["img01", "img02"]), path, DatasetError)


@pytest.fixture(scope="module")
def checkpoint_bytes(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "model.npz"
    save_checkpoint(path, Conv2d(1, 2, 3), metadata={"epoch": 1})
    return path.read_bytes()


@FUZZ
@given(data=st.data())
def test_checkpoint_reader_raises_only_checkpoint_errors(tmp_path, checkpoint_bytes, data):
    path = tmp_path / "best.npz"
    path.write_bytes(data.draw(damaged(checkpoint_bytes)))
    assert_only_our_error(read_checkpoint, path, CheckpointError)


def test_a_pickled_array_in_a_checkpoint_is_refused_not_loaded(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, metadata=np.array(json.dumps({"format": "tinyseg-checkpoint-v1"})),
             **{"model/weight": np.array([object()], dtype=object)})
    with pytest.raises(CheckpointError, match="Python objects"):
        read_checkpoint(path)


def test_denoise_cache_entries_are_validated_on_read(tmp_path):
    from tinyseg.denoise.cache import cached_apply
    image = np.random.default_rng(0).random((8, 8)).astype(np.float32)
    first = cached_apply(lambda x: x * 0.5, image, {}, tmp_path)
    entry = next(tmp_path.glob("*.npy"))
    np.save(entry, np.zeros((3, 3), np.float32))                    # damaged: wrong shape
    again = cached_apply(lambda x: x * 0.5, image, {}, tmp_path)
    np.testing.assert_array_equal(again, first)                     # recomputed, not trusted


def test_an_image_over_pillows_decompression_bomb_limit_is_a_clear_error(tmp_path, monkeypatch):
    path = tmp_path / "huge.png"
    path.write_bytes(image_bytes("PNG", shape=(64, 64)))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)            # 4096 pixels > 2 x the limit
    with pytest.raises(DatasetError, match="huge.png.*decompression-bomb"):
        read_grayscale(path)
