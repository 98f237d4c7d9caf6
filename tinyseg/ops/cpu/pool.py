"""Max pooling kernels: one pass over the input forward, one over the gradient backward.

The batch and channel axes arrive merged into one axis of planes: x and gx
(planes, H, W), y, gy and argmax (planes, Ho, Wo), all C-contiguous. ``argmax``
holds the position of each window's maximum inside its H*W plane (row * W +
column), as the GPU kernels in ``cuda/pool.cu`` store it.
"""
from __future__ import annotations

from numba import njit, prange


@njit(parallel=True, cache=True)
def max_pool_forward(x, y, argmax, kh, kw, sh, sw):
    # Threads: prange over the output rows of all planes (planes * Ho rows), so a batch
    # of one image keeps every thread busy; each row reads only its own kh input rows.
    # A window is scanned in row-major order and only a strictly larger value replaces
    # the running maximum: ties go to the first maximum, and a NaN wins only where it
    # comes first in its window (value > best is false for any NaN). The update is
    # written as two selects so that it compiles without unpredictable branches.
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
                    better = plane[at] > best
                    best = plane[at] if better else best
                    best_at = at if better else best_at
            y[p, oy, ox] = best
            argmax[p, oy, ox] = best_at


@njit(parallel=True, cache=True)
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
