"""Batch normalisation kernels: one reduction and one elementwise pass each way.

The spatial axes arrive merged: x, y, gy and gx (N, C, P), P = H*W, all
C-contiguous, in float32 or float64. Per-channel arrays (C,) are float64, and
every sum is accumulated in float64, whatever the dtype of the map.

Work is split the same way in every kernel: into units of one block of at most
BLOCK pixels of one (image, channel) row, N * C * ceil(P / BLOCK) units in all,
numbered in memory order. Many channels give many units, and a large map with
few channels (1 x 8 x 128 x 160) still gives 40; the reductions write one
partial result per unit and combine them per channel afterwards, so no two
threads ever write the same value.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from .launch import kernel

BLOCK = 4096   # pixels per unit of work; a float64 block (32 KiB) stays in the L1/L2 cache


# The block sums below may be reordered (fastmath "reassoc"): LLVM then keeps several
# float64 accumulators in SIMD registers instead of adding one value at a time: a
# few interleaved partial sums, no less accurate than one, and several times faster
# (docs/03-convolution.md). Only these loops get the flag; everywhere else the order of operations is the
# written one.
@njit(cache=True, fastmath={"reassoc"})
def block_sum(v):
    total = 0.0
    for i in range(v.size):
        total += v[i]
    return total


@njit(cache=True, fastmath={"reassoc"})
def block_squared_deviation(v, centre):
    total = 0.0
    for i in range(v.size):
        d = v[i] - centre
        total += d * d
    return total


@njit(cache=True, fastmath={"reassoc"})
def block_sums_backward(gy, x, mean):
    sum_gy, sum_gy_xc = 0.0, 0.0
    for i in range(gy.size):
        sum_gy += gy[i]
        sum_gy_xc += gy[i] * (x[i] - mean)
    return sum_gy, sum_gy_xc


@njit(cache=True, inline="always")
def unit_span(u, c, blocks, p):
    """Unit u of the work split: (image k, channel ch, pixel start, pixel stop)."""
    row, b = u // blocks, u % blocks
    return row // c, row % c, b * BLOCK, min(p, (b + 1) * BLOCK)


@kernel()
def channel_stats(x, mean, var):
    # Threads: prange over the units; one thread then merges each channel's N * blocks
    # partial results (a few thousand values in all: microseconds, cheaper than
    # starting the threads a second time).
    # Each unit takes its block's mean m, then, with the block still in cache, the
    # sum of squared deviations M2 = sum (x - m)^2. Subtracting the block's own mean
    # before squaring avoids the cancellation of sum x^2 - n m^2, which loses all
    # digits of a float32 map with a mean of 1e4 and a standard deviation of 1.
    # The merge adds block after block (Chan, Golub and LeVeque): with n, mu, M2 so
    # far and a block of nb values, delta = m_b - mu,
    #   mu += delta * nb / (n + nb),  M2 += M2_b + delta^2 * n * nb / (n + nb).
    # mean = mu and the biased var = M2 / (N * P).
    n, c, p = x.shape
    blocks = (p + BLOCK - 1) // BLOCK
    block_mean, block_m2 = np.empty((c, n * blocks)), np.empty((c, n * blocks))
    for u in prange(n * c * blocks):
        k, ch, start, stop = unit_span(u, c, blocks, p)
        v = x[k, ch, start:stop]
        m = block_sum(v) / v.size
        block_mean[ch, k * blocks + u % blocks] = m
        block_m2[ch, k * blocks + u % blocks] = block_squared_deviation(v, m)
    for ch in range(c):
        count, mu, m2 = 0.0, 0.0, 0.0
        for j in range(n * blocks):
            nb = min(p, (j % blocks + 1) * BLOCK) - j % blocks * BLOCK
            delta = block_mean[ch, j] - mu
            total = count + nb
            mu += delta * nb / total
            m2 += block_m2[ch, j] + delta * delta * count * nb / total
            count = total
        mean[ch] = mu
        var[ch] = m2 / count


@kernel()
def normalize(x, mean, inv_std, weight, bias, y):
    # y = (x - mean) * inv_std * weight + bias, computed in float64 and rounded once
    # into y's dtype; weight * inv_std is formed once per unit. Threads: prange over
    # the units; each writes only its own block of y. x_hat is not stored: backward
    # recomputes it from x, which it reads in x_hat's place: one write of the whole
    # map fewer.
    n, c, p = x.shape
    blocks = (p + BLOCK - 1) // BLOCK
    for u in prange(n * c * blocks):
        k, ch, start, stop = unit_span(u, c, blocks, p)
        m, scale, shift = mean[ch], inv_std[ch] * weight[ch], bias[ch]
        xs, ys = x[k, ch, start:stop], y[k, ch, start:stop]
        for i in range(stop - start):
            ys[i] = (xs[i] - m) * scale + shift


@kernel()
def backward_sums(gy, x, mean, inv_std, sum_gy, sum_gy_xhat):
    # The two per-channel sums every gradient is made of: sum(gy) (= d bias) and
    # sum(gy * x_hat) (= d weight), with x_hat = (x - mean) * inv_std recomputed here;
    # the second is accumulated as sum(gy * (x - mean)) and scaled by inv_std once.
    # Threads: prange over the units, each writing its block's two partial sums; one
    # thread then adds up each channel's partials.
    n, c, p = gy.shape
    blocks = (p + BLOCK - 1) // BLOCK
    block_gy, block_gy_xc = np.empty((c, n * blocks)), np.empty((c, n * blocks))
    for u in prange(n * c * blocks):
        k, ch, start, stop = unit_span(u, c, blocks, p)
        j = k * blocks + u % blocks
        block_gy[ch, j], block_gy_xc[ch, j] = block_sums_backward(gy[k, ch, start:stop], x[k, ch, start:stop],
                                                                  mean[ch])
    for ch in range(c):
        total_gy, total_gy_xc = 0.0, 0.0
        for j in range(n * blocks):
            total_gy += block_gy[ch, j]
            total_gy_xc += block_gy_xc[ch, j]
        sum_gy[ch] = total_gy
        sum_gy_xhat[ch] = total_gy_xc * inv_std[ch]


@kernel()
def backward_input(gy, x, mean, inv_std, scale, mean_gy, mean_gy_xhat, gx):
    # dx = scale * (gy - mean_gy - x_hat * mean_gy_xhat), x_hat = (x - mean) * inv_std,
    # per channel scale = weight * inv_std. In training, mean_gy and mean_gy_xhat are
    # sum(gy) / (N P) and sum(gy * x_hat) / (N P): x_hat also depends on x through
    # the batch mean and variance. In evaluation the statistics are constants, both
    # are zero and dx = weight * inv_std * gy (x is then read for nothing: evaluation
    # backward is rare). Computed in float64, rounded once into gx. Threads: prange
    # over the units; each writes only its own block of gx.
    n, c, p = gy.shape
    blocks = (p + BLOCK - 1) // BLOCK
    for u in prange(n * c * blocks):
        k, ch, start, stop = unit_span(u, c, blocks, p)
        m, a, g = mean[ch], scale[ch], mean_gy[ch]
        h = inv_std[ch] * mean_gy_xhat[ch]       # x_hat * mean_gy_xhat = (x - m) * h
        gys, xs, gxs = gy[k, ch, start:stop], x[k, ch, start:stop], gx[k, ch, start:stop]
        for i in range(stop - start):
            gxs[i] = a * (gys[i] - g - (xs[i] - m) * h)
