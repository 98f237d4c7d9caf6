"""Softmax cross-entropy kernels: one pass over the logits forward, one backward.

The spatial axes arrive merged: logits, softmax and grad (N, C, P), target and
the per-pixel outputs (N, P), all C-contiguous; class weights (C,) in the
logits' dtype (all ones for the unweighted loss). Scratch arrays (one row of
BLOCK pixels per worker) come from the caller, so that no kernel allocates
inside its parallel loop.

The exponential and the logarithm come from ``vmath.py`` (``exp_nonpositive``,
``log1p_and_reciprocal``) rather than from ``math.exp`` and ``math.log1p``, so that the
loops calling them vectorise. The kernels compile with
``error_model="numpy"``: Numba's default checks every float division for a zero divisor
(to raise ZeroDivisionError), and that branch kept the division loops scalar; no divisor
here can be zero.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from .launch import kernel
from .vmath import exp_nonpositive, log1p_and_reciprocal

BLOCK = 4096   # pixels per unit of parallel work; a block's logits stay in cache


# --- the kernels ------------------------------------------------------------------------

@njit(error_model="numpy")
def forward_block(logits, target, weight, softmax, pixel_loss, pixel_weight, k, start, size, m, j, s1):
    """One block of ``size`` pixels of image k from pixel ``start`` on; m, j and s1 are
    scratch rows of at least ``size`` entries (the logits' dtype, int32, float64)."""
    # Each step sweeps one class plane at a time with contiguous loads, so every loop
    # over pixels vectorises, the exponential and the logarithm included. A separate
    # function rather than the body of the prange loop: inlined there, LLVM left the
    # exponential's loop scalar.
    classes = logits.shape[1]
    t = target[k, start:start + size]
    loss, pw = pixel_loss[k, start:start + size], pixel_weight[k, start:start + size]
    # m: the max logit; j: the first class that reaches it; loss holds z[t] and pw w[t]
    # for now, picked by comparing t with each class rather than by indexing with t (a
    # gather, which LLVM did not vectorise). Every operand is loaded before the selects:
    # a load inside `a if cond else b` is conditional, and that too kept the loop scalar
    # (and branching on random targets).
    z = logits[k, 0, start:start + size]
    for p in range(size):
        m[p] = z[p]
        j[p] = 0
        loss[p] = z[p]
        pw[p] = weight[0]
    for c in range(1, classes):
        z, w_c = logits[k, c, start:start + size], weight[c]
        for p in range(size):
            z_p, m_p, j_p, loss_p, pw_p = z[p], m[p], j[p], loss[p], pw[p]
            larger = z_p > m_p                              # a NaN is never larger
            ours = t[p] == c
            m[p] = z_p if larger else m_p
            j[p] = c if larger else j_p
            loss[p] = z_p if ours else loss_p
            pw[p] = w_c if ours else pw_p
    # s1 = s - 1, the sum over every class but the first maximal one, in float64:
    # log s = log1p(s1) keeps the digits of a confident pixel's tiny loss. (A NaN logit
    # makes its exp, so s1, the loss and the softmax NaN.)
    for p in range(size):
        s1[p] = 0.0
    # Two loops per class: the exponentials alone run in the logits' precision (16
    # float32 lanes); sharing a loop with the float64 sum, they ran 8 at a time.
    for c in range(classes):
        z, e = logits[k, c, start:start + size], softmax[k, c, start:start + size]
        for p in range(size):
            e[p] = exp_nonpositive(z[p] - m[p])
        for p in range(size):
            e_p = e[p]
            s1[p] += e_p if j[p] != c else 0.0          # class j's exp(0) = 1 is the 1 of 1 + s1
    for p in range(size):
        log_s, inverse = log1p_and_reciprocal(s1[p])
        loss[p] = pw[p] * ((loss[p] - m[p]) - log_s)
        s1[p] = inverse                                 # from here on s1 holds 1 / s
    for c in range(classes):
        e = softmax[k, c, start:start + size]
        for p in range(size):
            e[p] *= s1[p]


@kernel(error_model="numpy")
def cross_entropy_forward(logits, target, weight, softmax, pixel_loss, pixel_weight, top, first, rest):
    # Threads: prange over the rows of the scratch arrays top, first and rest (W workers,
    # W = top.shape[0], the thread count); worker w takes blocks w, w + W, w + 2W, ...
    # of BLOCK pixels of every image (N * ceil(P / BLOCK) blocks), so a single image still
    # spreads over all threads; pixels are independent, and a worker's scratch row is
    # its own.
    # For every pixel, with z its C logits and t its class: m = max z,
    # s = sum exp(z - m), loss term w[t] * log softmax[t] = w[t] * ((z[t] - m) - log s),
    # and softmax = exp(z - m) / s, kept for backward. The caller sums the loss terms
    # and weights. Memory is read once; a block's logits stay in cache between its steps
    # (forward_block).
    n, classes, plane = logits.shape
    blocks = (plane + BLOCK - 1) // BLOCK
    workers = top.shape[0]
    for w in prange(workers):
        for b in range(w, n * blocks, workers):
            k, start = b // blocks, b % blocks * BLOCK
            forward_block(logits, target, weight, softmax, pixel_loss, pixel_weight, k, start,
                          min(plane, start + BLOCK) - start, top[w], first[w], rest[w])


@njit(error_model="numpy")
def backward_block(softmax, target, weight, scale, grad, k, start, size, ps, o):
    """One block of ``size`` pixels of image k from pixel ``start`` on; ps and o are scratch
    rows of at least ``size`` entries (the softmax's dtype, float64)."""
    # Two sweeps over the class planes, contiguous loads and selects only (vectorised):
    # the first sums, per pixel, the softmax of the classes other than t (o) and picks
    # w[t] * scale (ps); the second writes softmax * ps for c != t and -o * ps for c = t.
    classes = softmax.shape[1]
    t = target[k, start:start + size]
    for p in range(size):
        o[p] = 0.0
        ps[p] = 0.0
    for c in range(classes):
        s, w_c = softmax[k, c, start:start + size], weight[c] * scale[0]
        for p in range(size):
            s_p, o_p, ps_p = s[p], o[p], ps[p]
            ours = t[p] == c
            o[p] = o_p if ours else o_p + s_p
            ps[p] = w_c if ours else ps_p
    # softmax[t] - 1 = -(sum of the other classes): no cancellation when softmax[t] is
    # near 1, where subtracting 1 would keep only a few correct digits
    for c in range(classes):
        s, g = softmax[k, c, start:start + size], grad[k, c, start:start + size]
        for p in range(size):
            s_p, minus_o = s[p], -o[p]
            g[p] = (minus_o if t[p] == c else s_p) * ps[p]


@kernel(error_model="numpy")
def cross_entropy_backward(softmax, target, weight, scale, grad, pixel_scale, others):
    # Backward: d loss / d z[c] = w[t] * scale * (softmax[c] - onehot(t)[c]), with
    # scale = upstream gradient / sum of w[t] over all pixels (scale[0], in the logits'
    # dtype). It reuses the softmax saved by the forward pass, cheaper than recomputing
    # the exponentials. Threads: prange over the rows of the scratch arrays pixel_scale
    # and others (W workers), worker w taking blocks w, w + W, ... as in the forward
    # pass; a pixel writes only its own C gradients (backward_block).
    n, classes, plane = softmax.shape
    blocks = (plane + BLOCK - 1) // BLOCK
    workers = others.shape[0]
    for w in prange(workers):
        for b in range(w, n * blocks, workers):
            k, start = b // blocks, b % blocks * BLOCK
            backward_block(softmax, target, weight, scale, grad, k, start, min(plane, start + BLOCK) - start,
                           pixel_scale[w], others[w])
