"""Max pooling kernels: one pass over the input forward, one over the gradient backward.

The batch and channel axes arrive merged into one axis of planes: x and gx
(planes, H, W), y, gy and argmax (planes, Ho, Wo), all C-contiguous. ``argmax``
holds the position of each window's maximum inside its H*W plane (row * W +
column), as the GPU kernels in ``cuda/pool.cu`` store it.

Any window and stride go through ``max_pool_forward`` and ``max_pool_backward``.
Two faster paths give the same results where they apply: ``max_pool_backward_disjoint``
when windows do not overlap (stride >= kernel), and the pair ``max_pool_forward_2x2`` /
``max_pool_backward_2x2`` for the 2x2, stride-2 pool of every encoder block, whose loops
along a row LLVM vectorises.
"""
from __future__ import annotations

from numba import njit, prange

from .launch import kernel


@njit(inline="always")
def replaces(value, best):
    """Whether ``value`` becomes a window's running maximum: it is larger, or it is a NaN where
    no NaN came before (bitwise & and |, so that no branch is left for the vectoriser)."""
    return ((value > best) | (value != value)) & (best == best)


@kernel()
def max_pool_forward(x, y, argmax, kh, kw, sh, sw):
    # Threads: prange over the output rows of all planes (planes * Ho rows), so a batch
    # of one image keeps every thread busy; each row reads only its own kh input rows.
    # A window is scanned in row-major order and only a strictly larger value replaces
    # the running maximum, so ties go to the first maximum; a NaN counts as the maximum and
    # the first NaN of a window stays (NumPy's argmax rule, as in cuda/pool.cu), so a NaN
    # anywhere in a window reaches the output (``replaces``). The update is written as two
    # selects so that it compiles without unpredictable branches.
    planes, h, w = x.shape
    out_h, out_w = y.shape[1:]
    for row in prange(planes * out_h):
        p, oy = row // out_h, row % out_h
        plane = x[p].reshape(h * w)
        for ox in range(out_w):
            corner = oy * sh * w + ox * sw          # top-left pixel of the window
            best, best_at = plane[corner], corner
            for i in range(kh):
                for j in range(kw):
                    at = corner + i * w + j
                    better = replaces(plane[at], best)
                    best = plane[at] if better else best
                    best_at = at if better else best_at
            y[p, oy, ox] = best
            argmax[p, oy, ox] = best_at


@kernel()
def max_pool_forward_2x2(x, y, argmax):
    # The 2x2, stride-2 pool of every encoder block, as max_pool_forward(x, y, argmax, 2, 2, 2, 2)
    # computes it: same values, same argmax, same rules for ties and NaNs.
    # Threads: prange over the output rows of all planes (planes * Ho rows), as above;
    # each row reads its two input rows and writes only its own output row.
    # The window of output ox is top[2ox], top[2ox+1], bottom[2ox], bottom[2ox+1]: the
    # scan of max_pool_forward unrolled, one select chain in row-major order, so a value
    # replaces the running maximum only when strictly larger (or the first NaN). With no
    # loop over the window and no branch left, LLVM vectorises the loop along the output
    # row (even and odd columns are de-interleaved with shuffles). The argmax is the window's corner
    # plus the winner's offset: 0, 1, W or W + 1. Floor mode needs nothing special: the
    # last row or column of an odd H or W is simply never read.
    planes, h, w = x.shape
    out_h, out_w = y.shape[1:]
    for row in prange(planes * out_h):
        p, oy = row // out_h, row % out_h
        top, bottom = x[p, 2 * oy], x[p, 2 * oy + 1]
        y_row, argmax_row = y[p, oy], argmax[p, oy]
        for ox in range(out_w):
            best, offset = top[2 * ox], 0
            better = replaces(top[2 * ox + 1], best)
            best, offset = (top[2 * ox + 1], 1) if better else (best, offset)
            better = replaces(bottom[2 * ox], best)
            best, offset = (bottom[2 * ox], w) if better else (best, offset)
            better = replaces(bottom[2 * ox + 1], best)
            best, offset = (bottom[2 * ox + 1], w + 1) if better else (best, offset)
            y_row[ox] = best
            argmax_row[ox] = 2 * oy * w + 2 * ox + offset


