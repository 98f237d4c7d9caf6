"""Batch normalisation on the GPU (cuda/batchnorm.cu). Maps arrive as (N, C, P), P = H*W,
C-contiguous; per-channel arrays (C,) in the map's dtype.

Launches: each per-channel reduction (training statistics, and the two sums backward
needs) is a 2-D grid (C, parts) of blocks of 256 threads, block (c, b) reducing slice b of
channel c through shared memory into float64 partial results, then one thread per channel
(grid ceil(C / 256) x block 256) combining them in order. ``reduction_parts`` picks parts:
one block per channel when there are enough channels to fill the GPU, more when there
are few (the small preset's maps), each slice keeping every thread busy. The
elementwise passes run grid ceil(size / 256) x block 256.
Formulas and the running-statistics rule are those of ``tinyseg/ops/norm.py``.
"""
from __future__ import annotations

import functools

import numpy
from numpy import float64, int32, int64

from ...backend import get_array_module as _array_module
from . import THREADS, blocks, device_properties, empty, kernel, launch_per_element

REDUCE_THREADS = 256        # BN_THREADS in cuda/batchnorm.cu, the reduction kernels' launch bound
BLOCKS_PER_PROCESSOR = 4    # reduction blocks to aim for on each multiprocessor
VALUES_PER_THREAD = 8       # the least a slice gives each of its threads to add


def reduction_parts(channels, count, processors):
    """Blocks per channel for reducing ``count`` values per channel: enough for
    BLOCKS_PER_PROCESSOR blocks on every multiprocessor, each slice at least
    VALUES_PER_THREAD values per thread, at least one."""
    wanted = -(-BLOCKS_PER_PROCESSOR * processors // max(channels, 1))
    return max(1, min(wanted, count // (REDUCE_THREADS * VALUES_PER_THREAD)))


def split(channels, count, xp):
    """(parts, span): the slices of each channel's values, ``span`` values each, none empty."""
    parts = max(1, min(reduction_parts(channels, count, device_properties(xp)["multiProcessorCount"]), count))
    span = max(1, -(-count // parts))
    return max(1, -(-count // span)), span


@functools.lru_cache(maxsize=None)
def _reduction(name, dtype):
    """A reduction kernel, checked against the block size it is launched with: its launch
    bound is BN_THREADS, so a block of REDUCE_THREADS must fit under it (tests/gpu also
    checks that the two constants are equal)."""
    kern = kernel("batchnorm.cu", name, dtype)
    if kern.max_threads_per_block < REDUCE_THREADS:
        raise RuntimeError(f"{name}: launched with {REDUCE_THREADS} threads per block, but cuda/batchnorm.cu's "
                           f"launch bound (BN_THREADS) allows {kern.max_threads_per_block}")
    return kern


def batch_norm_stats(x, eps):
    """x (N, C, P) -> the batch mean, biased variance and 1 / sqrt(var + eps), each (C,)."""
    n, c, plane = x.shape
    parts, span = split(c, n * plane, _array_module(x))
    partial = empty(x, (2, c, parts), numpy.float64)
    mean, var, inv_std = (empty(x, (c,)) for _ in range(3))
    _reduction("batch_norm_stats_partial", x.dtype)(
        (c, parts), (REDUCE_THREADS,), (x, partial, int32(n), int32(c), int64(plane), int64(span)))
    kernel("batchnorm.cu", "batch_norm_stats_finish", x.dtype)(
        (blocks(c),), (THREADS,), (partial, mean, var, inv_std, int32(c), int32(parts), int64(n * plane),
                                   int64(span), float64(eps)))
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
    parts, span = split(c, n * plane, _array_module(gy))
    partial = empty(gy, (2, c, parts), numpy.float64)
    sum_gy, sum_gy_xhat = empty(gy, (c,)), empty(gy, (c,))
    _reduction("batch_norm_backward_partial", gy.dtype)(
        (c, parts), (REDUCE_THREADS,), (gy, x, mean, partial, int32(n), int32(c), int64(plane), int64(span)))
    kernel("batchnorm.cu", "batch_norm_backward_finish", gy.dtype)(
        (blocks(c),), (THREADS,), (partial, inv_std, sum_gy, sum_gy_xhat, int32(c), int32(parts)))
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
