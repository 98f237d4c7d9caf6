"""conv2d and conv_transpose2d on the GPU: im2col / col2im kernels (cuda/conv.cu) around
cuBLAS GEMMs (``cupy.matmul``).

Launches: im2col runs one thread per column entry, col2im one thread per image pixel
(a gather: no atomics), both on a grid of ceil(size / 256) blocks of 256 threads.
Shapes and the CPU formulation are in ``tinyseg/ops/conv.py`` and ``tinyseg/ops/im2col.py``.
"""
from __future__ import annotations

from numpy import int32, int64

from ...backend import get_array_module
from . import contiguous, empty, kernel, launch_per_element
from .elementwise import bias_relu, relu_backward


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


def conv2d_forward(op, x, weight, bias, out_h, out_w):
    xp = get_array_module(x)
    n = x.shape[0]
    c_out, _, kh, kw = weight.shape
    cols = im2col(x, kh, kw, op.stride, op.padding, out_h, out_w)     # (N, K, L), K = C_in*kh*kw
    y = xp.matmul(weight.reshape(c_out, -1), cols)                      # (N, C_out, L): batched GEMM
    bias_relu(y, bias, op.relu)                                          # one pass for both
    op.x, op.weight, op.has_bias = x, weight, bias is not None       # cols are rebuilt in backward
    op.y = y if op.relu else None                                     # the ReLU's mask
    return y.reshape(n, c_out, out_h, out_w)


def conv2d_backward(op, gy):
    xp = get_array_module(gy)
    n, c_out, out_h, out_w = gy.shape
    kh, kw = op.weight.shape[2:]
    gy = contiguous(gy).reshape(n, c_out, out_h * out_w)
    if op.y is not None:                                              # through the fused ReLU
        gy = relu_backward(op, gy)
    gx = gw = gb = None
    if op.needs_grad[1]:
        cols = im2col(op.x, kh, kw, op.stride, op.padding, out_h, out_w)   # as in forward
        gw = sum_over_batch(gy, cols).reshape(op.weight.shape)     # dW = sum_n dY[n] cols[n]^T
        del cols
    if op.needs_grad[0]:
        # dcols = W^T dY (one batched GEMM), then each column entry flows back to its pixel
        gcols = xp.matmul(op.weight.reshape(c_out, -1).T, gy)
        gx = col2im(gcols, op.x.shape, kh, kw, op.stride, op.padding, out_h, out_w)
    if op.has_bias and op.needs_grad[2]:
        gb = gy.sum(axis=(0, 2))
    return (gx, gw, gb) if op.has_bias else (gx, gw)


def conv_transpose2d_forward(op, x, weight, bias):
    """Forward of the transposed convolution is conv2d's input gradient: GEMM, then col2im
    onto the output canvas (the padding crop is implicit)."""
    xp = get_array_module(x)
    n, c_in, h, w = x.shape
    c_out, kh, kw = weight.shape[1:]
    s, p = op.stride, op.padding
    out_shape = (n, c_out, (h - 1) * s + kh - 2 * p, (w - 1) * s + kw - 2 * p)
    x = contiguous(x)
    cols = xp.matmul(weight.reshape(c_in, -1).T, x.reshape(n, c_in, h * w))  # (N, C_out*kh*kw, H*W)
    y = bias_relu(col2im(cols, out_shape, kh, kw, s, p, h, w), bias)
    op.x, op.weight, op.has_bias = x, weight, bias is not None
    return y


def conv_transpose2d_backward(op, gy):
    """d x is a convolution of dY with the same weights: im2col of dY, then GEMMs."""
    xp = get_array_module(gy)
    n, c_in, h, w = op.x.shape
    kh, kw = op.weight.shape[2:]
    gcols = im2col(gy, kh, kw, op.stride, op.padding, h, w)            # (N, C_out*kh*kw, H*W)
    gx = gw = gb = None
    if op.needs_grad[0]:
        gx = xp.matmul(op.weight.reshape(c_in, -1), gcols).reshape(op.x.shape)
    if op.needs_grad[1]:
        gw = sum_over_batch(op.x.reshape(n, c_in, h * w), gcols).reshape(op.weight.shape)
    if op.has_bias and op.needs_grad[2]:
        gb = gy.sum(axis=(0, 2, 3))
    return (gx, gw, gb) if op.has_bias else (gx, gw)
