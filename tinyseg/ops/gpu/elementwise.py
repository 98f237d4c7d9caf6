"""Per-channel bias (with a fused ReLU) and ReLU on the GPU (cuda/elementwise.cu).

Launches: one thread per element, grid ceil(size / 256) x block 256.
"""
from __future__ import annotations

from numpy import int32, int64

from . import contiguous, empty, kernel, launch_per_element


def bias_relu(y, bias, relu=False):
    """In place: y (N, C, ...) contiguous, y[:, c] += bias[c] (bias may be None), then
    y = max(y, 0) when ``relu``. Nothing to do without a bias or a ReLU."""
    if bias is None and not relu:
        return y
    n, c = y.shape[:2]
    plane = y.size // (n * c) if n * c else 0
    bias_array = y if bias is None else contiguous(bias, y.dtype)   # y: a placeholder, not read
    launch_per_element(kernel("elementwise.cu", "bias_relu", y.dtype), y.size, y, bias_array,
                       int64(y.size), int32(c), int64(plane), int32(bias is not None), int32(relu))
    return y


def relu_forward(x):
    """y = x * (x > 0)."""
    x = contiguous(x)
    y = empty(x, x.shape)
    launch_per_element(kernel("elementwise.cu", "relu_forward", x.dtype), x.size, x, y, int64(x.size))
    return y


def relu_backward(gy, y):
    """dx = dy * (y > 0), y the ReLU's output."""
    gy = contiguous(gy, y.dtype)
    gx = empty(gy, gy.shape)
    launch_per_element(kernel("elementwise.cu", "relu_backward", gy.dtype), gy.size,
                       gy, contiguous(y), gx, int64(gy.size))
    return gx
