"""Overlapping square patches: extraction and putting them back.

A ``p x p`` patch whose top-left pixel is (i, j) is the row vector
``image[i:i+p, j:j+p].ravel()``; the full grid has (H-p+1) x (W-p+1) of them,
ordered row by row.  Patches are stored one per row, shape (n_patches, p*p).

Putting back is the adjoint ``sum_ij R_ij^T patch_ij``: every patch is added to
the pixels it covers.  On the full grid the number of patches covering pixel
(y, x) is ``c_rows[y] * c_cols[x]`` with ``c = ones(H-p+1) * ones(p)``
(a 1-D convolution), so it never needs to be accumulated.
"""
import numpy as np
from numba import njit, prange
from numpy.lib.stride_tricks import sliding_window_view


def patch_grid(image, patch):
    """View of shape (H-p+1, W-p+1, p, p) over all overlapping patches (no copy)."""
    return sliding_window_view(image, (patch, patch))


def patch_rows(image, patch, first_row, stop_row):
    """Patches whose top edge lies in rows [first_row, stop_row), one per row."""
    return patch_grid(image, patch)[first_row:stop_row].reshape(-1, patch * patch)


@njit(parallel=True, cache=True)
def _centred_rows(image, patch, first_row, stop_row, out, means):
    n_cols = image.shape[1] - patch + 1
    for r in prange(stop_row - first_row):
        for c in range(n_cols):
            q = r * n_cols + c
            total = 0.0
            for dy in range(patch):
                for dx in range(patch):
                    v = image[first_row + r + dy, c + dx]
                    out[q, dy * patch + dx] = v
                    total += v
            mean = total / (patch * patch)
            means[q] = mean
            for i in range(patch * patch):
                out[q, i] -= mean


@njit(parallel=True, cache=True)
def patch_rows_into(image, patch, first_row, out):
    """out[q] = the q-th patch of the grid rows first_row, first_row + 1, ... (as many as ``out`` holds);
    grid rows are split over threads."""
    n_cols = image.shape[1] - patch + 1
    for r in prange(out.shape[0] // n_cols):
        for c in range(n_cols):
            q = r * n_cols + c
            for dy in range(patch):
                for dx in range(patch):
                    out[q, dy * patch + dx] = image[first_row + r + dy, c + dx]


def centred_patch_rows(image, patch, first_row, stop_row):
    """Like ``patch_rows`` but with every patch's mean removed: (patches, means)."""
    n = (stop_row - first_row) * (image.shape[1] - patch + 1)
    out, means = np.empty((n, patch * patch)), np.empty(n)
    _centred_rows(image, patch, first_row, stop_row, out, means)
    return out, means


def training_patches(image, patch, stride, max_count, rng):
    """Patches on a ``stride`` grid, at most ``max_count`` of them drawn at random (sorted order)."""
    grid = patch_grid(image, patch)[::stride, ::stride]
    n_rows, n_cols = grid.shape[:2]
    if max_count is None or n_rows * n_cols <= max_count:
        return grid.reshape(-1, patch * patch).astype(np.float64)
    pick = np.sort(rng.choice(n_rows * n_cols, max_count, replace=False))
    return grid[pick // n_cols, pick % n_cols].reshape(-1, patch * patch).astype(np.float64)


def cover_counts(shape, patch):
    """How many full-grid patches cover each pixel."""
    rows = np.convolve(np.ones(shape[0] - patch + 1), np.ones(patch))
    cols = np.convolve(np.ones(shape[1] - patch + 1), np.ones(patch))
    return np.outer(rows, cols)


@njit(cache=True)
def add_patch_rows(acc, patches, first_row, patch):
    """acc += sum of R^T patch over the patches of grid rows first_row, first_row+1, ..."""
    n_cols = acc.shape[1] - patch + 1
    for q in range(patches.shape[0]):
        top = first_row + q // n_cols
        left = q % n_cols
        for dy in range(patch):
            for dx in range(patch):
                acc[top + dy, left + dx] += patches[q, dy * patch + dx]
