"""Augmentation: identity at zero strength, label integrity, seeding."""
import numpy as np

from tinyseg.data import Augmentation, iterate_batches, make_synthetic_dataset, random_affine, random_intensity


def sample():
    images, labels = make_synthetic_dataset(2, (48, 60), seed=2)
    return images, labels


def test_zero_strength_is_identity():
    images, labels = sample()
    rng = np.random.default_rng(0)
    image, lab = random_affine(images[0], labels[0], rng, 0.0, (1.0, 1.0), 0.0)
    np.testing.assert_allclose(image, images[0], atol=1e-6)
    np.testing.assert_array_equal(lab, labels[0])


def test_image_and_labels_move_together():
    images, labels = sample()
    as_image = labels[0].astype(np.float32)
    moved, moved_labels = random_affine(as_image, labels[0], np.random.default_rng(3), 8.0, (0.9, 1.1), 0.05)
    assert moved_labels.dtype == labels.dtype and set(np.unique(moved_labels)) <= {0, 1, 2}
    assert not np.array_equal(moved_labels, labels[0])
    agreement = np.mean(np.abs(moved - moved_labels) < 0.5)
    assert agreement > 0.97            # they differ only along boundaries


def test_intensity_changes_leave_shape_and_are_seeded():
    images, _ = sample()
    a = random_intensity(images[0], np.random.default_rng(1), (0.5, 0.5), 0.0, 0.0)
    assert a.dtype == images.dtype
    np.testing.assert_allclose(a.std(), 0.5 * images[0].std(), rtol=1e-3)
    b = random_intensity(images[0], np.random.default_rng(1), (0.5, 0.5), 0.0, 0.0)
    np.testing.assert_array_equal(a, b)


def test_batch_augmentation_is_seeded():
    images, labels = sample()

    def batch(seed):
        return next(iterate_batches(images, labels, range(len(images)), len(images), shuffle=False,
                                    seed=seed, augment=Augmentation()))
    (x1, y1), (x2, y2), (x3, _) = batch(4), batch(4), batch(5)
    assert x1.shape == (len(images), 1) + images.shape[1:] and y1.shape == labels.shape
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
    assert not np.allclose(x1, x3)
