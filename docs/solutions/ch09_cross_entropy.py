"""Chapter 9, exercise 1: softmax cross-entropy by hand, and where float32 loses the gradient.

    python docs/solutions/ch09_cross_entropy.py
"""
import numpy as np

import tinyseg as ts
import tinyseg.functional as F


def cross_entropy(z, t, w):
    """z (N, C, P) logits, t (N, P) classes, w (C,) weights -> (loss, dL/dz), PyTorch's weighted mean."""
    m = z.max(axis=1, keepdims=True)                             # log-sum-exp shift
    e = np.exp(z - m)
    total = e.sum(axis=1, keepdims=True)
    log_softmax = (z - m) - np.log(total)
    softmax = e / total
    wt = w[t]                                                    # (N, P) weight of each pixel
    picked = np.take_along_axis(log_softmax, t[:, None], axis=1)[:, 0]
    loss = -(wt * picked).sum() / wt.sum()
    onehot = np.arange(z.shape[1])[None, :, None] == t[:, None]
    others = np.where(onehot, 0.0, softmax).sum(axis=1, keepdims=True)
    grad = np.where(onehot, -others, softmax)                    # the target's entry: -(sum of the others)
    return loss, grad * wt[:, None] / wt.sum()


rng = np.random.default_rng(0)
z = rng.standard_normal((2, 3, 5)) * 3
t = rng.integers(0, 3, (2, 5))
w = np.array([0.2, 1.0, 3.0])
loss, grad = cross_entropy(z, t, w)
logits = ts.tensor(z, requires_grad=True)
engine = F.cross_entropy(logits, t, w)
engine.backward()
assert np.isclose(engine.item(), loss) and np.allclose(logits.grad, grad)


def naive_target_grad(margin):
    """float32 softmax_t - 1 for two classes whose logits differ by ``margin`` (an array of them)."""
    z32 = np.stack([np.asarray(margin, np.float32), np.zeros(np.shape(margin), np.float32)])
    e = np.exp(z32 - z32.max(axis=0))
    return (e / e.sum(axis=0))[0] - np.float32(1)


margins = np.arange(10.0, 25.0, 0.01)
first_zero = margins[np.argmax(naive_target_grad(margins) == 0)]
# The shifted exponentials are 1 and e^-m; their sum 1 + e^-m rounds to exactly 1 once e^-m
# is below half the spacing of float32 numbers above 1 (2^-23 / 2): m > 24 ln 2 = 16.6.
# Before that the naive gradient is a multiple of 2^-23 ~ 1.2e-7: at most a digit right.
predicted = 24 * np.log(2)
true = -1 / (1 + np.exp(16.5))                                 # -6.8e-8
assert naive_target_grad(16.5) == -2.0 ** -23 and abs(naive_target_grad(16.5) / true - 1) > 0.5
assert abs(first_zero - predicted) < 0.3
print(f"naive float32 gradient vanishes from margin {first_zero:.2f} (predicted {predicted:.2f});")
stable = cross_entropy(np.array([[[first_zero], [0.0]]], np.float32), np.zeros((1, 1), np.int64), np.ones(2))[1]
assert stable[0, 0, 0] < 0
print(f"computed as minus the others it is {stable[0, 0, 0]:.3g}")
