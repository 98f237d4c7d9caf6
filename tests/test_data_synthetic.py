"""Synthetic chest radiographs: format, determinism, anatomy, difficulty."""
import time

import numpy as np
import pytest

from tinyseg.data import make_synthetic_dataset, save_montage, synthesize_radiograph


@pytest.fixture(scope="module")
def phantoms():
    return make_synthetic_dataset(16, (64, 80), seed=0)


def test_format_and_12_bit_grid(phantoms):
    images, labels = phantoms
    assert images.shape == (16, 64, 80) and images.dtype == np.float32
    assert labels.shape == (16, 64, 80) and labels.dtype == np.int64
    assert images.min() >= 0 and images.max() <= 1
    levels = images.astype(np.float64) * 4095
    np.testing.assert_allclose(levels, np.round(levels), atol=2e-3)
    for image_labels in labels:
        assert set(np.unique(image_labels)) == {0, 1, 2}


def test_deterministic_by_seed_and_prefix_stable(phantoms):
    images, labels = phantoms
    again, again_labels = make_synthetic_dataset(4, (64, 80), seed=0)
    np.testing.assert_array_equal(again, images[:4])
    np.testing.assert_array_equal(again_labels, labels[:4])
    other, _ = make_synthetic_dataset(4, (64, 80), seed=1)
    assert not np.allclose(other, images[:4])
    rng_a, rng_b = np.random.default_rng(5), np.random.default_rng(5)
    np.testing.assert_array_equal(synthesize_radiograph(rng_a, (40, 40))[0],
                                  synthesize_radiograph(rng_b, (40, 40))[0])


def test_anatomy_is_plausible(phantoms):
    images, labels = phantoms
    width = labels.shape[2]
    columns = np.arange(width)
    for image, image_labels in zip(images, labels):
        lungs, heart = image_labels == 1, image_labels == 2
        assert 0.15 < lungs.mean() < 0.45 and 0.03 < heart.mean() < 0.15
        lung_columns = columns[lungs.any(axis=0)]
        assert lung_columns.min() < width * 0.3 and lung_columns.max() > width * 0.7   # two lungs
        heart_centre = (heart * columns).sum() / heart.sum()
        assert heart_centre > width / 2                                   # patient's left
        assert image[lungs].mean() < image[heart].mean() - 0.1            # lungs dark
        top_rows = image_labels[: len(image_labels) // 3]
        assert not (top_rows == 2).any()                                  # heart low in the chest


def test_not_trivially_thresholdable(phantoms):
    images, labels = phantoms
    lungs = labels == 1
    best = 0.0
    for level in np.linspace(0, 1, 41):
        dark = images <= level
        best = max(best, 2 * (dark & lungs).sum() / (dark.sum() + lungs.sum()))
    assert best < 0.85


def test_other_sizes_are_drawn_directly():
    for size in [(37, 53), (128, 128), (200, 160)]:
        image, labels = synthesize_radiograph(np.random.default_rng(0), size)
        assert image.shape == labels.shape == size
        assert 0.15 < (labels == 1).mean() < 0.45
    with pytest.raises(ValueError):
        make_synthetic_dataset(0)


def test_default_set_is_fast_enough():
    start = time.perf_counter()
    make_synthetic_dataset(24, (128, 160), seed=0)
    assert time.perf_counter() - start < 10.0       # the 240-image set takes a few seconds


def test_montage_is_written(tmp_path, phantoms):
    images, labels = phantoms
    path = save_montage(tmp_path / "montage.png", images[:8], labels[:8], columns=4, zoom=2)
    from PIL import Image
    with Image.open(path) as picture:
        assert picture.mode == "RGB"
        assert picture.size == (4 * (160 + 2), 2 * 2 * (128 + 2))
