"""cross_entropy: gradient checks, PyTorch parity, and the CPU kernels against a reference
(class weights, many pixels, non-contiguous logits, confident pixels)."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import tinyseg as ts
import tinyseg.functional as F
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
