"""Finite-difference gradient checking.

``gradcheck(fn, inputs)`` compares the gradients that autograd computes for
``sum(fn(*inputs) * R)`` (R a fixed random array, so every output element
matters with a different weight) against central differences

    dL/dx_i ~ (L(x + eps e_i) - L(x - eps e_i)) / (2 eps)

one element at a time. Central differences have error O(eps^2); in float64 the
rounding error is about u |L| / eps with u = 1.1e-16 (1e-10 |L| at eps = 1e-6),
so agreement to about 1e-5 is expected from a correct backward pass. Use float64
inputs: in float32 rounding swamps the difference quotient.
"""
from __future__ import annotations

import numpy as np

from .backend import as_numpy, get_array_module
from .tensor import Tensor


class GradcheckError(AssertionError):
    """Raised when an analytic gradient disagrees with finite differences."""


def _loss(fn, inputs, weights):
    outputs = fn(*inputs)
    outputs = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
    total = 0.0
    for y, r in zip(outputs, weights):
        total = total + (y * Tensor(r)).sum()
    return total


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-4, seed=0) -> bool:
    """Check every input that requires grad; return True or raise naming the worst element."""
    inputs = list(inputs)
    for i, t in enumerate(inputs):
        if isinstance(t, Tensor) and t.requires_grad and t.dtype != np.float64:
            raise TypeError(f"gradcheck input {i} is {t.dtype}; use float64 for finite differences")
    for t in inputs:  # nudging elements below needs a contiguous buffer to view
        if isinstance(t, Tensor) and t.requires_grad and not t.data.flags.c_contiguous:
            t.data = get_array_module(t.data).ascontiguousarray(t.data)
    rng = np.random.default_rng(seed)
    outputs = fn(*inputs)
    outputs = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
    weights = [get_array_module(y.data).asarray(rng.standard_normal(y.shape)) for y in outputs]

    for t in inputs:
        if isinstance(t, Tensor):
            t.grad = None
    _loss(fn, inputs, weights).backward()

    for i, t in enumerate(inputs):
        if not (isinstance(t, Tensor) and t.requires_grad):
            continue
        analytic = as_numpy(t.grad) if t.grad is not None else np.zeros(t.shape)
        numeric = np.zeros(t.shape)
        flat = t.data.reshape(-1)  # a view: nudging it nudges the input
        for j in range(flat.size):
            original = flat[j].item()
            flat[j] = original + eps
            plus = _loss(fn, inputs, weights).item()
            flat[j] = original - eps
            minus = _loss(fn, inputs, weights).item()
            flat[j] = original
            numeric.reshape(-1)[j] = (plus - minus) / (2 * eps)
        error = np.abs(analytic - numeric) - (atol + rtol * np.abs(numeric))
        if (error > 0).any():
            worst = np.unravel_index(np.argmax(error), t.shape)
            raise GradcheckError(
                f"gradient of input {i} (shape {t.shape}) is wrong at index {tuple(map(int, worst))}: "
                f"analytic {analytic[worst]:.10g}, numeric {numeric[worst]:.10g} "
                f"({int((error > 0).sum())} of {t.size} elements outside atol={atol}, rtol={rtol})")
    return True
