"""Every op's backward against finite differences in float64, on hypothesis-drawn shapes."""
import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

import tinyseg as ts
import tinyseg.functional as F

SETTINGS = settings(max_examples=30, deadline=None)


def t64(rng, *shape, low=None, high=None, grad=True):
    data = rng.standard_normal(shape) if low is None else rng.uniform(low, high, shape)
    return ts.tensor(data.astype(np.float64), requires_grad=grad)


@st.composite
def conv_cases(draw):
    k = draw(st.integers(1, 4))
    stride = draw(st.integers(1, 5))           # includes stride larger than kernel
    padding = draw(st.integers(0, k - 1))
    h = draw(st.integers(max(1, k - 2 * padding), 8))
    w = draw(st.integers(max(1, k - 2 * padding), 8))
    return dict(n=draw(st.integers(1, 2)), c_in=draw(st.integers(1, 3)), c_out=draw(st.integers(1, 3)),
                h=h, w=w, k=k, stride=stride, padding=padding, bias=draw(st.booleans()),
                relu=draw(st.booleans()), seed=draw(st.integers(0, 2 ** 31)))


@SETTINGS
@given(conv_cases())
def test_conv2d(case):
    rng = np.random.default_rng(case["seed"])
    x = t64(rng, case["n"], case["c_in"], case["h"], case["w"])
    w = t64(rng, case["c_out"], case["c_in"], case["k"], case["k"])
    inputs = [x, w] + ([t64(rng, case["c_out"])] if case["bias"] else [])
    fn = lambda x, w, b=None: F.conv2d(x, w, b, stride=case["stride"], padding=case["padding"],  # noqa: E731
                                       relu=case["relu"])
    y = fn(*inputs)
    if case["relu"]:   # the fused ReLU is the ReLU of the plain convolution
        plain = F.relu(F.conv2d(*inputs[:2], *inputs[2:], stride=case["stride"], padding=case["padding"]))
        np.testing.assert_array_equal(y.numpy(), plain.numpy())
    assert y.shape == (case["n"], case["c_out"],
                       (case["h"] + 2 * case["padding"] - case["k"]) // case["stride"] + 1,
                       (case["w"] + 2 * case["padding"] - case["k"]) // case["stride"] + 1)
    assert ts.gradcheck(fn, inputs)


@SETTINGS
@given(conv_cases())
def test_conv_transpose2d(case):
    rng = np.random.default_rng(case["seed"])
    out_h = (case["h"] - 1) * case["stride"] - 2 * case["padding"] + case["k"]
    out_w = (case["w"] - 1) * case["stride"] - 2 * case["padding"] + case["k"]
    assume(out_h >= 1 and out_w >= 1)
    x = t64(rng, case["n"], case["c_in"], case["h"], case["w"])
    w = t64(rng, case["c_in"], case["c_out"], case["k"], case["k"])
    inputs = [x, w] + ([t64(rng, case["c_out"])] if case["bias"] else [])
    fn = lambda x, w, b=None: F.conv_transpose2d(x, w, b, stride=case["stride"], padding=case["padding"])  # noqa: E731
    assert fn(*inputs).shape == (case["n"], case["c_out"], out_h, out_w)
    assert ts.gradcheck(fn, inputs)


def test_conv_transpose_is_the_adjoint_of_conv():
    # <conv(x), y> == <x, conv_transpose(y)> for the same weights
    rng = np.random.default_rng(1)
    # 9x7 with k=3, s=2, p=1 gives 5x4, and the transpose of 5x4 is exactly 9x7 again
    x, w = rng.standard_normal((2, 3, 9, 7)), rng.standard_normal((4, 3, 3, 3))
    y = F.conv2d(ts.tensor(x), ts.tensor(w), stride=2, padding=1).numpy()
    r = rng.standard_normal(y.shape)
    back = F.conv_transpose2d(ts.tensor(r), ts.tensor(w), stride=2, padding=1).numpy()
    assert back.shape == x.shape
    np.testing.assert_allclose((y * r).sum(), (x * back).sum(), rtol=1e-10)


@SETTINGS
@given(st.integers(1, 4), st.integers(1, 4), st.integers(1, 2), st.integers(1, 2),
       st.integers(1, 9), st.integers(1, 9), st.integers(0, 2 ** 31))
def test_max_pool2d(k, stride, n, c, h, w, seed):
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


@SETTINGS
@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 4), st.integers(1, 4), st.booleans(),
       st.booleans(), st.integers(0, 2 ** 31))
def test_batch_norm(n, c, h, w, training, affine, seed):
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


@SETTINGS
@given(st.integers(1, 3), st.integers(2, 4), st.integers(1, 4), st.integers(1, 4), st.booleans(),
       st.integers(0, 2 ** 31))
def test_cross_entropy(n, c, h, w, weighted, seed):
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


@SETTINGS
@given(st.integers(1, 5), st.integers(1, 3), st.integers(1, 4), st.integers(1, 3), st.booleans(),
       st.integers(0, 2 ** 31))
