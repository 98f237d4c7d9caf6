"""Per-pixel softmax cross-entropy.

Forward makes one pass over the logits and keeps the softmax, backward turns that
softmax into the gradient: the Numba kernels in ``cpu/loss.py`` on the CPU, the CUDA
kernels in ``cuda/cross_entropy.cu`` on the GPU.
"""
from __future__ import annotations

import math

import numba
import numpy as np

from ..autograd import Function
from ..backend import get_array_module
from . import gpu
from .cpu import loss as cpu_loss, workspace


def pixels_last(a, leading):
    """The axes after the first ``leading`` merged into one: (N, C, ...) -> (N, C, P) for
    leading = 2, (N, ...) -> (N, P) for leading = 1."""
    return a.reshape(a.shape[:leading] + (math.prod(a.shape[leading:]),))


def scratch(name, logits3, dtype):
    """A (workers, BLOCK) scratch array for the CPU kernels, one row per worker: as many
    workers as Numba threads, but no more than there are blocks of pixels. Reused from
    call to call (``cpu/workspace.py``)."""
    n, _, plane = logits3.shape
    workers = max(1, min(numba.get_num_threads(), n * -(-plane // cpu_loss.BLOCK)))
    size = workers * cpu_loss.BLOCK
    return workspace.get("cross_entropy_" + name, size * np.dtype(dtype).itemsize, dtype)[:size].reshape(
        workers, cpu_loss.BLOCK)


def check_target_range(target, n_classes):
    """Raise ValueError unless every target lies in [0, n_classes)."""
    if target.size and (int(target.min()) < 0 or int(target.max()) >= n_classes):
        raise ValueError(f"cross_entropy: target values must lie in [0, {n_classes - 1}], "
                         f"found [{int(target.min())}, {int(target.max())}]")


class CrossEntropy(Function):
    """Mean over pixels of -weight[t] * log softmax(logits)[t].

    logits (N, C, ...) and integer targets (N, ...). With class weights the
    mean is weighted: sum_i w[t_i] * loss_i / sum_i w[t_i] (PyTorch's rule).
    Backward: d loss_i / d logits_i = w[t_i] * (softmax_i - onehot(t_i)) / sum w, the
    target class's entry computed as minus the sum of the other classes' softmax (no
    cancellation on a confident pixel, where softmax_t is near 1).

    Both devices keep the softmax (the logits' shape), the targets (int64), the class
    weights (ones without weights) and the total weight. The kernels see logits as
    (N, C, P) and targets as (N, P), P the number of pixels per image.
    """

    saves = ("softmax", "target", "weight", "total")

    def prepare(self, logits, target, weight, check_targets=True):
        if logits.ndim < 2 or target.shape != logits.shape[:1] + logits.shape[2:]:
            raise ValueError(f"cross_entropy: logits {logits.shape} need targets of shape "
                             f"{logits.shape[:1] + logits.shape[2:]}, got {target.shape}")
        if target.dtype.kind not in "iu":
            raise TypeError(f"cross_entropy: targets must be integer class indices, got {target.dtype}")
        n_classes = logits.shape[1]
        if check_targets:
            check_target_range(target, n_classes)
        if weight is not None and weight.shape != (n_classes,):
            raise ValueError(f"cross_entropy: weight shape {weight.shape}, expected ({n_classes},)")
        # labels and class weights may still be on the host: they are small, copied over
        xp = get_array_module(logits)
        weight = xp.ones(n_classes, logits.dtype) if weight is None else xp.asarray(weight, logits.dtype)
        return (pixels_last(xp.ascontiguousarray(logits), 2),
                xp.ascontiguousarray(xp.asarray(target), dtype=xp.int64), xp.ascontiguousarray(weight))

    def forward_cpu(self, logits, target, weight=None):
        logits3, target, weight = self.prepare(logits, target, weight)
        softmax = np.empty_like(logits3)
        pixel_loss, pixel_weight = (np.empty(logits3.shape[:1] + logits3.shape[2:], logits.dtype) for _ in range(2))
        cpu_loss.cross_entropy_forward(logits3, pixels_last(target, 1), weight, softmax, pixel_loss,
                                       pixel_weight, scratch("top", logits3, logits.dtype),
                                       scratch("first", logits3, np.int32), scratch("rest", logits3, np.float64))
        return self.finish(softmax.reshape(logits.shape), target, weight, pixel_loss, pixel_weight)

    def forward_gpu(self, logits, target, weight=None):
        # the kernel checks the targets (reading back one flag), not two reductions here
        logits3, target, weight = self.prepare(logits, target, weight, check_targets=False)
        softmax, pixel_loss, pixel_weight, invalid = gpu.loss.cross_entropy_forward(logits3, target, weight)
        if invalid:
            check_target_range(target, logits.shape[1])
        return self.finish(softmax.reshape(logits.shape), target, weight, pixel_loss, pixel_weight)

    def finish(self, softmax, target, weight, pixel_loss, pixel_weight):
        total = pixel_weight.sum()
        self.save(softmax=softmax, target=target, weight=weight, total=total)
        return -pixel_loss.sum() / total

    def backward_cpu(self, gy):
        softmax = pixels_last(self.softmax, 2)
        grad = np.empty_like(softmax)
        scale = np.asarray(gy / self.total, grad.dtype).reshape(1)
        cpu_loss.cross_entropy_backward(softmax, pixels_last(self.target, 1), self.weight, scale, grad,
                                        scratch("scale", softmax, grad.dtype), scratch("others", softmax, np.float64))
        return self.gradients(grad)

    def backward_gpu(self, gy):
        scale = gpu.contiguous(gy / self.total, self.softmax.dtype).reshape(1)
        return self.gradients(gpu.loss.cross_entropy_backward(self.softmax, self.target, self.weight, scale))

    def gradients(self, grad):
        return (grad.reshape(self.softmax.shape), None) + ((None,) if len(self.needs_grad) > 2 else ())


def cross_entropy(logits, target, weight=None):
    inputs = (logits, target) if weight is None else (logits, target, weight)
    return CrossEntropy()(*inputs)
