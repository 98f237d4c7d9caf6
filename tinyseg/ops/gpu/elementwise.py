"""Per-channel bias and ReLU on the GPU (cuda/elementwise.cu).

Launches: one thread per element, grid ceil(size / 256) x block 256.
"""
from __future__ import annotations

from numpy import int32, int64

from . import contiguous, empty, kernel, launch_per_element


def add_channel_bias(y, bias):
    """In place: y (N, C, ...) contiguous, y[:, c] += bias[c]."""
    n, c = y.shape[:2]
    plane = y.size // (n * c) if n * c else 0
    launch_per_element(kernel("elementwise.cu", "add_channel_bias", y.dtype), y.size,
                       y, contiguous(bias, y.dtype), int64(y.size), int32(c), int64(plane))
    return y


def relu_forward(op, x):
    """y = x * (x > 0); the output is kept as the mask for backward (no boolean array)."""
    x = contiguous(x)
    y = empty(x, x.shape)
    launch_per_element(kernel("elementwise.cu", "relu_forward", x.dtype), x.size, x, y, int64(x.size))
    op.y = y
    return y


def relu_backward(op, gy):
    gy = contiguous(gy, op.y.dtype)
    gx = empty(gy, gy.shape)
    launch_per_element(kernel("elementwise.cu", "relu_backward", gy.dtype), gy.size,
                       gy, op.y, gx, int64(gy.size))
    return gx
