"""Max pooling with argmax routing.

Output size uses floor mode (PyTorch's default ``ceil_mode=False``): a
window that would hang over the bottom or right edge is dropped, so
Ho = (H - k) // s + 1 and a 50x125 map pooled 2x2 gives 25x62. Ties go to
the first maximum in row-major window order.

The CPU path runs the Numba kernels in ``cpu/pool.py``: forward records the
position of each window's maximum in its H*W plane, backward sends every output
gradient to that position. A 2x2, stride-2 pool runs on kernels specialised for it
(vectorised), and a backward whose windows do not overlap on one that writes each
input row once; both give exactly what the generic kernels give.
"""
from __future__ import annotations

import numpy as np

from ..autograd import Function
from . import gpu
from .conv import output_size
from .cpu import pool as cpu_pool


def _height_width(v):
    """An int for both axes, or an (h, w) pair."""
    return (v, v) if isinstance(v, int) else tuple(v)


class MaxPool2d(Function):
    """Backward: every output gradient goes to the position of its window's maximum
    (``argmax``, its index in the H*W plane); overlapping windows that share a maximum add."""

    saves = ("argmax", "in_shape")

    def __init__(self, kernel_size, stride=None):
        self.kernel = _height_width(kernel_size)
        self.stride = _height_width(stride if stride is not None else kernel_size)
        if min(self.kernel) < 1 or min(self.stride) < 1:
            raise ValueError(f"max_pool2d: kernel {self.kernel} and stride {self.stride} must be >= 1")

    def output_hw(self, x):
        if x.ndim != 4:
            raise ValueError(f"max_pool2d: input must be (N, C, H, W), got shape {x.shape}")
        out_h, out_w = (output_size(x.shape[2 + a], self.kernel[a], self.stride[a]) for a in (0, 1))
        if out_h < 1 or out_w < 1:
            raise ValueError(f"max_pool2d: kernel {self.kernel} is larger than the input {x.shape[2:]}")
        return out_h, out_w

    def forward_cpu(self, x):
        out_h, out_w = self.output_hw(x)
        n, c, h, w = x.shape
        x = np.ascontiguousarray(x)
        y = np.empty((n, c, out_h, out_w), dtype=x.dtype)
        argmax = np.empty(y.shape, dtype=np.int32)
        planes = (x.reshape(n * c, h, w), y.reshape(n * c, out_h, out_w), argmax.reshape(n * c, out_h, out_w))
        if self.kernel == self.stride == (2, 2):
            cpu_pool.max_pool_forward_2x2(*planes)
        else:
            cpu_pool.max_pool_forward(*planes, *self.kernel, *self.stride)
        self.save(argmax=argmax, in_shape=x.shape)
        return y

    def forward_gpu(self, x):
        y, argmax = gpu.pool.max_pool_forward(x, self.output_hw(x), self.kernel, self.stride)
        self.save(argmax=argmax, in_shape=x.shape)
        return y

    def backward_cpu(self, gy):
        n, c, h, w = self.in_shape
        out_h, out_w = gy.shape[2:]
        gy = np.ascontiguousarray(gy).reshape(n * c, out_h, out_w)
        gx = np.empty(self.in_shape, dtype=gy.dtype)
        planes = (gy, self.argmax.reshape(n * c, out_h, out_w), gx.reshape(n * c, h, w))
        if self.kernel == self.stride == (2, 2):
            cpu_pool.max_pool_backward_2x2(*planes)
        elif all(s >= k for s, k in zip(self.stride, self.kernel)):     # windows do not overlap
            cpu_pool.max_pool_backward_disjoint(*planes, self.stride[0])
        else:
            cpu_pool.max_pool_backward(*planes)
        return gx

    def backward_gpu(self, gy):
        return gpu.pool.max_pool_backward(gy, self.argmax, self.in_shape, self.kernel, self.stride)


def max_pool2d(x, kernel_size, stride=None):
    return MaxPool2d(kernel_size, stride)(x)
