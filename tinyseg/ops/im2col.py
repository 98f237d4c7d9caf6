"""im2col / col2im: turn a convolution into one matrix product.

For an input (N, C, H, W) zero-padded by p on every side, a kh x kw kernel
and stride s, the output has Ho = (H + 2p - kh) // s + 1 rows and Wo columns.
``im2col`` gathers, for every output position of every image, the C*kh*kw
input values under the kernel:

    cols[(c, i, j), n, (oh, ow)] = x[n, c, oh*s + i - p, ow*s + j - p]   (0 in the padding)

With the images side by side in each row, a convolution with weights W of
shape (C_out, C*kh*kw) is ONE matrix product for the whole batch,
Y = W @ cols.reshape(C*kh*kw, N*Ho*Wo), as large as BLAS likes it. ``col2im``
is the adjoint: it adds every column entry back onto the pixel it was read
from (overlapping windows sum; entries read from the padding are dropped).

The loops are Numba kernels in ``tinyseg/ops/cpu/im2col.py`` (both CPU cores,
no padded copy of the input); the GPU has its own in ``cuda/conv.cu``.
"""
from __future__ import annotations

import numpy as np

from .cpu import im2col as kernels


def output_size(size, kernel, stride, padding=0):
    """Output length of a sliding window (floor mode: a partial last window is dropped)."""
    return (size + 2 * padding - kernel) // stride + 1


def im2col(x, kh, kw, stride, padding, out_h, out_w):
    """(N, C, H, W) -> cols (C*kh*kw, N, Ho*Wo)."""
    n, c = x.shape[:2]
    cols = np.empty((c * kh * kw, n, out_h * out_w), dtype=x.dtype)
    kernels.im2col(np.ascontiguousarray(x), cols, kh, kw, stride, padding, out_h, out_w)
    return cols


def col2im(cols, image_shape, kh, kw, stride, padding, out_h, out_w):
    """Adjoint of ``im2col``: cols (C*kh*kw, N, Ho*Wo) -> (N, C, H, W), overlaps summed."""
    image = np.empty(image_shape, dtype=cols.dtype)
    kernels.col2im(np.ascontiguousarray(cols), image, kh, kw, stride, padding, out_h, out_w)
    return image
