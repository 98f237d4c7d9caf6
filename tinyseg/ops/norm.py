"""Batch normalisation over (N, H, W) for each channel of an (N, C, H, W) map.

Both devices make one pass for the statistics (training only) and one writing y
forward, one pass for the two per-channel sums and one writing the input's gradient
backward: the Numba kernels in ``cpu/norm.py``, the CUDA kernels in ``cuda/batchnorm.cu``.
x_hat is never stored: backward recomputes it from x, the mean and 1 / std.
"""
from __future__ import annotations

import numpy as np

from ..autograd import Function
from ..backend import get_array_module
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

    Inputs are (x, running_mean, running_var[, weight, bias]). Both devices keep x as
    (N, C, H*W), the per-channel mean, 1 / std and weight (ones without an affine
    transform); x_hat = (x - mean) * inv_std is recomputed where backward needs it.
    """

    saves = ("x", "mean", "inv_std", "weight")

    def __init__(self, training, momentum=0.1, eps=1e-5):
        self.training, self.momentum, self.eps = training, momentum, eps

    def check(self, x, *per_channel):
        if x.ndim != 4:
            raise ValueError(f"batch_norm: input must be (N, C, H, W), got shape {x.shape}")
        c = x.shape[1]
        for name, v in zip(("running_mean", "running_var", "weight", "bias"), per_channel):
            if v.shape != (c,):
                raise ValueError(f"batch_norm: {name} has shape {v.shape}, expected ({c},)")
        if self.training and x.size // c < 2:
            raise ValueError(f"batch_norm: training needs more than one value per channel, got {x.shape}")

    def forward_cpu(self, x, running_mean, running_var, weight=None, bias=None):
        self.check(x, running_mean, running_var, *(v for v in (weight, bias) if v is not None))
        # The kernels see x as (N, C, H*W) in the dtype of y, and per-channel arrays in float64.
        dtype = np.result_type(x, *(v for v in (weight, bias) if v is not None),
                               *(() if self.training else (running_mean, running_var)))
        n, c, h, w = x.shape
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
        self.save(x=x, mean=mean, inv_std=inv_std, weight=weight)
        return y.reshape(n, c, h, w)

    def forward_gpu(self, x, running_mean, running_var, weight=None, bias=None):
        self.check(x, running_mean, running_var, *(v for v in (weight, bias) if v is not None))
        xp = get_array_module(x)
        n, c, h, w = x.shape
        x = gpu.contiguous(x).reshape(n, c, h * w)
        if self.training:
            mean, var, inv_std = gpu.norm.batch_norm_stats(x, self.eps)
            update_running_stats(running_mean, running_var, mean, var, n * h * w, self.momentum)
        else:
            mean = gpu.contiguous(running_mean, x.dtype)
            inv_std = gpu.contiguous(1.0 / xp.sqrt(running_var + self.eps), x.dtype)
        weight = xp.ones(c, x.dtype) if weight is None else gpu.contiguous(weight, x.dtype)
        bias = xp.zeros(c, x.dtype) if bias is None else gpu.contiguous(bias, x.dtype)
        y = gpu.norm.batch_norm_apply(x, mean, inv_std, weight, bias)
        self.save(x=x, mean=mean, inv_std=inv_std, weight=weight)
        return y.reshape(n, c, h, w)

    def backward_cpu(self, gy):
        x, mean, inv_std, weight = self.x, self.mean, self.inv_std, self.weight
        n, c, p = x.shape
        gy = np.ascontiguousarray(gy, x.dtype).reshape(n, c, p)
        # sum(gy) and sum(gy * x_hat) per channel: d bias, d weight, and in training part of dx
        sum_gy, sum_gy_xhat = np.zeros(c), np.zeros(c)
        if self.training or any(self.needs_grad[1:]):
            cpu_norm.backward_sums(gy, x, mean, inv_std, sum_gy, sum_gy_xhat)
        gx = None
        if self.needs_grad[0]:
            if self.training:
                mean_gy, mean_gy_xhat = sum_gy / (n * p), sum_gy_xhat / (n * p)
            else:
                mean_gy = mean_gy_xhat = np.zeros(c)
            gx = np.empty(x.shape, x.dtype)
            cpu_norm.backward_input(gy, x, mean, inv_std, weight * inv_std, mean_gy, mean_gy_xhat, gx)
        return self.gradients(gx, sum_gy, sum_gy_xhat)

    def backward_gpu(self, gy):
        gy = gpu.contiguous(gy, self.x.dtype).reshape(self.x.shape)
        sum_gy, sum_gy_xhat = gpu.norm.batch_norm_backward_sums(gy, self.x, self.mean, self.inv_std)
        gx = gpu.norm.batch_norm_backward_input(gy, self.x, self.mean, self.inv_std, self.weight * self.inv_std,
                                                sum_gy, sum_gy_xhat, self.training)
        return self.gradients(gx, sum_gy, sum_gy_xhat)

    def gradients(self, gx, sum_gy, sum_gy_xhat):
        """All input gradients from dx (N, C, P) and the two per-channel sums.

        dx: training, dx = weight * inv_std * (gy - mean(gy) - x_hat * mean(gy * x_hat)), since
        x_hat depends on x through the batch mean and variance too; evaluation, the statistics
        are constants of x and dx = weight * inv_std * gy. With x_hat = (x - m) * inv_std and
        g_hat = gy * weight, the running statistics (inputs in evaluation) get
        dm = -sum(g_hat) * inv_std and dv = -1/2 * sum(g_hat * x_hat) * inv_std^2;
        d weight = sum(gy * x_hat), d bias = sum(gy)."""
        dtype, (n, c, h, w) = self.x.dtype, self.output_meta[0][0]
        grads = [None] * len(self.needs_grad)
        grads[0] = None if gx is None else gx.reshape(n, c, h, w)
        if not self.training:
            grads[1] = (-self.weight * sum_gy * self.inv_std).astype(dtype)
            grads[2] = (-0.5 * self.weight * sum_gy_xhat * self.inv_std ** 2).astype(dtype)
        if len(grads) > 3:
            grads[3], grads[4] = sum_gy_xhat.astype(dtype), sum_gy.astype(dtype)
        return tuple(grads)


def batch_norm(x, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5):
    inputs = [x, running_mean, running_var]
    if weight is not None or bias is not None:
        if weight is None or bias is None:
            raise ValueError("batch_norm: pass both weight and bias, or neither")
        inputs += [weight, bias]
    return BatchNorm2d(training, momentum, eps)(*inputs)
