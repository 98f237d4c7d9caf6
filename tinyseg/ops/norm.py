"""Batch normalisation over (N, H, W) for each channel of an (N, C, H, W) map.

The CPU path runs the Numba kernels in ``cpu/norm.py``: forward makes one pass for
the statistics (training only) and one writing y; backward one pass for the two
per-channel sums and one writing the input's gradient. x_hat is never stored:
backward recomputes it from x, the mean and 1 / std.
"""
from __future__ import annotations

import numpy as np

from ..autograd import Function
from . import gpu
from .cpu import norm as cpu_norm


def update_running_stats(running_mean, running_var, mean, var, count, momentum):
    """running <- (1 - momentum) * running + momentum * batch, in place, with the unbiased variance."""
    running_mean *= 1 - momentum
    running_mean += momentum * mean.astype(running_mean.dtype)
    running_var *= 1 - momentum
    running_var += momentum * (var * count / (count - 1)).astype(running_var.dtype)


class BatchNorm2d(Function):
    """y = (x - mean) / sqrt(var + eps) * weight + bias.

    Training: mean and (biased) var come from the batch, and the running
    statistics move toward them: running = (1 - momentum) * running +
    momentum * batch, with the unbiased variance (as PyTorch does).
    Evaluation: the running statistics are used, and are then ordinary
    inputs of the function (their gradients are defined too).

    Inputs are (x, running_mean, running_var[, weight, bias]).
    """

    def __init__(self, training, momentum=0.1, eps=1e-5, affine=True):
        self.training, self.momentum, self.eps, self.affine = training, momentum, eps, affine

    def forward(self, x, running_mean, running_var, weight=None, bias=None):
        if x.ndim != 4:
            raise ValueError(f"batch_norm: input must be (N, C, H, W), got shape {x.shape}")
        c = x.shape[1]
        for name, v in (("running_mean", running_mean), ("running_var", running_var),
                        ("weight", weight), ("bias", bias)):
            if v is not None and v.shape != (c,):
                raise ValueError(f"batch_norm: {name} has shape {v.shape}, expected ({c},)")
        if gpu.on_gpu(x):
            return gpu.norm.batch_norm_forward(self, x, running_mean, running_var, weight, bias)
        if self.training and x.size // c < 2:
            raise ValueError(f"batch_norm: training needs more than one value per channel, got {x.shape}")
        # The kernels see x as (N, C, H*W) in the dtype of y, and per-channel arrays in float64.
        dtype = np.result_type(x, *(v for v in (weight, bias) if v is not None),
                               *(() if self.training else (running_mean, running_var)))
        self.shape = x.shape
        n, h, w = x.shape[0], x.shape[2], x.shape[3]
        x = np.ascontiguousarray(x, dtype).reshape(n, c, h * w)
        if self.training:
            mean, var = np.empty(c), np.empty(c)
            cpu_norm.channel_stats(x, mean, var)
            update_running_stats(running_mean, running_var, mean, var, n * h * w, self.momentum)
        else:   # copies: the running statistics may change before backward
            mean, var = running_mean.astype(np.float64), running_var.astype(np.float64)
        inv_std = 1.0 / np.sqrt(var + self.eps)
        weight = np.ones(c) if weight is None else weight.astype(np.float64)
        bias = np.zeros(c) if bias is None else bias.astype(np.float64)
        y = np.empty(x.shape, dtype)
        cpu_norm.normalize(x, mean, inv_std, weight, bias, y)
        self.x, self.mean, self.inv_std, self.weight = x, mean, inv_std, weight
        return y.reshape(n, c, h, w)

    def backward(self, gy):
        if gpu.on_gpu(gy):
            return gpu.norm.batch_norm_backward(self, gy)
        x, mean, inv_std, weight = self.x, self.mean, self.inv_std, self.weight
        n, c, p = x.shape
        gy = np.ascontiguousarray(gy, x.dtype).reshape(n, c, p)
        # sum(gy) and sum(gy * x_hat) per channel: d bias, d weight, and in training part of dx
        sum_gy, sum_gy_xhat = np.zeros(c), np.zeros(c)
        if self.training or any(self.needs_grad[1:]):
            cpu_norm.backward_sums(gy, x, mean, inv_std, sum_gy, sum_gy_xhat)
        grads = [None] * len(self.needs_grad)
        if self.needs_grad[0]:
            # training: dx = weight * inv_std * (gy - mean(gy) - x_hat * mean(gy * x_hat)), since
            # x_hat depends on x through the batch mean and variance too; evaluation: the
            # statistics are constants of x and dx = weight * inv_std * gy
            if self.training:
                mean_gy, mean_gy_xhat = sum_gy / (n * p), sum_gy_xhat / (n * p)
            else:
                mean_gy = mean_gy_xhat = np.zeros(c)
            gx = np.empty(x.shape, x.dtype)
            cpu_norm.backward_input(gy, x, mean, inv_std, weight * inv_std, mean_gy, mean_gy_xhat, gx)
            grads[0] = gx.reshape(self.shape)
        if not self.training:
            # with x_hat = (x - m) * inv_std and g_hat = gy * weight:
            # dm = -sum(g_hat) * inv_std and dv = -1/2 * sum(g_hat * x_hat) * inv_std^2
            grads[1] = (-weight * sum_gy * inv_std).astype(x.dtype)
            grads[2] = (-0.5 * weight * sum_gy_xhat * inv_std ** 2).astype(x.dtype)
        if len(grads) > 3:
            grads[3] = sum_gy_xhat.astype(x.dtype)   # d weight
        if len(grads) > 4:
            grads[4] = sum_gy.astype(x.dtype)        # d bias
        return tuple(grads)


def batch_norm(x, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5):
    inputs = [x, running_mean, running_var]
    if weight is not None or bias is not None:
        if weight is None or bias is None:
            raise ValueError("batch_norm: pass both weight and bias, or neither")
        inputs += [weight, bias]
    return BatchNorm2d(training, momentum, eps)(*inputs)
