"""Patch groups: block matching, the 3-D transform, aggregation, and collaborative_denoise."""
import numba
import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st
from numpy.lib.stride_tricks import sliding_window_view

from tinyseg.denoise import adaptive_filter_denoise, collaborative_denoise
from tinyseg.denoise import collaborative as collab
from tinyseg.denoise.collaborative import (_haar, _match, _unhaar, collaborative_pass, kaiser_window,
                                          patch_coefficients, reference_grid)


def random_basis(n, seed=0):
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((n, n)))
    return q


def brute_force_distances(image, top, left, patch, half):
    """{(row, col): sum of squared differences} for every candidate of the search window."""
    ref = image[top:top + patch, left:left + patch]
    out = {}
    for r in range(max(0, top - half), min(image.shape[0] - patch, top + half) + 1):
        for c in range(max(0, left - half), min(image.shape[1] - patch, left + half) + 1):
            out[(r, c)] = float(((image[r:r + patch, c:c + patch] - ref) ** 2).sum())
    return out


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10 ** 6), h=st.integers(4, 20), w=st.integers(4, 20), patch=st.integers(1, 4),
       half=st.integers(0, 6), capacity=st.integers(1, 12), limit=st.sampled_from([np.inf, 0.5, 0.05]),
       levels=st.sampled_from([3, 1000]))
def test_match_returns_the_nearest_patches_in_order(seed, h, w, patch, half, capacity, limit, levels):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, levels, (h, w)) / levels           # few levels: many ties
    top, left = rng.integers(0, h - patch + 1), rng.integers(0, w - patch + 1)
    rows, cols, dists = np.empty(capacity, np.int64), np.empty(capacity, np.int64), np.empty(capacity)
    features = sliding_window_view(image, (patch, patch)).reshape(h - patch + 1, w - patch + 1, -1)
    count = _match(features, top, left, half, limit * patch * patch, rows, cols, dists)
    truth = brute_force_distances(image, top, left, patch, half)
    eligible = sorted(d for d in truth.values() if d <= limit * patch * patch)
    assert count == min(capacity, len(eligible)) and count >= 1
    np.testing.assert_allclose(dists[:count], eligible[:count], rtol=1e-12, atol=1e-12)
    assert np.all(np.diff(dists[:count]) >= 0)
    assert len({(r, c) for r, c in zip(rows[:count], cols[:count])}) == count     # no patch twice
    assert (rows[0], cols[0]) == (top, left)                                       # the reference leads
    for r, c, d in zip(rows[:count], cols[:count], dists[:count]):
        assert truth[(r, c)] == pytest.approx(d, abs=1e-12)


