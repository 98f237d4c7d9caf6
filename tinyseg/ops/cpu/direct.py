"""Direct 3x3 convolution on the CPU, for convolutions with few channels: no column matrix.

A convolution with a handful of channels on a full-resolution map does little
arithmetic per value moved, so building its im2col columns (nine times the input,
written to memory and read back) costs more than the products themselves. These
kernels read the rows of a zero-padded copy of the input in place instead:

    y[n, co, o, q] = bias[co] + sum over (c, i, j) of w[co, c, i, j] * xp[n, c, o + i, q + j]

with xp the input padded by p on every side. For one output row and one input channel,
the nine taps are one expression in the innermost loop, which runs along the row
(contiguous in xp and y): LLVM vectorises it, keeps the weights in registers and reads
each input value from L1. ``fastmath={"contract"}`` lets it fuse the multiply-adds, and
the weight gradient's row sums also get ``"reassoc"`` (the order of a sum); no flag that
changes NaN or Inf is set. The padded copies go into reused workspace buffers.

Stride 1, 3x3 kernels (every 3x3 convolution of H-ReNet). The input gradient is then the
same kernel run on dZ, padded by 2 - p, with the weights flipped and transposed:

    dx[n, c, y, x] = sum over (co, i, j) of w[co, c, 2 - i, 2 - j] * dZp[n, co, y + i, x + j],

and the weight gradient is nine dot products per output-gradient row and input channel,
summed over rows: dW[co, c, i, j] = sum over (n, o, q) of dZ[n, co, o, q] * xp[n, c, o + i, q + j].
"""
from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from . import workspace

CONTRACT = {"contract"}
FAST = {"contract", "reassoc"}


@njit(inline="always")
def nine(w):
    """The nine weights of a 3x3 kernel as a tuple, so that they live in registers."""
    return (w[0, 0], w[0, 1], w[0, 2], w[1, 0], w[1, 1], w[1, 2], w[2, 0], w[2, 1], w[2, 2])


@njit(inline="always", fastmath=CONTRACT)
def taps(k, x0, x1, x2, q):
    """The 3x3 window sum at output column q, from the three input rows under it: three
    independent row sums, so that the multiply-adds of one window are not one long chain."""
    return ((k[0] * x0[q] + k[1] * x0[q + 1] + k[2] * x0[q + 2])
            + (k[3] * x1[q] + k[4] * x1[q + 1] + k[5] * x1[q + 2])
            + (k[6] * x2[q] + k[7] * x2[q + 1] + k[8] * x2[q + 2]))


@njit(parallel=True, cache=True)
def pad_kernel(x, p, xp):
    # xp (N, C, H+2p, W+2p) = x with a border of p zeros. Threads: prange over the N*C planes.
    n, c, h, w = x.shape
    for r in prange(n * c):
        b, ch = r // c, r % c
        plane = xp[b, ch]
        plane[:p] = 0
        plane[p + h:] = 0
        plane[p:p + h, :p] = 0
        plane[p:p + h, p + w:] = 0
        plane[p:p + h, p:p + w] = x[b, ch]


@njit(parallel=True, cache=True, fastmath=CONTRACT)
def conv3x3_kernel(xp, w, bias, relu, y):
    # y (N, C_out, Ho, Wo) = w (C_out, C_in, 3, 3) cross-correlated with the padded input
    # xp (N, C_in, Ho+2, Wo+2), plus bias (empty: none), then ReLU if asked.
    # Threads: prange over the N*Ho output rows; a thread owns row o of every output plane
    # of its image. It adds to the row, two input channels per pass, the window sums read
    # from three rows of each: eighteen multiply-adds in six independent short chains per
    # output value, and one load and one store of the output row per two channels.
    n, c_in = xp.shape[:2]
    c_out, out_h, out_w = y.shape[1:]
    has_bias = bias.size > 0
    for r in prange(n * out_h):
        b, o = r // out_h, r % out_h
        for co in range(c_out):
            y[b, co, o, :] = bias[co] if has_bias else 0
        for c in range(0, c_in - 1, 2):
            a0 = xp[b, c, o]
            a1 = xp[b, c, o + 1]
            a2 = xp[b, c, o + 2]
            b0 = xp[b, c + 1, o]
            b1 = xp[b, c + 1, o + 1]
            b2 = xp[b, c + 1, o + 2]
            for co in range(c_out):
                ka = nine(w[co, c])
                kb = nine(w[co, c + 1])
                d = y[b, co, o]
                for q in range(out_w):
                    d[q] += taps(ka, a0, a1, a2, q) + taps(kb, b0, b1, b2, q)
        if c_in % 2 == 1:
            c = c_in - 1
            a0 = xp[b, c, o]
            a1 = xp[b, c, o + 1]
            a2 = xp[b, c, o + 2]
            for co in range(c_out):
                ka = nine(w[co, c])
                d = y[b, co, o]
                for q in range(out_w):
                    d[q] += taps(ka, a0, a1, a2, q)
        if relu:
            for co in range(c_out):
                d = y[b, co, o]
                for q in range(out_w):
                    if d[q] <= 0:          # NaN passes through, as it must
                        d[q] = 0


