"""Collaborative filtering of groups of similar patches.

The H-ReNet paper denoises groups G_k of similar patches (Sect. 3.1).  Here a
group is built for every reference patch on a grid of step ``step``: the
``group_size`` patches most similar to it (mean squared difference, at most
``limit``) inside a ``window`` x ``window`` neighbourhood, stacked as the rows
of an (m, p*p) matrix.  The group is transformed in 3-D, as in BM3D (Dabov et
al., 2007): every patch by an orthonormal patch basis B (the SVD basis of the
K-SVD dictionary, so the transform adapts to the image), then every
coefficient along the group by an orthonormal m-point DCT T_m:

    coefficients = T_m @ G @ B          G = T_m^T @ coefficients @ B^T

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

Every filtered patch is added back to its place with its group's weight; the
estimate is the weighted sum divided by the summed weights.  Work is split
over threads by reference rows (row i goes to thread i mod T); each thread
accumulates into its own pair of images, summed at the end, so no two threads
ever write the same memory.
"""
import numba
import numpy as np
from numba import njit, prange


def dct_matrices(size):
    """Orthonormal DCT-II matrices T_m (rows are frequencies) for m = 1..size, in one (size+1, size, size) array."""
    out = np.zeros((size + 1, size, size))
    for m in range(1, size + 1):
        k, i = np.meshgrid(np.arange(m), np.arange(m), indexing="ij")
        t = np.cos(np.pi * (2 * i + 1) * k / (2 * m)) * np.sqrt(2.0 / m)
        t[0] /= np.sqrt(2.0)
        out[m, :m, :m] = t
    return out


def reference_grid(length, patch, step):
    """Top-left positions 0, step, 2*step, ... of reference patches, always ending at the last one."""
    last = length - patch
    grid = list(range(0, last + 1, step))
    if grid[-1] != last:
        grid.append(last)
    return np.array(grid, dtype=np.int64)


@njit(cache=True)
def _match(image, top, left, patch, half, limit, rows, cols, dists):
    """The most similar patches to the one at (top, left): fills rows/cols, returns how many (>= 1).

    Candidates are kept sorted by distance; a candidate's distance stops
    being summed as soon as it exceeds the current worst kept one.
    """
    capacity = rows.shape[0]
    last_row, last_col = image.shape[0] - patch, image.shape[1] - patch
    bound = limit * patch * patch                     # limit is per pixel; compare sums
    count = 0
    for r in range(max(0, top - half), min(last_row, top + half) + 1):
        for c in range(max(0, left - half), min(last_col, left + half) + 1):
            worst = bound if count < capacity else min(bound, dists[count - 1])
            d = 0.0
            for dy in range(patch):
                for dx in range(patch):
                    diff = image[top + dy, left + dx] - image[r + dy, c + dx]
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
def _product(a, b, rows, inner, out):
    """out[:rows] = a[:rows, :inner] @ b[:inner], row by row over b, so that the
    innermost loop is a contiguous, vectorisable a*x + y."""
    for i in range(rows):
        for j in range(b.shape[1]):
            out[i, j] = 0.0
        for l in range(inner):
            f = a[i, l]
            for j in range(b.shape[1]):
                out[i, j] += f * b[l, j]


@njit(cache=True)
def _sandwich(left, group, right, m, out, tmp):
    """out[:m] = left[:m, :m] @ group[:m] @ right.

    The forward 3-D transform is left = T_m, right = B; its inverse left = T_m^T,
    right = B^T (both passed contiguous).
    """
    _product(group, right, m, right.shape[0], tmp)
    _product(left, tmp, m, m, out)


@njit(cache=True)
def _gather(image, rows, cols, m, patch, out):
    for i in range(m):
        for dy in range(patch):
            for dx in range(patch):
                out[i, dy * patch + dx] = image[rows[i] + dy, cols[i] + dx]


@njit(parallel=True, cache=True)
def _collaborate(noisy, pilot, basis, basis_t, dcts, dcts_t, ref_rows, ref_cols, patch, sigma, threshold,
                 group_size, half, limit, wiener, num, den):
    """One pass over every reference patch; thread t accumulates into num[t], den[t]."""
    n = basis.shape[0]
    n_threads = num.shape[0]
    match_on = pilot if wiener else noisy    # the Wiener pass groups patches by the first estimate
    noise = sigma * sigma
    cut = threshold * sigma
    for t in prange(n_threads):
        rows = np.empty(group_size, np.int64)
        cols = np.empty(group_size, np.int64)
        dists = np.empty(group_size)
        group = np.empty((group_size, n))
        coefs = np.empty((group_size, n))
        guide = np.empty((group_size, n))
        tmp = np.empty((group_size, n))
        for ri in range(t, ref_rows.shape[0], n_threads):
            top = ref_rows[ri]
            for left in ref_cols:
                m = _match(match_on, top, left, patch, half, limit, rows, cols, dists)
                dct, dct_t = dcts[m], dcts_t[m]
                _gather(noisy, rows, cols, m, patch, group)
                _sandwich(dct, group, basis, m, coefs, tmp)
                energy = 0.0
                if wiener:
                    _gather(pilot, rows, cols, m, patch, group)
                    _sandwich(dct, group, basis, m, guide, tmp)
                    for i in range(m):
                        for j in range(n):
                            q2 = guide[i, j] * guide[i, j]
                            w = q2 / (q2 + noise)
                            coefs[i, j] *= w
                            energy += w * w
                else:
                    for i in range(m):
                        for j in range(n):
                            if abs(coefs[i, j]) < cut:
                                coefs[i, j] = 0.0
                            else:
                                energy += 1.0
                weight = 1.0 / max(energy, 1e-12 if wiener else 1.0)
                _sandwich(dct_t, coefs, basis_t, m, group, tmp)
                for i in range(m):
                    r, c = rows[i], cols[i]
                    for dy in range(patch):
                        for dx in range(patch):
                            num[t, r + dy, c + dx] += weight * group[i, dy * patch + dx]
                            den[t, r + dy, c + dx] += weight


def collaborative_pass(noisy, pilot, basis, sigma, wiener, threshold=2.7, group_size=16, window=25, step=3,
                       limit=None):
    """One hard-threshold (wiener=False) or Wiener (wiener=True, guided by ``pilot``) pass.

    noisy, pilot : float64 images (pilot is ignored by the hard pass).
    basis : (p*p, p*p) orthonormal patch basis, one basis vector per column.
    limit : largest mean squared difference per pixel for a patch to join a group.
    """
    n = basis.shape[0]
    patch = int(round(np.sqrt(n)))
    noisy = np.ascontiguousarray(noisy, dtype=np.float64)
    pilot = noisy if pilot is None else np.ascontiguousarray(pilot, dtype=np.float64)
    n_threads = numba.get_num_threads()
    num = np.zeros((n_threads,) + noisy.shape)
    den = np.zeros((n_threads,) + noisy.shape)
    basis = np.ascontiguousarray(basis, dtype=np.float64)
    dcts = dct_matrices(group_size)
    _collaborate(noisy, pilot, basis, np.ascontiguousarray(basis.T), dcts,
                 np.ascontiguousarray(dcts.transpose(0, 2, 1)),
                 reference_grid(noisy.shape[0], patch, step), reference_grid(noisy.shape[1], patch, step), patch,
                 float(sigma), float(threshold), int(group_size), int(window // 2),
                 float(np.inf if limit is None else limit), bool(wiener), num, den)
    return num.sum(axis=0) / den.sum(axis=0)
