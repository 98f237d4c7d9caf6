import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st

from tinyseg.denoise import (adaptive_basis, adaptive_filter_denoise, collaborative_denoise, estimate_sigma,
                             ksvd, ksvd_denoise, omp, overcomplete_dct)

DENOISERS = [ksvd_denoise, adaptive_filter_denoise, collaborative_denoise]
SMALL = {"n_atoms": 64, "n_iter": 4}        # a smaller dictionary where quality is not the point


def unit_dictionary(rng, n_features, n_atoms):
    D = rng.standard_normal((n_features, n_atoms))
    return D / np.linalg.norm(D, axis=0)


def sparse_signals(rng, D, k, n_signals):
    """Signals with exactly k atoms each, coefficients of magnitude in [1, 2]."""
    G = np.zeros((D.shape[1], n_signals))
    for s in range(n_signals):
        G[rng.choice(D.shape[1], k, replace=False), s] = rng.uniform(1, 2, k) * rng.choice([-1, 1], k)
    return G


def exact_recovery_condition(D, support):
    """Tropp's ERC: max over atoms outside the support of ||pinv(D_S) d_j||_1 (< 1 guarantees OMP)."""
    outside = np.setdiff1d(np.arange(D.shape[1]), support)
    return np.abs(np.linalg.pinv(D[:, support]) @ D[:, outside]).sum(axis=0).max()


def psnr(a, b, peak=255.0):
    mse = np.mean((np.asarray(a, float) - np.asarray(b, float)) ** 2)
    return np.inf if mse == 0 else 10 * np.log10(peak ** 2 / mse)


def phantom(size=64):
    """Smooth shading with a bright disc and a dark bar: smooth regions and sharp edges, range [40, 215]."""
    y, x = np.mgrid[0:size, 0:size] / size
    image = 90 + 50 * np.sin(2.5 * x + 1.5 * y) * np.cos(1.7 * y)
    image[(x - 0.62) ** 2 + (y - 0.4) ** 2 < 0.06] += 60
    image[(np.abs(x - 0.3) < 0.08) & (y > 0.3)] -= 45
    return image


# ---------------------------------------------------------------- OMP

@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2 ** 32 - 1), k=st.integers(1, 5))
def test_omp_recovers_exact_support_when_erc_holds(seed, k):
    rng = np.random.default_rng(seed)
    D = unit_dictionary(rng, 48, 96)
    G = sparse_signals(rng, D, k, 1)
    support = np.flatnonzero(G[:, 0])
    assume(exact_recovery_condition(D, support) < 1)
    for kwargs in ({"n_nonzero": k}, {"tol": 1e-12}, {"n_nonzero": k + 3, "tol": 1e-12}):
        coefs = omp(D, D @ G, **kwargs)
        np.testing.assert_array_equal(np.flatnonzero(coefs[:, 0]), support)
        np.testing.assert_allclose(coefs, G, atol=1e-9)


def test_omp_recovers_most_random_sparse_signals():
    rng = np.random.default_rng(0)
    D = unit_dictionary(rng, 64, 256)
    G = sparse_signals(rng, D, 6, 2000)
    coefs = omp(D, D @ G, n_nonzero=6)
    exact = np.all((coefs != 0) == (G != 0), axis=0)
    assert exact.mean() > 0.95


def test_omp_matches_scikit_learn():
    sklearn = pytest.importorskip("sklearn.linear_model")
    rng = np.random.default_rng(1)
    D = unit_dictionary(rng, 32, 80)
    X = D @ sparse_signals(rng, D, 4, 300) + 0.05 * rng.standard_normal((32, 300))
    gram, xy, norms2 = D.T @ D, D.T @ X, (X ** 2).sum(axis=0)
    np.testing.assert_allclose(omp(D, X, n_nonzero=5),
                               sklearn.orthogonal_mp_gram(gram, xy, n_nonzero_coefs=5), atol=1e-10)
    np.testing.assert_allclose(omp(D, X, tol=0.1),
                               sklearn.orthogonal_mp_gram(gram, xy, tol=0.1, norms_squared=norms2), atol=1e-10)


