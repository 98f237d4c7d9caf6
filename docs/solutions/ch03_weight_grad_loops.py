"""Chapter 3, exercise 1: the convolution's weight gradient written as plain loops.

    python docs/solutions/ch03_weight_grad_loops.py

y[n, o, r, q] = sum_{c,i,j} w[o, c, i, j] * xpad[n, c, r*s + i, q*s + j], so
dW[o, c, i, j] = sum_{n,r,q} gy[n, o, r, q] * xpad[n, c, r*s + i, q*s + j].
The sum over (n, r, q), every output position of every image, is the long axis
N*Ho*Wo of the GEMM dW = dZ cols^T.
"""
import numpy as np

import tinyseg as ts
import tinyseg.functional as F

rng = np.random.default_rng(0)
N, C, H, W, O, K, s, p = 2, 3, 6, 5, 4, 3, 2, 1
x = rng.standard_normal((N, C, H, W))
w = ts.tensor(rng.standard_normal((O, C, K, K)), requires_grad=True)
y = F.conv2d(ts.tensor(x), w, stride=s, padding=p)
gy = rng.standard_normal(y.shape)
y.backward(gy)

xpad = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
Ho, Wo = y.shape[2:]
dw = np.zeros((O, C, K, K))
for o in range(O):
    for c in range(C):
        for i in range(K):
            for j in range(K):
                for n in range(N):                  # the reduction: images ...
                    for r in range(Ho):             # ... and output rows ...
                        for q in range(Wo):         # ... and columns
                            dw[o, c, i, j] += gy[n, o, r, q] * xpad[n, c, r * s + i, q * s + j]
assert np.allclose(dw, w.grad)
print(f"dW by loops matches the engine; reduction length N*Ho*Wo = {N * Ho * Wo}")
