"""Max pooling on the GPU (cuda/pool.cu).

Launches: forward one thread per output, backward one thread per input pixel (a gather
over the windows containing it, no atomics); grid ceil(size / 256) x block 256.
"""
from __future__ import annotations

from numpy import int32, int64

from . import contiguous, empty, kernel, launch_per_element


def max_pool_forward(op, x, out_h, out_w):
    (kh, kw), (sh, sw) = op.kernel, op.stride
    x = contiguous(x)
    n, c, h, w = x.shape
    y = empty(x, (n, c, out_h, out_w))
    argmax = empty(x, (n, c, out_h, out_w), int32)   # position of each maximum in its H*W plane
    launch_per_element(kernel("pool.cu", "max_pool_forward", x.dtype), y.size, x, y, argmax, int64(y.size),
                       int32(h), int32(w), int32(out_h), int32(out_w), int32(kh), int32(kw), int32(sh), int32(sw))
    op.argmax, op.in_shape = argmax, x.shape
    return y


def max_pool_backward(op, gy):
    (kh, kw), (sh, sw) = op.kernel, op.stride
    _, _, h, w = op.in_shape
    out_h, out_w = op.argmax.shape[2:]
    gy = contiguous(gy)
    gx = empty(gy, op.in_shape)
    launch_per_element(kernel("pool.cu", "max_pool_backward", gy.dtype), gx.size, gy, op.argmax, gx,
                       int64(gx.size), int32(h), int32(w), int32(out_h), int32(out_w), int32(kh), int32(kw),
                       int32(sh), int32(sw))
    return gx
