"""Collaborative filtering of groups of similar patches.

The H-ReNet paper denoises groups G_k of similar patches (Sect. 3.1).  Here a
group is built for every reference patch on a grid of step ``step``: the
reference patch itself and the patches most similar to it (squared
difference, at most ``limit`` per pixel) inside a ``window`` x ``window``
neighbourhood, at most ``group_size`` and a power of two of them, stacked as
the rows of an (m, p*p) matrix.  The group is transformed in 3-D, as in BM3D
(Dabov et al., 2007): every patch by an orthonormal patch basis B (the SVD
basis of the K-SVD dictionary, so the transform adapts to the image), then
every coefficient along the group by the orthonormal m-point Haar transform
H_m (BM3D's choice; O(m) per coefficient, hence the power-of-two sizes):

    coefficients = H_m @ G @ B          G = H_m^T @ coefficients @ B^T

Similar patches make the group's coefficients sparse along both axes, so a
group of m patches concentrates the signal into few coefficients while the
white noise stays spread evenly (an orthonormal transform keeps its variance
sigma^2 in every coefficient).  Two passes use this:

- hard: coefficients below ``threshold * sigma`` become zero; the group's
  patches are weighted 1 / (number kept), so groups that kept little noise
  count more;
- wiener: groups are matched on a first estimate (the pilot); the noisy
  coefficients c are shrunk by the empirical Wiener factor
  w = q^2 / (q^2 + sigma^2), q the pilot's coefficient, and weighted
  1 / sum(w^2), the inverse of the noise energy they let through.

Every filtered patch is added back to its place with its group's weight and a
Kaiser window (BM3D's, beta = 2: border pixels of a patch count less, which
softens the seams between groups); the estimate is the weighted sum divided
by the summed weights.

Where the time goes, and how it is kept down: every patch of the image is
transformed by B once, by one matrix product (BLAS), not once per group it
joins; matching compares those coefficient vectors (B is orthonormal, so
their distance is the pixels' distance), and as B puts the patch mean and
the image's dominant structures first, a poor candidate's partial distance
passes the worst kept match after a few coefficients; the filtered patches
are summed per position as coefficient vectors and turned back into pixels
by one more product.  The image is processed in horizontal bands of
reference rows so that a band's coefficient images and sums stay within a
fixed memory budget.  Within a band, work is split over threads by reference
rows (row i goes to thread i mod T); each thread accumulates into its own
arrays, summed at the end, so no two threads ever write the same memory.
"""
import numba
import numpy as np
from numba import njit, prange

from .patches import patch_rows_into

_BAND_BYTES = 1 << 28    # coefficient images and accumulators of one band stay below this
_BLOCK = 16              # distance checked against the worst kept match every _BLOCK coefficients


def reference_grid(length, patch, step):
    """Top-left positions 0, step, 2*step, ... of reference patches, always ending at the last one."""
    last = length - patch
    grid = list(range(0, last + 1, step))
    if grid[-1] != last:
        grid.append(last)
    return np.array(grid, dtype=np.int64)


def patch_coefficients(image, basis, first_row, stop_row):
    """Basis coefficients of the patches whose top edge lies in rows [first_row, stop_row):
    an array (stop_row - first_row, W - p + 1, p*p), one coefficient vector per patch position."""
    n = basis.shape[0]
    patch = int(round(np.sqrt(n)))
    patches = np.empty(((stop_row - first_row) * (image.shape[1] - patch + 1), n))
    patch_rows_into(image, patch, first_row, patches)
    return (patches @ basis).reshape(stop_row - first_row, -1, n)


@njit(cache=True)
def _match(features, top, left, half, bound, rows, cols, dists):
    """The most similar patches to the one at (top, left): fills rows/cols, returns how many (>= 1).

    features[r, c] describes the patch at (r, c) (its pixels, or its coefficients
    in an orthonormal basis: the same distances); similarity is the squared
    distance, at most ``bound``.  The reference patch always leads its own group
    (so every reference patch is filtered, even among exact copies); the other
    candidates are kept sorted by distance, and a candidate's distance stops
    being summed as soon as it exceeds the current worst kept one.
    """
    capacity = rows.shape[0]
    n_rows, n_cols, length = features.shape
    reference = features[top, left]
    rows[0], cols[0], dists[0] = top, left, 0.0
    count = 1
    if capacity == 1:
        return count
    for r in range(max(0, top - half), min(n_rows - 1, top + half) + 1):
        for c in range(max(0, left - half), min(n_cols - 1, left + half) + 1):
            if r == top and c == left:
                continue
            worst = bound if count < capacity else min(bound, dists[count - 1])
            candidate = features[r, c]
            d = 0.0
            for first in range(0, length, _BLOCK):
                for j in range(first, min(first + _BLOCK, length)):
                    diff = reference[j] - candidate[j]
                    d += diff * diff
                if d > worst:
                    break
            if d > worst or (count == capacity and d == worst):
                continue
            slot = min(count, capacity - 1)           # insertion sort from the end
            while slot > 0 and dists[slot - 1] > d:
                dists[slot], rows[slot], cols[slot] = dists[slot - 1], rows[slot - 1], cols[slot - 1]
                slot -= 1
            dists[slot], rows[slot], cols[slot] = d, r, c
            count = min(count + 1, capacity)
    return count