@kernel()
def max_pool_backward(gy, argmax, gx):
    # Backward: gx[q] = sum of gy over the windows whose maximum sits at q, zero elsewhere.
    # Threads: prange over planes (N * C of them): each thread zeroes its plane of gx and
    # adds every window's gradient at its argmax. Overlapping windows (stride < kernel)
    # that share a maximum add into the same pixel, which only one thread ever writes:
    # no races, no atomics (a batch of one single-channel map runs on one thread).
    # Windows go from the last to the first.
    planes, h, w = gx.shape
    out_h, out_w = gy.shape[1:]
    for p in prange(planes):
        plane = gx[p].reshape(h * w)
        plane[:] = 0
        for oy in range(out_h - 1, -1, -1):
            for ox in range(out_w - 1, -1, -1):
                plane[argmax[p, oy, ox]] += gy[p, oy, ox]


@kernel()
def max_pool_backward_disjoint(gy, argmax, gx, sh):
    # Backward when windows do not overlap (stride >= kernel on both axes, sh the row
    # stride): every input pixel lies in at most one window, so gx is gy at each window's
    # argmax and zero elsewhere, and each gradient is stored, not added.
    # Threads: prange over the output rows of all planes (planes * Ho rows). Output row oy
    # owns the band of input rows oy*sh .. oy*sh + sh - 1 (the last row of outputs also the
    # rows that floor mode dropped, up to H). The bands tile gx, and every window of row oy,
    # with its argmax, lies inside its band (kh <= sh), so no two threads write the same
    # pixel: no races, no atomics. There is no separate zeroing pass over gx either: each
    # thread zeroes its own band, then stores its gradients while the band is in cache.
    planes, h, w = gx.shape
    out_h, out_w = gy.shape[1:]
    for row in prange(planes * out_h):
        p, oy = row // out_h, row % out_h
        first = oy * sh
        last = h if oy == out_h - 1 else first + sh
        gx[p, first:last] = 0
        plane = gx[p].reshape(h * w)
        for ox in range(out_w):
            plane[argmax[p, oy, ox]] = gy[p, oy, ox]


@kernel()
def max_pool_backward_2x2(gy, argmax, gx):
    # The backward of max_pool_forward_2x2, as max_pool_backward_disjoint(gy, argmax, gx, 2)
    # computes it, written so that it vectorises.
    # Threads: prange over the output rows of all planes (planes * Ho rows); output row oy
    # owns input rows 2oy and 2oy + 1 (the last one also row H - 1 when H is odd), so no
    # two threads write the same pixel, as in max_pool_backward_disjoint.
    # Each input row is written whole, in one pass and with no zeroing before it: pixel
    # 2ox + j of the row gets gy[ox] if it is the argmax of window ox, else 0. No scatter,
    # no branch: LLVM vectorises the loop along the output row (the even and odd columns
    # are interleaved with shuffles).
    planes, h, w = gx.shape
    out_h, out_w = gy.shape[1:]
    for row in prange(planes * out_h):
        p, oy = row // out_h, row % out_h
        g, at = gy[p, oy], argmax[p, oy]
        for r in range(2 * oy, 2 * oy + 2):
            gx_row = gx[p, r]
            for ox in range(out_w):
                left = r * w + 2 * ox                  # position of pixel (r, 2ox) in the plane
                gx_row[2 * ox] = g[ox] if at[ox] == left else 0
                gx_row[2 * ox + 1] = g[ox] if at[ox] == left + 1 else 0
            gx_row[2 * out_w:] = 0                     # the column floor mode dropped, if W is odd
        if oy == out_h - 1:
            gx[p, 2 * out_h:] = 0                      # the row floor mode dropped, if H is odd
