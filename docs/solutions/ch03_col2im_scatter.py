"""Chapter 3, exercise 2: col2im as a scatter-add with np.add.at.

    python docs/solutions/ch03_col2im_scatter.py
"""
import numpy as np

from tinyseg.ops.cpu.im2col import col2im, im2col


def col2im_scatter(cols, shape, kh, kw, s, p, out_h, out_w):
    """cols (C*kh*kw, N, Ho*Wo) -> image (N, C, H, W), adding every entry onto its pixel."""
    n, c, h, w = shape
    # the source pixel of every entry, broadcast over the axes (c, i, j, n, oh, ow)
    C_, I, J, B, OH, OW = np.ix_(range(c), range(kh), range(kw), range(n), range(out_h), range(out_w))
    Y, X = OH * s + I - p, OW * s + J - p
    inside = (Y >= 0) & (Y < h) & (X >= 0) & (X < w)          # entries read from the padding: dropped
    full = np.broadcast_shapes(Y.shape, X.shape, B.shape, C_.shape)
    Y, X, B, C_, inside = (np.broadcast_to(a, full) for a in (Y, X, B, C_, inside))
    image = np.zeros(shape)
    np.add.at(image, (B[inside], C_[inside], Y[inside], X[inside]), cols.reshape(full)[inside])
    return image


rng = np.random.default_rng(0)
shape, kh, kw, s, p = (2, 3, 7, 6), 3, 3, 2, 1
out_h, out_w = (7 + 2 * p - kh) // s + 1, (6 + 2 * p - kw) // s + 1
cols = rng.standard_normal((3 * kh * kw, 2, out_h * out_w))
mine = col2im_scatter(cols, shape, kh, kw, s, p, out_h, out_w)
assert np.allclose(mine, col2im(cols, shape, kh, kw, s, p, out_h, out_w))
a = rng.standard_normal(shape)
assert np.isclose((im2col(a, kh, kw, s, p, out_h, out_w) * cols).sum(), (a * mine).sum())   # adjoint

# Buffered fancy assignment: with repeated indices, image[idx] += v keeps only the last
# write to each pixel instead of adding them all, so pixels read by several windows lose
# contributions. np.add.at is unbuffered: every entry is added.
pixel = np.zeros(3)
np.add.at(pixel, [0, 0, 1], 1.0)
wrong = np.zeros(3)
wrong[[0, 0, 1]] += 1.0
assert pixel.tolist() == [2.0, 1.0, 0.0] and wrong.tolist() == [1.0, 1.0, 0.0]
print("col2im as np.add.at matches the library's and is im2col's adjoint")
