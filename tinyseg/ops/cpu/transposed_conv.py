"""Direct transposed convolution on the CPU, for kernels with long rows.

H-ReNet's upsampling is one transposed convolution with a long kernel (64x64, stride 32)
on a few channels: every input pixel paints a 64-wide stretch of the kernel onto each of
the output rows under it. As a GEMM it builds C_out*kh*kw columns per input pixel and then
adds them up with col2im; directly, each kernel row is one contiguous multiply-add along an
output row, which LLVM vectorises. With x (N, C_in, H, W), w (C_in, C_out, kh, kw), stride
s and padding p, output row Y gets, from input row h with kernel row i = Y + p - h*s,

    y[n, co, Y, w*s - p + j] += x[n, ci, h, w] * w[ci, co, i, j]      (0 <= j < kw, inside y)

and the two gradients read the same pairs the other way round:
    dx[n, ci, h, w] = sum over (co, i, j) of dy[n, co, h*s - p + i, w*s - p + j] * w[ci, co, i, j]
    dw[ci, co, i, j] = sum over (n, h, w) of x[n, ci, h, w] * dy[n, co, h*s - p + i, w*s - p + j]
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from .direct import CONTRACT, FAST
from .launch import kernel


@njit(cache=True)
def kernel_span(start, size, k):
    """[lo, hi): the kernel offsets j with 0 <= start + j < size."""
    return max(0, -start), min(k, size - start)


@kernel(fastmath=CONTRACT)
def transpose_forward_kernel(x, w, bias, stride, padding, y):
    # Threads: prange over the N*C_out*Ho output rows; a thread owns its row, starts it at the
    # bias and adds the kernel rows of every input pixel whose stretch lands on it.
    n, c_in, h, wd = x.shape
    c_out, kh, kw = w.shape[1:]
    out_h, out_w = y.shape[2], y.shape[3]
    has_bias = bias.size > 0
    for r in prange(n * c_out * out_h):
        b, co, row = r // (c_out * out_h), r // out_h % c_out, r % out_h
        dst = y[b, co, row]
        dst[:] = bias[co] if has_bias else 0
        for hi in range(h):
            i = row + padding - hi * stride
            if i < 0 or i >= kh:
                continue
            for ci in range(c_in):
                k = w[ci, co, i]
                for wi in range(wd):
                    start = wi * stride - padding
                    lo, hi_ = kernel_span(start, out_w, kw)
                    v = x[b, ci, hi, wi]
                    seg, kseg = dst[start + lo:start + hi_], k[lo:hi_]
                    for q in range(hi_ - lo):
                        seg[q] += v * kseg[q]


@kernel(fastmath=FAST)
def transpose_input_grad_kernel(gy, w, stride, padding, gx):
    # Threads: prange over the N*C_in*H input rows; each value is a sum of dot products of
    # kernel rows with the stretches of dy they painted.
    n, c_in, h, wd = gx.shape
    c_out, kh, kw = w.shape[1:]
    out_h, out_w = gy.shape[2], gy.shape[3]
    for r in prange(n * c_in * h):
        b, ci, hi = r // (c_in * h), r // h % c_in, r % h
        for wi in range(wd):
            start = wi * stride - padding
            lo, hi_ = kernel_span(start, out_w, kw)
            total = gy.dtype.type(0)
            for co in range(c_out):
                for i in range(kh):
                    row = hi * stride - padding + i
                    if row < 0 or row >= out_h:
                        continue
                    seg, kseg = gy[b, co, row, start + lo:start + hi_], w[ci, co, i, lo:hi_]
                    for q in range(hi_ - lo):
                        total += seg[q] * kseg[q]
            gx[b, ci, hi, wi] = total


@kernel(fastmath=CONTRACT)
def transpose_weight_grad_kernel(x, gy, stride, padding, gw):
    # Threads: prange over the C_in*C_out*kh kernel rows; a thread owns its row of dw and adds,
    # for every input pixel, that pixel times the stretch of dy its kernel row painted.
    n, c_in, h, wd = x.shape
    c_out, kh, kw = gw.shape[1:]
    out_h, out_w = gy.shape[2], gy.shape[3]
    for r in prange(c_in * c_out * kh):
        ci, co, i = r // (c_out * kh), r // kh % c_out, r % kh
        dst = gw[ci, co, i]
        dst[:] = 0
        for b in range(n):
            for hi in range(h):
                row = hi * stride - padding + i
                if row < 0 or row >= out_h:
                    continue
                src = gy[b, co, row]
                for wi in range(wd):
                    start = wi * stride - padding
                    lo, hi_ = kernel_span(start, out_w, kw)
                    v = x[b, ci, hi, wi]
                    seg, gseg = dst[lo:hi_], src[start + lo:start + hi_]
                    for q in range(hi_ - lo):
                        seg[q] += v * gseg[q]


def conv_transpose2d(x, w, bias, stride, padding, out_shape):
    """Transposed convolution of (N, C_in, H, W) with (C_in, C_out, kh, kw) into ``out_shape``."""
    y = np.empty(out_shape, dtype=np.result_type(x, w))
    bias = np.zeros(0, y.dtype) if bias is None else np.ascontiguousarray(bias, dtype=y.dtype)
    transpose_forward_kernel(np.ascontiguousarray(x, dtype=y.dtype), np.ascontiguousarray(w, dtype=y.dtype),
                             bias, stride, padding, y)
    return y


def conv_transpose2d_input_grad(gy, w, stride, padding, x_shape):
    gx = np.empty(x_shape, dtype=gy.dtype)
    transpose_input_grad_kernel(np.ascontiguousarray(gy), np.ascontiguousarray(w, dtype=gy.dtype), stride,
                                padding, gx)
    return gx


def conv_transpose2d_weight_grad(x, gy, stride, padding, w_shape):
    gw = np.empty(w_shape, dtype=gy.dtype)
    transpose_weight_grad_kernel(np.ascontiguousarray(x, dtype=gy.dtype), np.ascontiguousarray(gy), stride,
                                 padding, gw)
    return gw
