"""Chapter 9, exercise 2: batch norm's gradients in evaluation mode.

    python docs/solutions/ch09_batchnorm_eval.py

With the running statistics m, v as inputs, y = w (x - m) s + b and s = (v + eps)^(-1/2):
    dx = w s dy                         (m and v do not depend on x: no other path)
    dm = -w s sum(dy)
    dv = sum(dy w (x - m)) * ds/dv = -1/2 w s^3 sum(dy (x - m)) = -1/2 w s^2 sum(dy x_hat)
dx is simple because evaluation mode normalises with constants: the mean and variance
terms of the training-mode formula come from x's influence on the batch statistics.
"""
import numpy as np

import tinyseg as ts
import tinyseg.functional as F

rng = np.random.default_rng(0)
x = rng.standard_normal((2, 3, 4, 4))
m, v = rng.standard_normal(3), rng.uniform(0.5, 2.0, 3)
w, b = rng.standard_normal(3), rng.standard_normal(3)
dy = rng.standard_normal(x.shape)

tensors = [ts.tensor(a, requires_grad=True) for a in (x, m, v, w, b)]
F.batch_norm(*tensors, training=False).backward(dy)

axes, c = (0, 2, 3), (None, slice(None), None, None)
s = 1 / np.sqrt(v + 1e-5)
x_hat = (x - m[c]) * s[c]
expected = [w[c] * s[c] * dy,
            -w * s * dy.sum(axis=axes),
            -0.5 * w * s ** 2 * (dy * x_hat).sum(axis=axes),
            (dy * x_hat).sum(axis=axes),
            dy.sum(axis=axes)]
for name, t, e in zip(["x", "running_mean", "running_var", "weight", "bias"], tensors, expected):
    assert np.allclose(t.grad, e), name
assert ts.gradcheck(lambda *a: F.batch_norm(*a, training=False), [ts.tensor(a, requires_grad=True)
                                                                   for a in (x, m, v, w, b)])
print("evaluation-mode batch norm: every gradient matches the derivation and gradcheck")
