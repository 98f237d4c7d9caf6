"""cross_entropy: gradient checks, PyTorch parity, and the CPU kernels against a reference
(class weights, many pixels, non-contiguous logits, confident pixels, extreme and NaN
logits), and the kernels' own exp and log1p against numpy."""
import numba
import numpy as np
import pytest
from hypothesis import given, strategies as st
from numba import njit

import tinyseg as ts
import tinyseg.functional as F
from tinyseg.ops.cpu import loss as cpu_loss
from tinyseg.ops.cpu import vmath
from tinyseg.ops.loss import CrossEntropy
from torch_parity import (EXAMPLES, SETTINGS, TF, assert_close, backward_both, needs_torch, ours, seeds, t64,
                          theirs, torch)


@SETTINGS
@given(st.integers(1, 3), st.integers(2, 4), st.integers(1, 4), st.integers(1, 4), st.booleans(),
       st.integers(0, 2 ** 31))
def test_cross_entropy_gradcheck(n, c, h, w, weighted, seed):
    rng = np.random.default_rng(seed)
    x = t64(rng, n, c, h, w)
    target = ts.tensor(rng.integers(0, c, (n, h, w)))
    weight = [ts.tensor(rng.uniform(0.2, 2.0, c))] if weighted else []
    assert ts.gradcheck(lambda x: F.cross_entropy(x, target, *weight), [x])


def test_cross_entropy_value_and_stability():
    logits = np.array([[[[1000.0]], [[0.0]], [[-1000.0]]]])        # (1, 3, 1, 1)
    loss = F.cross_entropy(ts.tensor(logits), ts.tensor(np.array([[[1]]])))
    np.testing.assert_allclose(loss.item(), 1000.0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 2, 2))
    t = rng.integers(0, 3, (2, 2, 2))
    logp = x - np.log(np.exp(x).sum(axis=1, keepdims=True))
    manual = -np.take_along_axis(logp, t[:, None], axis=1).mean()
    np.testing.assert_allclose(F.cross_entropy(ts.tensor(x), ts.tensor(t)).item(), manual)
    with pytest.raises(ValueError, match=r"target values must lie in \[0, 2\]"):
        F.cross_entropy(ts.tensor(x), ts.tensor(t + 1))
    with pytest.raises(ValueError, match="targets of shape"):
        F.cross_entropy(ts.tensor(x), ts.tensor(t[:, :1]))


@needs_torch
@EXAMPLES
@given(data=st.data(), seed=seeds)
def test_cross_entropy_matches_torch(data, seed):
    n, c = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 5))
    h, w = data.draw(st.integers(1, 5)), data.draw(st.integers(1, 5))
    weighted = data.draw(st.booleans())
    scale = data.draw(st.sampled_from([1.0, 1e3]))             # 1e3: exp would overflow unshifted
    target_dtype = data.draw(st.sampled_from([np.int64, np.int32, np.uint8]))
    rng = np.random.default_rng(seed)
    logits_np = rng.standard_normal((n, c, h, w)) * scale
    target_np = rng.integers(0, c, (n, h, w)).astype(target_dtype)
    logits, logits_ref = ours(logits_np), theirs(logits_np)
    class_weight = rng.uniform(0.1, 3.0, c) if weighted else None
    loss = F.cross_entropy(logits, ts.tensor(target_np),
                           None if class_weight is None else ours(class_weight, grad=False))
    loss_ref = TF.cross_entropy(logits_ref, torch.from_numpy(target_np.astype(np.int64)),
                                None if class_weight is None else theirs(class_weight, grad=False),
                                reduction="mean")
    assert loss.shape == ()
    assert np.isfinite(loss.item())
    # torch takes log of the whole sum, which rounds a confident pixel's loss (below ~1e-16) to
    # 0; tinyseg's log1p of the other terms keeps it: agreement to that rounding, per pixel
    assert_close(loss, loss_ref, "cross_entropy forward", floor=1e-15)
    backward_both(loss, loss_ref, rng)
    # torch forms the target class's softmax - 1 by subtraction, exact only to the rounding of
    # terms of size w[t] / sum(w); tinyseg sums the other classes (see the confident-pixel tests)
    pixel_weight = np.ones(target_np.shape) if class_weight is None else class_weight[target_np]
    assert_close(logits.grad, logits_ref.grad, "grad logits", floor=1e-10 * pixel_weight.max() / pixel_weight.sum())


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


def test_a_confident_pixels_tiny_loss_keeps_its_digits():
    """log1p of the other classes' terms, not log of a sum that rounds to 1: the loss of a
    pixel at -30 / 0 logits is about 9.4e-14 (log(1 + e^-30)), not 0."""
    logits = ts.tensor(np.array([[[[0.0]], [[-30.0]]]]))
    loss = F.cross_entropy(logits, ts.tensor(np.zeros((1, 1, 1), np.int64)))
    assert loss.item() == pytest.approx(np.log1p(np.exp(-30.0)), rel=1e-12)


