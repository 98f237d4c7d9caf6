"""The Numba kernels behind max pooling and cross-entropy against plain NumPy references."""
import numpy as np
import pytest

import tinyseg as ts
import tinyseg.functional as F


def pool_reference(x, kh, kw, sh, sw, gy):
    """Forward and backward one window at a time: the first strictly larger value wins."""
    n, c, h, w = x.shape
    out_h, out_w = (h - kh) // sh + 1, (w - kw) // sw + 1
    y, gx = np.empty((n, c, out_h, out_w), x.dtype), np.zeros_like(x, dtype=gy.dtype)
    for b, ch, oy, ox in np.ndindex(y.shape):
        window = x[b, ch, oy * sh:oy * sh + kh, ox * sw:ox * sw + kw].ravel()
        k = 0
        for i in range(1, window.size):
            if window[i] > window[k]:
                k = i
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


def test_max_pool_nan_wins_only_first_in_its_window():
    x = np.arange(16, dtype=np.float64).reshape(1, 1, 4, 4)
    x[0, 0, 0, 0] = np.nan       # first in window (0, 0): the output is NaN
    x[0, 0, 1, 3] = np.nan       # last in window (0, 1): the maximum of the others wins
    y, gx, gy = run_pool(x, 2, None, gy=np.ones((1, 1, 2, 2)))
    assert np.isnan(y[0, 0, 0, 0])
    np.testing.assert_array_equal(y[0, 0].ravel()[1:], [6, 13, 15])
    np.testing.assert_array_equal(np.argwhere(gx[0, 0]), [[0, 0], [1, 2], [3, 1], [3, 3]])


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


def cross_entropy_reference(logits, target, weight):
    """Loss and gradient in float64, straight from the formulas."""
    z = logits.astype(np.float64)
    shifted = z - z.max(axis=1, keepdims=True)
    log_softmax = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    onehot = np.moveaxis(np.eye(z.shape[1])[target], -1, 1)
    w = np.ones(z.shape[1]) if weight is None else weight.astype(np.float64)
    pixel_weight = w[target]
    total = pixel_weight.sum()
    loss = -(pixel_weight * (log_softmax * onehot).sum(axis=1)).sum() / total
    grad = np.expand_dims(pixel_weight, 1) * (np.exp(log_softmax) - onehot) / total
    return loss, grad


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (1, 4, 3 * 4096 + 5), (5, 3), (2, 1, 4, 4), (2, 3, 2, 3, 4)])
def test_cross_entropy_matches_reference(dtype, weighted, shape):
    # shapes: a small map; one image spanning several pixel blocks plus a partial one;
    # flat (N, C) logits; a single class (loss and gradient zero); two spatial axes
    rng = np.random.default_rng(4)
    logits = (rng.standard_normal(shape) * 3).astype(dtype)
    target = rng.integers(0, shape[1], shape[:1] + shape[2:]).astype(np.uint8)
    weight = rng.uniform(0.2, 3.0, shape[1]).astype(dtype) if weighted else None
    z = ts.tensor(logits, requires_grad=True)
    loss = F.cross_entropy(z, ts.tensor(target), None if weight is None else ts.tensor(weight))
    loss.backward()
    loss_ref, grad_ref = cross_entropy_reference(logits, target, weight)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert loss.dtype == z.grad.dtype == dtype and z.grad.shape == shape
    np.testing.assert_allclose(loss.item(), loss_ref, rtol=tol, atol=tol)
    np.testing.assert_allclose(z.grad, grad_ref, rtol=tol, atol=tol / np.prod(shape))


def test_cross_entropy_non_contiguous_and_upstream_gradient():
    rng = np.random.default_rng(5)
    logits = rng.standard_normal((6, 5, 3, 2)).transpose(3, 2, 1, 0)   # (2, 3, 5, 6), strided
    target = rng.integers(0, 3, (6, 5, 2)).transpose(2, 1, 0)          # (2, 5, 6), strided
    weight = np.array([0.5, 2.0, 1.0])
    z = ts.tensor(logits, requires_grad=True)
    loss = F.cross_entropy(z, ts.tensor(target), ts.tensor(weight))
    loss.backward(np.asarray(2.5))
    loss_ref, grad_ref = cross_entropy_reference(logits, target, weight)
    np.testing.assert_allclose(loss.item(), loss_ref, rtol=1e-12)
    np.testing.assert_allclose(z.grad, 2.5 * grad_ref, rtol=1e-10, atol=1e-15)


def test_cross_entropy_weights_are_cast_to_the_logits_dtype():
    rng = np.random.default_rng(6)
    z = ts.tensor(rng.standard_normal((2, 3, 4, 4)).astype(np.float32), requires_grad=True)
    loss = F.cross_entropy(z, ts.tensor(rng.integers(0, 3, (2, 4, 4))), ts.tensor(np.array([1.0, 2.0, 3.0])))
    loss.backward()
    assert loss.dtype == z.grad.dtype == np.float32


def test_openmp_threads_sleep_unless_the_user_says_otherwise():
    import os
    import subprocess
    import sys
    code = "import os, tinyseg; print(os.environ['OMP_WAIT_POLICY'])"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    assert subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True).stdout.strip() == "PASSIVE"
    env["OMP_WAIT_POLICY"] = "ACTIVE"
    assert subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True).stdout.strip() == "ACTIVE"


def test_cross_entropy_gradient_of_confident_pixels_keeps_its_digits():
    """softmax[t] - 1 for softmax[t] = 1 - 1e-5 keeps float32's relative precision: the
    gradient matches a float64 computation to 1e-6 relative, not the ~1e-2 that
    subtracting 1 in float32 leaves."""
    logits = np.array([[0.0, 11.5], [-2.0, 9.0], [3.0, -8.0]], dtype=np.float32).T.reshape(1, 2, 3, 1)
    target = np.array([[[1], [1], [0]]])
    z = ts.tensor(logits, requires_grad=True)
    F.cross_entropy(z, target).backward()
    z64 = logits.astype(np.float64).reshape(2, 3)
    softmax = np.exp(z64 - z64.max(axis=0)) / np.exp(z64 - z64.max(axis=0)).sum(axis=0)
    expected = (softmax - np.eye(2)[:, [1, 1, 0]]) / 3
    np.testing.assert_allclose(z.grad.reshape(2, 3), expected, rtol=1e-6)