def test_omp_stops_at_whichever_rule_comes_first():
    rng = np.random.default_rng(2)
    D = unit_dictionary(rng, 32, 64)
    X = rng.standard_normal((32, 500))
    tol, n_nonzero = 8.0, 6
    coefs = omp(D, X, n_nonzero=n_nonzero, tol=tol)
    used = (coefs != 0).sum(axis=0)
    err = ((X - D @ coefs) ** 2).sum(axis=0)
    assert used.max() <= n_nonzero
    assert np.all((err <= tol + 1e-9) | (used == n_nonzero))
    assert np.any(used < n_nonzero) and np.any(used == n_nonzero)      # both rules did fire
    tol_only = omp(D, X, tol=tol)
    assert np.all(((X - D @ tol_only) ** 2).sum(axis=0) <= tol + 1e-9)
    # OMP stops as soon as the bound holds: one atom fewer misses it
    used = (tol_only != 0).sum(axis=0)
    for k in np.unique(used[used > 0]):
        cols = X[:, used == k]
        fewer = omp(D, cols, n_nonzero=int(k) - 1) if k > 1 else np.zeros((64, cols.shape[1]))
        assert np.all(((cols - D @ fewer) ** 2).sum(axis=0) > tol)


def test_omp_handles_a_single_signal_and_zero_signals():
    rng = np.random.default_rng(3)
    D = unit_dictionary(rng, 16, 24)
    x = 2.0 * D[:, 5] - D[:, 11]
    np.testing.assert_allclose(omp(D, x, n_nonzero=2), np.eye(24)[5] * 2 - np.eye(24)[11], atol=1e-12)
    assert not omp(D, np.zeros((16, 3)), n_nonzero=3).any()


@pytest.mark.parametrize("D, X, kwargs, message", [
    (np.ones((4, 3)), np.ones((4, 2)), {"n_nonzero": 1}, "unit norm"),
    (np.eye(4), np.ones((5, 2)), {"n_nonzero": 1}, "features"),
    (np.eye(4), np.full((4, 2), np.nan), {"n_nonzero": 1}, "NaN"),
    (np.eye(4), np.ones((4, 2)), {}, "n_nonzero"),
    (np.eye(4), np.ones((4, 2)), {"n_nonzero": 5}, "exceeds"),
    (np.eye(4), np.ones((4, 2)), {"tol": -1.0}, "tol"),
    (np.ones(4), np.ones((4, 2)), {"n_nonzero": 1}, "2-D"),
    (np.eye(4), np.ones((4, 0)), {"n_nonzero": 1}, "empty"),
])
def test_omp_rejects_bad_input(D, X, kwargs, message):
    with pytest.raises(ValueError, match=message):
        omp(D, X, **kwargs)


# ---------------------------------------------------------------- K-SVD

@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2 ** 32 - 1), n_nonzero=st.integers(1, 4), n_atoms=st.integers(8, 40))
def test_ksvd_error_never_increases(seed, n_nonzero, n_atoms):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((16, 300)) * rng.uniform(0.1, 3, (16, 1))
    D, history = ksvd(X, n_atoms, n_nonzero, n_iter=8, seed=seed)
    assert history.shape == (8,)
    assert np.all(np.diff(history) <= 1e-9 * history[0])
    np.testing.assert_allclose(np.linalg.norm(D, axis=0), 1.0, atol=1e-10)
    np.testing.assert_allclose(D[:, 0], 0.25)                       # DC atom 1/sqrt(16)
    np.testing.assert_allclose(D[:, 1:].mean(axis=0), 0.0, atol=1e-12)


def test_ksvd_learns_a_planted_dictionary():
    rng = np.random.default_rng(4)
    true = unit_dictionary(rng, 20, 50)
    X = true @ sparse_signals(rng, true, 3, 1500)
    D, history = ksvd(X, 50, 3, n_iter=60, remove_dc=False, seed=1)
    assert history[-1] < 0.4 * history[0]
    found = np.abs(true.T @ D).max(axis=1) > 0.99                   # the K-SVD paper's criterion
    assert found.mean() >= 0.8


def test_ksvd_is_seeded_and_replaces_unused_atoms():
    rng = np.random.default_rng(5)
    X = rng.standard_normal((9, 200))
    a, ha = ksvd(X, 12, 2, n_iter=3, seed=7)
    b, hb = ksvd(X, 12, 2, n_iter=3, seed=7)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ha, hb)
    init = np.tile(overcomplete_dct(3, 9)[:, 1:2], (1, 12))           # DC atom + eleven copies of one atom
    D, _ = ksvd(X, 12, 2, n_iter=2, init=init)
    overlap = np.abs(np.tril(D[:, 1:].T @ D[:, 1:], -1))
    assert overlap.max() < 0.99


