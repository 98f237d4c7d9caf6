"""Softmax cross-entropy on the GPU (cuda/cross_entropy.cu).

Logits and softmax (N, C, P), targets and per-pixel outputs (N, P), class weights (C,),
as the CPU kernels in ``tinyseg/ops/cpu/loss.py`` take them. Launches: forward and
backward one thread per pixel (all classes of it); grid ceil(N * P / 256) x block 256.
The backward's scale (upstream gradient / total weight) stays on the device. Targets are
checked on the device: the forward kernel flags one outside [0, C) in a device int, which
is the only value read back.
"""
from __future__ import annotations

from numpy import int32, int64

from ...backend import get_array_module

from . import contiguous, empty, kernel, launch_per_element


def cross_entropy_forward(logits, target, weight):
    """-> softmax (N, C, P), the per-pixel w[t] * log softmax[t] and w[t] (N, P), and whether
    any target lies outside [0, C) (such a pixel counts 0)."""
    logits = contiguous(logits)
    n, classes, plane = logits.shape
    softmax = empty(logits, logits.shape)
    pixel_loss, pixel_weight = empty(logits, (n, plane)), empty(logits, (n, plane))
    invalid = get_array_module(logits).zeros(1, int32)
    launch_per_element(kernel("cross_entropy.cu", "cross_entropy_forward", logits.dtype), n * plane, logits,
                       contiguous(target), contiguous(weight, logits.dtype), softmax, pixel_loss, pixel_weight,
                       invalid, int64(n * plane), int32(classes), int64(plane))
    return softmax, pixel_loss, pixel_weight, bool(int(invalid[0]))


def cross_entropy_backward(softmax, target, weight, scale):
    """-> d loss / d logits (N, C, P) = w[t] * scale * (softmax - onehot(t))."""
    softmax = contiguous(softmax)
    n, classes = softmax.shape[:2]
    plane = softmax.size // (n * classes) if n * classes else 0
    grad = empty(softmax, (n, classes, plane))
    launch_per_element(kernel("cross_entropy.cu", "cross_entropy_backward", softmax.dtype), n * plane, softmax,
                       contiguous(target), contiguous(weight, softmax.dtype), scale, grad, int64(n * plane),
                       int32(classes), int64(plane))
    return grad
