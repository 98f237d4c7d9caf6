"""Softmax cross-entropy on the GPU (cuda/elementwise.cu).

Launches: forward one thread per pixel (all classes of it), backward one thread per
logit; grid ceil(size / 256) x block 256. The per-pixel loss and weight are summed
by CuPy; the backward's scale (upstream gradient / total weight) stays on the device.
"""
from __future__ import annotations

from numpy import int32, int64

from ...backend import get_array_module
from . import contiguous, empty, kernel, launch_per_element


def cross_entropy_forward(op, logits, target, weight):
    xp = get_array_module(logits)
    logits = contiguous(logits)
    n, classes = logits.shape[:2]
    plane = logits.size // (n * classes) if n * classes else 0
    pixels = n * plane
    # Labels and class weights may still be on the host: they are small, copy them over.
    target = xp.ascontiguousarray(xp.asarray(target), dtype=xp.int64)
    weighted = weight is not None
    class_weight = xp.ascontiguousarray(xp.asarray(weight), dtype=logits.dtype) if weighted else logits
    pixel_loss, pixel_weight, log_sums = (empty(logits, (pixels,)) for _ in range(3))
    launch_per_element(kernel("elementwise.cu", "cross_entropy_forward", logits.dtype), pixels, logits, target,
                       class_weight, pixel_loss, pixel_weight, log_sums, int64(pixels), int32(classes),
                       int64(plane), int32(weighted))
    total = pixel_weight.sum()
    op.logits, op.target, op.pixel_weight, op.log_sums, op.total = logits, target, pixel_weight, log_sums, total
    return pixel_loss.sum() / total


def cross_entropy_backward(op, gy):
    logits = op.logits
    n, classes = logits.shape[:2]
    plane = logits.size // (n * classes) if n * classes else 0
    scale = contiguous(gy / op.total, logits.dtype).reshape(1)
    grad = empty(logits, logits.shape)
    launch_per_element(kernel("elementwise.cu", "cross_entropy_backward", logits.dtype), grad.size, logits,
                       op.target, op.pixel_weight, op.log_sums, scale, grad, int64(grad.size), int32(classes),
                       int64(plane))
    return (grad, None) + ((None,) if len(op.needs_grad) > 2 else ())
