"""Run the same computation on the CPU and the GPU and compare outputs and gradients."""
import numpy as np

import tinyseg as ts
from tinyseg.backend import as_numpy

RTOL = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-10}


def assert_close(actual, expected, rtol, what):
    """Relative tolerance ``rtol``, with an absolute floor of rtol times the largest |expected|
    (elements that cancel to near zero carry the rounding of the large terms they summed)."""
    assert actual is not None, f"{what}: the GPU produced no value"
    assert np.shape(actual) == np.shape(expected), f"{what}: shape {np.shape(actual)} vs {np.shape(expected)}"
    scale = float(np.abs(expected).max(initial=0.0))
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale + 1e-30, err_msg=what)


def run(fn, arrays, device, grad_seed, differentiable):
    """fn on tensors made from ``arrays``; back-propagates sum(R * y) with a seeded random R.
    Returns the output and every input gradient as NumPy arrays."""
    # copies: ops such as training-mode batch norm update some inputs in place
    inputs = [ts.tensor(np.array(a), requires_grad=bool(d), device=device) for a, d in zip(arrays, differentiable)]
    y = fn(*inputs)
    assert y.device == device
    # a stream of its own: R must not repeat the inputs drawn from a test's seed
    weights = np.random.default_rng([grad_seed, 1]).standard_normal(y.shape).astype(y.dtype)
    y.backward(weights)
    return y.numpy(), [None if t.grad is None else as_numpy(t.grad) for t in inputs]


def check(fn, arrays, differentiable=None, rtol=None, grad_seed=0):
    """fn's output and gradients on the GPU match the CPU reference."""
    differentiable = differentiable or [np.asarray(a).dtype.kind == "f" for a in arrays]
    dtype = next(np.asarray(a).dtype for a in arrays if np.asarray(a).dtype.kind == "f")
    rtol = rtol or RTOL[dtype]
    y_cpu, g_cpu = run(fn, arrays, "cpu", grad_seed, differentiable)
    y_gpu, g_gpu = run(fn, arrays, "cuda", grad_seed, differentiable)
    assert_close(y_gpu, y_cpu, rtol, "output")
    for k, (a, b) in enumerate(zip(g_gpu, g_cpu)):
        if differentiable[k]:
            assert_close(a, b, rtol, f"gradient of input {k}")
