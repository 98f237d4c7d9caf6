"""Patch-based denoisers built on a K-SVD dictionary learned from the noisy image.

Both start the same way: take the noisy image's overlapping p x p patches
(a random subset of a ``train_stride`` grid), remove each patch's mean, and
train a dictionary by K-SVD from an overcomplete DCT, coding with the error
bound ``||r||^2 <= (gain * sigma)^2 * p^2``.  They differ in how they clean
every patch of the full grid.

``ksvd_denoise`` (Elad & Aharon, 2006) sparse-codes each mean-free patch with
that same error bound, then solves

    X = argmin_X  lambda ||X - Y||^2 + sum_ij ||R_ij X - D gamma_ij||^2
      = (lambda Y + sum_ij R_ij^T D gamma_ij) / (lambda + sum_ij R_ij^T R_ij),

i.e. the overlapping clean patches are averaged pixel by pixel together with
the noisy image at weight lambda = lambda_factor / sigma_255, sigma_255 being
sigma expressed on a 0-255 scale.

``adaptive_filter_denoise`` is the H-ReNet paper's variant (Sect. 3.1).  The
DC-free dictionary is factored D = U S V^T; U is an orthonormal basis whose
leading columns carry most of the dictionary's energy and whose latter
columns, J, are the adaptive filters.  The patch problem

    min_x  1/2 ||x - y||^2 + tau ||J^T x||_0

decouples in U's coordinates: the leading coefficients are kept as they are
and each filter response is hard-thresholded, c -> c * [|c| >= sqrt(2 tau)].
We set sqrt(2 tau) = threshold * sigma, i.e. tau = (threshold * sigma)^2 / 2:
the l0 penalty equals the energy of a coefficient of ``threshold`` noise
standard deviations, so a response survives only if it is that unlikely to
be pure noise.  The patch mean (DC) is always kept, and so are the first
``n_keep`` AC coefficients.  The paper does not fix the split; the defaults,
n_keep = 0 (only DC is "leading") and threshold = 3 (tau = 4.5 sigma^2), keep
few coefficients unthresholded because each lets its noise through (how they
were chosen: docs/06-ksvd.md).
Patches go back to their places and are averaged.

``collaborative_denoise`` filters the paper's patch groups jointly: the same
adaptive basis transforms each patch of a group of similar patches and a Haar transform
runs along the group, first with hard thresholding, then with a Wiener
shrinkage guided by that first estimate (see ``collaborative``).
"""
import numpy as np

from .collaborative import collaborative_pass
from .intensity import from_float, to_float
from .ksvd import ksvd_rows, overcomplete_dct
from .omp import batch_omp, check_int, reconstruct
from .patches import add_patch_rows, centred_patch_rows, cover_counts, training_patches
from .sigma import mad_sigma

_CHUNK = 32768    # patches coded at a time (bounds memory on large images)


def _check_settings(patch, n_atoms, n_iter, train_stride, max_train_patches):
    """The integer settings, validated (max_train_patches may be None: no limit)."""
    return (check_int("patch", patch, 2), check_int("n_atoms", n_atoms, 2), check_int("n_iter", n_iter, 0),
            check_int("train_stride", train_stride, 1),
            None if max_train_patches is None else check_int("max_train_patches", max_train_patches, 1))


def _check_threshold(threshold):
    if not np.isscalar(threshold) or not np.isfinite(threshold) or threshold < 0:
        raise ValueError(f"threshold must be a finite number >= 0, got {threshold!r}")


def _noise_sigma(image, sigma):
    if sigma is None:
        return mad_sigma(image)
    if not np.isscalar(sigma) or not np.isfinite(sigma) or sigma < 0:
        raise ValueError(f"sigma must be a finite number >= 0, got {sigma!r}")
    return float(sigma)


def _prepare(img, sigma, patch, max_value, bit_depth):
    image, info = to_float(img, max_value, bit_depth, min_size=patch)
    return image, info, _noise_sigma(image, sigma)


