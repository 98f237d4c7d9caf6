"""Chapter 1, exercise 3: gradients accumulated over mini-batches equal the full batch's.

    python docs/solutions/ch01_accumulate.py
"""
import numpy as np

import tinyseg as ts
from tinyseg.graph import to_dot

rng = np.random.default_rng(0)
X, target = rng.standard_normal((8, 3)), rng.standard_normal((8, 1))
w = ts.tensor(rng.standard_normal((3, 1)), requires_grad=True)


def loss(rows):
    """Mean squared error over the samples ``rows``."""
    error = ts.tensor(X[rows]) @ w - ts.tensor(target[rows])
    return (error * error).mean()


loss(slice(0, 8)).backward()
full = w.grad
w.zero_grad()

batches = [slice(k, k + 2) for k in range(0, 8, 2)]
for rows in batches:
    # each batch's mean is over 2 samples; the full mean is over 8: scale by 2/8 = 1/4
    (loss(rows) * (1 / len(batches))).backward()     # .grad is not cleared in between
assert np.allclose(w.grad, full)

step = loss(slice(0, 2))
dot = to_dot(step, {w: "w"})
functions = dot.count("shape=ellipse")
assert functions == 5          # MatMul, Sub, Mul, and mean = Sum then Div by the count
print(dot)
print(f"accumulated over {len(batches)} mini-batches = full-batch gradient; one step has {functions} functions")
