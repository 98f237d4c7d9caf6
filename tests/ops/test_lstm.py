"""lstm (both directions) and renet: gradient checks, a step-by-step reference, the sweep
order, and PyTorch parity (torch.nn.LSTM and the ReNet twin in benchmarks/torch_twin.py)."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinyseg as ts
import tinyseg.functional as F
from tinyseg.ops.cpu import lstm as cpu_lstm
from tinyseg.ops.lstm import bidirectional_lstm
from torch_parity import (EXAMPLES, SETTINGS, TorchReNet, assert_close, assert_grads, backward_both, needs_torch,
                          ours, renet_key, seeds, t64, theirs, torch)


@SETTINGS
@given(st.integers(1, 5), st.integers(1, 3), st.integers(1, 4), st.integers(1, 3), st.booleans(),
       st.integers(0, 2 ** 31))
def test_lstm_gradcheck(steps, batch, n_in, hidden, reverse, seed):
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
def test_renet_gradcheck(n, c, patch, rows, cols, d, seed):
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


LSTM_NAMES = ("w_ih", "w_hh", "b_ih", "b_hh")


TORCH_LSTM_NAMES = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")


def random_lstm_weights(rng, n_in, hidden, scale=0.6):
    shapes = ((4 * hidden, n_in), (4 * hidden, hidden), (4 * hidden,), (4 * hidden,))
    return [rng.standard_normal(s) * scale for s in shapes]


def torch_lstm(n_in, hidden, directions):
    """A float64 torch.nn.LSTM; ``directions`` is a list of weight tuples (forward[, reverse])."""
    module = torch.nn.LSTM(n_in, hidden, bidirectional=len(directions) == 2).double()
    with torch.no_grad():
        for suffix, weights in zip(("", "_reverse"), directions):
            for name, value in zip(TORCH_LSTM_NAMES, weights):
                getattr(module, name + suffix).copy_(torch.from_numpy(value))
    return module


def lstm_shapes():
    return st.tuples(st.integers(1, 5), st.integers(1, 3), st.integers(1, 4), st.integers(1, 4))


def lstm_case(shape, seed):
    """rng, sizes, input and one direction's weights as arrays, tinyseg tensors and x for torch."""
    steps, batch, n_in, hidden = shape
    rng = np.random.default_rng(seed)
    x_np = rng.standard_normal((steps, batch, n_in))
    weights = random_lstm_weights(rng, n_in, hidden)
    return rng, n_in, hidden, x_np, weights, ours(x_np), [ours(v) for v in weights], theirs(x_np)


@needs_torch
@EXAMPLES
@given(shape=lstm_shapes(), seed=seeds)
def test_bidirectional_lstm_matches_torch(shape, seed):
    """The two-direction op of a ReNet sweep is torch's bidirectional LSTM."""
    rng, n_in, hidden, x_np, weights, x, params, x_ref = lstm_case(shape, seed)
    reverse_weights = random_lstm_weights(rng, n_in, hidden)
    reverse_params = [ours(v) for v in reverse_weights]
    module = torch_lstm(n_in, hidden, [weights, reverse_weights])
    y = bidirectional_lstm(x, params, reverse_params)
    y_ref, _ = module(x_ref)
    assert_close(y, y_ref, "bidirectional lstm forward")
    backward_both(y, y_ref, rng)
    assert_grads({"x": (x, x_ref), **{f"{ours_name}{suffix}": (p, getattr(module, name + suffix))
                                      for suffix, ps in (("", params), ("_reverse", reverse_params))
                                      for ours_name, p, name in zip(LSTM_NAMES, ps, TORCH_LSTM_NAMES)}})


@needs_torch
@EXAMPLES
@given(shape=lstm_shapes(), seed=seeds)
def test_lstm_forward_direction_matches_torch(shape, seed):
    rng, n_in, hidden, x_np, weights, x, params, x_ref = lstm_case(shape, seed)
    module = torch_lstm(n_in, hidden, [weights])
    y = F.lstm(x, *params)
    y_ref, _ = module(x_ref)
    assert_close(y, y_ref, "lstm forward")
    backward_both(y, y_ref, rng)
    assert_grads({"x": (x, x_ref), **{ours_name: (p, getattr(module, name)) for ours_name, p, name
                                      in zip(LSTM_NAMES, params, TORCH_LSTM_NAMES)}})


