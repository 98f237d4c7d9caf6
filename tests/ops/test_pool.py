"""max_pool2d: gradient checks, PyTorch parity and the CPU kernels against a reference
(ties, NaNs, overlapping windows, non-contiguous inputs), and the fast 2x2 and non-overlapping
kernels against the generic ones."""
import numpy as np
import pytest
from hypothesis import assume, given, strategies as st

import tinyseg as ts
import tinyseg.functional as F
from tinyseg.ops.cpu import pool as cpu_pool
from torch_parity import (EXAMPLES, SETTINGS, TF, assert_close, assert_grads, backward_both, needs_torch,
                          ours, seeds, theirs)


@SETTINGS
@given(st.integers(1, 4), st.integers(1, 4), st.integers(1, 2), st.integers(1, 2),
       st.integers(1, 9), st.integers(1, 9), st.integers(0, 2 ** 31))
def test_max_pool2d_gradcheck(k, stride, n, c, h, w, seed):
    assume(h >= k and w >= k)
    rng = np.random.default_rng(seed)
    x = ts.tensor(rng.permutation(n * c * h * w).reshape(n, c, h, w) * 0.1 + 0.01 * rng.random((n, c, h, w)),
                  requires_grad=True)  # distinct values: the argmax is unique and stable under eps
    y = F.max_pool2d(x, k, stride)
    assert y.shape == (n, c, (h - k) // stride + 1, (w - k) // stride + 1)
    assert ts.gradcheck(lambda x: F.max_pool2d(x, k, stride), [x])


def test_max_pool_routes_to_argmax_and_floors():
    x = ts.tensor(np.arange(25, dtype=np.float64).reshape(1, 1, 5, 5), requires_grad=True)
    y = F.max_pool2d(x, 2)
    np.testing.assert_array_equal(y.numpy()[0, 0], [[6, 8], [16, 18]])   # last row/column dropped
    y.sum().backward()
    expected = np.zeros((5, 5))
    expected[[1, 1, 3, 3], [1, 3, 1, 3]] = 1
    np.testing.assert_array_equal(x.grad[0, 0], expected)


@needs_torch
@EXAMPLES
@given(data=st.data(), seed=seeds)
def test_max_pool2d_matches_torch(data, seed):
    n, c = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    square = data.draw(st.booleans())
    if square:   # int kernel, stride None (= kernel) or any stride: overlapping, gapped, equal
        kernel = data.draw(st.integers(1, 4))
        stride = data.draw(st.one_of(st.none(), st.integers(1, 5)))
        kh = kw = kernel
        sh = sw = kernel if stride is None else stride
    else:
        kh, kw = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4))
        sh, sw = data.draw(st.integers(1, 5)), data.draw(st.integers(1, 5))
        kernel, stride = (kh, kw), (sh, sw)
    h, w = data.draw(st.integers(kh, 9)), data.draw(st.integers(kw, 9))  # odd sizes: floor mode drops the edge
    rng = np.random.default_rng(seed)
    x_np = rng.standard_normal((n, c, h, w))
    x, x_ref = ours(x_np), theirs(x_np)
    y = F.max_pool2d(x, kernel, stride)
    y_ref = TF.max_pool2d(x_ref, kernel, stride if stride is not None else kernel, ceil_mode=False)
    assert y.shape == ((n, c, (h - kh) // sh + 1, (w - kw) // sw + 1))
    assert_close(y, y_ref, "max_pool2d forward")
    backward_both(y, y_ref, rng)
    assert_grads({"x": (x, x_ref)})


def pool_reference(x, kh, kw, sh, sw, gy):
    """Forward and backward one window at a time, by NumPy's argmax rule: the first maximum
    wins, and a NaN counts as the maximum (the first NaN wins)."""
    n, c, h, w = x.shape
    out_h, out_w = (h - kh) // sh + 1, (w - kw) // sw + 1
    y, gx = np.empty((n, c, out_h, out_w), x.dtype), np.zeros_like(x, dtype=gy.dtype)
    for b, ch, oy, ox in np.ndindex(y.shape):
        window = x[b, ch, oy * sh:oy * sh + kh, ox * sw:ox * sw + kw].ravel()
        k = int(np.argmax(window))
        y[b, ch, oy, ox] = window[k]
        gx[b, ch, oy * sh + k // kw, ox * sw + k % kw] += gy[b, ch, oy, ox]
    return y, gx


def run_pool(x, kernel, stride, gy=None, rng=None):
    t = ts.tensor(x, requires_grad=True)
    y = F.max_pool2d(t, kernel, stride)
    gy = rng.standard_normal(y.shape).astype(x.dtype) if gy is None else gy
    y.backward(gy)
    return y.numpy(), t.grad, gy


# kernel (kh, kw), stride (sh, sw): equal, overlapping, gapped, rectangular, 1x1
POOL_CASES = [((2, 2), (2, 2)), ((3, 3), (1, 1)), ((3, 2), (2, 1)), ((2, 3), (3, 4)), ((1, 1), (1, 1)),
              ((4, 4), (2, 3))]


@pytest.mark.parametrize("kernel,stride", POOL_CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(2, 3, 9, 11), (1, 1, 13, 8)])      # N*C = 1 included
def test_max_pool_matches_reference(kernel, stride, dtype, shape):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(dtype)
    y, gx, gy = run_pool(x, kernel, stride, rng=rng)
    y_ref, gx_ref = pool_reference(x, *kernel, *stride, gy)
    assert y.dtype == gx.dtype == dtype
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_allclose(gx, gx_ref, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-6)   # sum order


@pytest.mark.parametrize("kernel,stride", POOL_CASES)
def test_max_pool_ties_go_to_the_first_maximum(kernel, stride):
    rng = np.random.default_rng(1)
    x = rng.integers(0, 3, (2, 2, 10, 9)).astype(np.float64)     # most windows hold a tie
    x[0, 0] = 1.0                                               # a plane that is one big tie
    y, gx, gy = run_pool(x, kernel, stride, rng=rng)
    y_ref, gx_ref = pool_reference(x, *kernel, *stride, gy)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_allclose(gx, gx_ref, rtol=1e-12)


def test_a_nan_anywhere_in_a_window_reaches_the_output_and_the_first_nan_takes_the_gradient():
    x = np.arange(16, dtype=np.float64).reshape(1, 1, 4, 4)
    x[0, 0, 0, 0] = np.nan       # first in window (0, 0)
    x[0, 0, 1, 3] = np.nan       # last in window (0, 1)
    x[0, 0, 2, 1] = x[0, 0, 3, 0] = np.nan      # two in window (1, 0): the first one wins
    y, gx, gy = run_pool(x, 2, None, gy=np.ones((1, 1, 2, 2)))
    assert np.isnan(y[0, 0].ravel()[:3]).all()   # as NumPy's argmax and the CUDA kernel
    assert y[0, 0, 1, 1] == 15
    np.testing.assert_array_equal(np.argwhere(gx[0, 0]), [[0, 0], [1, 3], [2, 1], [3, 3]])


@pytest.mark.parametrize("n,c", [(1, 1), (3, 5)])
def test_max_pool_overlapping_windows_accumulate_without_races(n, c):
    # Large planes with many shared maxima: with stride 1 a pixel collects up to 9 windows.
    # Integer gradients sum exactly in any order, so any lost update shows as a mismatch.
    rng = np.random.default_rng(2)
    x = rng.integers(0, 4, (n, c, 96, 80)).astype(np.float32)
    gy = rng.integers(-3, 4, (n, c, 94, 78)).astype(np.float32)
    for _ in range(3):
        y, gx, _ = run_pool(x, 3, 1, gy=gy)
        y_ref, gx_ref = pool_reference(x, 3, 3, 1, 1, gy)
        np.testing.assert_array_equal(y, y_ref)
        np.testing.assert_array_equal(gx, gx_ref)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_pool_non_contiguous_input_and_gradient(dtype):
    rng = np.random.default_rng(3)
    base = rng.standard_normal((7, 12, 3, 2)).astype(dtype)
    x = base.transpose(3, 2, 1, 0)[:, :, ::-1, 1:]                  # (2, 3, 12, 6), strided
    gy_base = rng.standard_normal((3, 2, 2, 6)).astype(dtype)       # stored as (.., Wo, .., Ho)
    gy = gy_base.transpose(1, 0, 3, 2)[:, :, :, :2]                 # (2, 3, 6, 2), strided
    assert not x.flags.c_contiguous and not gy.flags.c_contiguous
    y, gx, _ = run_pool(x, (2, 3), None, gy=gy)
    y_ref, gx_ref = pool_reference(np.ascontiguousarray(x), 2, 3, 2, 3, np.ascontiguousarray(gy))
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(gx, gx_ref)


# The fast paths of cpu/pool.py against the generic kernels, called directly on (planes, H, W)
# arrays: the 2x2 stride-2 forward and backward, and the backward for windows that do not
# overlap. Inputs are drawn to hit every rule the kernels share: ties (small integers, a
# plane that is one big tie), NaNs anywhere in a window, all-negative values, odd H and W
# (floor mode), float32 and float64, and non-contiguous views.

def drawn_planes(data, rng, shape, dtype):
    """Values for a (planes, H, W) input, as a C-contiguous array or a strided view."""
    planes, h, w = shape
    if data.draw(st.booleans(), label="ties"):
        x = rng.integers(0, 3, shape).astype(dtype)
        x[0] = 1                                            # one plane that is one big tie
    else:
        x = rng.standard_normal(shape).astype(dtype)
    if data.draw(st.booleans(), label="negative"):
        x -= 10                                             # every value below the 0 a bug might start from
    nans = data.draw(st.integers(0, x.size // 3), label="nans")
    x.reshape(-1)[rng.choice(x.size, nans, replace=False)] = np.nan
    if data.draw(st.booleans(), label="strided"):
        base = np.empty((planes, w, h + 1), dtype)          # stored transposed, one column too many
        view = base.transpose(0, 2, 1)[:, ::-1][:, :h]      # (planes, h, w), rows reversed
        view[...] = x
        assert not view.flags.c_contiguous
        x = view
    return x


def generic_pool(x, kh, kw, sh, sw, gy=None):
    """y, argmax and gx from the generic kernels (any window, stride and layout-free input)."""
    x = np.ascontiguousarray(x)
    planes, h, w = x.shape
    out_h, out_w = (h - kh) // sh + 1, (w - kw) // sw + 1
    y, argmax = np.empty((planes, out_h, out_w), x.dtype), np.empty((planes, out_h, out_w), np.int32)
    cpu_pool.max_pool_forward(x, y, argmax, kh, kw, sh, sw)
    gx = None
    if gy is not None:
        gx = np.empty_like(x)
        cpu_pool.max_pool_backward(gy, argmax, gx)
    return y, argmax, gx


def unwritten(shape, dtype):
    """An output buffer full of values no kernel writes, so a pixel it skips shows."""
    return np.full(shape, np.nan, dtype)


@SETTINGS
@given(data=st.data(), seed=seeds)
def test_max_pool_2x2_kernels_match_the_generic_ones(data, seed):
    rng = np.random.default_rng(seed)
    dtype = data.draw(st.sampled_from([np.float32, np.float64]), label="dtype")
    shape = (data.draw(st.integers(1, 5), label="planes"), data.draw(st.integers(2, 19), label="h"),
             data.draw(st.integers(2, 19), label="w"))
    x = drawn_planes(data, rng, shape, dtype)
    out = (shape[0], shape[1] // 2, shape[2] // 2)
    gy = rng.standard_normal(out).astype(dtype)
    y_ref, argmax_ref, gx_ref = generic_pool(x, 2, 2, 2, 2, gy)

    y, argmax = unwritten(out, dtype), np.full(out, -1, np.int32)
    cpu_pool.max_pool_forward_2x2(x, y, argmax)
    np.testing.assert_array_equal(y, y_ref)                 # NaNs in the same places
    np.testing.assert_array_equal(argmax, argmax_ref)
    gx = unwritten(shape, dtype)
    cpu_pool.max_pool_backward_2x2(gy, argmax, gx)
    np.testing.assert_array_equal(gx, gx_ref)               # every pixel written, dropped edges included


@SETTINGS
@given(data=st.data(), seed=seeds)
def test_max_pool_disjoint_backward_matches_the_generic_one(data, seed):
    rng = np.random.default_rng(seed)
    dtype = data.draw(st.sampled_from([np.float32, np.float64]), label="dtype")
    kh, kw = data.draw(st.integers(1, 4), label="kh"), data.draw(st.integers(1, 4), label="kw")
    sh, sw = data.draw(st.integers(kh, 5), label="sh"), data.draw(st.integers(kw, 5), label="sw")
    shape = (data.draw(st.integers(1, 5), label="planes"), data.draw(st.integers(kh, 17), label="h"),
             data.draw(st.integers(kw, 17), label="w"))
    x = drawn_planes(data, rng, shape, dtype)
    out = (shape[0], (shape[1] - kh) // sh + 1, (shape[2] - kw) // sw + 1)
    gy = rng.standard_normal(out).astype(dtype)
    _, argmax, gx_ref = generic_pool(x, kh, kw, sh, sw, gy)
    gx = unwritten(shape, dtype)
    cpu_pool.max_pool_backward_disjoint(gy, argmax, gx, sh)
    np.testing.assert_array_equal(gx, gx_ref)


@pytest.mark.parametrize("kernel,stride,forward,backward", [
    ((2, 2), None, "max_pool_forward_2x2", "max_pool_backward_2x2"),
    ((2, 3), (3, 4), "max_pool_forward", "max_pool_backward_disjoint"),
    ((3, 3), (2, 2), "max_pool_forward", "max_pool_backward"),
    ((2, 2), (1, 2), "max_pool_forward", "max_pool_backward")])
def test_max_pool_runs_the_kernels_meant_for_its_window(monkeypatch, kernel, stride, forward, backward):
    # The tests above compare kernels; this one checks that F.max_pool2d calls them.
    calls = []

    def recorded(name, kernel_fn):
        def run(*args):
            calls.append(name)
            kernel_fn(*args)
        return run

    for name in ("max_pool_forward", "max_pool_forward_2x2", "max_pool_backward", "max_pool_backward_disjoint",
                 "max_pool_backward_2x2"):
        monkeypatch.setattr(cpu_pool, name, recorded(name, getattr(cpu_pool, name)))
    x = ts.tensor(np.random.default_rng(4).standard_normal((2, 3, 9, 11)), requires_grad=True)
    F.max_pool2d(x, kernel, stride).sum().backward()
    assert calls == [forward, backward]
