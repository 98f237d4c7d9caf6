"""Tests of the LeakyReLU of chapter 8: gradient checks, the Numba kernels, device parity.

    python -m pytest -q docs/solutions/leaky_relu_test.py                              # CPU; GPU if present
    TINYSEG_CUDA_EMULATOR=1 python -m pytest -q docs/solutions/leaky_relu_test.py      # GPU code, emulated
"""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if os.environ.get("TINYSEG_CUDA_EMULATOR") == "1":
    # no GPU: CuPy is the emulator's stand-in and leaky_relu.cu is compiled by g++
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    import cuda_emulator
    cuda_emulator.install()
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "gpu"))

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import tinyseg as ts  # noqa: E402
from leaky_relu import LeakyReLU, leaky_relu  # noqa: E402
from tinyseg.ops import gpu  # noqa: E402


def random_away_from_zero(shape, seed):
    """float64 values with |x| >= 0.1: no input near the kink at 0, where gradcheck's
    central difference would straddle it."""
    x = np.random.default_rng(seed).uniform(0.1, 2.0, shape)
    return x * np.where(np.random.default_rng(seed + 1).random(shape) < 0.5, -1, 1)


@pytest.mark.parametrize("slope", [0.0, 0.01, 0.3])
@pytest.mark.parametrize("shape", [(7,), (2, 3, 4, 5)])
def test_gradcheck(shape, slope):
    x = ts.tensor(random_away_from_zero(shape, 0), requires_grad=True)
    assert ts.gradcheck(lambda t: leaky_relu(t, slope), [x])


def test_values_saves_and_method():
    x = np.array([-2.0, -0.5, 0.0, 0.5, 2.0, np.nan])
    y = ts.tensor(x, requires_grad=True).leaky_relu(0.1)
    np.testing.assert_array_equal(y.numpy(), np.where(x > 0, x, 0.1 * x))     # NaN stays NaN
    assert LeakyReLU.saves == ("y",) and y.creator.saved()["y"] is not None


def test_float32_kernel_matches_numpy():
    x = np.random.default_rng(1).standard_normal((3, 1000)).astype(np.float32)
    t = ts.tensor(x, requires_grad=True)
    y = leaky_relu(t, 0.2)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y.numpy(), np.where(x > 0, x, np.float32(0.2) * x))
    y.backward(np.ones_like(x))
    np.testing.assert_array_equal(t.grad, np.where(x > 0, 1, np.float32(0.2)).astype(np.float32))


def test_a_negative_slope_is_refused():
    with pytest.raises(ValueError, match="slope"):
        LeakyReLU(-0.1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gpu_matches_cpu(dtype, monkeypatch):
    if not ts.cuda_available():
        pytest.skip("no CUDA device (set TINYSEG_CUDA_EMULATOR=1 to emulate one)")
    import parity
    monkeypatch.setattr(gpu, "POISON", True)          # an element the kernel skips stays NaN
    x = random_away_from_zero((3, 4, 5, 7), 2).astype(dtype)       # 420 elements: two blocks
    parity.check(lambda t: leaky_relu(t, 0.05), [x])
