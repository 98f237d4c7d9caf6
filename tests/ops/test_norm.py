"""batch_norm: gradient checks, PyTorch parity (training and evaluation), and the CPU
kernels against a float64 reference (block boundaries, large means, non-contiguous
inputs, gradients of the running statistics)."""
import numpy as np
import pytest
from hypothesis import assume, given, strategies as st

import tinyseg as ts
import tinyseg.functional as F
from tinyseg.ops.cpu.norm import BLOCK
from torch_parity import (EXAMPLES, SETTINGS, TF, assert_close, assert_grads, backward_both, needs_torch,
                          ours, seeds, t64, theirs, torch)


@SETTINGS
@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 4), st.integers(1, 4), st.booleans(),
       st.booleans(), st.integers(0, 2 ** 31))
def test_batch_norm_gradcheck(n, c, h, w, training, affine, seed):
    assume(not training or n * h * w > 1)
    rng = np.random.default_rng(seed)
    x = t64(rng, n, c, h, w)
    rm = t64(rng, c, grad=not training)
    rv = t64(rng, c, low=0.5, high=2.0, grad=not training)
    params = [t64(rng, c), t64(rng, c)] if affine else []

    def fn(x, rm, rv, *wb):
        stats = [ts.tensor(rm.data.copy()), ts.tensor(rv.data.copy())] if training else [rm, rv]
        return F.batch_norm(x, *stats, *wb, training=training)
    assert ts.gradcheck(fn, [x, rm, rv] + params)


def test_batch_norm_updates_running_statistics():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 2, 3, 3)) * 3 + 1
    rm, rv = ts.tensor(np.zeros(2)), ts.tensor(np.ones(2))
    y = F.batch_norm(ts.tensor(x), rm, rv, training=True, momentum=0.25)
    np.testing.assert_allclose(rm.data, 0.25 * x.mean(axis=(0, 2, 3)))
    np.testing.assert_allclose(rv.data, 0.75 + 0.25 * x.var(axis=(0, 2, 3), ddof=1))
    np.testing.assert_allclose(y.numpy().mean(axis=(0, 2, 3)), 0, atol=1e-12)
    np.testing.assert_allclose(y.numpy().var(axis=(0, 2, 3)), 1, rtol=1e-4)


def test_batch_norm_rejects_bad_shapes():
    with pytest.raises(ValueError, match="running_mean"):
        F.batch_norm(ts.tensor(np.zeros((2, 3, 2, 2))), ts.tensor(np.zeros(2)), ts.tensor(np.ones(3)))


@needs_torch
@EXAMPLES
@given(data=st.data(), seed=seeds)
def test_batch_norm_training_matches_torch(data, seed):
    n, c, h, w = (data.draw(st.integers(1, 3)) for _ in range(4))
    assume(n * h * w >= 2)
    affine = data.draw(st.booleans())
    momentum = data.draw(st.sampled_from([0.1, 0.3, 1.0]))
    eps = data.draw(st.sampled_from([1e-5, 1e-3]))
    rng = np.random.default_rng(seed)
    x_np = rng.standard_normal((n, c, h, w)) * 3 + 1
    mean0, var0 = rng.standard_normal(c), rng.uniform(0.5, 2.0, c)
    x, x_ref = ours(x_np), theirs(x_np)
    rm, rv = ours(mean0, grad=False), ours(var0, grad=False)
    rm_ref, rv_ref = theirs(mean0, grad=False), theirs(var0, grad=False)
    params = {}
    if affine:
        params = {"weight": rng.standard_normal(c), "bias": rng.standard_normal(c)}
    a = {k: ours(v) for k, v in params.items()}
    b = {k: theirs(v) for k, v in params.items()}
    y = F.batch_norm(x, rm, rv, a.get("weight"), a.get("bias"), training=True, momentum=momentum, eps=eps)
    y_ref = TF.batch_norm(x_ref, rm_ref, rv_ref, b.get("weight"), b.get("bias"), training=True,
                          momentum=momentum, eps=eps)
    assert_close(y, y_ref, "batch_norm training forward")
    # running statistics moved toward the batch's mean and unbiased variance, as torch does
    assert_close(rm, rm_ref, "running_mean after the call")
    assert_close(rv, rv_ref, "running_var after the call")
    backward_both(y, y_ref, rng)
    assert_grads({"x": (x, x_ref), **{k: (a[k], b[k]) for k in params}})