@pytest.mark.parametrize("X, args, message", [
    (np.ones((4, 10)), (1, 1, 3), "n_atoms"),
    (np.ones(10), (4, 1, 3), "2-D"),
    (np.full((4, 10), np.inf), (4, 1, 3), "NaN"),
    (np.random.default_rng(0).random((4, 10)), (4, 1, -1), "n_iter"),
])
def test_ksvd_rejects_bad_input(X, args, message):
    with pytest.raises(ValueError, match=message):
        ksvd(X, *args)


def test_ksvd_rejects_init_of_wrong_shape():
    with pytest.raises(ValueError, match="init must have shape"):
        ksvd(np.random.default_rng(0).random((4, 10)), 4, 1, 2, init=np.ones((4, 5)))


# ---------------------------------------------------------------- noise level

def test_estimate_sigma_recovers_added_noise():
    rng = np.random.default_rng(6)
    clean = phantom(128)
    for sigma in (5.0, 10.0, 25.0):
        estimate = estimate_sigma(clean + sigma * rng.standard_normal(clean.shape))
        assert abs(estimate - sigma) < 0.1 * sigma


def test_estimate_sigma_is_small_on_a_clean_image():
    assert estimate_sigma(np.rint(phantom()).astype(np.uint8)) < 1.0


# ---------------------------------------------------------------- denoisers

@pytest.fixture(scope="module")
def clean():
    return phantom()


@pytest.mark.parametrize("denoiser", DENOISERS)
@pytest.mark.parametrize("sigma", [10, 20, 25])
def test_denoisers_raise_psnr(denoiser, sigma, clean):
    noisy = clean + sigma * np.random.default_rng(sigma).standard_normal(clean.shape)
    out = denoiser(noisy, sigma=sigma, max_value=255)
    assert out.dtype == np.float64 and out.shape == clean.shape
    gain = psnr(out, clean) - psnr(noisy, clean)
    assert gain > 6.0, f"PSNR gain only {gain:.2f} dB"


@pytest.mark.parametrize("denoiser", DENOISERS)
def test_denoisers_work_with_estimated_sigma(denoiser, clean):
    noisy = clean + 20 * np.random.default_rng(0).standard_normal(clean.shape)
    assert psnr(denoiser(noisy, max_value=255), clean) - psnr(noisy, clean) > 4.0


@pytest.mark.parametrize("denoiser", DENOISERS)
def test_denoisers_leave_a_clean_image_almost_unchanged(denoiser, clean):
    """A clean 8-bit image with fine texture (so the estimated sigma is small but not zero):
    with sigma estimated, the output keeps PSNR > 48 dB against the input (RMS change < 1.0
    grey level).  Overestimating sigma threefold drops it to about 45 dB."""
    y, x = np.mgrid[0:64, 0:64]
    image = np.rint(clean + 1.5 * np.sin(2.3 * x + 0.4 * y) * np.sin(1.9 * y)).astype(np.uint8)
    assert 0.5 < estimate_sigma(image) < 3.0
    assert psnr(denoiser(image, **SMALL), image) > 48.0


@pytest.mark.parametrize("denoiser", DENOISERS)
def test_denoisers_remove_little_from_a_clean_image_at_a_given_sigma(denoiser, clean):
    """Denoising clean and noisy copies: the clean one must stay far closer to the truth."""
    noisy = clean + 10 * np.random.default_rng(1).standard_normal(clean.shape)
    from_clean = denoiser(clean, sigma=2.0, max_value=255, **SMALL)
    from_noisy = denoiser(noisy, sigma=10.0, max_value=255, **SMALL)
    assert psnr(from_clean, clean) > psnr(from_noisy, clean) + 5


