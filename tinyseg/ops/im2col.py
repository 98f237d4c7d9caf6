"""im2col / col2im: turn a convolution into one matrix product.

For an input padded to (N, C, Hp, Wp), a kh x kw kernel and stride s, the
output has Ho = (Hp - kh) // s + 1 rows and Wo columns. ``im2col`` gathers,
for every output position, the C*kh*kw input values under the kernel:

    cols[n, (c, i, j), (oh, ow)] = x[n, c, oh*s + i, ow*s + j]

so that a convolution with weights W of shape (C_out, C*kh*kw) is the batched
GEMM  Y[n] = W @ cols[n]. ``col2im`` is its adjoint: it adds every column
entry back onto the pixel it was read from (overlapping windows sum).
"""
from __future__ import annotations

from ..backend import get_array_module


def output_size(size, kernel, stride, padding=0):
    """Output length of a sliding window (floor mode: a partial last window is dropped)."""
    return (size + 2 * padding - kernel) // stride + 1


def windows(x, kh, kw, stride, out_h, out_w):
    """A strided view (N, C, kh, kw, Ho, Wo) of every kernel window of ``x`` (no copy)."""
    xp = get_array_module(x)
    sn, sc, sh, sw = x.strides
    shape = x.shape[:2] + (kh, kw, out_h, out_w)
    return xp.lib.stride_tricks.as_strided(x, shape, (sn, sc, sh, sw, sh * stride, sw * stride))


def im2col(x, kh, kw, stride, out_h, out_w):
    """(N, C, Hp, Wp) -> (N, C*kh*kw, Ho*Wo), one contiguous copy."""
    n, c = x.shape[:2]
    if kh == kw == stride == 1:
        return x.reshape(n, c, x.shape[2] * x.shape[3])  # explicit size: also valid for N = 0
    view = windows(get_array_module(x).ascontiguousarray(x), kh, kw, stride, out_h, out_w)
    return view.reshape(n, c * kh * kw, out_h * out_w)


def col2im(cols, padded_shape, kh, kw, stride, out_h, out_w):
    """Adjoint of ``im2col``: (N, C*kh*kw, Ho*Wo) -> (N, C, Hp, Wp), summing overlaps.

    The Python loop runs over whichever is shorter, the kh*kw kernel offsets
    or the Ho*Wo output positions (a 64x64 upsampling kernel on a 4x5 grid),
    and each iteration adds a whole strided slab at once.
    """
    xp = get_array_module(cols)
    n, c = padded_shape[:2]
    cols = cols.reshape(n, c, kh, kw, out_h, out_w)
    image = xp.zeros(padded_shape, dtype=cols.dtype)
    if kh * kw <= out_h * out_w:
        for i in range(kh):
            for j in range(kw):
                image[:, :, i:i + stride * out_h:stride, j:j + stride * out_w:stride] += cols[:, :, i, j]
    else:
        for oh in range(out_h):
            for ow in range(out_w):
                image[:, :, oh * stride:oh * stride + kh, ow * stride:ow * stride + kw] += cols[..., oh, ow]
    return image


def pad2d(x, padding):
    if padding == 0:
        return x
    xp = get_array_module(x)
    return xp.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))


def crop2d(x, padding):
    return x if padding == 0 else x[:, :, padding:-padding, padding:-padding]
