"""Max pooling with argmax routing.

Output size uses floor mode (PyTorch's default ``ceil_mode=False``): a
window that would hang over the bottom or right edge is dropped, so
Ho = (H - k) // s + 1 and a 50x125 map pooled 2x2 gives 25x62. Ties go to
the first maximum in row-major window order.

The CPU path loops over the kh*kw kernel offsets (four for 2x2 pooling), never
over pixels: each iteration handles one strided slab of the whole batch.
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
        # One vectorised pass per kernel offset (i, j): the strided slab x[:, :, i::sh, j::sw]
        # holds that offset's value for every window at once. A running maximum and the
        # offset that produced it (first maximum wins ties) give the output and the argmax.
        y = arg = None
        for k, (i, j) in enumerate(_offsets(kh, kw)):
            slab = x[:, :, i:i + sh * out_h:sh, j:j + sw * out_w:sw]
            if y is None:
                y, arg = slab.copy(), xp.zeros(slab.shape, dtype=xp.int16)
            else:
                better = slab > y
                xp.copyto(y, slab, where=better)
                arg[better] = k
        self.argmax, self.in_shape = arg, x.shape          # argmax: offset index k = i * kw + j
        return y

    def backward(self, gy):
        if gpu.on_gpu(gy):
            return gpu.pool.max_pool_backward(self, gy)
        xp = get_array_module(gy)
        (kh, kw), (sh, sw) = self.kernel, self.stride
        out_h, out_w = gy.shape[2:]
        gx = xp.zeros(self.in_shape, dtype=gy.dtype)
        # Each output gradient goes to its window's argmax. For one offset (i, j) the windows
        # touch distinct pixels, so the slab update needs no scatter; overlapping windows
        # (stride < kernel) that share a maximum add up across offsets.
        for k, (i, j) in enumerate(_offsets(kh, kw)):
            gx[:, :, i:i + sh * out_h:sh, j:j + sw * out_w:sw] += xp.where(self.argmax == k, gy, 0)
        return gx


def _offsets(kh, kw):
    return [(i, j) for i in range(kh) for j in range(kw)]


def max_pool2d(x, kernel_size, stride=None):
    return MaxPool2d(kernel_size, stride)(x)