@pytest.mark.parametrize("denoiser", DENOISERS)
def test_dtype_and_range_round_trip(denoiser, clean):
    rng = np.random.default_rng(8)
    noise = 15 * rng.standard_normal(clean.shape)
    as_uint8 = np.clip(np.rint(clean + noise), 0, 255).astype(np.uint8)
    out8 = denoiser(as_uint8, sigma=15, **SMALL)
    assert out8.dtype == np.uint8
    as_12bit = as_uint8.astype(np.uint16) * 16                    # values <= 4080: a 12-bit image
    out12 = denoiser(as_12bit, sigma=15 * 16, **SMALL)
    assert out12.dtype == np.uint16 and out12.max() <= 4095
    as_float = (as_uint8 / 255).astype(np.float32)
    outf = denoiser(as_float, sigma=15 / 255, **SMALL)
    assert outf.dtype == np.float32 and 0 <= outf.min() and outf.max() <= 1
    # the same image in three encodings gives the same result
    assert np.abs(out12 / 16.0 - out8).max() <= 1.0
    assert np.abs(outf * 255.0 - out8).max() <= 1.0


def test_bright_12bit_values_are_clipped_to_4095():
    image = np.full((16, 16), 4095, np.uint16)
    image[::2, ::2] = 3900
    out = ksvd_denoise(image, sigma=200.0, n_atoms=16, n_iter=2)
    assert out.dtype == np.uint16 and out.max() <= 4095


@pytest.mark.parametrize("denoiser", DENOISERS)
@pytest.mark.parametrize("image, kwargs, message", [
    (np.full((32, 32), np.nan), {}, "NaN"),
    (np.ones(64), {}, "2-D"),
    (np.ones((0, 32)), {}, "empty"),
    (np.ones((6, 32)), {"patch": 8}, "smaller than the 8x8 patch"),
    (np.ones((32, 32)), {"sigma": -1.0}, "sigma"),
    (np.ones((32, 32), bool), {}, "dtype"),
    (np.ones((32, 32)), {"patch": 1}, "patch"),
    (np.ones((32, 32)), {"patch": 7.5}, "patch"),
    (np.ones((32, 32)), {"n_atoms": 1}, "n_atoms"),
    (np.full((32, 32), 300, np.uint16), {"bit_depth": 8}, "range ends at 255"),
])
def test_denoisers_reject_bad_input(denoiser, image, kwargs, message):
    with pytest.raises(ValueError, match=message):
        denoiser(image, **kwargs)


def test_adaptive_filter_rejects_bad_settings():
    with pytest.raises(ValueError, match="n_keep"):
        adaptive_filter_denoise(np.ones((16, 16)), sigma=1.0, patch=4, n_keep=16)
    with pytest.raises(ValueError, match="threshold"):
        adaptive_filter_denoise(np.ones((16, 16)), sigma=1.0, threshold=-1.0)


def test_adaptive_basis_is_orthonormal_with_dc_first():
    D = overcomplete_dct(6, 64)
    U = adaptive_basis(D)
    np.testing.assert_allclose(U.T @ U, np.eye(36), atol=1e-12)
    np.testing.assert_allclose(U[:, 0], 1 / 6)
    energy = np.linalg.norm(U[:, 1:].T @ (D - D.mean(axis=0)), axis=1)
    assert np.all(np.diff(energy) <= 1e-9)                           # leading directions first


def test_patches_round_trip_through_put_back():
    from tinyseg.denoise.patches import add_patch_rows, centred_patch_rows, cover_counts, patch_rows
    image = np.random.default_rng(9).random((13, 17))
    ac, means = centred_patch_rows(image, 4, 0, 10)
    np.testing.assert_allclose(ac + means[:, None], patch_rows(image, 4, 0, 10))
    np.testing.assert_allclose(ac.mean(axis=1), 0.0, atol=1e-12)
    acc = np.zeros_like(image)
    add_patch_rows(acc, ac[:5 * 14] + means[:5 * 14, None], 0, 4)        # grid rows 0-4, then 5-9
    add_patch_rows(acc, patch_rows(image, 4, 5, 10), 5, 4)
    np.testing.assert_allclose(acc / cover_counts(image.shape, 4), image)


def test_cache_key_follows_the_defaults_a_denoiser_runs_with():
    """A changed default is a changed setting: results cached before it must not be read."""
    from tinyseg.denoise.cache import cache_key, settings

    def smooth(image, amount=1):
        return image
    before = cache_key(smooth, np.zeros((4, 4)), {})

    def smooth(image, amount=2):                   # same name, new default
        return image
    assert cache_key(smooth, np.zeros((4, 4)), {}) != before
    assert cache_key(smooth, np.zeros((4, 4)), {"amount": 1}) == before
    assert settings(ksvd_denoise, {"sigma": 3.0})["sigma"] == 3.0
    assert settings(ksvd_denoise, {})["patch"] == 8
