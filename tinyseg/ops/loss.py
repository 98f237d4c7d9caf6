"""Per-pixel softmax cross-entropy."""
from __future__ import annotations

from ..autograd import Function
from ..backend import get_array_module
from . import gpu


def log_softmax(x, axis=1):
    """log softmax, stable for any logits: subtract the max before exponentiating."""
    xp = get_array_module(x)
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))


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
        logp = log_softmax(logits, axis=1)
        picked = xp.take_along_axis(logp, target[:, None].astype(xp.int64), axis=1)[:, 0]
        pixel_weight = xp.ones_like(picked) if weight is None else weight[target]
        total = pixel_weight.sum()
        self.logp, self.target, self.pixel_weight, self.total = logp, target, pixel_weight, total
        return -(pixel_weight * picked).sum() / total

    def backward(self, gy):
        if gpu.on_gpu(gy):
            return gpu.loss.cross_entropy_backward(self, gy)
        xp = get_array_module(self.logp)
        grad = xp.exp(self.logp)                                   # softmax
        onehot_index = self.target[:, None].astype(xp.int64)
        picked = xp.take_along_axis(grad, onehot_index, axis=1)
        xp.put_along_axis(grad, onehot_index, picked - 1, axis=1)  # softmax - onehot
        grad *= (self.pixel_weight / self.total)[:, None] * gy
        return (grad, None) + ((None,) if len(self.needs_grad) > 2 else ())


def cross_entropy(logits, target, weight=None):
    inputs = (logits, target) if weight is None else (logits, target, weight)
    return CrossEntropy()(*inputs)
