"""Batch normalisation on the GPU (cuda/batchnorm.cu). Maps arrive as (N, C, P), P = H*W,
C-contiguous; per-channel arrays (C,) in the map's dtype.

Launches: the per-channel reductions (training statistics, and the two sums backward
needs) run grid C x block 256, one block per channel reducing through shared memory;
the elementwise passes run grid ceil(size / 256) x block 256.
Formulas and the running-statistics rule are those of ``tinyseg/ops/norm.py``.
"""
from __future__ import annotations

from numpy import float64, int32, int64

from . import empty, kernel, launch_per_element

REDUCE_THREADS = 256   # BN_THREADS in cuda/batchnorm.cu


def batch_norm_stats(x, eps):
    """x (N, C, P) -> the batch mean, biased variance and 1 / sqrt(var + eps), each (C,)."""
    n, c, plane = x.shape
    mean, var, inv_std = (empty(x, (c,)) for _ in range(3))
    kernel("batchnorm.cu", "batch_norm_stats", x.dtype)(
        (c,), (REDUCE_THREADS,), (x, mean, var, inv_std, int32(n), int32(c), int64(plane), float64(eps)))
    return mean, var, inv_std


def batch_norm_apply(x, mean, inv_std, weight, bias):
    """y = (x - mean) * inv_std * weight + bias, per channel."""
    n, c, plane = x.shape
    y = empty(x, x.shape)
    launch_per_element(kernel("batchnorm.cu", "batch_norm_apply", x.dtype), x.size, x, mean, inv_std,
                       weight, bias, y, int64(x.size), int32(c), int64(plane))
    return y


def batch_norm_backward_sums(gy, x, mean, inv_std):
    """Per channel: sum(gy) and sum(gy * x_hat), x_hat = (x - mean) * inv_std."""
    n, c, plane = gy.shape
    sum_gy, sum_gy_xhat = empty(gy, (c,)), empty(gy, (c,))
    kernel("batchnorm.cu", "batch_norm_backward_sums", gy.dtype)(
        (c,), (REDUCE_THREADS,), (gy, x, mean, inv_std, sum_gy, sum_gy_xhat, int32(n), int32(c), int64(plane)))
    return sum_gy, sum_gy_xhat


def batch_norm_backward_input(gy, x, mean, inv_std, scale, sum_gy, sum_gy_xhat, training):
    """dx = scale * (gy - (sum(gy) + x_hat * sum(gy * x_hat)) / (N P)) in training, scale * gy
    in evaluation; scale = weight * inv_std per channel."""
    n, c, plane = gy.shape
    gx = empty(gy, gy.shape)
    launch_per_element(kernel("batchnorm.cu", "batch_norm_backward_input", gy.dtype), gy.size, gy, x, mean,
                       inv_std, scale, sum_gy, sum_gy_xhat, gx, int64(gy.size), int32(c), int64(plane),
                       float64(1.0 / (n * plane)), int32(training))
    return gx
