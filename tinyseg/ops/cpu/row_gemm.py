"""Stride-1 convolutions with large kernels on small maps (H-ReNet's 7x7 conv6): one GEMM per
kernel row, on windows built along the rows only.

im2col copies every input value kh*kw times (49 for a 7x7 kernel) before the one large
product. Here the copy is made along the rows only: with xp the input padded by (ph, pw),

    R[r, n, q, j*C + c] = xp[n, c, r, q + j]      (R: (Hp, N, Wo, kw*C), kw copies of the input)

holds, for every padded row r and output column q, the kw*C values a kernel row sees. The
output rows o of kernel row i read R's rows o + i, so for each kernel row one GEMM over all
images and output columns adds its share to the (pre-activation) output:

    Z[k, (o, n, q)] += Wt[i][k, (j, c)] * R[o + i, n, q, (j, c)]     Wt[i][k, j*C + c] = w[k, c, i, j]

R[o + i] for a run of output rows o is a contiguous (rows*N*Wo, kw*C) block of R, so each
product reads its operand in place. The only zeros multiplied are the padding inside the
windows at the left and right edges: rows of R that are all padding are left out of the
products (``live_rows``). Threads: the output rows are split into one run per thread
(``cpu_runtime.run_parallel``), each summing its kh products into its own block of Z, with
numpy's BLAS on one thread (the autograd engine sets it so around every op).

Backward, with dZ the output gradient laid out as Z:

* dW: dWt[i] = dZ @ R[o + i], the sum over all (o, n, q) being the product's inner dimension:
  kh products per thread, each over the thread's run of rows; the threads' partial sums are
  added in a fixed order.
* dx: the input gradient of a stride-1 convolution is dZ correlated with the weights flipped
  in both spatial axes and transposed, padded by (kh - 1 - ph, kw - 1 - pw), which is the
  forward computation again (``correlate``).

Z is kept as (C_out, Ho, N, Wo) and moved to (N, C_out, Ho, Wo) at the end (a view when N = 1).
R goes into a workspace buffer reused from call to call; ``fits`` keeps it under
``ROW_WINDOWS_BUDGET_BYTES``, and larger convolutions use im2col by bands instead.
"""
from __future__ import annotations

import numpy as np

from ... import cpu_runtime
from . import direct, workspace

# The most bytes of row windows R one convolution builds (the input's size times kw).
ROW_WINDOWS_BUDGET_BYTES = 32 * 2 ** 20


def fits(in_shape, kernel, padding, itemsize):
    """Whether a stride-1 convolution of an (N, C, H, W) input with a kh x kw kernel and
    padding (ph, pw) runs here: a kernel larger than 1x1, padding of at most kernel - 1 (so that
    the input gradient is a convolution with padding >= 0), and its row windows within budget."""
    n, c, h, w = in_shape
    (kh, kw), (ph, pw) = kernel, padding
    if kh * kw == 1 or ph > kh - 1 or pw > kw - 1:
        return False
    out_w = w + 2 * pw - kw + 1
    return (h + 2 * ph) * n * out_w * kw * c * itemsize <= ROW_WINDOWS_BUDGET_BYTES


def row_windows(x, padding, kw):
    """R (Hp, N * Wo, kw * C) of the module docstring, in the "row windows" workspace buffer
    (valid until the next call)."""
    n, c, h, w = x.shape
    ph, pw = padding
    hp, wp = h + 2 * ph, w + 2 * pw
    out_w = wp - kw + 1
    # the input padded, channels last: (Hp, N, Wp, C); then a row window of kw pixels is kw*C
    # contiguous values, and R is that array seen with a stride of one pixel between windows
    channels_last = np.zeros((hp, n, wp, c), dtype=x.dtype)
    channels_last[ph:ph + h, :, pw:pw + w] = x.transpose(2, 0, 3, 1)
    s_row, s_image, s_pixel, _ = channels_last.strides
    windows = np.lib.stride_tricks.as_strided(channels_last, (hp, n, out_w, kw * c),
                                              (s_row, s_image, s_pixel, x.itemsize), writeable=False)
    size = hp * n * out_w * kw * c
    out = workspace.get("row windows", size * x.itemsize, x.dtype)[:size].reshape(hp, n * out_w, kw * c)
    out.reshape(windows.shape)[...] = windows
    return out


