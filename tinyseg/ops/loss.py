"""Per-pixel softmax cross-entropy."""
from __future__ import annotations

from ..autograd import Function
from ..backend import get_array_module
from . import gpu


class CrossEntropy(Function):
    """Mean over pixels of -weight[t] * log softmax(logits)[t].

    logits (N, C, ...) and integer targets (N, ...). With class weights the
    mean is weighted: sum_i w[t_i] * loss_i / sum_i w[t_i] (PyTorch's rule).
    Backward: d loss_i / d logits_i = w[t_i] * (softmax_i - onehot(t_i)) / sum w.
    """

    def forward(self, logits, target, weight=None):
        xp = get_array_module(logits)
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
        # log softmax at the target only: shifted[t] - log(sum exp(shifted)), shifted = z - max z
        shifted = logits - logits.max(axis=1, keepdims=True)
        exp = xp.exp(shifted)
        denominator = exp.sum(axis=1, keepdims=True)
        target_index = target[:, None].astype(xp.int64)
        picked = xp.take_along_axis(shifted, target_index, axis=1)[:, 0] - xp.log(denominator[:, 0])
        pixel_weight = xp.ones_like(picked) if weight is None else weight[target]
        total = pixel_weight.sum()
        exp /= denominator                                          # softmax, kept for backward
        self.softmax, self.target_index, self.pixel_weight, self.total = exp, target_index, pixel_weight, total
        return -(pixel_weight * picked).sum() / total

    def backward(self, gy):
        if gpu.on_gpu(gy):
            return gpu.loss.cross_entropy_backward(self, gy)
        xp = get_array_module(self.softmax)
        scale = (self.pixel_weight * (gy / self.total))[:, None]
        grad = self.softmax * scale
        picked = xp.take_along_axis(grad, self.target_index, axis=1)
        xp.put_along_axis(grad, self.target_index, picked - scale, axis=1)   # scale * (softmax - onehot)
        return (grad, None) + ((None,) if len(self.needs_grad) > 2 else ())


def cross_entropy(logits, target, weight=None):
    inputs = (logits, target) if weight is None else (logits, target, weight)
    return CrossEntropy()(*inputs)
