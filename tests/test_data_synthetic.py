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
        top_rows = image_labels[: len(image_labels) * 2 // 7]
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


# -- where real radiographs are hard -------------------------------------------------------

@pytest.fixture(scope="module")
def large_phantoms():
    return make_synthetic_dataset(12, (256, 320), seed=3)


def recess_angles(labels, rise=0.03):
    """Opening angle (degrees) of each costophrenic recess: ``rise`` of the image height above
    the lowest lung pixel of a side, the run of lung from the lateral wall is ``tan(angle) * rise``."""
    height, width = labels.shape
    lungs = labels == 1
    d = max(2, int(round(rise * height)))
    angles = []
    for half in (lungs[:, : width // 2], lungs[:, width // 2:][:, ::-1]):   # lateral wall first
        tip = np.where(half.any(axis=1))[0].max()
        row = half[tip - d]
        first = int(np.argmax(row))
        run = int(np.argmin(row[first:])) if not row[first:].all() else len(row) - first
        angles.append(np.degrees(np.arctan2(run, d)))
    return angles


def test_costophrenic_angles_are_sharp(large_phantoms):
    angles = np.array([recess_angles(labels) for labels in large_phantoms[1]])
    assert np.median(angles) < 50 and angles.mean() < 60       # acute wedges (the old phantoms: ~70)


def test_ribs_and_clavicles_cross_the_lung_fields():
    from dataclasses import replace

    from tinyseg.data.anatomy import sample_anatomy
    from tinyseg.data.phantom import draw_phantom
    for seed in range(4):
        anatomy = sample_anatomy(np.random.default_rng(seed))
        with_bones, lungs, _ = draw_phantom(anatomy, 256, 320)
        without = draw_phantom(replace(anatomy, rib_density=0.0), 256, 320)[0]
        ribs = (with_bones - without) > 0.3 * anatomy.rib_density
        column = ribs[:, 80] & lungs[:, 80]                    # through the image-left lung
        crossings = np.count_nonzero(np.diff(column.astype(int)) == 1)
        assert crossings >= 5                                  # a ladder of ribs over the lung
        assert 0.2 < ribs[lungs].mean() < 0.8
        no_clavicles = draw_phantom(replace(anatomy, clavicle_rise=anatomy.clavicle_rise * 0 + 5.0), 256, 320)[0]
        assert np.abs(with_bones - no_clavicles)[lungs].max() > 0.1   # clavicles overlap the apices


def test_heart_lower_edge_is_faint(large_phantoms):
    """Across the heart's lower edge (heart above the abdomen) the film changes far less than
    across its side (heart next to lung): the edge must be inferred, as on real films."""
    ratios = []
    for image, labels in zip(*large_phantoms):
        heart = labels == 2
        below = np.zeros_like(heart)
        below[:-4] = heart[:-4] & (labels[4:] == 0)           # heart pixel 4 rows above abdomen
        side = np.zeros_like(heart)
        side[:, :-4] = heart[:, :-4] & (labels[:, 4:] == 1)   # heart pixel 4 columns left of lung
        r, c = np.nonzero(below)
        bottom = np.abs(image[r, c] - image[r + 8, c]).mean()
        r, c = np.nonzero(side)
        lateral = np.abs(image[r, c] - image[r, c + 8]).mean()
        ratios.append(bottom / lateral)
    assert np.median(ratios) < 0.5


def test_contrast_varies_like_different_scanners(large_phantoms):
    images, labels = large_phantoms
    gaps = [image[lab == 2].mean() - image[lab == 1].mean() for image, lab in zip(images, labels)]
    lows = [np.percentile(image, 5) for image in images]
    assert max(gaps) > 1.6 * min(gaps) and max(lows) - min(lows) > 0.1


def test_shifted_test_set_is_another_scanner(phantoms):
    from tinyseg.data import make_shifted_images
    images, labels = phantoms
    shifted, shifted_labels = make_shifted_images(images, labels, seed=1)
    assert shifted.shape == images.shape and shifted.dtype == np.float32
    assert shifted.min() >= 0 and shifted.max() <= 1
    again = make_shifted_images(images[:3], labels[:3], seed=1)
    np.testing.assert_array_equal(again[0], shifted[:3])
    changed = np.abs(shifted - images).mean(axis=(1, 2))
    assert changed.min() > 0.02                               # every film looks different
    assert (shifted == 0).mean(axis=(1, 2)).max() > 0.03      # some have black borders
    # labels change only where a border hides the anatomy (set to background)
    differs = shifted_labels != labels
    assert np.all(shifted_labels[differs] == 0) and np.all(shifted[differs] == 0)
    assert differs.mean() < 0.05