@njit(cache=True)
def _haar(x, m, tmp):
    """In place, x[:m] <- H_m @ x[:m], the orthonormal Haar transform along the group (m a power
    of 2): pairwise sums and differences over 1/sqrt(2), repeated on the sums; O(m) per column."""
    scale = 1.0 / np.sqrt(2.0)
    length = m
    while length > 1:
        pairs = length // 2
        for i in range(pairs):
            for j in range(x.shape[1]):
                a, b = x[2 * i, j], x[2 * i + 1, j]
                tmp[i, j] = (a + b) * scale
                tmp[pairs + i, j] = (a - b) * scale
        for i in range(length):
            for j in range(x.shape[1]):
                x[i, j] = tmp[i, j]
        length = pairs


@njit(cache=True)
def _unhaar(x, m, tmp):
    """In place, x[:m] <- H_m^T @ x[:m], the inverse of ``_haar``."""
    scale = 1.0 / np.sqrt(2.0)
    length = 2
    while length <= m:
        pairs = length // 2
        for i in range(pairs):
            for j in range(x.shape[1]):
                a, d = x[i, j], x[pairs + i, j]
                tmp[2 * i, j] = (a + d) * scale
                tmp[2 * i + 1, j] = (a - d) * scale
        for i in range(length):
            for j in range(x.shape[1]):
                x[i, j] = tmp[i, j]
        length *= 2


@njit(cache=True)
def _gather(coefs, rows, cols, m, out):
    """out[:m] = the coefficient vectors of the group's patches."""
    for i in range(m):
        out[i] = coefs[rows[i], cols[i]]


@njit(parallel=True, cache=True)
def _collaborate(coefs, pilot, ref_rows, ref_cols, group_size, sigma, threshold, half, bound, wiener, acc, weights):
    """Filter the group of every reference patch of one band.

    coefs, pilot : (rows, cols, n) basis coefficients of the band's patches, noisy and
    first estimate (pilot is only read by the Wiener pass, which matches on it).
    Thread t takes reference rows t, t + T, ... and adds each filtered patch's
    weighted coefficient vector to acc[t, row, col] and its weight to weights[t, row, col].
    """
    n = coefs.shape[2]
    n_threads = acc.shape[0]
    match_on = pilot if wiener else coefs     # the Wiener pass groups patches by the first estimate
    noise = sigma * sigma
    cut = threshold * sigma
    for t in prange(n_threads):
        rows = np.empty(group_size, np.int64)
        cols = np.empty(group_size, np.int64)
        dists = np.empty(group_size)
        spectrum = np.empty((group_size, n))
        guide = np.empty((group_size, n))
        tmp = np.empty((group_size, n))
        for ri in range(t, ref_rows.shape[0], n_threads):
            top = ref_rows[ri]
            for left in ref_cols:
                m = _match(match_on, top, left, half, bound, rows, cols, dists)
                while m & (m - 1):                # keep the best 2^k: the Haar transform's sizes
                    m -= 1
                _gather(coefs, rows, cols, m, spectrum)
                _haar(spectrum, m, tmp)
                energy = 0.0
                if wiener:
                    _gather(pilot, rows, cols, m, guide)
                    _haar(guide, m, tmp)
                    for i in range(m):
                        for j in range(n):
                            q2 = guide[i, j] * guide[i, j]
                            w = q2 / (q2 + noise)
                            spectrum[i, j] *= w
                            energy += w * w
                else:
                    for i in range(m):
                        for j in range(n):
                            if abs(spectrum[i, j]) < cut:
                                spectrum[i, j] = 0.0
                            else:
                                energy += 1.0
                weight = 1.0 / max(energy, 1e-12 if wiener else 1.0)
                _unhaar(spectrum, m, tmp)
                for i in range(m):
                    r, c = rows[i], cols[i]
                    for j in range(n):
                        acc[t, r, c, j] += weight * spectrum[i, j]
                    weights[t, r, c] += weight