def test_lstm(steps, batch, n_in, hidden, reverse, seed):
    rng = np.random.default_rng(seed)
    inputs = [t64(rng, steps, batch, n_in), t64(rng, 4 * hidden, n_in), t64(rng, 4 * hidden, hidden),
              t64(rng, 4 * hidden), t64(rng, 4 * hidden)]
    assert ts.gradcheck(lambda *a: F.lstm(*a, reverse=reverse), inputs)


def test_lstm_matches_a_step_by_step_reference():
    rng = np.random.default_rng(3)
    steps, batch, n_in, hidden = 4, 2, 3, 5
    x = rng.standard_normal((steps, batch, n_in))
    w_ih, w_hh = rng.standard_normal((4 * hidden, n_in)), rng.standard_normal((4 * hidden, hidden))
    b_ih, b_hh = rng.standard_normal(4 * hidden), rng.standard_normal(4 * hidden)
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    for reverse in (False, True):
        h, c, expected = np.zeros((batch, hidden)), np.zeros((batch, hidden)), np.zeros((steps, batch, hidden))
        for t in (reversed(range(steps)) if reverse else range(steps)):
            z = x[t] @ w_ih.T + b_ih + h @ w_hh.T + b_hh
            i, f, g, o = np.split(z, 4, axis=1)
            c = sig(f) * c + sig(i) * np.tanh(g)
            h = expected[t] = sig(o) * np.tanh(c)
        out = F.lstm(*(ts.tensor(a) for a in (x, w_ih, w_hh, b_ih, b_hh)), reverse=reverse)
        np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12)


def _renet_params(rng, c, ph, pw, d):
    params = {}
    for name in ("h_fwd", "h_bwd", "v_fwd", "v_bwd"):
        n_in = c * ph * pw if name[0] == "h" else 2 * d
        params[name] = (t64(rng, 4 * d, n_in) * 0.5, t64(rng, 4 * d, d) * 0.5, t64(rng, 4 * d), t64(rng, 4 * d))
        params[name] = tuple(ts.tensor(p.data, requires_grad=True) for p in params[name])
    return params


@settings(max_examples=6, deadline=None)
@given(st.integers(1, 2), st.integers(1, 2), st.sampled_from([(2, 2), (1, 2), (2, 1), (1, 1)]),
       st.integers(1, 3), st.integers(1, 3), st.integers(1, 2), st.integers(0, 2 ** 31))
def test_renet(n, c, patch, rows, cols, d, seed):
    rng = np.random.default_rng(seed)
    ph, pw = patch
    x = t64(rng, n, c, rows * ph, cols * pw)
    params = _renet_params(rng, c, ph, pw, d)
    names = list(params)
    flat = [p for name in names for p in params[name]]

    def fn(x, *ps):
        return F.renet(x, {name: ps[4 * i:4 * i + 4] for i, name in enumerate(names)}, patch)
    assert fn(x, *flat).shape == (n, 2 * d, rows, cols)
    assert ts.gradcheck(fn, [x] + flat)


def test_renet_sweep_order_matches_definition():
    """Rebuild the ReNet output with explicit loops over rows and columns of patches."""
    rng = np.random.default_rng(7)
    n, c, ph, pw, d, rows, cols = 2, 2, 2, 2, 3, 3, 4
    x = rng.standard_normal((n, c, rows * ph, cols * pw))
    params = _renet_params(rng, c, ph, pw, d)
    out = F.renet(ts.tensor(x), params).numpy()

    def run(seq, name, reverse):
        return F.lstm(ts.tensor(seq), *params[name], reverse=reverse).numpy()
    expected = np.zeros((n, 2 * d, rows, cols))
    horizontal = np.zeros((n, rows, cols, 2 * d))
    for b in range(n):
        for r in range(rows):
            seq = np.stack([x[b, :, r * ph:(r + 1) * ph, q * pw:(q + 1) * pw].reshape(-1)
                            for q in range(cols)])[:, None]            # (Wp, 1, C*ph*pw)
            horizontal[b, r] = np.concatenate([run(seq, "h_fwd", False), run(seq, "h_bwd", True)], -1)[:, 0]
        for q in range(cols):
            seq = horizontal[b, :, q][:, None]                        # (Hp, 1, 2d)
            col = np.concatenate([run(seq, "v_fwd", False), run(seq, "v_bwd", True)], -1)[:, 0]
            expected[b, :, :, q] = col.T
    np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-12)


def test_renet_rejects_indivisible_maps():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="does not divide"):
        F.renet(ts.tensor(rng.standard_normal((1, 1, 3, 4))), _renet_params(rng, 1, 2, 2, 1))


@pytest.mark.parametrize("kernel, padding", [(1, 0), (3, 1)])
def test_conv_on_an_empty_batch(kernel, padding):
    x = ts.tensor(np.zeros((0, 2, 5, 4)), requires_grad=True)
    w = ts.tensor(np.ones((3, 2, kernel, kernel)), requires_grad=True)
    y = F.conv2d(x, w, padding=padding)
    assert y.shape == (0, 3, 5, 4)
    y.sum().backward()
    assert x.grad.shape == x.shape
    np.testing.assert_array_equal(w.grad, 0)
