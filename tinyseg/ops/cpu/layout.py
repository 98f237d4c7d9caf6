"""Moving a convolution's GEMM result between the channel-major layout of one GEMM for the
whole batch, (C, N, L), and the batch-major layout of feature maps, (N, C, L), with the
elementwise work that follows a convolution done on the way: adding the bias and the
ReLU going forward, the ReLU's mask and the bias gradient going back. Each is one pass
over memory where the NumPy form (copy, add, ReLU, sum) made three or four.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True)
def channels_to_batch(z, bias, relu, y):
    # y[n, c, :] = z[c, n, :] + bias[c], then max(., 0) when relu. An empty bias adds nothing.
    # Threads: prange over the N*C output rows; each reads one contiguous row of z.
    channels, n, length = z.shape
    has_bias = bias.size > 0
    for r in prange(n * channels):
        b, c = r // channels, r % channels
        src, dst = z[c, b], y[b, c]
        shift = bias[c] if has_bias else z.dtype.type(0)
        for q in range(length):
            v = src[q] + shift
            dst[q] = 0 if (relu and v <= 0) else v      # NaN passes through, as it must


@njit(parallel=True, cache=True)
def batch_to_channels(gy, y, relu, g, channel_sums):
    # g[c, n, :] = gy[n, c, :] * (y[n, c, :] > 0) when relu (ReLU's backward: the gradient
    # passes where the output is positive), else gy[n, c, :]; and channel_sums[c] = sum of
    # g[c] (the bias gradient: the bias was added at every position of every image),
    # accumulated in float64. Threads: prange over channels, each owns g[c] and its sum.
    n, channels, length = gy.shape
    for c in prange(channels):
        total = 0.0
        for b in range(n):
            src, dst = gy[b, c], g[c, b]
            if relu:
                mask = y[b, c]
                for q in range(length):
                    v = src[q] if mask[q] > 0 else src.dtype.type(0)
                    dst[q] = v
                    total += v
            else:
                for q in range(length):
                    dst[q] = src[q]
                    total += src[q]
        channel_sums[c] = total


def to_batch_major(z, bias=None, relu=False):
    """(C, N, L) GEMM output -> (N, C, L) feature map, plus bias, then ReLU if asked."""
    channels, n, length = z.shape
    y = np.empty((n, channels, length), dtype=z.dtype)
    bias = np.zeros(0, z.dtype) if bias is None else np.ascontiguousarray(bias, dtype=z.dtype)
    channels_to_batch(np.ascontiguousarray(z), bias, relu, y)
    return y


def to_channel_major(gy, y=None):
    """(N, C, L) output gradient -> ((C, N, L) gradient of the pre-activation, its per-channel
    sums). With ``y`` (the ReLU's output), the gradient is masked where y <= 0."""
    n, channels, length = gy.shape
    g = np.empty((channels, n, length), dtype=gy.dtype)
    sums = np.empty(channels, dtype=np.float64)
    relu = y is not None
    batch_to_channels(np.ascontiguousarray(gy), np.ascontiguousarray(y) if relu else gy, relu, g, sums)
    return g, sums.astype(gy.dtype)