def row_runs(out_h):
    """[first, last) output rows of each thread's run."""
    return [(rows[0], rows[-1] + 1) for rows in cpu_runtime.split(range(out_h), cpu_runtime.threads())]


def live_rows(first, last, i, ph, h):
    """[lo, hi): the output rows o of [first, last) whose kernel row i reads an input row, not
    the zero padding: padded row o + i is an input row when ph <= o + i < ph + h. On a small
    map the padding rows are a good part of the work (a 7x7 kernel on 8 rows, padding 3: 21%
    of the products), and skipping them changes no sum."""
    return max(first, ph - i), min(last, ph + h - i)


def correlate(x, w, padding):
    """The stride-1 cross-correlation of x (N, C, H, W) with w (K, C, kh, kw), padding (ph, pw):
    (N, K, Ho, Wo), no bias."""
    n = x.shape[0]
    k, c, kh, kw = w.shape
    dtype = np.result_type(x, w)
    windows = row_windows(x.astype(dtype, copy=False), padding, kw)
    out_h, width = windows.shape[0] - kh + 1, windows.shape[1]          # width: N * Wo
    wt = np.ascontiguousarray(w.transpose(2, 0, 3, 1), dtype=dtype).reshape(kh, k, kw * c)
    z = np.empty((k, out_h * width), dtype=dtype)

    flat = windows.reshape(-1, kw * c)

    def run(first, last):
        # Z[:, rows first..last) = sum over i of Wt[i] @ R[rows first+i..last+i)^T, each product
        # over the rows whose window row i is not padding
        total = np.zeros((k, (last - first) * width), dtype=dtype)
        term = np.empty_like(total)
        for i in range(kh):
            lo, hi = live_rows(first, last, i, padding[0], x.shape[2])
            if lo >= hi:
                continue
            columns = slice((lo - first) * width, (hi - first) * width)
            np.matmul(wt[i], flat[(lo + i) * width:(hi + i) * width].T, out=term[:, columns])
            total[:, columns] += term[:, columns]
        z[:, first * width:last * width] = total

    cpu_runtime.run_parallel(lambda span=span: run(*span) for span in row_runs(out_h))
    return z.reshape(k, out_h, n, -1).transpose(2, 0, 1, 3)


def input_grad(gz, w, padding):
    """dx (N, C, H, W) of a stride-1 convolution from dZ (N, K, Ho, Wo)."""
    kh, kw = w.shape[2:]
    return correlate(gz, direct.flipped(w), (kh - 1 - padding[0], kw - 1 - padding[1]))


def weight_grad(x, gz, padding):
    """dW (K, C, kh, kw) of a stride-1 convolution from its input x and dZ (N, K, Ho, Wo), with
    kernel size (kh, kw) read off the shapes."""
    n, c, h, w = x.shape
    k, out_h, out_w = gz.shape[1:]
    kh, kw = h + 2 * padding[0] - out_h + 1, w + 2 * padding[1] - out_w + 1
    dtype = np.result_type(x, gz)
    windows = row_windows(x.astype(dtype, copy=False), padding, kw)
    width = windows.shape[1]
    # dZ as Z is laid out: (K, Ho, N, Wo), rows (o, n, q) in R's order
    gz_rows = np.ascontiguousarray(gz.transpose(1, 2, 0, 3), dtype=dtype).reshape(k, out_h * width)

    flat = windows.reshape(-1, kw * c)

    def run(first, last):
        # this run's share of dWt[i] = dZ[:, rows first..last) @ R[rows first+i..last+i), over
        # the rows whose window row i is not padding
        part = np.zeros((kh, k, kw * c), dtype=dtype)
        for i in range(kh):
            lo, hi = live_rows(first, last, i, padding[0], h)
            if lo < hi:
                np.matmul(gz_rows[:, lo * width:hi * width], flat[(lo + i) * width:(hi + i) * width], out=part[i])
        return part

    parts = cpu_runtime.run_parallel(lambda span=span: run(*span) for span in row_runs(out_h))
    dwt = sum(parts[1:], parts[0])
    # dWt[i, k, j*C + c] = dW[k, c, i, j]
    return np.ascontiguousarray(dwt.reshape(kh, k, kw, c).transpose(1, 3, 0, 2))
