"""Chapter 11, exercise 1: why each rank weighs its gradient by its share of the batch.

    python docs/solutions/ch11_unequal_shares.py

A batch of 5 images on 2 ranks is split 2 + 3. The plain average of the two ranks'
gradients, (g_0 + g_1) / 2, counts each image of the smaller share 3/2 times too much and
each of the larger 3/4 too little: it is the gradient of another loss, off by several
percent here. Weighing each rank's gradient by b_r / B, as tinyseg does, gives the whole
batch's gradient to float32 rounding. With equal shares the two agree, which is why DDP
can divide by the number of ranks.
"""
import numpy as np

import tinyseg as ts
import tinyseg.functional as F

rng = np.random.default_rng(1)
w = ts.tensor(rng.standard_normal((3, 1, 3, 3)).astype(np.float32), requires_grad=True)
x = rng.standard_normal((5, 1, 8, 8)).astype(np.float32)
y = rng.integers(0, 3, (5, 8, 8))


def gradient(images, labels):
    w.grad = None
    F.cross_entropy(F.conv2d(ts.tensor(images), w, padding=1), ts.tensor(labels)).backward()
    return w.grad.copy()


whole = gradient(x, y)
shares = [slice(0, 2), slice(2, 5)]
parts = [gradient(x[s], y[s]) for s in shares]
averaged = sum(parts) / len(parts)
weighted = sum(len(y[s]) / len(y) * g for s, g in zip(shares, parts))

error = np.abs(averaged - whole).max() / np.abs(whole).max()
assert error > 1e-2, error                              # the plain average is another gradient
np.testing.assert_allclose(weighted, whole, rtol=1e-5, atol=1e-6)

equal = [slice(0, 2), slice(2, 4)]                      # equal shares: average == weighted
four = gradient(x[:4], y[:4])
np.testing.assert_allclose(sum(gradient(x[s], y[s]) for s in equal) / 2, four, rtol=1e-5, atol=1e-6)
print(f"plain average off by {error:.1%} of the largest gradient entry; weighted: exact")
