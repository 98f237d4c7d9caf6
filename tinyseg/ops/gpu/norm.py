"""Batch normalisation on the GPU (cuda/batchnorm.cu).

Launches: the per-channel reductions (training statistics, and the two sums backward
needs) run grid C x block 256, one block per channel reducing through shared memory;
the elementwise passes run grid ceil(size / 256) x block 256.
Formulas and the running-statistics rule are those of ``tinyseg/ops/norm.py``.
"""
from __future__ import annotations

from numpy import float64, int32, int64

from ...backend import get_array_module
from . import contiguous, empty, kernel, launch_per_element

REDUCE_THREADS = 256   # BN_THREADS in cuda/batchnorm.cu


def batch_norm_forward(op, x, running_mean, running_var, weight, bias):
    xp = get_array_module(x)
    x = contiguous(x)
    n, c, h, w = x.shape
    plane = h * w
    if op.training:
        count = x.size // c
        if count < 2:
            raise ValueError(f"batch_norm: training needs more than one value per channel, got {x.shape}")
        mean, var, inv_std = (empty(x, (c,)) for _ in range(3))
        kernel("batchnorm.cu", "batch_norm_stats", x.dtype)(
            (c,), (REDUCE_THREADS,), (x, mean, var, inv_std, int32(n), int32(c), int64(plane), float64(op.eps)))
        from ..norm import update_running_stats  # not at the top: ops.norm imports this package
        update_running_stats(running_mean, running_var, mean, var, count, op.momentum)
    else:
        mean = contiguous(running_mean, x.dtype)
        inv_std = contiguous(1.0 / xp.sqrt(running_var + op.eps), x.dtype)
    affine = weight is not None
    x_hat, y = empty(x, x.shape), empty(x, x.shape)
    # Without an affine transform the kernel reads no weight or bias; `mean` fills their slots.
    scale, shift = (contiguous(weight, x.dtype), contiguous(bias, x.dtype)) if affine else (mean, mean)
    launch_per_element(kernel("batchnorm.cu", "batch_norm_apply", x.dtype), x.size, x, mean, inv_std,
                       scale, shift, x_hat, y, int64(x.size), int32(c), int64(plane), int32(affine))
    op.x_hat, op.inv_std, op.weight = x_hat, inv_std, weight
    return y


def batch_norm_backward(op, gy):
    xp = get_array_module(gy)
    gy = contiguous(gy, op.x_hat.dtype)
    n, c, h, w = gy.shape
    plane = h * w
    sum_gy, sum_gy_xhat = empty(gy, (c,)), empty(gy, (c,))
    kernel("batchnorm.cu", "batch_norm_backward_sums", gy.dtype)(
        (c,), (REDUCE_THREADS,), (gy, op.x_hat, sum_gy, sum_gy_xhat, int32(n), int32(c), int64(plane)))
    weight = xp.ones_like(op.inv_std) if op.weight is None else op.weight.astype(gy.dtype)
    scale = contiguous(weight * op.inv_std)                              # d x = scale * (...)
    gx = empty(gy, gy.shape)
    launch_per_element(kernel("batchnorm.cu", "batch_norm_backward_input", gy.dtype), gy.size, gy, op.x_hat,
                       scale, sum_gy, sum_gy_xhat, gx, int64(gy.size), int32(c), int64(plane),
                       float64(1.0 / (n * plane)), int32(op.training))
    grads = [None] * len(op.needs_grad)
    grads[0] = gx
    if not op.training:
        # running statistics as inputs: dm = -sum(g_hat) inv_std, dv = -1/2 sum(g_hat x_hat) inv_std^2
        grads[1] = -weight * sum_gy * op.inv_std
        grads[2] = -0.5 * weight * sum_gy_xhat * op.inv_std ** 2
    if len(grads) > 3:
        grads[3] = sum_gy_xhat        # d weight = sum(gy * x_hat)
    if len(grads) > 4:
        grads[4] = sum_gy             # d bias = sum(gy)
    return tuple(grads)
