"""lstm (both directions) and renet: gradient checks, a step-by-step reference, the sweep
order, and PyTorch parity (torch.nn.LSTM and the ReNet twin in benchmarks/torch_twin.py)."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinyseg as ts
import tinyseg.functional as F
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