@needs_torch
@EXAMPLES
@given(shape=lstm_shapes(), seed=seeds)
def test_lstm_reverse_direction_matches_torch(shape, seed):
    """reverse=True is the `_reverse` half of torch's bidirectional LSTM output."""
    rng, n_in, hidden, x_np, weights, x, params, x_ref = lstm_case(shape, seed)
    module = torch_lstm(n_in, hidden, [random_lstm_weights(rng, n_in, hidden), weights])
    y = F.lstm(x, *params, reverse=True)
    y_ref = module(x_ref)[0][..., hidden:]
    assert_close(y, y_ref, "lstm reverse forward (bidirectional half)")
    with torch.no_grad():  # the same thing as a forward LSTM over the time-flipped input
        flipped = torch_lstm(n_in, hidden, [weights])(x_ref.flip(0))[0].flip(0)
    assert_close(y, flipped, "lstm reverse forward (flipped input)")
    backward_both(y, y_ref, rng)
    assert_grads({"x": (x, x_ref), **{ours_name: (p, getattr(module, name + "_reverse")) for ours_name, p, name
                                      in zip(LSTM_NAMES, params, TORCH_LSTM_NAMES)}})


DIRECTIONS = ("h_fwd", "h_bwd", "v_fwd", "v_bwd")


@needs_torch
@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 2), c=st.integers(1, 3), grid=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       patch=st.tuples(st.integers(1, 3), st.integers(1, 3)), hidden=st.integers(1, 3), seed=seeds)
def test_renet_matches_torch(n, c, grid, patch, hidden, seed):
    rng = np.random.default_rng(seed)
    x_np = rng.standard_normal((n, c, grid[0] * patch[0], grid[1] * patch[1]))
    reference = TorchReNet(c, hidden, patch).double()
    weights = {}
    for direction in DIRECTIONS:
        n_in = c * patch[0] * patch[1] if direction.startswith("h") else 2 * hidden
        weights[direction] = random_lstm_weights(rng, n_in, hidden)
        with torch.no_grad():
            for k, value in enumerate(weights[direction]):
                reference.lstm_param(direction, k).copy_(torch.from_numpy(value))
    x, x_ref = ours(x_np), theirs(x_np)
    params = {d: tuple(ours(v) for v in weights[d]) for d in DIRECTIONS}
    y = F.renet(x, params, patch=patch)
    y_ref = reference(x_ref)
    assert y.shape == (n, 2 * hidden, grid[0], grid[1])
    assert_close(y, y_ref, "renet forward")
    backward_both(y, y_ref, rng)
    pairs = {"x": (x, x_ref)}
    for d in DIRECTIONS:
        for k, name in enumerate(LSTM_NAMES):
            pairs[f"{d}.{name}"] = (params[d][k], reference.lstm_param(d, k))
    assert_grads(pairs)


# ---------------------------------------------------------------- the CPU kernels against the NumPy recurrence

def numpy_sweep_forward(z_input, w_hh, reverse):
    """The recurrence as tinyseg ran it before its Numba kernels: NumPy, one step at a time."""
    directions, steps, batch, four_h = z_input.shape
    hidden = four_h // 4
    sig = lambda v: 0.5 * (1 + np.tanh(0.5 * v))  # noqa: E731
    gates = np.empty_like(z_input)
    cells, tanh_cells, hs = (np.empty((directions, steps, batch, hidden), z_input.dtype) for _ in range(3))
    for d in range(directions):
        h, c = np.zeros((batch, hidden), z_input.dtype), np.zeros((batch, hidden), z_input.dtype)
        for t in (range(steps - 1, -1, -1) if reverse[d] else range(steps)):
            z = z_input[d, t] + h @ w_hh[d].T
            a = gates[d, t]
            a[...] = sig(z)
            a[:, 2 * hidden:3 * hidden] = np.tanh(z[:, 2 * hidden:3 * hidden])
            i, f, g, o = (a[:, k * hidden:(k + 1) * hidden] for k in range(4))
            c = cells[d, t] = f * c + i * g
            tanh_cells[d, t] = np.tanh(c)
            h = hs[d, t] = o * tanh_cells[d, t]
    return gates, cells, tanh_cells, hs


def numpy_sweep_backward(gh, w_hh, gates, cells, tanh_cells, reverse):
    directions, steps, batch, hidden = gh.shape
    gz = np.empty_like(gates)
    for d in range(directions):
        order = list(range(steps - 1, -1, -1) if reverse[d] else range(steps))
        dh_next, dc_next = np.zeros((batch, hidden), gh.dtype), np.zeros((batch, hidden), gh.dtype)
        for s in reversed(range(steps)):
            t = order[s]
            i, f, g, o = (gates[d, t, :, k * hidden:(k + 1) * hidden] for k in range(4))
            dh, tc = gh[d, t] + dh_next, tanh_cells[d, t]
            dc = dh * o * (1 - tc * tc) + dc_next
            c_prev = cells[d, order[s - 1]] if s > 0 else np.zeros_like(dc)
            gz[d, t] = np.concatenate([dc * g * i * (1 - i), dc * c_prev * f * (1 - f), dc * i * (1 - g * g),
                                       dh * tc * o * (1 - o)], axis=1)
            dc_next, dh_next = dc * f, gz[d, t] @ w_hh[d]
    return gz


