"""The pointwise work around a convolution's products, each one pass over memory in the
(N, C, L) layout of feature maps: adding the bias and the fused ReLU going forward, the
ReLU's mask and the bias gradient going back.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from . import workspace
from .launch import kernel


@kernel()
def bias_relu_kernel(y, bias, relu):
    # y[n, c, :] += bias[c], then max(., 0) when relu, in place. An empty bias adds nothing.
    # Threads: prange over the N*C rows.
    n, channels, length = y.shape
    has_bias = bias.size > 0
    for r in prange(n * channels):
        row = y[r // channels, r % channels]
        shift = bias[r % channels] if has_bias else y.dtype.type(0)
        for q in range(length):
            v = row[q] + shift
            row[q] = 0 if (relu and v <= 0) else v      # NaN passes through, as it must


@njit(inline="always", fastmath={"reassoc"})
def masked_copy(src, mask, relu, dst):
    """dst = src where mask > 0 (everywhere without the ReLU); returns the sum of dst, in
    float64. Two loops, so that neither tests ``relu`` per element."""
    total = 0.0
    if relu:
        for q in range(src.size):
            v = src[q] if mask[q] > 0 else src.dtype.type(0)
            dst[q] = v
            total += v
    else:
        for q in range(src.size):
            dst[q] = src[q]
            total += src[q]
    return total


@kernel(fastmath={"reassoc"})
def mask_and_sum_kernel(gy, y, relu, gz, channel_sums):
    # gz = gy * (y > 0) when relu (the ReLU's backward: the gradient passes where the output
    # is positive), else gy; channel_sums[c] = sum of gz[:, c] (the bias gradient: the bias
    # was added at every position of every image), accumulated in float64.
    # Threads: prange over channels, each owns its planes of gz and its sum. "reassoc" lets
    # the sum be vectorised (it changes only the order of the additions).
    n, channels, length = gy.shape
    for c in prange(channels):
        total = 0.0
        for b in range(n):
            total += masked_copy(gy[b, c], y[b, c], relu, gz[b, c])
        channel_sums[c] = total


def bias_relu(y, bias=None, relu=False):
    """In place on y (N, C, L): plus bias, then ReLU if asked; returns y."""
    if bias is not None or relu:
        bias = np.zeros(0, y.dtype) if bias is None else np.ascontiguousarray(bias, dtype=y.dtype)
        bias_relu_kernel(y, bias, relu)
    return y


def mask_and_sum(gy, y=None):
    """(dZ, its per-channel sums) from dY (N, C, L): masked where y <= 0 with the ReLU's output y.
    dZ lives in the "dz" workspace buffer: it is valid until the next call."""
    gz = workspace.get("dz", gy.nbytes, gy.dtype)[:gy.size].reshape(gy.shape)
    sums = np.empty(gy.shape[1], dtype=np.float64)
    relu = y is not None
    mask_and_sum_kernel(np.ascontiguousarray(gy), np.ascontiguousarray(y) if relu else gy, relu, gz, sums)
    return gz, sums.astype(gy.dtype)


@kernel(fastmath={"reassoc"})
def mask_and_sum_padded_kernel(gy, y, relu, gzp, channel_sums):
    # As mask_and_sum_kernel, but dZ goes into gzp (N, C, Ho+2, Wo+2) with a border of zeros:
    # the layout in which the direct 3x3 kernels read it (padded input of the input
    # gradient, flat rows of the weight gradient). Threads: prange over channels.
    n, channels, out_h, out_w = gy.shape
    for c in prange(channels):
        total = 0.0
        for b in range(n):
            plane = gzp[b, c]
            plane[0] = 0
            plane[out_h + 1] = 0
            for o in range(out_h):
                dst = plane[o + 1]
                dst[0] = 0
                dst[out_w + 1] = 0
                total += masked_copy(gy[b, c, o], y[b, c, o], relu, dst[1:out_w + 1])
        channel_sums[c] = total


def mask_and_sum_padded(gy, y=None):
    """(dZ padded by one, its per-channel sums) from dY (N, C, Ho, Wo), masked where y <= 0 with
    the ReLU's output y. dZ lives in the "dz" workspace buffer: it is valid until the next call."""
    n, c, out_h, out_w = gy.shape
    shape = (n, c, out_h + 2, out_w + 2)
    size = n * c * shape[2] * shape[3]
    gzp = workspace.get("dz", size * gy.itemsize, gy.dtype)[:size].reshape(shape)
    sums = np.empty(c, dtype=np.float64)
    relu = y is not None
    mask_and_sum_padded_kernel(np.ascontiguousarray(gy), np.ascontiguousarray(y) if relu else gy, relu, gzp, sums)
    return gzp, sums.astype(gy.dtype)
