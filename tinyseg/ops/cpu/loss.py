"""Softmax cross-entropy kernels: one pass over the logits forward, one backward.

The spatial axes arrive merged: logits, softmax and grad (N, C, P), target and
the per-pixel outputs (N, P), all C-contiguous; class weights (C,) in the
logits' dtype (all ones for the unweighted loss).
"""
from __future__ import annotations

from math import exp, log1p

import numpy as np
from numba import njit, prange

BLOCK = 4096   # pixels per unit of parallel work; a block's logits stay in cache


@njit(parallel=True, cache=True)
def cross_entropy_forward(logits, target, weight, softmax, pixel_loss, pixel_weight):
    # Threads: prange over blocks of BLOCK pixels of every image (N * ceil(P / BLOCK)
    # blocks), so a single image still spreads over all threads; pixels are independent.
    # For every pixel, with z its C logits and t its class: m = max z,
    # s = sum exp(z - m), loss term w[t] * log softmax[t] = w[t] * ((z[t] - m) - log s),
    # and softmax = exp(z - m) / s, kept for backward. The caller sums the loss terms
    # and weights. Memory is read once; inside a block (in cache) each step sweeps one
    # class plane at a time, so the max, the subtraction and the division vectorise.
    # The exponentials and logarithms stay scalar calls and take most of the time.
    n, classes, plane = logits.shape
    blocks = (plane + BLOCK - 1) // BLOCK
    for b in prange(n * blocks):
        k, start = b // blocks, b % blocks * BLOCK
        stop = min(plane, start + BLOCK)
        top = logits[k, 0, start:stop].copy()
        for c in range(1, classes):
            z = logits[k, c, start:stop]
            for p in range(stop - start):
                top[p] = max(top[p], z[p])
        # rest = s - 1, the sum over every class but one maximal one, in float64:
        # log s = log1p(rest) keeps the digits of a confident pixel's tiny loss
        rest = np.zeros(top.shape, np.float64)
        skipped = np.zeros(top.shape, np.bool_)
        for c in range(classes):
            z, e = logits[k, c, start:stop], softmax[k, c, start:stop]
            for p in range(stop - start):
                e[p] = exp(z[p] - top[p])
                if z[p] == top[p] and not skipped[p]:
                    skipped[p] = True          # its exp(0) = 1 is the 1 of 1 + rest
                else:
                    rest[p] += e[p]
        for p in range(stop - start):
            t = target[k, start + p]
            pixel_weight[k, start + p] = weight[t]
            pixel_loss[k, start + p] = weight[t] * ((logits[k, t, start + p] - top[p]) - log1p(rest[p]))
        for c in range(classes):
            e = softmax[k, c, start:stop]
            for p in range(stop - start):
                e[p] /= 1.0 + rest[p]


@njit(parallel=True, cache=True)
def cross_entropy_backward(softmax, target, weight, scale, grad):
    # Backward: d loss / d z[c] = w[t] * scale * (softmax[c] - onehot(t)[c]), with
    # scale = upstream gradient / sum of w[t] over all pixels (scale[0], in the logits'
    # dtype). It reuses the softmax saved by the forward pass, cheaper than recomputing
    # the exponentials. Threads:
    # prange over blocks of pixels as in the forward pass; a pixel writes only its own
    # C gradients.
    n, classes, plane = softmax.shape
    blocks = (plane + BLOCK - 1) // BLOCK
    for b in prange(n * blocks):
        k, start = b // blocks, b % blocks * BLOCK
        for p in range(start, min(plane, start + BLOCK)):
            t = target[k, p]
            pixel_scale = weight[t] * scale[0]
            others = 0.0
            for c in range(classes):
                grad[k, c, p] = softmax[k, c, p] * pixel_scale
                if c != t:
                    others += softmax[k, c, p]
            # softmax[t] - 1 = -(sum of the other classes): no cancellation when softmax[t]
            # is near 1, where subtracting 1 would keep only a few correct digits
            grad[k, t, p] = -others * pixel_scale
