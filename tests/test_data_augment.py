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


# -- scanner changes -----------------------------------------------------------------------

def test_default_augmentation_draws_what_it_always_drew():
    """The scanner changes are off by default and take no random numbers, so default
    augmentation gives the same images as before they existed."""
    from tinyseg.data import augment_pair
    images, labels = sample()
    a = augment_pair(images[0], labels[0], np.random.default_rng(7))
    rng = np.random.default_rng(7)
    image, lab = random_affine(images[0], labels[0], rng)
    expected = random_intensity(image, rng)
    np.testing.assert_array_equal(a[0], expected)
    np.testing.assert_array_equal(a[1], lab)


def test_gamma_keeps_the_range_and_order():
    from tinyseg.data import random_gamma
    images, _ = sample()
    for offset in (0.0, -0.4):                        # raw and mean-subtracted alike
        image = images[0] + offset
        out = random_gamma(image, np.random.default_rng(1), (0.5, 0.5))
        np.testing.assert_allclose([out.min(), out.max()], [image.min(), image.max()], atol=1e-6)
        order = np.argsort(image.ravel(), kind="stable")
        assert np.all(np.diff(out.ravel()[order]) >= -1e-6)   # monotone
        assert out.mean() > image.mean()              # gamma < 1 brightens


def test_borders_text_blur_and_crop():
    from tinyseg.data import black_borders, burn_in_text, random_blur, random_crop
    images, labels = sample()
    rng = np.random.default_rng(3)
    image, covered = black_borders(images[0], rng, 0.2)
    assert covered.any() and np.all(image[covered] == images[0].min())
    np.testing.assert_array_equal(image[~covered], images[0][~covered])
    text = burn_in_text(images[0], np.random.default_rng(4))
    changed = text != images[0]
    assert 0 < changed.mean() < 0.1 and np.all(text[changed] == images[0].max())
    blurred = random_blur(images[0], np.random.default_rng(5), 2.0)
    assert blurred.std() < images[0].std()
    as_image = labels[0].astype(np.float32)
    cropped, cropped_labels = random_crop(as_image, labels[0], np.random.default_rng(6), 0.7)
    assert cropped.shape == labels[0].shape and set(np.unique(cropped_labels)) <= {0, 1, 2}
    assert np.mean(np.abs(cropped - cropped_labels) < 0.5) > 0.95
    assert (cropped_labels == 1).mean() > (labels[0] == 1).mean()   # zoomed in


def test_scanner_augmentation_ranges():
    images, labels = sample()
    settings = Augmentation.scanner()
    assert settings.gamma_range[0] < 1 < settings.gamma_range[1] and settings.crop_fraction < 1
    covered_labels = 0
    for seed in range(12):
        image, lab = settings(images[0], labels[0], np.random.default_rng(seed))
        assert image.shape == images[0].shape and image.dtype == images.dtype
        assert set(np.unique(lab)) <= {0, 1, 2} and np.isfinite(image).all()
        covered_labels += (lab[0] == 0).all() and (lab[:, 0] == 0).all()
    assert covered_labels > 0
    again = settings(images[0], labels[0], np.random.default_rng(0))[0]
    np.testing.assert_array_equal(again, settings(images[0], labels[0], np.random.default_rng(0))[0])
