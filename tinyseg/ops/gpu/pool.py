"""Max pooling on the GPU (cuda/pool.cu).

Launches: forward one thread per output, backward one thread per input pixel (a gather
over the windows containing it, no atomics); grid ceil(size / 256) x block 256.
"""
from __future__ import annotations

from numpy import int32, int64

from . import contiguous, empty, launch_per_element
from . import kernel as kernel_function


def max_pool_forward(x, out_hw, kernel, stride):
    """x (N, C, H, W) -> (y, argmax), both (N, C, Ho, Wo); argmax is the position of each
    window's maximum in its H*W plane."""
    (out_h, out_w), (kh, kw), (sh, sw) = out_hw, kernel, stride
    x = contiguous(x)
    n, c, h, w = x.shape
    y = empty(x, (n, c, out_h, out_w))
    argmax = empty(x, (n, c, out_h, out_w), int32)
    launch_per_element(kernel_function("pool.cu", "max_pool_forward", x.dtype), y.size, x, y, argmax,
                       int64(y.size), int32(h), int32(w), int32(out_h), int32(out_w), int32(kh), int32(kw),
                       int32(sh), int32(sw))
    return y, argmax


def max_pool_backward(gy, argmax, in_shape, kernel, stride):
    """gy (N, C, Ho, Wo) -> gx (N, C, H, W): each input pixel gathers the gradients of the
    windows whose maximum it is."""
    (kh, kw), (sh, sw) = kernel, stride
    _, _, h, w = in_shape
    out_h, out_w = argmax.shape[2:]
    gy = contiguous(gy)
    gx = empty(gy, in_shape)
    launch_per_element(kernel_function("pool.cu", "max_pool_backward", gy.dtype), gx.size, gy, argmax, gx,
                       int64(gx.size), int32(h), int32(w), int32(out_h), int32(out_w), int32(kh), int32(kw),
                       int32(sh), int32(sw))
    return gx
