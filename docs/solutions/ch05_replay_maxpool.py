"""Chapter 5, exercise 2: the threads of cuda/pool.cu's max_pool_forward, replayed in NumPy.

    python docs/solutions/ch05_replay_maxpool.py

One thread per output element, in the output's memory order: index -> (plane, oh, ow),
plane = n * C + c. Each thread scans its kh x kw window in row-major order and keeps the
first maximum and its position in the H*W plane.
"""
import numpy as np

import tinyseg as ts
import tinyseg.functional as F


def max_pool_threads(x, kh, kw, sh, sw):
    n, c, h, w = x.shape
    out_h, out_w = (h - kh) // sh + 1, (w - kw) // sw + 1
    index = np.arange(n * c * out_h * out_w)                   # one entry per GPU thread
    ow, oh, plane = index % out_w, index // out_w % out_h, index // (out_h * out_w)
    source = x.reshape(n * c, h * w)
    top, left = oh * sh, ow * sw
    best_at = top * w + left
    best = source[plane, best_at]
    for i in range(kh):                                        # every thread runs the same loop
        for j in range(kw):
            at = (top + i) * w + left + j
            v = source[plane, at]
            better = v > best                                  # strict: the first maximum wins ties
            best, best_at = np.where(better, v, best), np.where(better, at, best_at)
    shape = (n, c, out_h, out_w)
    return best.reshape(shape), best_at.reshape(shape)


rng = np.random.default_rng(0)
x = rng.standard_normal((2, 3, 7, 9))
x[0, 0, 0, 1] = x[0, 0, 0, 0]                                  # a tie in the first window
for kernel, stride in ((2, 2), (3, 2)):                        # also overlapping windows
    y, argmax = max_pool_threads(x, kernel, kernel, stride, stride)
    out = F.max_pool2d(ts.tensor(x, requires_grad=True), kernel, stride)
    assert np.array_equal(y, out.numpy())
    assert np.array_equal(argmax, out.creator.saved()["argmax"])
print("replayed threads give the values and argmax of F.max_pool2d")