def learn_dictionary(image, sigma, patch=8, n_atoms=256, n_iter=10, gain=1.15,
                     train_stride=1, max_train_patches=40000, seed=0):
    """K-SVD dictionary (patch*patch, n_atoms), DC atom first, trained on the image's own patches."""
    n = patch * patch
    rng = np.random.default_rng(seed)
    train = training_patches(image, patch, train_stride, max_train_patches, rng)
    atoms, _ = ksvd_rows(train, n_atoms, n_nonzero=min(n // 2, n_atoms - 1), n_iter=n_iter,
                         init=overcomplete_dct(patch, n_atoms), seed=seed, tol=(gain * sigma) ** 2 * n)
    return np.ascontiguousarray(atoms.T)


def _clean_patches(image, patch, clean_rows):
    """Sum of R^T (cleaned patch) over the full grid, chunk by chunk.

    ``clean_rows(ac, means)`` gets mean-free patches (one per row) and their
    means, and returns the cleaned patches, means included.
    """
    acc = np.zeros_like(image)
    n_grid_rows = image.shape[0] - patch + 1
    rows_per_chunk = max(1, _CHUNK // (image.shape[1] - patch + 1))
    for first in range(0, n_grid_rows, rows_per_chunk):
        ac, means = centred_patch_rows(image, patch, first, min(first + rows_per_chunk, n_grid_rows))
        add_patch_rows(acc, clean_rows(ac, means), first, patch)
    return acc


def ksvd_denoise(img, sigma=None, patch=8, n_atoms=128, n_iter=10, gain=1.15, lambda_factor=30.0,
                 train_stride=1, max_train_patches=40000, seed=0, max_value=None, bit_depth=None):
    """Denoise a 2-D image by K-SVD sparse coding of its overlapping patches.

    sigma : noise standard deviation in the image's units (estimated when None).
    patch, n_atoms, n_iter : patch side, dictionary size, K-SVD iterations.
    gain : C in the per-patch error bound (C sigma)^2 * patch^2.
    lambda_factor : weight of the noisy image is lambda_factor / sigma_255.
    train_stride, max_train_patches, seed : which patches train the dictionary.
    max_value, bit_depth : nominal intensity range (see ``intensity``).
    Returns the denoised image in the input's dtype and range.

    The defaults, tuned on radiographs (measurements: benchmarks/results/denoise-*):
    patch = 8 : smaller patches hold too little structure to tell it from noise on a smooth radiograph.
    n_atoms = 128 : a radiograph has few distinct shapes, and a smaller dictionary learns less of the noise.
    gain = 1.15 : Elad & Aharon's bound; a tighter one codes noise as structure at high sigma.
    n_iter = 10 : fewer iterations leave the dictionary nearer its DCT start and lose quality.
    train_stride = 1, max_train_patches = 40000 : a seeded random draw from every patch position, most of a
        256 x 256 image's patches, at a bounded cost on large images.
    lambda_factor = 30 : Elad & Aharon's; more weight on the noisy image keeps more of its noise.
    sigma = None : Donoho's estimate (``estimate_sigma``) costs little against the true sigma on radiographs.
    """
    patch, n_atoms, n_iter, train_stride, max_train_patches = _check_settings(
        patch, n_atoms, n_iter, train_stride, max_train_patches)
    image, info, sigma = _prepare(img, sigma, patch, max_value, bit_depth)
    if sigma == 0:
        return from_float(image, info)
    n = patch * patch
    atoms = np.ascontiguousarray(learn_dictionary(image, sigma, patch, n_atoms, n_iter, gain,
                                                  train_stride, max_train_patches, seed)[:, 1:].T)
    gram, tol = atoms @ atoms.T, (gain * sigma) ** 2 * n
    max_atoms = min(n // 2, atoms.shape[0])

    def clean_rows(ac, means):
        support, coefs, counts, _ = batch_omp(gram, ac @ atoms.T, np.einsum("ij,ij->i", ac, ac), max_atoms, tol)
        cleaned = reconstruct(atoms, support, coefs, counts)
        cleaned += means[:, None]
        return cleaned

    lam = lambda_factor * info.data_range / (255.0 * sigma)
    out = (lam * image + _clean_patches(image, patch, clean_rows)) / (lam + cover_counts(image.shape, patch))
    return from_float(out, info)


def adaptive_basis(D):
    """Orthonormal (n, n) basis [DC, U_1 .. U_{n-1}] from the DC-free dictionary.

    Every atom has its mean removed; the mean-free subspace gets the left
    singular vectors of that matrix, ordered by decreasing singular value.
    Columns 1..n_keep are the leading ("former") directions, the rest the
    adaptive filters.
    """
    n = D.shape[0]
    ac = D - D.mean(axis=0)
    eigval, eigvec = np.linalg.eigh(np.eye(n) - 1.0 / n)       # centring projector: eigenvalues 0, 1, ..., 1
    mean_free = eigvec[:, eigval > 0.5]                        # (n, n-1) orthonormal, orthogonal to DC
    left, _, _ = np.linalg.svd(mean_free.T @ ac, full_matrices=True)
    return np.hstack([np.full((n, 1), 1.0 / np.sqrt(n)), mean_free @ left])


def adaptive_filter_denoise(img, sigma=None, patch=8, n_atoms=256, n_iter=10, n_keep=0, threshold=3.0,
                            gain=1.15, train_stride=1, max_train_patches=40000, seed=0,
                            max_value=None, bit_depth=None):
    """Denoise a 2-D image by hard thresholding in the SVD basis of its K-SVD dictionary.

    n_keep : leading AC basis coefficients kept unthresholded (DC always is).
    threshold : sqrt(2 tau) / sigma, the hard threshold in noise standard deviations;
        tau = (threshold * sigma)^2 / 2.
    The other arguments are those of ``ksvd_denoise``.
    """
    patch, n_atoms, n_iter, train_stride, max_train_patches = _check_settings(
        patch, n_atoms, n_iter, train_stride, max_train_patches)
    n_keep = check_int("n_keep", n_keep, 0)
    if n_keep > patch * patch - 1:
        raise ValueError(f"n_keep must be at most {patch * patch - 1}, the AC coefficients of a patch; got {n_keep}")
    _check_threshold(threshold)
    image, info, sigma = _prepare(img, sigma, patch, max_value, bit_depth)
    if sigma == 0:
        return from_float(image, info)
    ac_basis = adaptive_basis(learn_dictionary(image, sigma, patch, n_atoms, n_iter, gain,
                                               train_stride, max_train_patches, seed))[:, 1:]
    cut = threshold * sigma                                    # sqrt(2 tau)

    def clean_rows(ac, means):                                 # the DC coefficient is kept: add the mean back
        coefs = ac @ ac_basis
        filtered = coefs[:, n_keep:]
        filtered[np.abs(filtered) < cut] = 0.0
        cleaned = coefs @ ac_basis.T
        cleaned += means[:, None]
        return cleaned

    out = _clean_patches(image, patch, clean_rows) / cover_counts(image.shape, patch)
    return from_float(out, info)


def collaborative_denoise(img, sigma=None, patch=8, n_atoms=128, n_iter=10, threshold=2.6, group_sizes=(16, 32),
                          window=(39, 25), step=3, match_limits=(2500.0, 400.0), gain=1.15, train_stride=1,
                          max_train_patches=20000, seed=0, max_value=None, bit_depth=None):
    """Denoise a 2-D image by filtering groups of similar patches in the K-SVD adaptive basis.

    threshold : hard threshold of the first pass, in noise standard deviations.
    group_sizes : most patches per group in the hard and in the Wiener pass (groups are cut
        to a power of two, the sizes of the Haar transform along the group).
    window : side of the search neighbourhood, one for both passes or one per pass.
    step : spacing of the reference patches.
    match_limits : largest mean squared difference per pixel for a patch to join a group,
        in each pass, on a 0-255 scale (scaled to the image's range).
    The defaults of these are BM3D's published settings for sigma <= 40 (Dabov et al., 2007),
    except two (trials: benchmarks/results/denoise-tuning-*): the Wiener pass's window, as it
    matches on the nearly clean first estimate, whose best matches lie close by (25 x 25 saves
    a quarter of its time for a few hundredths of a dB on photographs and phantoms, a tenth
    on the smooth synthetic radiograph); and the threshold, 2.6 rather than 2.7, as the
    adaptive basis packs the detail of a textured image into coefficients nearer the noise.
    n_atoms, max_train_patches : smaller than ``ksvd_denoise``'s: the dictionary only has to
        yield the patch basis, and 128 atoms learned from 20000 patches give as good a basis
        in half the time.
    The other arguments are those of ``ksvd_denoise``.
    """
    patch, n_atoms, n_iter, train_stride, max_train_patches = _check_settings(
        patch, n_atoms, n_iter, train_stride, max_train_patches)
    windows = tuple(check_int("window", w, 1) for w in np.atleast_1d(window))
    windows = windows * 2 if len(windows) == 1 else windows
    if len(windows) != 2:
        raise ValueError(f"window takes one value or two, one per pass; got {window!r}")
    step = check_int("step", step, 1)
    if step > patch:
        raise ValueError(f"step must be at most the patch side {patch} so that every pixel is covered, got {step}")
    sizes = tuple(check_int("group_sizes", g, 1) for g in np.atleast_1d(group_sizes))
    limits = tuple(np.atleast_1d(np.asarray(match_limits, dtype=float)))
    if len(sizes) != 2 or len(limits) != 2 or not all(np.isfinite(lim) and lim > 0 for lim in limits):
        raise ValueError(f"group_sizes and match_limits take two values, one per pass, limits > 0; "
                         f"got {group_sizes!r} and {match_limits!r}")
    _check_threshold(threshold)
    image, info, sigma = _prepare(img, sigma, patch, max_value, bit_depth)
    if sigma == 0:
        return from_float(image, info)
    basis = adaptive_basis(learn_dictionary(image, sigma, patch, n_atoms, n_iter, gain,
                                            train_stride, max_train_patches, seed))
    scale = (info.data_range / 255.0) ** 2
    pilot = collaborative_pass(image, None, basis, sigma, wiener=False, threshold=threshold,
                               group_size=sizes[0], window=windows[0], step=step, limit=limits[0] * scale)
    out = collaborative_pass(image, pilot, basis, sigma, wiener=True, group_size=sizes[1], window=windows[1],
                             step=step, limit=limits[1] * scale)
    return from_float(out, info)