# --- the CPU kernels' own exponential and logarithm ------------------------------------


@njit
def exp_of_each(x):
    out = np.empty_like(x)
    for i in range(x.size):
        out[i] = vmath.exp_nonpositive(x[i])
    return out


@njit
def log1p_and_reciprocal_of_each(x):
    log, inverse = np.empty_like(x), np.empty_like(x)
    for i in range(x.size):
        log[i], inverse[i] = vmath.log1p_and_reciprocal(x[i])
    return log, inverse


# exact enough references: float32 results against numpy's float64 exp, float64 ones against
# numpy's long double exp where that is wider (x86), else against float64 with a looser bound
EXTENDED = np.finfo(np.longdouble).eps < 1e-18


@pytest.mark.parametrize("dtype, lowest, underflow, bound", [
    (np.float32, -120.0, -103.98, 1.0e-7),                              # eps 1.19e-7; measured 8.4e-8
    (np.float64, -800.0, -745.14, 2.0e-16 if EXTENDED else 4e-16),      # eps 2.22e-16; measured 1.5e-16
])
def test_exp_nonpositive_matches_numpy(dtype, lowest, underflow, bound):
    x = np.concatenate([np.linspace(lowest, 0.0, 2_000_001), -np.geomspace(1e-30, 1.0, 10_001)]).astype(dtype)
    got = exp_of_each(x)
    assert got.dtype == dtype
    wider = np.longdouble if dtype == np.float64 and EXTENDED else np.float64
    exact = np.exp(x.astype(wider))
    tiny, smallest = np.finfo(dtype).tiny, np.finfo(dtype).smallest_subnormal
    normal = exact >= tiny
    relative = np.abs(got[normal].astype(wider) - exact[normal]) / exact[normal]
    assert relative.max() <= bound, relative.max()
    # below the smallest normal the result is subnormal: within one unit of its last place
    assert np.abs(got[~normal].astype(wider) - exact[~normal]).max() <= smallest
    # beyond underflow exactly 0, above it never 0
    assert np.all(got[x < underflow] == 0) and np.all(got[x > underflow + 0.01] > 0)
    special = exp_of_each(np.array([0.0, -0.0, np.nan, -np.inf, -1e30, -np.finfo(dtype).max], dtype))
    assert special[0] == 1 and special[1] == 1 and np.isnan(special[2]) and np.all(special[3:] == 0)


def test_log1p_and_reciprocal_match_numpy():
    x = np.concatenate([np.linspace(0.0, 20.0, 2_000_001), np.geomspace(1e-300, 1.0, 100_001),
                        np.geomspace(1.0, 1e6, 10_001), [5e-324, 1e-17, 2.0 ** -53]])
    log, inverse = log1p_and_reciprocal_of_each(x)
    wider = np.longdouble if EXTENDED else np.float64
    exact = np.log1p(x.astype(wider))
    relative = np.abs(log[1:].astype(wider) - exact[1:]) / exact[1:]
    assert relative.max() <= (5e-16 if EXTENDED else 7e-16), relative.max()     # measured 4.2e-16
    assert log[0] == 0 and np.array_equal(inverse, 1.0 / (1.0 + x))
    assert np.all(np.isnan(log1p_and_reciprocal_of_each(np.array([np.nan]))[0]))


# --- the kernels on extreme logits, against float64 -----------------------------------

def careful_reference(logits, target, weight):
    """As cross_entropy_reference, in float64, but keeping the digits of confident pixels
    the way the kernels do (log1p of all terms but one maximal one; the target's gradient
    as minus the sum of the other classes), so that it can check them to 1e-6 relative."""
    z = logits.astype(np.float64)
    top = z.max(axis=1, keepdims=True)
    e = np.exp(z - top)
    others = e.copy()
    np.put_along_axis(others, z.argmax(axis=1)[:, None], 0.0, axis=1)
    rest = others.sum(axis=1)
    softmax = e / (1.0 + rest[:, None])
    z_t = np.take_along_axis(z - top, target[:, None], axis=1)[:, 0]
    w = np.ones(z.shape[1]) if weight is None else weight.astype(np.float64)
    pixel_weight = w[target]
    total = pixel_weight.sum()
    loss = -(pixel_weight * (z_t - np.log1p(rest))).sum() / total
    onehot = np.moveaxis(np.eye(z.shape[1], dtype=bool)[target], -1, 1)
    minus_others = -np.where(onehot, 0.0, softmax).sum(axis=1, keepdims=True)
    grad = np.expand_dims(pixel_weight, 1) * np.where(onehot, minus_others, softmax) / total
    return loss, grad


