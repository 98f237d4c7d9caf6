"""im2col / col2im on the CPU: turn a convolution into one matrix product.

With the images side by side in each row of the column matrix, a convolution with
weights W of shape (C_out, C*kh*kw) is ONE matrix product for the whole batch,
Y = W @ cols.reshape(C*kh*kw, N*Ho*Wo), as large as BLAS likes it. ``col2im`` is
the adjoint: it adds every column entry back onto the pixel it was read from
(overlapping windows sum; entries read from the padding are dropped). The loops are
Numba kernels with the zero padding handled inside them.

Arrays are C-contiguous. ``x`` / ``image`` is the *unpadded* (N, C, H, W) map;
``cols`` is (C*kh*kw, N, Ho*Wo), rows in (c, i, j) order and, inside a row,
the images one after another, so that ``cols.reshape(C*kh*kw, N*Ho*Wo)`` is
the right-hand side of one GEMM for the whole batch:

    cols[(c, i, j), n, (oh, ow)] = x[n, c, oh*s + i - p, ow*s + j - p]   (0 outside x)

No padded copy of the input is ever made: im2col writes the zeros itself and
col2im drops the contributions that fall on the padding border.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from .launch import kernel


def im2col(x, kh, kw, stride, padding, out_h, out_w):
    """(N, C, H, W) -> cols (C*kh*kw, N, Ho*Wo)."""
    n, c = x.shape[:2]
    cols = np.empty((c * kh * kw, n, out_h * out_w), dtype=x.dtype)
    im2col_kernel(np.ascontiguousarray(x), cols, kh, kw, stride, padding, out_h, out_w)
    return cols


def col2im(cols, image_shape, kh, kw, stride, padding, out_h, out_w):
    """Adjoint of ``im2col``: cols (C*kh*kw, N, Ho*Wo) -> (N, C, H, W), overlaps summed."""
    image = np.empty(image_shape, dtype=cols.dtype)
    col2im_kernel(np.ascontiguousarray(cols), image, kh, kw, stride, padding, out_h, out_w)
    return image


@njit(cache=True)
def inside_range(offset, size, stride, padding, out_size):
    """The range [lo, hi) of output positions o whose input position o*s + offset - p
    lies in [0, size), i.e. not in the padding."""
    lo = min(out_size, max(0, (padding - offset + stride - 1) // stride))
    hi = min(out_size, max(lo, (size - 1 + padding - offset) // stride + 1))
    return lo, hi


@kernel()
def im2col_kernel(x, cols, kh, kw, stride, padding, out_h, out_w):
    # Threads: prange over the rows of the column matrix, one per (c, i, j) and image
    # (C*kh*kw * N rows), so even one image with one channel gives kh*kw independent rows
    # to share out. Seen as an Ho x Wo block, a row is a strided window of its input
    # plane, framed by zeros where the window hangs over the padding: one 2-D slice copy
    # for the inside and four fills for the frame. (Slices rather than element loops:
    # Numba then normalises indices once per slice, not once per element.)
    n, c, h, w = x.shape
    for r in prange(c * kh * kw * n):
        k, b = r // n, r % n
        ch, i, j = k // (kh * kw), k // kw % kh, k % kw
        top, bottom = inside_range(i, h, stride, padding, out_h)
        left, right = inside_range(j, w, stride, padding, out_w)
        out = cols[k, b].reshape(out_h, out_w)
        out[:top] = 0
        out[bottom:] = 0
        out[top:bottom, :left] = 0
        out[top:bottom, right:] = 0
        if top < bottom and left < right:
            y, x0 = top * stride + i - padding, left * stride + j - padding   # first pixel read
            out[top:bottom, left:right] = x[b, ch, y:y + (bottom - top - 1) * stride + 1:stride,
                                            x0:x0 + (right - left - 1) * stride + 1:stride]


@kernel()
def col2im_kernel(cols, image, kh, kw, stride, padding, out_h, out_w):
    # The adjoint: image[n, c, y, x] = sum of the column entries that were read from (y, x).
    # Threads: prange over the image rows of every plane (N * C * H rows). A thread owns its
    # row and *gathers* into it: the kernel rows i that read image row y are those with
    # y + p - i = oh*s for an output row oh, and for each of them it adds the kw stretches
    # of cols (one per kernel column j) onto the row. No two threads write the same pixel,
    # so there are no races and no atomics, and contributions that land on the padding
    # border are never added (the crop happens on the fly). Every pixel sums its
    # contributions in (i, j) order, starting from zero.
    n, c, h, w = image.shape
    for r in prange(n * c * h):
        b, ch, y = r // (c * h), r // h % c, r % h
        row = image[b, ch, y]
        row[:] = 0
        for i in range(kh):
            t = y + padding - i
            if t < 0 or t % stride != 0 or t // stride >= out_h:
                continue
            base = t // stride * out_w
            for j in range(kw):
                lo, hi = inside_range(j, w, stride, padding, out_w)
                if lo == hi:
                    continue
                first = lo * stride + j - padding
                src = cols[(ch * kh + i) * kw + j, b, base + lo:base + hi]
                dst = row[first:first + (hi - lo - 1) * stride + 1:stride]
                for q in range(hi - lo):
                    dst[q] += src[q]


# ---------------------------------------------------------------- one image, a band of output rows
#
# The convolution's GEMM path works on one image and a band of output rows at a time, so that
# its columns fit in a fixed workspace (``conv.COLUMN_BUDGET_BYTES``) that is reused from call
# to call: no column matrix as large as the batch, no fresh pages to fault in, and the GEMM
# writes straight into the image's (C_out, Ho*Wo) output, so no layout pass follows.
# ``cols`` is (C*kh*kw, rows*Wo): the output rows row0 .. row0+rows-1 of image b.


def im2col_band(x, b, row0, rows, kh, kw, stride, padding, out_h, out_w, out):
    """Columns of output rows [row0, row0 + rows) of image b, written into ``out``
    (a buffer of at least C*kh*kw*rows*Wo elements); returns them as (C*kh*kw, rows*Wo)."""
    cols = out[:x.shape[1] * kh * kw * rows * out_w].reshape(x.shape[1] * kh * kw, rows * out_w)
    im2col_band_kernel(x, b, row0, rows, kh, kw, stride, padding, out_h, out_w, cols)
    return cols


def col2im_band_add(cols, image, b, row0, rows, kh, kw, stride, padding, out_w):
    """Adjoint of ``im2col_band``: adds cols (C*kh*kw, rows*Wo) onto image b of ``image``."""
    col2im_band_kernel(cols, image, b, row0, rows, kh, kw, stride, padding, out_w)


@njit(nogil=True, cache=True)
def im2col_band_kernel(x, b, row0, rows, kh, kw, stride, padding, out_h, out_w, cols):
    # As im2col_kernel, for one image and the output rows row0 .. row0+rows-1 only.
    # Threads: none here. The convolution runs its bands side by side on tinyseg's pool
    # (cpu_runtime.run_parallel), each band with its own column buffer; nogil lets them.
    _, c, h, w = x.shape
    for k in range(c * kh * kw):
        ch, i, j = k // (kh * kw), k // kw % kh, k % kw
        top, bottom = inside_range(i, h, stride, padding, out_h)
        top, bottom = min(max(top, row0), row0 + rows), max(min(bottom, row0 + rows), row0)
        bottom = max(bottom, top)
        left, right = inside_range(j, w, stride, padding, out_w)
        out = cols[k].reshape(rows, out_w)
        out[:top - row0] = 0
        out[bottom - row0:] = 0
        out[top - row0:bottom - row0, :left] = 0
        out[top - row0:bottom - row0, right:] = 0
        if top < bottom and left < right:
            y, x0 = top * stride + i - padding, left * stride + j - padding   # first pixel read
            out[top - row0:bottom - row0, left:right] = x[b, ch, y:y + (bottom - top - 1) * stride + 1:stride,
                                                          x0:x0 + (right - left - 1) * stride + 1:stride]


@njit(nogil=True, cache=True)
def col2im_band_kernel(cols, image, b, row0, rows, kh, kw, stride, padding, out_w):
    # As col2im_kernel for one image and a band of output rows, but *adding* onto the image:
    # neighbouring bands read overlapping input rows, so each band adds its share.
    # Threads: none here; images run side by side on tinyseg's pool, the bands of one image
    # in one thread and in order (two of them may add onto the same input rows). Each
    # (channel, input row) pair gathers into its row.
    _, c, h, w = image.shape
    y_first = max(0, row0 * stride - padding)
    y_last = min(h, (row0 + rows - 1) * stride - padding + kh)
    span = max(0, y_last - y_first)
    for r in range(c * span):
        ch, y = r // span, y_first + r % span
        row = image[b, ch, y]
        for i in range(kh):
            t = y + padding - i
            if t < 0 or t % stride != 0:
                continue
            oh = t // stride - row0
            if oh < 0 or oh >= rows:
                continue
            base = oh * out_w
            for j in range(kw):
                lo, hi = inside_range(j, w, stride, padding, out_w)
                if lo == hi:
                    continue
                first = lo * stride + j - padding
                src = cols[(ch * kh + i) * kw + j, base + lo:base + hi]
                dst = row[first:first + (hi - lo - 1) * stride + 1:stride]
                for q in range(hi - lo):
                    dst[q] += src[q]