@needs_torch
@EXAMPLES
@given(data=st.data(), seed=seeds)
def test_batch_norm_eval_matches_torch(data, seed):
    n, c, h, w = (data.draw(st.integers(1, 3)) for _ in range(4))
    affine = data.draw(st.booleans())
    eps = data.draw(st.sampled_from([1e-5, 1e-3]))
    rng = np.random.default_rng(seed)
    arrays = {"x": rng.standard_normal((n, c, h, w)), "running_mean": rng.standard_normal(c),
              "running_var": rng.uniform(0.5, 2.0, c)}
    if affine:
        arrays.update(weight=rng.standard_normal(c), bias=rng.standard_normal(c))
    a = {k: ours(v) for k, v in arrays.items()}
    b = {k: theirs(v) for k, v in arrays.items()}
    y = F.batch_norm(a["x"], a["running_mean"], a["running_var"], a.get("weight"), a.get("bias"),
                     training=False, eps=eps)
    with torch.no_grad():
        y_torch = TF.batch_norm(b["x"], b["running_mean"], b["running_var"], b.get("weight"),
                                b.get("bias"), training=False, eps=eps)
    assert_close(y, y_torch, "batch_norm eval forward (torch.nn.functional)")
    assert_close(a["running_mean"], arrays["running_mean"], "eval leaves running_mean unchanged")
    assert_close(a["running_var"], arrays["running_var"], "eval leaves running_var unchanged")
    # torch's batch_norm does not differentiate through the running statistics, so the
    # gradients are taken from the same formula written out in torch: every input is a leaf
    per_channel = (1, c, 1, 1)
    mean, var = b["running_mean"].view(per_channel), b["running_var"].view(per_channel)
    y_ref = (b["x"] - mean) / torch.sqrt(var + eps)
    if affine:
        y_ref = y_ref * b["weight"].view(per_channel) + b["bias"].view(per_channel)
    assert_close(y, y_ref, "batch_norm eval forward (formula)")
    backward_both(y, y_ref, rng)
    assert_grads({k: (a[k], b[k]) for k in arrays})


def reference(x, rm, rv, weight, bias, training, eps, gy):
    """Forward and backward in float64, one formula per line: (y, running mean and var after
    the call, gradients of x, running mean, running var, weight, bias)."""
    x, gy = x.astype(np.float64), gy.astype(np.float64)
    axes, c = (0, 2, 3), x.shape[1]
    weight = np.ones(c) if weight is None else weight.astype(np.float64)
    bias = np.zeros(c) if bias is None else bias.astype(np.float64)
    per_channel = (1, c, 1, 1)
    if training:
        mean, var = x.mean(axis=axes), x.var(axis=axes)
        count = x.size // c
        rm, rv = 0.9 * rm + 0.1 * mean, 0.9 * rv + 0.1 * var * count / (count - 1)
    else:
        mean, var = rm.astype(np.float64), rv.astype(np.float64)
    inv_std = 1 / np.sqrt(var + eps)
    x_hat = (x - mean.reshape(per_channel)) * inv_std.reshape(per_channel)
    y = x_hat * weight.reshape(per_channel) + bias.reshape(per_channel)
    g_hat = gy * weight.reshape(per_channel)
    if training:
        gx = inv_std.reshape(per_channel) * (g_hat - g_hat.mean(axis=axes, keepdims=True)
                                             - x_hat * (g_hat * x_hat).mean(axis=axes, keepdims=True))
        g_rm = g_rv = None
    else:
        gx = g_hat * inv_std.reshape(per_channel)
        g_rm = -g_hat.sum(axis=axes) * inv_std
        g_rv = -0.5 * (g_hat * x_hat).sum(axis=axes) * inv_std ** 2
    return y, rm, rv, (gx, g_rm, g_rv, (gy * x_hat).sum(axis=axes), gy.sum(axis=axes))


def run(x, rm, rv, weight, bias, training, eps, gy):
    """The same through tinyseg: (y, running mean and var after the call, gradients)."""
    dtype = x.dtype
    x_t = ts.tensor(x, requires_grad=True)
    rm_t, rv_t = (ts.tensor(v.astype(dtype), requires_grad=not training) for v in (rm, rv))
    wb = [ts.tensor(v.astype(dtype), requires_grad=True) for v in (weight, bias) if v is not None]
    y = F.batch_norm(x_t, rm_t, rv_t, *wb, training=training, momentum=0.1, eps=eps)
    y.backward(gy)
    grads = (x_t.grad, rm_t.grad, rv_t.grad) + tuple(t.grad for t in wb) + (None,) * (2 - len(wb))
    return y.numpy(), rm_t.numpy(), rv_t.numpy(), grads


def check(x, training, affine, rng, eps=1e-5, rtol=1e-10, atol=1e-10):
    c = x.shape[1]
    rm, rv = rng.standard_normal(c), rng.uniform(0.5, 2.0, c)
    weight, bias = (rng.standard_normal(c), rng.standard_normal(c)) if affine else (None, None)
    gy = rng.standard_normal(x.shape).astype(x.dtype)
    got = run(x, rm, rv, weight, bias, training, eps, gy)
    want = reference(x, rm, rv, weight, bias, training, eps, gy)
    assert got[0].dtype == x.dtype and got[3][0].dtype == x.dtype
    for name, a, b in zip(("y", "running_mean", "running_var"), got[:3], want[:3]):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=name)
    names = ("x", "running_mean", "running_var", "weight", "bias")
    for name, a, b in zip(names, got[3], want[3]):
        if b is None or (name in ("weight", "bias") and not affine):
            assert a is None, name
        else:
            assert a.shape == b.shape and a.dtype == x.dtype, name
            np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=f"d {name}")
    return got


