"""Patch groups: block matching, the 3-D transform, aggregation, and collaborative_denoise."""
import numba
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tinyseg.denoise import adaptive_filter_denoise, collaborative_denoise
from tinyseg.denoise.collaborative import _match, _sandwich, collaborative_pass, dct_matrices, reference_grid


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
    count = _match(image, top, left, patch, half, limit, rows, cols, dists)
    truth = brute_force_distances(image, top, left, patch, half)
    eligible = sorted(d for d in truth.values() if d <= limit * patch * patch)
    assert count == min(capacity, len(eligible)) and count >= 1
    np.testing.assert_allclose(dists[:count], eligible[:count], rtol=1e-12, atol=1e-12)
    assert np.all(np.diff(dists[:count]) >= 0)
    assert len({(r, c) for r, c in zip(rows[:count], cols[:count])}) == count     # no patch twice
    for r, c, d in zip(rows[:count], cols[:count], dists[:count]):
        assert truth[(r, c)] == pytest.approx(d, abs=1e-12)


def test_dct_matrices_are_orthonormal():
    dcts = dct_matrices(9)
    for m in range(1, 10):
        np.testing.assert_allclose(dcts[m, :m, :m] @ dcts[m, :m, :m].T, np.eye(m), atol=1e-12)
        np.testing.assert_allclose(dcts[m, 0, :m], 1 / np.sqrt(m))          # first row: the group mean


@pytest.mark.parametrize("m", [1, 3, 8])
def test_group_transform_matches_numpy_and_inverts(m):
    n, size = 16, 8
    rng = np.random.default_rng(m)
    basis, dct = random_basis(n), dct_matrices(size)[m]
    group = rng.standard_normal((size, n))
    coefs, tmp, back = np.empty((size, n)), np.empty((size, n)), np.empty((size, n))
    _sandwich(dct, group, basis, m, coefs, tmp)
    np.testing.assert_allclose(coefs[:m], dct[:m, :m] @ group[:m] @ basis, atol=1e-12)
    _sandwich(np.ascontiguousarray(dct.T), coefs, np.ascontiguousarray(basis.T), m, back, tmp)
    np.testing.assert_allclose(back[:m], group[:m], atol=1e-12)


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
    ({"group_sizes": (16,)}, "group_sizes"),
    ({"group_sizes": (16, 0)}, "group_sizes"),
    ({"match_limits": (2500, -1)}, "match_limits"),
    ({"threshold": np.nan}, "threshold"),
])
def test_collaborative_rejects_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        collaborative_denoise(np.ones((16, 16)), sigma=1.0, **kwargs)
