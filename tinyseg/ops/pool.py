"""Max pooling with argmax routing.

Output size uses floor mode (PyTorch's default ``ceil_mode=False``): a
window that would hang over the bottom or right edge is dropped, so
Ho = (H - k) // s + 1 and a 50x125 map pooled 2x2 gives 25x62. Ties go to
the first maximum in row-major window order.
"""
from __future__ import annotations

from ..autograd import Function
from ..backend import get_array_module
from . import gpu
from .im2col import output_size


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


class MaxPool2d(Function):
    def __init__(self, kernel_size, stride=None):
        self.kernel = _pair(kernel_size)
        self.stride = _pair(stride if stride is not None else kernel_size)
        if min(self.kernel) < 1 or min(self.stride) < 1:
            raise ValueError(f"max_pool2d: kernel {self.kernel} and stride {self.stride} must be >= 1")

    def forward(self, x):
        if x.ndim != 4:
            raise ValueError(f"max_pool2d: input must be (N, C, H, W), got shape {x.shape}")
        xp = get_array_module(x)
        (kh, kw), (sh, sw) = self.kernel, self.stride
        n, c, h, w = x.shape
        out_h, out_w = output_size(h, kh, sh), output_size(w, kw, sw)
        if out_h < 1 or out_w < 1:
            raise ValueError(f"max_pool2d: kernel {self.kernel} is larger than the input {x.shape[2:]}")
        if gpu.on_gpu(x):
            return gpu.pool.max_pool_forward(self, x, out_h, out_w)
        x = xp.ascontiguousarray(x)
        sn, sc, s_h, s_w = x.strides
        # (N, C, Ho, Wo, kh, kw) view of the windows, then one copy to (..., kh*kw)
        view = xp.lib.stride_tricks.as_strided(
            x, (n, c, out_h, out_w, kh, kw), (sn, sc, s_h * sh, s_w * sw, s_h, s_w))
        flat = view.reshape(n, c, out_h, out_w, kh * kw)
        arg = flat.argmax(axis=-1)
        y = xp.take_along_axis(flat, arg[..., None], axis=-1)[..., 0]
        # Remember where each maximum sits in the flattened input plane.
        rows = xp.arange(out_h)[:, None] * sh + arg // kw
        cols = xp.arange(out_w)[None, :] * sw + arg % kw
        self.argmax = rows * w + cols                          # (N, C, Ho, Wo) indices into H*W
        self.in_shape = x.shape
        return y

    def backward(self, gy):
        if gpu.on_gpu(gy):
            return gpu.pool.max_pool_backward(self, gy)
        xp = get_array_module(gy)
        n, c, h, w = self.in_shape
        plane = h * w
        # Each output gradient goes to its window's argmax; overlapping windows may pick
        # the same pixel, so scatter with bincount, which adds repeated indices.
        offsets = xp.arange(n * c).reshape(n, c, 1, 1) * plane
        flat_index = (self.argmax + offsets).ravel()
        gx = xp.bincount(flat_index, weights=gy.ravel(), minlength=n * c * plane)
        return gx.astype(gy.dtype, copy=False).reshape(self.in_shape)


def max_pool2d(x, kernel_size, stride=None):
    return MaxPool2d(kernel_size, stride)(x)