SHAPES = [(2, 3, 4, 5), (1, 1, 7, 9),          # several channels; one channel, one image
          (1, 1, 1, 2), (2, 1, 1, 1),          # N*H*W = 2, the fewest training allows
          (1, 2, 70, 61), (3, 2, 64, 128),     # rows of more than one block, uneven last block
          (2, 40, 5, 6)]                       # more channels than pixels per row


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("affine", [True, False])
def test_matches_float64_reference(shape, training, affine):
    rng = np.random.default_rng(sum(shape))
    check(rng.standard_normal(shape) * 3 + 1, training, affine, rng)


@pytest.mark.parametrize("training", [True, False])
def test_float32_matches_float64_reference(training):
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((2, 5, 33, 140)) * 2 - 1).astype(np.float32)
    check(x, training, True, rng, rtol=2e-5, atol=2e-5)


def test_float32_large_mean_keeps_precision():
    # mean 1e4, standard deviation 1: sum(x^2) / n - mean^2 in float32 would lose every
    # digit of the variance; the statistics and both passes must stay float32-accurate.
    rng = np.random.default_rng(2)
    x = (1e4 + rng.standard_normal((2, 3, 128, 160))).astype(np.float32)
    assert x.shape[2] * x.shape[3] > 4 * BLOCK
    check(x, True, True, rng, rtol=1e-5, atol=1e-5)   # the former NumPy code: y off by 1e-3
    # momentum 1: the running statistics become the batch's, the variance unbiased
    rm, rv = ts.tensor(np.zeros(3, np.float32)), ts.tensor(np.ones(3, np.float32))
    y = F.batch_norm(ts.tensor(x), rm, rv, training=True, momentum=1.0).numpy().astype(np.float64)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(rm.numpy(), x64.mean(axis=(0, 2, 3)), rtol=1e-7)
    np.testing.assert_allclose(rv.numpy(), x64.var(axis=(0, 2, 3), ddof=1), rtol=1e-6)
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-6)
    var = x64.var(axis=(0, 2, 3))
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), var / (var + 1e-5), rtol=1e-6)


def test_non_contiguous_input_gives_the_contiguous_results():
    rng = np.random.default_rng(3)
    base = rng.standard_normal((3, 8, 9, 12))
    x = base.transpose(0, 1, 3, 2)[:, ::2, 1:, ::-1]        # strided, reversed, transposed
    assert not x.flags.c_contiguous
    gy = rng.standard_normal(x.shape)
    for training in (True, False):
        outs = []
        for v in (x, np.ascontiguousarray(x)):
            rm, rv = ts.tensor(np.zeros(4)), ts.tensor(np.ones(4))
            t = ts.tensor(v, requires_grad=True)
            y = F.batch_norm(t, rm, rv, training=training)
            y.backward(gy)
            outs.append((y.numpy(), t.grad, rm.numpy(), rv.numpy()))
        for a, b in zip(*outs):
            np.testing.assert_array_equal(a, b)
    check(x, True, True, rng)


@pytest.mark.parametrize("affine", [True, False])
def test_eval_gradients_of_running_statistics(affine):
    rng = np.random.default_rng(4)
    x = ts.tensor(rng.standard_normal((2, 3, 4, 5)), requires_grad=True)
    rm = ts.tensor(rng.standard_normal(3), requires_grad=True)
    rv = ts.tensor(rng.uniform(0.5, 2.0, 3), requires_grad=True)
    params = [ts.tensor(rng.standard_normal(3), requires_grad=True) for _ in range(2)] if affine else []
    assert ts.gradcheck(lambda *a: F.batch_norm(*a, training=False, eps=1e-3), [x, rm, rv] + params)


def test_eval_backward_without_input_gradient():
    # only the running statistics want gradients: backward still returns them
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 4, 5))
    rm = ts.tensor(rng.standard_normal(3), requires_grad=True)
    rv = ts.tensor(rng.uniform(0.5, 2.0, 3), requires_grad=True)
    gy = rng.standard_normal(x.shape)
    F.batch_norm(ts.tensor(x), rm, rv).backward(gy)
    _, _, _, (_, g_rm, g_rv, _, _) = reference(x, rm.numpy(), rv.numpy(), None, None, False, 1e-5, gy)
    np.testing.assert_allclose(rm.grad, g_rm, rtol=1e-12)
    np.testing.assert_allclose(rv.grad, g_rv, rtol=1e-12)


def test_training_rejects_one_value_per_channel():
    with pytest.raises(ValueError, match="more than one value per channel"):
        F.batch_norm(ts.tensor(np.zeros((1, 3, 1, 1))), ts.tensor(np.zeros(3)), ts.tensor(np.ones(3)),
                     training=True)
