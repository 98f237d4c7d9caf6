"""Per-pixel softmax cross-entropy.

The CPU path runs the Numba kernels in ``cpu/loss.py``: forward makes one pass over
the logits and keeps the softmax, backward turns that softmax into the gradient.
"""
from __future__ import annotations

import math

import numpy as np

from ..autograd import Function
from . import gpu
from .cpu import loss as cpu_loss


class CrossEntropy(Function):
    """Mean over pixels of -weight[t] * log softmax(logits)[t].

    logits (N, C, ...) and integer targets (N, ...). With class weights the
    mean is weighted: sum_i w[t_i] * loss_i / sum_i w[t_i] (PyTorch's rule).
    Backward: d loss_i / d logits_i = w[t_i] * (softmax_i - onehot(t_i)) / sum w.
    """

    def forward(self, logits, target, weight=None):
        if logits.ndim < 2 or target.shape != logits.shape[:1] + logits.shape[2:]:
            raise ValueError(f"cross_entropy: logits {logits.shape} need targets of shape "
                             f"{logits.shape[:1] + logits.shape[2:]}, got {target.shape}")
        if target.dtype.kind not in "iu":
            raise TypeError(f"cross_entropy: targets must be integer class indices, got {target.dtype}")
        n_classes = logits.shape[1]
        if target.size and (int(target.min()) < 0 or int(target.max()) >= n_classes):
            raise ValueError(f"cross_entropy: target values must lie in [0, {n_classes - 1}], "
                             f"found [{int(target.min())}, {int(target.max())}]")
        if weight is not None and weight.shape != (n_classes,):
            raise ValueError(f"cross_entropy: weight shape {weight.shape}, expected ({n_classes},)")
        if gpu.on_gpu(logits):
            return gpu.loss.cross_entropy_forward(self, logits, target, weight)
        # the kernels see (N, C, P) logits and (N, P) targets, P the number of pixels per image
        self.logits_shape = logits.shape
        n, pixels = target.shape[0], math.prod(target.shape[1:])
        logits = np.ascontiguousarray(logits).reshape(n, n_classes, pixels)
        target = np.ascontiguousarray(target, dtype=np.int64).reshape(n, pixels)
        weight = np.ones(n_classes, logits.dtype) if weight is None else np.ascontiguousarray(weight, logits.dtype)
        softmax = np.empty_like(logits)
        pixel_loss, pixel_weight = (np.empty(target.shape, logits.dtype) for _ in range(2))
        cpu_loss.cross_entropy_forward(logits, target, weight, softmax, pixel_loss, pixel_weight)
        total = pixel_weight.sum()
        self.softmax, self.target, self.weight, self.total = softmax, target, weight, total
        return -pixel_loss.sum() / total

    def backward(self, gy):
        if gpu.on_gpu(gy):
            return gpu.loss.cross_entropy_backward(self, gy)
        grad = np.empty_like(self.softmax)
        scale = np.asarray(gy / self.total, grad.dtype).reshape(1)
        cpu_loss.cross_entropy_backward(self.softmax, self.target, self.weight, scale, grad)
        return (grad.reshape(self.logits_shape), None) + ((None,) if len(self.needs_grad) > 2 else ())


def cross_entropy(logits, target, weight=None):
    inputs = (logits, target) if weight is None else (logits, target, weight)
    return CrossEntropy()(*inputs)
