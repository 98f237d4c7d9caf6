"""Batch norm over the global batch: the statistics of every rank's share, summed."""
from __future__ import annotations

import numpy as np

from ...backend import get_array_module
from ...nn import BatchNorm2d
from ...ops.cpu import norm as cpu_norm
from ...ops.norm import BatchNorm2d as BatchNormFunction, update_running_stats


class SyncBatchNormFunction(BatchNormFunction):
    """Batch norm whose statistics are those of the global batch.

    Forward sums each channel (then its squared deviations) over the ranks: two
    all-reduces of C values. Backward sums sum(gy) and sum(gy * x_hat) the same way,
    since every input moved the shared mean and variance; the weight and bias gradients
    stay local (the gradient all-reduce sums them). A rank whose batch does not count
    (``counted`` False: a placeholder where the global batch had no image left for it)
    adds nothing to the statistics and gets a zero input gradient.
    """

    def __init__(self, comm, counted, momentum=0.1, eps=1e-5):
        super().__init__(True, momentum, eps)
        self.comm, self.counted = comm, counted

    def _stats(self, x, xp):
        n, c, p = x.shape
        head = xp.zeros(c + 1, dtype=np.float64)
        if self.counted:
            head[:c] = x.sum(axis=(0, 2), dtype=np.float64)
            head[c] = n * p
        self.comm.allreduce(head, "synchronised batch norm")
        self.total = float(head[c])
        mean = head[:c] / self.total
        squares = xp.zeros(c, dtype=np.float64)
        if self.counted:
            squares[...] = ((x - mean[None, :, None].astype(x.dtype)).astype(np.float64) ** 2).sum(axis=(0, 2))
        var = self.comm.allreduce(squares, "synchronised batch norm") / self.total
        return mean, var

    def forward_cpu(self, x, running_mean, running_var, weight, bias):
        self.check(x, running_mean, running_var, weight, bias)
        n, c, h, w = x.shape
        dtype = np.result_type(x, weight, bias)
        x = np.ascontiguousarray(x, dtype).reshape(n, c, h * w)
        mean, var = self._stats(x, np)
        update_running_stats(running_mean, running_var, mean, var, self.total, self.momentum)
        inv_std = 1.0 / np.sqrt(var + self.eps)
        weight = weight.astype(np.float64)
        y = np.empty(x.shape, dtype)
        cpu_norm.normalize(x, mean, inv_std, weight, bias.astype(np.float64), y)
        self.save(x=x, mean=mean, inv_std=inv_std, weight=weight)
        return y.reshape(n, c, h, w)

    def forward_gpu(self, x, running_mean, running_var, weight, bias):
        from ...ops import gpu
        self.check(x, running_mean, running_var, weight, bias)
        xp = get_array_module(x)
        n, c, h, w = x.shape
        x = gpu.contiguous(x).reshape(n, c, h * w)
        mean, var = self._stats(x, xp)
        update_running_stats(running_mean, running_var, mean, var, self.total, self.momentum)
        mean, inv_std = gpu.contiguous(mean, x.dtype), gpu.contiguous(1.0 / xp.sqrt(var + self.eps), x.dtype)
        weight, bias = gpu.contiguous(weight, x.dtype), gpu.contiguous(bias, x.dtype)
        y = gpu.norm.batch_norm_apply(x, mean, inv_std, weight, bias)
        self.save(x=x, mean=mean, inv_std=inv_std, weight=weight)
        return y.reshape(n, c, h, w)

    def _global_sums(self, sum_gy, sum_gy_xhat, xp):
        both = xp.concatenate([sum_gy, sum_gy_xhat]).astype(np.float64)
        self.comm.allreduce(both, "synchronised batch norm")
        c = len(sum_gy)
        return both[:c], both[c:]

    def backward_cpu(self, gy):
        x, mean, inv_std, weight = self.x, self.mean, self.inv_std, self.weight
        n, c, p = x.shape
        gy = np.ascontiguousarray(gy, x.dtype).reshape(n, c, p)
        sum_gy, sum_gy_xhat = np.zeros(c), np.zeros(c)
        cpu_norm.backward_sums(gy, x, mean, inv_std, sum_gy, sum_gy_xhat)
        all_gy, all_gy_xhat = self._global_sums(sum_gy, sum_gy_xhat, np)
        gx = np.empty(x.shape, x.dtype)
        if self.counted:
            cpu_norm.backward_input(gy, x, mean, inv_std, weight * inv_std, all_gy / self.total,
                                    all_gy_xhat / self.total, gx)
        else:
            gx[...] = 0
        return self.gradients(gx, sum_gy, sum_gy_xhat)

    def backward_gpu(self, gy):
        from ...ops import gpu
        xp = get_array_module(gy)
        n, c, p = self.x.shape
        gy = gpu.contiguous(gy, self.x.dtype).reshape(self.x.shape)
        sum_gy, sum_gy_xhat = gpu.norm.batch_norm_backward_sums(gy, self.x, self.mean, self.inv_std)
        all_gy, all_gy_xhat = self._global_sums(sum_gy, sum_gy_xhat, xp)
        if self.counted:   # the kernel divides the sums by this rank's n * p
            share = n * p / self.total
            gx = gpu.norm.batch_norm_backward_input(
                gy, self.x, self.mean, self.inv_std, self.weight * self.inv_std,
                (all_gy * share).astype(self.x.dtype), (all_gy_xhat * share).astype(self.x.dtype), True)
        else:
            gx = xp.zeros(self.x.shape, self.x.dtype)
        return self.gradients(gx, sum_gy, sum_gy_xhat)


class SyncBatchNorm2d(BatchNorm2d):
    """A ``BatchNorm2d`` whose training statistics span every rank (same parameters, buffers
    and state-dict names; ``synchronise_batchnorm`` turns existing layers into these)."""

    def forward(self, x):
        if not self.training:
            return super().forward(x)
        return SyncBatchNormFunction(self.comm, self.counted, self.momentum, self.eps)(
            x, self.running_mean, self.running_var, self.weight, self.bias)


def synchronise_batchnorm(model, comm):
    """Turn every BatchNorm2d of ``model`` into a SyncBatchNorm2d in place (the module keeps
    its place, so parameter order, names and checkpoints are unchanged); returns them."""
    layers = [m for _, m in model.named_modules() if type(m) is BatchNorm2d]
    for layer in layers:
        layer.__class__ = SyncBatchNorm2d
        object.__setattr__(layer, "comm", comm)
        object.__setattr__(layer, "counted", True)
    return layers