def kaiser_window(patch, beta):
    """The p*p aggregation window (outer product of 1-D Kaiser windows), flattened like a patch."""
    side = np.kaiser(patch, beta)
    return np.outer(side, side).ravel()


@njit(cache=True)
def _aggregate(num, den, pixels, weights, window, first_row, patch):
    """num += sum of R^T (window * patch), den += sum of R^T (window * weight), over the
    patches of grid rows first_row, first_row + 1, ... (one per row of ``pixels``)."""
    n_cols = num.shape[1] - patch + 1
    for q in range(pixels.shape[0]):
        weight = weights[q]
        if weight == 0.0:                                 # a patch no group took
            continue
        top, left = first_row + q // n_cols, q % n_cols
        for dy in range(patch):
            for dx in range(patch):
                k = dy * patch + dx
                num[top + dy, left + dx] += window[k] * pixels[q, k]
                den[top + dy, left + dx] += window[k] * weight


def collaborative_pass(noisy, pilot, basis, sigma, wiener, threshold=2.7, group_size=16, window=25, step=3,
                       limit=None, kaiser_beta=2.0):
    """One hard-threshold (wiener=False) or Wiener (wiener=True, guided by ``pilot``) pass.

    noisy, pilot : float64 images (pilot is ignored by the hard pass).
    basis : (p*p, p*p) orthonormal patch basis, one basis vector per column.
    limit : largest mean squared difference per pixel for a patch to join a group.
    kaiser_beta : shape of the aggregation window (0: flat).
    """
    n = basis.shape[0]
    patch = int(round(np.sqrt(n)))
    noisy = np.ascontiguousarray(noisy, dtype=np.float64)
    pilot = noisy if pilot is None else np.ascontiguousarray(pilot, dtype=np.float64)
    basis = np.ascontiguousarray(basis, dtype=np.float64)
    basis_t = np.ascontiguousarray(basis.T)
    n_threads = numba.get_num_threads()
    half = int(window // 2)
    bound = float(np.inf if limit is None else limit * n)        # limit is per pixel; compare sums
    aggregation = kaiser_window(patch, kaiser_beta)
    ref_rows = reference_grid(noisy.shape[0], patch, step)
    ref_cols = reference_grid(noisy.shape[1], patch, step)
    grid_rows, grid_cols = noisy.shape[0] - patch + 1, noisy.shape[1] - patch + 1
    row_bytes = 8 * grid_cols * ((3 + n_threads) * n + n_threads)
    band = max(step, _BAND_BYTES // row_bytes - 2 * half)       # pixel rows of reference patches per band
    rows = min(grid_rows, band + 2 * half)                      # most grid rows a band's groups reach
    # Buffers reused by every band (fresh pages cost more than the work on them).
    patches = np.empty((rows * grid_cols, n))
    coefs = np.empty((rows * grid_cols, n))
    guide = np.empty((rows * grid_cols, n)) if wiener else coefs
    acc = np.empty((n_threads, rows * grid_cols, n))
    weights = np.empty((n_threads, rows * grid_cols))
    num, den = np.zeros_like(noisy), np.zeros_like(noisy)
    for start in range(0, grid_rows, band):
        refs = ref_rows[(ref_rows >= start) & (ref_rows < start + band)]
        if refs.size == 0:
            continue
        lo, hi = max(0, refs[0] - half), min(grid_rows, refs[-1] + half + 1)
        size = (hi - lo) * grid_cols
        band_coefs, band_guide = coefs[:size], guide[:size]
        for image, out in ((noisy, band_coefs), (pilot, band_guide))[:1 + bool(wiener)]:
            patch_rows_into(image, patch, lo, patches[:size])
            np.matmul(patches[:size], basis, out=out)
        band_acc, band_weights = acc[:, :size], weights[:, :size]
        band_acc.fill(0.0)
        band_weights.fill(0.0)
        shape = (hi - lo, grid_cols, n)
        _collaborate(band_coefs.reshape(shape), band_guide.reshape(shape), refs - lo, ref_cols, int(group_size),
                     float(sigma), float(threshold), half, bound, bool(wiener), band_acc.reshape((n_threads,) + shape),
                     band_weights.reshape((n_threads,) + shape[:2]))
        for t in range(1, n_threads):
            band_acc[0] += band_acc[t]
            band_weights[0] += band_weights[t]
        np.matmul(band_acc[0], basis_t, out=patches[:size])
        _aggregate(num, den, patches[:size], band_weights[0], aggregation, lo, patch)
    return num / den
