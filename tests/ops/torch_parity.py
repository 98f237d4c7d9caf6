"""Shared by the op tests: PyTorch as an oracle (float64, skipped without torch) and the
settings of the gradient checks.

``ours`` / ``theirs`` make the same float64 input on both sides, ``backward_both``
back-propagates sum(R * y) through both graphs with one random R, and ``assert_close`` /
``assert_grads`` compare values and gradients to 1e-8 relative.
"""
import numpy as np
import pytest
from hypothesis import settings, strategies as st

import tinyseg as ts

try:
    import torch
    import torch.nn.functional as TF
    from benchmarks.torch_twin import TorchReNet, renet_key
except ImportError:   # the parity tests skip; everything else runs
    torch = TF = TorchReNet = renet_key = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")

EXAMPLES = settings(max_examples=20, deadline=None)          # parity against torch
SETTINGS = settings(max_examples=30, deadline=None)          # finite-difference checks
seeds = st.integers(0, 2**32 - 1)


def t64(rng, *shape, low=None, high=None, grad=True):
    """A random float64 tensor (normal, or uniform in [low, high)), for gradient checks."""
    data = rng.standard_normal(shape) if low is None else rng.uniform(low, high, shape)
    return ts.tensor(data.astype(np.float64), requires_grad=grad)


def ours(array, grad=True):
    return ts.tensor(np.array(array, dtype=np.float64), requires_grad=grad)


def theirs(array, grad=True):
    return torch.tensor(np.array(array, dtype=np.float64), requires_grad=grad)


def conv_inputs(rng, x_shape, weight_shape, bias_size):
    """x, weight and (for a bias_size > 0) bias: as float64 arrays, tinyseg leaves, torch leaves."""
    arrays = {"x": rng.standard_normal(x_shape), "weight": rng.standard_normal(weight_shape)}
    if bias_size:
        arrays["bias"] = rng.standard_normal(bias_size)
    return arrays, {k: ours(v) for k, v in arrays.items()}, {k: theirs(v) for k, v in arrays.items()}


def assert_close(actual, expected, what, floor=0.0):
    """rtol 1e-8, with an absolute floor of 1e-10 times the reference's magnitude (or ``floor``
    where the reference itself rounds terms of a larger magnitude)."""
    if torch is not None and isinstance(expected, torch.Tensor):
        expected = expected.detach().numpy()
    if isinstance(actual, ts.Tensor):
        actual = actual.numpy()
    assert actual is not None, f"{what}: tinyseg produced no value"
    assert np.shape(actual) == np.shape(expected), f"{what}: shape {np.shape(actual)} vs {np.shape(expected)}"
    scale = float(np.abs(expected).max(initial=0.0))
    np.testing.assert_allclose(actual, expected, rtol=1e-8, atol=max(1e-10 * scale, floor) + 1e-300, err_msg=what)


def backward_both(y_ours, y_theirs, rng):
    """Back-propagate sum(R * y) through both graphs with the same random R."""
    weights = rng.standard_normal(y_theirs.shape)
    y_ours.backward(weights)
    y_theirs.backward(torch.from_numpy(weights))


def assert_grads(pairs):
    """pairs: name -> (tinyseg tensor, torch tensor); compares their .grad."""
    for name, (a, b) in pairs.items():
        assert b.grad is not None, f"torch computed no gradient for {name}"
        assert_close(a.grad, b.grad, f"grad {name}")
