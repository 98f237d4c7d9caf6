"""The GPU halves of conv2d and conv_transpose2d: im2col / col2im kernels (cuda/conv.cu)
and the weight-gradient GEMMs around them (cuBLAS through ``cupy.matmul``).

Launches: im2col runs one thread per column entry, col2im one thread per image pixel
(a gather: no atomics), both on a grid of ceil(size / 256) blocks of 256 threads.
The ops that use them, and the CPU formulation, are in ``tinyseg/ops/conv.py``.
"""
from __future__ import annotations

from numpy import int32, int64

from ...backend import get_array_module
from . import contiguous, empty, kernel, launch_per_element


def _pointwise(kh, kw, stride, padding):
    return kh == kw == stride == 1 and padding == 0


def im2col(image, kh, kw, stride, padding, out_h, out_w):
    """(N, C, H, W) -> cols (N, C*kh*kw, out_h*out_w); the zero padding is read implicitly."""
    n, c, h, w = image.shape
    image = contiguous(image)
    if _pointwise(kh, kw, stride, padding):
        return image.reshape(n, c, h * w)
    cols = empty(image, (n, c * kh * kw, out_h * out_w))
    launch_per_element(kernel("conv.cu", "im2col", image.dtype), cols.size, image, cols, int64(cols.size),
                       int32(c), int32(h), int32(w), int32(kh), int32(kw), int32(stride), int32(padding),
                       int32(out_h), int32(out_w))
    return cols


def col2im(cols, image_shape, kh, kw, stride, padding, out_h, out_w):
    """Adjoint of ``im2col``: (N, C*kh*kw, out_h*out_w) -> (N, C, H, W), overlapping windows summed."""
    n, c, h, w = image_shape
    cols = contiguous(cols)
    if _pointwise(kh, kw, stride, padding):
        return cols.reshape(image_shape)
    image = empty(cols, image_shape)
    launch_per_element(kernel("conv.cu", "col2im", cols.dtype), image.size, cols, image, int64(image.size),
                       int32(c), int32(h), int32(w), int32(kh), int32(kw), int32(stride), int32(padding),
                       int32(out_h), int32(out_w))
    return image


def sum_over_batch(a, b):
    """sum_n a[n] @ b[n]^T for (N, P, L) and (N, Q, L) -> (P, Q): one GEMM per image, b[n]^T
    read in place through cuBLAS's transpose flag."""
    total = get_array_module(a).zeros((a.shape[1], b.shape[1]), dtype=a.dtype)
    for n in range(a.shape[0]):
        total += a[n] @ b[n].T
    return total