@settings(max_examples=40, deadline=None)
@given(steps=st.integers(1, 6), batch=st.integers(1, 5), n_in=st.integers(1, 6), hidden=st.integers(1, 40),
       reverse=st.lists(st.booleans(), min_size=1, max_size=2), dtype=st.sampled_from([np.float32, np.float64]),
       scale=st.sampled_from([0.5, 3.0]), seed=seeds)
def test_cpu_kernels_match_the_numpy_recurrence(steps, batch, n_in, hidden, reverse, dtype, scale, seed):
    """Forward states and backward gradients of the Numba kernels (every piece of rows and
    directions, run side by side) against the step-by-step NumPy recurrence."""
    rng = np.random.default_rng(seed)
    directions = len(reverse)
    x = (rng.standard_normal((steps, batch, n_in)) * scale).astype(dtype)
    w_ih = (rng.standard_normal((directions, 4 * hidden, n_in)) * scale / 2).astype(dtype)
    w_hh = (rng.standard_normal((directions, 4 * hidden, hidden)) * scale / 2).astype(dtype)
    bias = rng.standard_normal((directions, 4 * hidden)).astype(dtype)
    z_input = np.stack([x @ w_ih[d].T + bias[d] for d in range(directions)])
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    states = cpu_lstm.sweep_forward(x, w_ih, w_hh, bias, reverse)
    expected = numpy_sweep_forward(z_input, w_hh, reverse)
    for name, got, want in zip(("gates", "cells", "tanh_cells", "hs"), states, expected):
        assert got.dtype == dtype and got.shape == want.shape
        np.testing.assert_allclose(got, want, err_msg=name, **tol)
    gh = rng.standard_normal(states[3].shape).astype(dtype)
    gz = cpu_lstm.sweep_backward(gh, w_hh, *expected[:3], reverse)
    assert gz.dtype == dtype
    np.testing.assert_allclose(gz, numpy_sweep_backward(gh, w_hh, *expected[:3], reverse), **tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cpu_gate_functions_are_stable_and_accurate(dtype):
    """sigmoid and tanh of the kernels: a few ulp of float64 over the whole range, no overflow
    for huge |z| (limits exact), NaN in gives NaN out."""
    z = np.concatenate([np.linspace(-750, 750, 30001), np.logspace(-300, 2, 3000), -np.logspace(-300, 2, 3000),
                        [np.inf, -np.inf, 0.0]]).astype(dtype)
    gates = np.zeros((1, 1, 1, 4))
    sig, tanh = np.empty_like(z), np.empty_like(z)
    for k, v in enumerate(z):         # one unit: i = f = o = sigmoid(v), g = tanh(v)
        x = np.full((1, 1, 1), v, dtype)
        states = cpu_lstm.sweep_forward(x, np.ones((1, 4, 1), dtype), np.zeros((1, 4, 1), dtype),
                                        np.zeros((1, 4), dtype), (False,))
        sig[k], tanh[k] = states[0][0, 0, 0, 0], states[0][0, 0, 0, 2]
    z64 = z.astype(np.float64)
    with np.errstate(over="ignore"):
        want_sig = np.where(z64 >= 0, 1 / (1 + np.exp(-np.abs(z64))), np.exp(-np.abs(z64)) / (1 + np.exp(-np.abs(z64))))
    ulp = np.spacing(dtype(1)) * 4
    np.testing.assert_allclose(sig, want_sig.astype(dtype), rtol=ulp, atol=1e-300)
    np.testing.assert_allclose(tanh, np.tanh(z64).astype(dtype), rtol=ulp, atol=1e-300)
    assert sig[-3] == 1 and sig[-2] == 0 and tanh[-3] == 1 and tanh[-2] == -1
    x = np.full((2, 1, 1), np.nan, dtype)
    states = cpu_lstm.sweep_forward(x, np.ones((1, 4, 1), dtype), np.ones((1, 4, 1), dtype),
                                    np.zeros((1, 4), dtype), (False,))
    assert all(np.isnan(a).all() for a in states)
    gz = cpu_lstm.sweep_backward(np.full((1, 2, 1, 1), np.nan, dtype), np.ones((1, 4, 1), dtype), *states[:3], (True,))
    assert np.isnan(gz).all()