def haar_matrix(m):
    """The orthonormal Haar matrix H_m (rows: the coarsest average first), built recursively."""
    if m == 1:
        return np.ones((1, 1))
    half = haar_matrix(m // 2)
    return np.vstack([np.kron(half, [1.0, 1.0]), np.kron(np.eye(m // 2), [1.0, -1.0])]) / np.sqrt(2.0)


@settings(max_examples=30, deadline=None)
@given(log_m=st.integers(0, 5), extra=st.integers(0, 3), width=st.integers(1, 9), seed=st.integers(0, 10 ** 6))
def test_haar_is_the_orthonormal_haar_matrix_and_inverts(log_m, extra, width, seed):
    m = 2 ** log_m
    h = haar_matrix(m)
    np.testing.assert_allclose(h @ h.T, np.eye(m), atol=1e-12)
    np.testing.assert_allclose(h[0], 1 / np.sqrt(m))                        # first row: the group mean
    group = np.random.default_rng(seed).standard_normal((m + extra, width))
    x, tmp = group.copy(), np.empty_like(group)
    _haar(x, m, tmp)
    np.testing.assert_allclose(x[:m], h @ group[:m], atol=1e-12)
    np.testing.assert_array_equal(x[m:], group[m:])                          # rows past m untouched
    _unhaar(x, m, tmp)
    np.testing.assert_allclose(x, group, atol=1e-12)


def test_patch_coefficients_are_each_patch_times_the_basis():
    patch = 4
    rng = np.random.default_rng(2)
    image, basis = rng.standard_normal((12, 10)), random_basis(patch * patch)
    coefs = patch_coefficients(image, basis, 2, 9)
    assert coefs.shape == (7, 7, patch * patch)
    for r, c in [(0, 0), (3, 5), (6, 6)]:
        np.testing.assert_allclose(coefs[r, c], image[2 + r:2 + r + patch, c:c + patch].ravel() @ basis, atol=1e-12)


def test_reference_grid_ends_at_the_last_patch():
    assert list(reference_grid(20, 8, 3)) == [0, 3, 6, 9, 12]
    assert list(reference_grid(21, 8, 3)) == [0, 3, 6, 9, 12, 13]
    assert list(reference_grid(8, 8, 3)) == [0]


@pytest.mark.parametrize("shape, step", [((23, 31), 3), ((16, 16), 4), ((9, 40), 1)])
def test_passes_that_change_nothing_give_back_the_image(shape, step):
    """Threshold 0 keeps every coefficient, and a Wiener pass whose pilot is infinitely
    confident (sigma -> 0) keeps them too: every pixel must come back exactly, which
    proves the groups cover the image and the weights are normalised."""
    image = np.random.default_rng(3).random(shape)
    basis = random_basis(16)
    kept = collaborative_pass(image, None, basis, sigma=0.1, wiener=False, threshold=0.0, group_size=5,
                              window=7, step=step)
    np.testing.assert_allclose(kept, image, atol=1e-12)
    trusted = collaborative_pass(image, image + 1.0, basis, sigma=1e-9, wiener=True, group_size=5,
                                 window=7, step=step)
    np.testing.assert_allclose(trusted, image, atol=1e-9)


def test_result_does_not_depend_on_the_thread_count():
    image = np.random.default_rng(4).random((30, 27))
    basis = random_basis(16)
    previous = numba.get_num_threads()
    try:
        outs = []
        for threads in sorted({1, numba.config.NUMBA_NUM_THREADS}):
            numba.set_num_threads(threads)
            outs.append(collaborative_pass(image, None, basis, 0.2, wiener=False, group_size=4, window=9))
    finally:
        numba.set_num_threads(previous)
    np.testing.assert_allclose(outs[0], outs[-1], atol=1e-12)


def test_collaborative_beats_per_patch_filtering_on_a_textured_image():
    """Grouping similar patches is what the extra machinery is for: on a repeating texture
    with noise it must beat the per-patch adaptive filters clearly."""
    y, x = np.mgrid[0:96, 0:96]
    clean = 128 + 60 * np.sin(x / 3.0) * np.cos(y / 5.0)
    noisy = clean + 25 * np.random.default_rng(5).standard_normal(clean.shape)
    err = {f.__name__: np.sqrt(np.mean((f(noisy, sigma=25, max_value=255) - clean) ** 2))
           for f in (adaptive_filter_denoise, collaborative_denoise)}
    assert err["collaborative_denoise"] < 0.8 * err["adaptive_filter_denoise"], err


@pytest.mark.parametrize("kwargs, message", [
    ({"step": 9}, "step"),
    ({"step": 0}, "step"),
    ({"window": 0}, "window"),
    ({"window": (39, 25, 9)}, "window"),
    ({"group_sizes": (16,)}, "group_sizes"),
    ({"group_sizes": (16, 0)}, "group_sizes"),
    ({"match_limits": (2500, -1)}, "match_limits"),
    ({"threshold": np.nan}, "threshold"),
])
def test_collaborative_rejects_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        collaborative_denoise(np.ones((16, 16)), sigma=1.0, **kwargs)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10 ** 6), h=st.integers(8, 30), w=st.integers(8, 30), step=st.integers(1, 4),
       window=st.integers(1, 11), wiener=st.booleans(), band_bytes=st.integers(1, 200_000))
def test_bands_give_the_same_result_as_one_band(seed, h, w, step, window, wiener, band_bytes):
    """However the image is cut into bands of reference rows, every group sees the same
    candidates and every patch the same sum: the result matches a single band."""
    rng = np.random.default_rng(seed)
    image, basis = rng.random((h, w)), random_basis(16, seed % 7)
    pilot = image + 0.05 * rng.random((h, w)) if wiener else None
    kwargs = dict(threshold=1.0, group_size=5, window=window, step=step)
    whole = collaborative_pass(image, pilot, basis, 0.2, wiener, **kwargs)
    budget = collab._BAND_BYTES
    try:
        collab._BAND_BYTES = band_bytes                           # down to one reference row per band
        banded = collaborative_pass(image, pilot, basis, 0.2, wiener, **kwargs)
    finally:
        collab._BAND_BYTES = budget
    np.testing.assert_allclose(banded, whole, atol=1e-12)


def test_identical_patches_still_cover_every_pixel():
    """On a constant image every candidate ties with the reference; the reference patch still
    leads its own group, so no pixel is left without an estimate.  (The Wiener factor
    q^2 / (q^2 + sigma^2) is just below 1 even for the mean: hence rtol.)"""
    flat = np.full((64, 64), 100.0)
    np.testing.assert_allclose(collaborative_denoise(flat, sigma=5.0, max_value=255), flat, rtol=1e-5)
    noisy = flat + np.random.default_rng(6).standard_normal(flat.shape)
    assert np.all(np.isfinite(collaborative_denoise(noisy, sigma=1.0, max_value=255)))


def test_kaiser_window_is_symmetric_and_flat_at_beta_zero():
    window = kaiser_window(8, 2.0).reshape(8, 8)
    np.testing.assert_allclose(window, window.T)
    np.testing.assert_allclose(window, window[::-1, ::-1])
    assert window[0, 0] < window[3, 3] <= 1.0
    np.testing.assert_allclose(kaiser_window(5, 0.0), 1.0)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10 ** 6), h=st.integers(2, 20), w=st.integers(2, 20), patch=st.integers(1, 5),
       data=st.data())
def test_patch_rows_into_copies_the_grid(seed, h, w, patch, data):
    from tinyseg.denoise.patches import patch_rows, patch_rows_into
    assume(patch <= min(h, w))
    image = np.random.default_rng(seed).random((h, w))
    first = data.draw(st.integers(0, h - patch))
    stop = data.draw(st.integers(first, h - patch + 1))
    out = np.empty(((stop - first) * (w - patch + 1), patch * patch))
    patch_rows_into(image, patch, first, out)
    np.testing.assert_array_equal(out, patch_rows(image, patch, first, stop))