@njit(parallel=True, cache=True, fastmath=FAST)
def weight_grad_kernel(xp, gz, parts):
    # parts (P, C_out, C_in, 3, 3), float64: part t holds dW summed over its share of the
    # N*Ho output rows; the caller adds the parts. Threads: prange over the P parts, each a
    # contiguous run of rows, so no two threads write the same partial sum. Per row, output
    # channel and input channel, one pass along the row accumulates the nine dot products
    # of the gradient row with the shifted input rows.
    c_in = xp.shape[1]
    out_h, out_w = gz.shape[2], gz.shape[3]
    n_parts, c_out = parts.shape[:2]
    rows = gz.shape[0] * out_h
    for t in prange(n_parts):
        part = parts[t]
        part[:] = 0
        for r in range(t * rows // n_parts, (t + 1) * rows // n_parts):
            b, o = r // out_h, r % out_h
            for co in range(c_out):
                g = gz[b, co, o]
                for c in range(c_in):
                    x0, x1, x2 = xp[b, c, o], xp[b, c, o + 1], xp[b, c, o + 2]
                    zero = g.dtype.type(0)
                    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = s8 = zero
                    for q in range(out_w):
                        v = g[q]
                        s0 += v * x0[q]
                        s1 += v * x0[q + 1]
                        s2 += v * x0[q + 2]
                        s3 += v * x1[q]
                        s4 += v * x1[q + 1]
                        s5 += v * x1[q + 2]
                        s6 += v * x2[q]
                        s7 += v * x2[q + 1]
                        s8 += v * x2[q + 2]
                    k = part[co, c]
                    k[0, 0] += s0
                    k[0, 1] += s1
                    k[0, 2] += s2
                    k[1, 0] += s3
                    k[1, 1] += s4
                    k[1, 2] += s5
                    k[2, 0] += s6
                    k[2, 1] += s7
                    k[2, 2] += s8


def pad(x, p):
    """(N, C, H, W) -> (N, C, H+2p, W+2p) with a zero border, in the "pad" workspace buffer
    (valid until the next call)."""
    n, c, h, w = x.shape
    shape = (n, c, h + 2 * p, w + 2 * p)
    size = n * c * shape[2] * shape[3]
    xp = workspace.get("pad", size * x.itemsize, x.dtype)[:size].reshape(shape)
    pad_kernel(np.ascontiguousarray(x), p, xp)
    return xp


def conv3x3(x, w, bias, padding, relu):
    """Stride-1 3x3 convolution of (N, C_in, H, W) with (C_out, C_in, 3, 3), plus bias, then ReLU."""
    xp = pad(x, padding)
    n, _, hp, wp = xp.shape
    y = np.empty((n, w.shape[0], hp - 2, wp - 2), dtype=x.dtype)
    bias = np.zeros(0, x.dtype) if bias is None else np.ascontiguousarray(bias, dtype=x.dtype)
    conv3x3_kernel(xp, np.ascontiguousarray(w, dtype=x.dtype), bias, relu, y)
    return y


def input_grad(gz, w, padding):
    """dx of a stride-1 3x3 convolution: dZ correlated with the flipped, transposed weights."""
    flipped = np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3), dtype=gz.dtype)
    return conv3x3(gz, flipped, None, 2 - padding, relu=False)


def weight_grad(x, gz, padding):
    """dW (C_out, C_in, 3, 3) of a stride-1 3x3 convolution, from its input and dZ."""
    rows = gz.shape[0] * gz.shape[2]
    n_parts = max(1, min(rows, 4 * numba.get_num_threads()))
    parts = np.empty((n_parts, gz.shape[1], x.shape[1], 3, 3), dtype=np.float64)
    weight_grad_kernel(pad(x, padding), np.ascontiguousarray(gz), parts)
    return parts.sum(axis=0).astype(x.dtype)

