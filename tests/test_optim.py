"""Optimisers against hand-computed iterates."""
import numpy as np
import pytest

import tinyseg as ts
from tinyseg import nn, optim


def param(values):
    return nn.Parameter(np.asarray(values, dtype=np.float64))


def test_sgd_follows_the_paper_rule():
    # V <- mu V - lr g ; W <- W + V, with g = 2W (loss = sum W^2)
    w = param([1.0, -2.0])
    opt = optim.SGD([w], lr=0.1, momentum=0.9)
    expected_w, v = np.array([1.0, -2.0]), np.zeros(2)
    for _ in range(3):
        opt.zero_grad()
        (w * w).sum().backward()
        opt.step()
        v = 0.9 * v - 0.1 * 2 * expected_w
        expected_w = expected_w + v
        np.testing.assert_allclose(w.data, expected_w, rtol=1e-14)
    # iterate 1: w = 0.8, -1.6; iterate 2: v = -0.18-0.16 = -0.34 -> 0.46
    np.testing.assert_allclose(optim.SGD([param([1.0])], lr=0.1).lr, 0.1)


def test_sgd_hand_values_and_weight_decay():
    w = param([1.0])
    opt = optim.SGD([w], lr=0.1, momentum=0.5, weight_decay=0.1)
    w.grad = np.array([1.0])
    opt.step()                      # v = -0.1 * (1 + 0.1) = -0.11 -> w = 0.89
    np.testing.assert_allclose(w.data, [0.89])
    w.grad = np.array([1.0])
    opt.step()                      # v = 0.5 * -0.11 - 0.1 * (1 + 0.089) = -0.1639 -> 0.7261
    np.testing.assert_allclose(w.data, [0.7261])


def test_adam_hand_values():
    w = param([1.0])
    opt = optim.Adam([w], lr=0.1)
    w.grad = np.array([2.0])
    opt.step()   # m_hat = 2, v_hat = 4 -> step = 0.1 * 2 / (2 + 1e-8)
    np.testing.assert_allclose(w.data, [1.0 - 0.1 * 2 / (2 + 1e-8)], rtol=1e-15)
    before = w.data[0]
    w.grad = np.array([-1.0])
    opt.step()
    m = 0.9 * 0.2 + 0.1 * -1.0
    v = 0.999 * 0.004 + 0.001 * 1.0
    m_hat, v_hat = m / (1 - 0.81), v / (1 - 0.999 ** 2)
    np.testing.assert_allclose(w.data, [before - 0.1 * m_hat / (np.sqrt(v_hat) + 1e-8)], rtol=1e-12)


def test_parameters_without_grad_are_skipped_and_state_round_trips():
    a, b = param([1.0]), param([2.0])
    opt = optim.Adam([a, b], lr=0.01)
    a.grad = np.array([1.0])
    opt.step()
    assert b.data[0] == 2.0
    state = opt.state_dict()
    other = optim.Adam([param([1.0]), param([2.0])], lr=0.5)
    other.load_state_dict(state)
    assert other.lr == 0.01 and other.state[0]["t"] == 1
    np.testing.assert_array_equal(other.state[0]["m"], opt.state[0]["m"])


def test_bad_arguments():
    with pytest.raises(ValueError, match="empty"):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="positive"):
        optim.SGD([param([1.0])], lr=0)


def test_sgd_trains_a_small_model():
    rng = np.random.default_rng(0)
    conv = nn.Conv2d(1, 2, 3, padding=1, rng=rng)
    x = ts.tensor(rng.standard_normal((4, 1, 6, 6)))
    target = ts.tensor((x.numpy()[:, 0] > 0).astype(np.int64))
    opt = optim.SGD(conv.parameters(), lr=0.1, momentum=0.9)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = ts.functional.cross_entropy(conv(x), target)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0]


def reference_step(kind, w, g, state, lr, t, momentum=0.9, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    """The update rules as float64 array expressions (the GPU path's form)."""
    g = g + weight_decay * w
    if kind == "sgd":
        state["v"] = momentum * state["v"] - lr * g
        return w + state["v"]
    b1, b2 = betas
    state["m"] = b1 * state["m"] + (1 - b1) * g
    state["v"] = b2 * state["v"] + (1 - b2) * g * g
    return w - lr * (state["m"] / (1 - b1 ** t)) / (np.sqrt(state["v"] / (1 - b2 ** t)) + eps)


@pytest.mark.parametrize("kind", ["sgd", "adam"])
@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 2e-5)])
@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_the_fused_cpu_updates_follow_the_formulas(kind, dtype, rtol, weight_decay):
    rng = np.random.default_rng(5)
    shapes = [(3, 4, 3, 3), (7,), (2, 5)]
    params = [nn.Parameter(rng.standard_normal(s).astype(dtype)) for s in shapes]
    make = optim.SGD if kind == "sgd" else optim.Adam
    opt = make(params, lr=0.05, weight_decay=weight_decay)
    weights = [p.data.astype(np.float64) for p in params]
    states = [{"v": np.zeros(s), "m": np.zeros(s)} for s in shapes]
    for t in range(1, 6):
        grads = [rng.standard_normal(s).astype(dtype) for s in shapes]
        for p, g in zip(params, grads):
            p.grad = g
        opt.step()
        weights = [reference_step(kind, w, g.astype(np.float64), st, 0.05, t, weight_decay=weight_decay)
                   for w, g, st in zip(weights, grads, states)]
        for p, w in zip(params, weights):
            assert p.data.dtype == dtype
            np.testing.assert_allclose(p.data, w, rtol=rtol, atol=rtol)


def test_a_parameter_that_is_not_contiguous_takes_the_array_path():
    base = np.arange(12, dtype=np.float64).reshape(3, 4)
    p = nn.Parameter(base)
    p.data = base[:, ::2]                      # a strided view: no flat view of it exists
    opt = optim.Adam([p], lr=0.1)
    p.grad = np.ones((3, 2))
    opt.step()
    np.testing.assert_allclose(base[:, ::2], np.arange(12, dtype=np.float64).reshape(3, 4)[:, ::2] - 0.1 / (1 + 1e-8))