def extreme_logits(dtype):
    """(1, 3, 12) logits, one column a pixel: huge margins both ways, mixed signs, ties."""
    columns = [(1e4, -1e4, 0.0), (-1e4, 1e4, -1e4), (-1e4, -1e4, -1e4), (1e4, 1e4, 1e4), (0.0, 0.0, 0.0),
               (5.0, 5.0, -3.0), (-3.0, 5.0, 5.0), (30.0, 0.0, -30.0), (-80.0, 0.0, 1e-3), (1e4, 9990.0, 0.0),
               (-87.0, 0.0, -110.0), (1.5, -2.25, 0.5)]
    return np.array(columns, dtype).T[None]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weight", [None, (0.5, 2.0, 1.25), (1.0, 0.0, 3.0)])   # 0.0: a class that is ignored
@pytest.mark.parametrize("target_class", [0, 1, 2, "mixed"])
def test_cross_entropy_extreme_logits_match_float64(dtype, weight, target_class):
    logits = extreme_logits(dtype)
    target = (np.arange(12) % 3 if target_class == "mixed" else np.full(12, target_class))[None]
    w = None if weight is None else np.array(weight, dtype)
    if w is not None and not w[target].any():
        return                                    # every pixel ignored: the mean is 0 / 0
    z = ts.tensor(logits, requires_grad=True)
    loss = F.cross_entropy(z, ts.tensor(target), None if w is None else ts.tensor(w))
    loss.backward()
    loss_ref, grad_ref = careful_reference(logits, target, w)
    tol = 1e-6 if dtype == np.float32 else 1e-13
    assert np.isfinite(loss.item()) and np.all(np.isfinite(z.grad))
    np.testing.assert_allclose(loss.item(), loss_ref, rtol=tol)
    np.testing.assert_allclose(z.grad, grad_ref, rtol=tol, atol=1e-30)
    # the softmax kept for backward sums to 1 and is exactly uniform on ties
    fn = CrossEntropy()
    fn.forward_cpu(logits, target, w)
    np.testing.assert_allclose(fn.softmax.sum(axis=1), 1.0, rtol=2 * np.finfo(dtype).eps)
    assert np.all(fn.softmax[0, :, [2, 3, 4]] == dtype(1 / 3))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("nan_class", [0, 1, 2])
def test_cross_entropy_nan_logit_gives_nan(dtype, nan_class):
    """A NaN logit makes the loss NaN, whichever class it sits in, and that pixel's
    gradient NaN; the other pixels' gradients stay as they were."""
    rng = np.random.default_rng(7)
    logits = rng.standard_normal((2, 3, 4, 5)).astype(dtype)
    target = rng.integers(0, 3, (2, 4, 5))
    logits[1, nan_class, 2, 3] = np.nan
    z = ts.tensor(logits, requires_grad=True)
    loss = F.cross_entropy(z, ts.tensor(target))
    loss.backward()
    assert np.isnan(loss.item())
    assert np.all(np.isnan(z.grad[1, :, 2, 3]))
    finite = logits.copy()
    finite[1, nan_class, 2, 3] = 0.0
    _, grad_ref = careful_reference(finite, target, None)
    mask = np.ones((2, 4, 5), bool)
    mask[1, 2, 3] = False
    np.testing.assert_allclose(np.moveaxis(z.grad, 1, -1)[mask], np.moveaxis(grad_ref, 1, -1)[mask],
                               rtol=1e-6 if dtype == np.float32 else 1e-13)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_many_blocks_match_float64_on_any_thread_count(dtype):
    """Many blocks, wide logits, class weights: loss and gradient to the dtype's precision,
    and the same bits whatever the number of threads."""
    rng = np.random.default_rng(8)
    shape = (3, 4, 50, 171)                       # 8550 pixels per image: 2 full blocks + a partial one
    logits = (rng.standard_normal(shape) * rng.choice([0.1, 3.0, 40.0], shape[:1] + shape[2:])[:, None]).astype(dtype)
    target = rng.integers(0, 4, shape[:1] + shape[2:])
    w = rng.uniform(0.2, 3.0, 4).astype(dtype)
    results = []
    before = numba.get_num_threads()
    try:
        for threads in sorted({1, min(2, numba.config.NUMBA_NUM_THREADS), numba.config.NUMBA_NUM_THREADS}):
            numba.set_num_threads(threads)
            z = ts.tensor(logits, requires_grad=True)
            loss = F.cross_entropy(z, ts.tensor(target), ts.tensor(w))
            loss.backward()
            results.append((loss.item(), z.grad))
    finally:
        numba.set_num_threads(before)
    loss_ref, grad_ref = careful_reference(logits, target, w)
    tol = 1e-6 if dtype == np.float32 else 1e-13
    for loss, grad in results:
        assert loss == results[0][0] and np.array_equal(grad, results[0][1])
        np.testing.assert_allclose(loss, loss_ref, rtol=tol)
        np.testing.assert_allclose(grad, grad_ref, rtol=tol, atol=tol * np.abs(grad_ref).max() * 1e-3)
