"""Resizing, overexposure screening and the mean image."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tinyseg.data import dark_fraction, is_overexposed, mean_image, resize_image, resize_labels


def test_shrinking_averages_areas():
    image = np.arange(16, dtype=np.float32).reshape(4, 4)
    small = resize_image(image, (2, 2))
    expected = image.reshape(2, 2, 2, 2).mean(axis=(1, 3))
    np.testing.assert_allclose(small, expected, atol=1e-5)
    assert small.dtype == np.float32


def test_growing_is_bilinear_and_mixed_axes_work():
    ramp = np.tile(np.linspace(0, 1, 8, dtype=np.float32), (8, 1))
    big = resize_image(ramp, (4, 32))                  # rows shrink, columns grow
    assert big.shape == (4, 32)
    assert np.all(np.diff(big[0]) >= -1e-6)            # still a monotone ramp
    assert big.min() >= 0 and big.max() <= 1
    constant = resize_image(np.full((5, 7), 0.25, np.float32), (13, 3))
    np.testing.assert_allclose(constant, 0.25, atol=1e-6)


@settings(max_examples=25, deadline=None)
@given(h=st.integers(1, 20), w=st.integers(1, 20), nh=st.integers(1, 40), nw=st.integers(1, 40))
def test_label_resizing_keeps_values_and_dtype(h, w, nh, nw):
    labels = np.random.default_rng(h * 100 + w).integers(0, 3, size=(h, w))
    out = resize_labels(labels, (nh, nw))
    assert out.shape == (nh, nw) and out.dtype == labels.dtype
    assert set(np.unique(out)) <= set(np.unique(labels))


def test_label_resizing_is_nearest():
    labels = np.array([[0, 1], [2, 1]])
    np.testing.assert_array_equal(resize_labels(labels, (4, 4)), np.kron(labels, np.ones((2, 2), int)))
    big = np.kron(labels, np.ones((3, 3), int))
    np.testing.assert_array_equal(resize_labels(big, (2, 2)), labels)


def test_overexposure_rule():
    image = np.full((10, 10), 0.5, np.float32)
    image[:2] = 0.0                                     # 20% burnt black
    assert dark_fraction(image) == pytest.approx(0.2)
    assert is_overexposed(image, max_fraction=0.15)
    assert not is_overexposed(image, max_fraction=0.25)
    assert not is_overexposed(image, level=-1.0)


def test_mean_image_uses_only_the_given_indices():
    images = np.stack([np.full((3, 4), v, np.float32) for v in (1.0, 3.0, 100.0)])
    np.testing.assert_allclose(mean_image(images, [0, 1]), 2.0)
    with pytest.raises(ValueError):
        mean_image(images, [])


# -- intensity normalisation ----------------------------------------------------------------

def film():
    from tinyseg.data import make_synthetic_dataset
    return make_synthetic_dataset(1, (64, 80), seed=4)[0][0]


def test_percentile_scaling_ignores_brightness_and_contrast():
    from tinyseg.data import normalize_intensity
    image = film()
    reference = normalize_intensity(image, "percentile")
    assert np.percentile(reference, 1) == pytest.approx(0, abs=1e-6)
    assert np.percentile(reference, 99) == pytest.approx(1, abs=1e-6)
    for gain, offset in [(0.5, 0.1), (2.0, -0.3), (0.2, 0.7)]:
        np.testing.assert_allclose(normalize_intensity(gain * image + offset, "percentile"), reference,
                                   atol=1e-4)


@settings(max_examples=20, deadline=None)
@given(gamma=st.floats(0.3, 3.0), gain=st.floats(0.1, 5.0), offset=st.floats(-1.0, 1.0))
def test_equalisation_ignores_gamma_and_scale(gamma, gain, offset):
    from tinyseg.data import normalize_intensity
    image = film().astype(np.float64)
    reference = normalize_intensity(image, "equalize")
    shifted = gain * image ** gamma + offset
    np.testing.assert_allclose(normalize_intensity(shifted, "equalize"), reference, atol=1e-6)
    assert 0 < reference.min() and reference.max() < 1


def test_normalisation_none_is_the_identity_and_names_are_checked():
    from tinyseg.data import normalize_images, normalize_intensity
    image = film()
    np.testing.assert_array_equal(normalize_intensity(image, "none"), image)
    stack = normalize_images(np.stack([image, 0.5 * image]), "percentile")
    np.testing.assert_allclose(stack[0], stack[1], atol=1e-5)
    with pytest.raises(ValueError, match="normalisation"):
        normalize_intensity(image, "zscore")
