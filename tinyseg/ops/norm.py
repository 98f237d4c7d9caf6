"""Batch normalisation over (N, H, W) for each channel of an (N, C, H, W) map."""
from __future__ import annotations

from ..autograd import Function
from ..backend import get_array_module
from . import gpu

_AXES = (0, 2, 3)


def _per_channel(v):
    return v.reshape(1, -1, 1, 1)


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
        xp = get_array_module(x)
        if self.training:
            count = x.size // c
            if count < 2:
                raise ValueError(f"batch_norm: training needs more than one value per channel, got {x.shape}")
            mean = x.mean(axis=_AXES)
            var = x.var(axis=_AXES)
            update_running_stats(running_mean, running_var, mean, var, count, self.momentum)
        else:
            mean, var = running_mean, running_var
        inv_std = 1.0 / xp.sqrt(var + self.eps)
        x_hat = (x - _per_channel(mean)) * _per_channel(inv_std)
        self.x_hat, self.inv_std, self.weight = x_hat, inv_std, weight
        y = x_hat
        if weight is not None:
            y = y * _per_channel(weight)
        if bias is not None:
            y = y + _per_channel(bias)
        return y

    def backward(self, gy):
        if gpu.on_gpu(gy):
            return gpu.norm.batch_norm_backward(self, gy)
        g_hat = gy * _per_channel(self.weight) if self.weight is not None else gy   # dL/dx_hat
        inv_std = _per_channel(self.inv_std)
        grads = [None] * len(self.needs_grad)
        if self.training:
            # x_hat depends on x through the batch mean and variance too:
            # dx = inv_std * (g_hat - mean(g_hat) - x_hat * mean(g_hat * x_hat))
            grads[0] = inv_std * (g_hat - g_hat.mean(axis=_AXES, keepdims=True)
                                  - self.x_hat * (g_hat * self.x_hat).mean(axis=_AXES, keepdims=True))
        else:
            # statistics are constants of x: dx = g_hat * inv_std; with x_hat = (x - m) * inv_std,
            # dm = -sum(g_hat) * inv_std and dv = -1/2 * sum(g_hat * x_hat) * inv_std^2
            grads[0] = g_hat * inv_std
            grads[1] = -(g_hat.sum(axis=_AXES)) * self.inv_std
            grads[2] = -0.5 * (g_hat * self.x_hat).sum(axis=_AXES) * self.inv_std ** 2
        if len(grads) > 3:
            grads[3] = (gy * self.x_hat).sum(axis=_AXES)   # d weight
        if len(grads) > 4:
            grads[4] = gy.sum(axis=_AXES)                  # d bias
        return tuple(grads)


def batch_norm(x, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5):
    inputs = [x, running_mean, running_var]
    if weight is not None or bias is not None:
        if weight is None or bias is None:
            raise ValueError("batch_norm: pass both weight and bias, or neither")
        inputs += [weight, bias]
    return BatchNorm2d(training, momentum, eps)(*inputs)
