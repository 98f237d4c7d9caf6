"""PyTorch parity: every CPU op and layer against torch in float64.

For each op the forward output and the gradient of a random-weighted sum of
its outputs, sum(R * y), with respect to every differentiable input must
match torch to 1e-8 relative. Shapes are drawn by hypothesis and kept small.
The nn-module tests check that state dicts convert to the equivalent torch
modules key by key (same names, same shapes, same layouts).
"""
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")
import torch.nn.functional as TF  # noqa: E402

import tinyseg as ts  # noqa: E402
import tinyseg.functional as F  # noqa: E402
from benchmarks.torch_twin import TorchReNet, renet_key  # noqa: E402

EXAMPLES = settings(max_examples=20, deadline=None)
seeds = st.integers(0, 2**32 - 1)


# -- helpers ------------------------------------------------------------------------
def ours(array, grad=True):
    return ts.tensor(np.array(array, dtype=np.float64), requires_grad=grad)


def theirs(array, grad=True):
    return torch.tensor(np.array(array, dtype=np.float64), requires_grad=grad)


def assert_close(actual, expected, what):
    """rtol 1e-8, with an absolute floor of 1e-10 times the reference's magnitude."""
    if isinstance(expected, torch.Tensor):
        expected = expected.detach().numpy()
    if isinstance(actual, ts.Tensor):
        actual = actual.numpy()
    assert actual is not None, f"{what}: tinyseg produced no value"
    assert np.shape(actual) == np.shape(expected), f"{what}: shape {np.shape(actual)} vs {np.shape(expected)}"
    scale = float(np.abs(expected).max(initial=0.0))
    np.testing.assert_allclose(actual, expected, rtol=1e-8, atol=1e-10 * scale + 1e-300, err_msg=what)


def backward_both(y_ours, y_theirs, rng):
    """Back-propagate sum(R * y) through both graphs with the same random R."""
    weights = rng.standard_normal(y_theirs.shape)
    y_ours.backward(weights)
    y_theirs.backward(torch.from_numpy(weights))


def assert_grads(pairs):
    """pairs: name -> (tinyseg tensor, torch tensor); compares their .grad."""
    for name, (a, b) in pairs.items():
        assert b.grad is not None, f"torch computed no gradient for {name}"
        assert_close(a.grad, b.grad, f"grad {name}")


# -- convolution ----------------------------------------------------------------------
@EXAMPLES
@given(data=st.data(), seed=seeds)
def test_conv2d(data, seed):
    n, c_in, c_out = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    kh, kw = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4))
    stride = data.draw(st.integers(1, 5))                      # includes stride > kernel
    padding = data.draw(st.integers(0, max(kh, kw) - 1))
    h = data.draw(st.integers(max(1, kh - 2 * padding), 8))
    w = data.draw(st.integers(max(1, kw - 2 * padding), 8))
    bias, relu = data.draw(st.booleans()), data.draw(st.booleans())
    rng = np.random.default_rng(seed)
    arrays = {"x": rng.standard_normal((n, c_in, h, w)), "weight": rng.standard_normal((c_out, c_in, kh, kw))}
    if bias:
        arrays["bias"] = rng.standard_normal(c_out)
    a = {k: ours(v) for k, v in arrays.items()}
    b = {k: theirs(v) for k, v in arrays.items()}
    y = F.conv2d(a["x"], a["weight"], a.get("bias"), stride=stride, padding=padding, relu=relu)
    y_ref = TF.conv2d(b["x"], b["weight"], b.get("bias"), stride=stride, padding=padding)
    if relu:
        y_ref = TF.relu(y_ref)
    assert_close(y, y_ref, "conv2d forward")
    backward_both(y, y_ref, rng)
    assert_grads({k: (a[k], b[k]) for k in arrays})


@EXAMPLES
@given(data=st.data(), seed=seeds)
def test_conv_transpose2d(data, seed):
    n, c_in, c_out = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    kh, kw = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4))
    stride = data.draw(st.integers(1, 5))
    padding = data.draw(st.integers(0, max(kh, kw) - 1))
    h, w = data.draw(st.integers(1, 5)), data.draw(st.integers(1, 5))
    assume((h - 1) * stride + kh - 2 * padding >= 1 and (w - 1) * stride + kw - 2 * padding >= 1)
    bias = data.draw(st.booleans())
    rng = np.random.default_rng(seed)
    # weight layout (C_in, C_out, kH, kW), the same as torch's
    arrays = {"x": rng.standard_normal((n, c_in, h, w)), "weight": rng.standard_normal((c_in, c_out, kh, kw))}
    if bias:
        arrays["bias"] = rng.standard_normal(c_out)
    a = {k: ours(v) for k, v in arrays.items()}
    b = {k: theirs(v) for k, v in arrays.items()}
    y = F.conv_transpose2d(a["x"], a["weight"], a.get("bias"), stride=stride, padding=padding)
    y_ref = TF.conv_transpose2d(b["x"], b["weight"], b.get("bias"), stride=stride, padding=padding)
    assert_close(y, y_ref, "conv_transpose2d forward")
    backward_both(y, y_ref, rng)
    assert_grads({k: (a[k], b[k]) for k in arrays})


# -- pooling --------------------------------------------------------------------------
@EXAMPLES
@given(data=st.data(), seed=seeds)
def test_max_pool2d(data, seed):
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


# -- batch norm -----------------------------------------------------------------------
@EXAMPLES
@given(data=st.data(), seed=seeds)
def test_batch_norm_training(data, seed):
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


@EXAMPLES
@given(data=st.data(), seed=seeds)
def test_batch_norm_eval(data, seed):
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


# -- cross-entropy ----------------------------------------------------------------------
@EXAMPLES
@given(data=st.data(), seed=seeds)
def test_cross_entropy(data, seed):
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
    assert_close(loss, loss_ref, "cross_entropy forward")
    backward_both(loss, loss_ref, rng)
    assert_grads({"logits": (logits, logits_ref)})


# -- LSTM -------------------------------------------------------------------------------
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


@EXAMPLES
@given(shape=lstm_shapes(), seed=seeds)
def test_lstm_forward_direction(shape, seed):
    steps, batch, n_in, hidden = shape
    rng = np.random.default_rng(seed)
    x_np = rng.standard_normal((steps, batch, n_in))
    weights = random_lstm_weights(rng, n_in, hidden)
    x, params = ours(x_np), [ours(v) for v in weights]
    x_ref = theirs(x_np)
    module = torch_lstm(n_in, hidden, [weights])
    y = F.lstm(x, *params)
    y_ref, _ = module(x_ref)
    assert_close(y, y_ref, "lstm forward")
    backward_both(y, y_ref, rng)
    assert_grads({"x": (x, x_ref), **{ours_name: (p, getattr(module, name)) for ours_name, p, name
                                      in zip(LSTM_NAMES, params, TORCH_LSTM_NAMES)}})


@EXAMPLES
@given(shape=lstm_shapes(), seed=seeds)
def test_lstm_reverse_direction(shape, seed):
    """reverse=True is the `_reverse` half of torch's bidirectional LSTM output."""
    steps, batch, n_in, hidden = shape
    rng = np.random.default_rng(seed)
    x_np = rng.standard_normal((steps, batch, n_in))
    weights = random_lstm_weights(rng, n_in, hidden)
    x, params = ours(x_np), [ours(v) for v in weights]
    x_ref = theirs(x_np)
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


# -- ReNet ------------------------------------------------------------------------------
DIRECTIONS = ("h_fwd", "h_bwd", "v_fwd", "v_bwd")


@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 2), c=st.integers(1, 3), grid=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       patch=st.tuples(st.integers(1, 3), st.integers(1, 3)), hidden=st.integers(1, 3), seed=seeds)
def test_renet(n, c, grid, patch, hidden, seed):
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


# -- nn modules: state dicts convert key by key ---------------------------------------------
def randomize(module, rng):
    """Cast a tinyseg module to float64 and give every parameter and buffer random values."""
    module.astype(np.float64)
    state = {}
    for name, value in module.state_dict().items():
        random = rng.standard_normal(value.shape)
        state[name] = np.abs(random) + 0.5 if name.endswith("running_var") else random
    return module.load_state_dict(state)


def load_into_torch(ts_module, torch_module, rename=lambda key: key):
    """Load ts_module's state dict into torch_module (strictly) after checking names and shapes."""
    state = {rename(k): v for k, v in ts_module.state_dict().items()}
    torch_shapes = {k: tuple(v.shape) for k, v in torch_module.state_dict().items()
                    if not k.endswith("num_batches_tracked")}
    assert {k: v.shape for k, v in state.items()} == torch_shapes
    torch_module.double()
    extra = {k: v for k, v in torch_module.state_dict().items() if k.endswith("num_batches_tracked")}
    torch_module.load_state_dict({**{k: torch.from_numpy(v) for k, v in state.items()}, **extra})
    return torch_module


def assert_module_parity(ts_module, torch_module, x_np, rng, rename=lambda key: key,
                         output=lambda y: y, skip=()):
    """Same forward and gradients; ``skip`` names parameters whose gradient is zero in exact
    arithmetic (only rounding noise is left, which no relative tolerance can compare)."""
    x, x_ref = ours(x_np), theirs(x_np)
    y, y_ref = ts_module(x), output(torch_module(x_ref))
    assert_close(y, y_ref, f"{type(ts_module).__name__} forward")
    backward_both(y, y_ref, rng)
    torch_params = dict(torch_module.named_parameters())
    assert_grads({"x": (x, x_ref), **{name: (p, torch_params[rename(name)])
                                      for name, p in ts_module.named_parameters() if name not in skip}})
    return x


@pytest.mark.parametrize("stride, padding, bias", [(1, 0, True), (2, 1, False), (3, 2, True)])
def test_conv2d_module_state_dict(stride, padding, bias):
    rng = np.random.default_rng(stride)
    module = randomize(ts.nn.Conv2d(3, 4, 3, stride=stride, padding=padding, bias=bias), rng)
    reference = load_into_torch(module, torch.nn.Conv2d(3, 4, 3, stride=stride, padding=padding, bias=bias))
    assert_module_parity(module, reference, rng.standard_normal((2, 3, 7, 6)), rng)


@pytest.mark.parametrize("stride, padding, bias", [(2, 0, True), (2, 1, False), (1, 1, True)])
def test_conv_transpose2d_module_state_dict(stride, padding, bias):
    rng = np.random.default_rng(stride + padding)
    module = randomize(ts.nn.ConvTranspose2d(3, 2, 3, stride=stride, padding=padding, bias=bias), rng)
    assert module.weight.shape == (3, 2, 3, 3)  # (C_in, C_out, k, k), torch's layout
    reference = load_into_torch(module, torch.nn.ConvTranspose2d(3, 2, 3, stride=stride, padding=padding,
                                                                 bias=bias))
    assert_module_parity(module, reference, rng.standard_normal((2, 3, 4, 5)), rng)


def test_batch_norm_module_state_dict():
    rng = np.random.default_rng(7)
    module = randomize(ts.nn.BatchNorm2d(3, momentum=0.2, eps=1e-4), rng)
    reference = load_into_torch(module, torch.nn.BatchNorm2d(3, momentum=0.2, eps=1e-4))
    x_np = rng.standard_normal((2, 3, 4, 5)) * 2 - 1
    assert_module_parity(module, reference, x_np, rng)          # training mode: batch statistics
    for name in ("running_mean", "running_var"):
        assert_close(getattr(module, name), getattr(reference, name), f"BatchNorm2d {name} after training step")
    module.eval()
    reference.eval()
    assert_module_parity(module, reference, x_np, rng)          # eval mode: the running statistics


@pytest.mark.parametrize("reverse", [False, True])
def test_lstm_module_state_dict(reverse):
    rng = np.random.default_rng(int(reverse))
    module = randomize(ts.nn.LSTM(3, 4, reverse=reverse), rng)
    assert {k: v.shape for k, v in module.state_dict().items()} == {
        "weight_ih": (16, 3), "weight_hh": (16, 4), "bias_ih": (16,), "bias_hh": (16,)}
    x_np = rng.standard_normal((5, 2, 3))
    if not reverse:
        reference = load_into_torch(module, torch.nn.LSTM(3, 4), rename=lambda k: k + "_l0")
        assert_module_parity(module, reference, x_np, rng, rename=lambda k: k + "_l0", output=lambda y: y[0])
        return
    # the reverse direction goes into the `_reverse` weights of a bidirectional torch LSTM
    reference = torch.nn.LSTM(3, 4, bidirectional=True).double()
    with torch.no_grad():
        for name, value in module.state_dict().items():
            getattr(reference, name + "_l0_reverse").copy_(torch.from_numpy(value))
    x, x_ref = ours(x_np), theirs(x_np)
    y, y_ref = module(x), reference(x_ref)[0][..., 4:]
    assert_close(y, y_ref, "LSTM(reverse=True) forward")
    backward_both(y, y_ref, rng)
    assert_grads({"x": (x, x_ref), **{name: (p, getattr(reference, name + "_l0_reverse"))
                                      for name, p in module.named_parameters()}})


@pytest.mark.parametrize("patch", [(2, 2), (1, 2), (3, 1)])
def test_renet_module_state_dict(patch):
    rng = np.random.default_rng(sum(patch))
    module = randomize(ts.nn.ReNet(2, 3, patch=patch), rng)
    reference = load_into_torch(module, TorchReNet(2, 3, patch), rename=renet_key)
    x_np = rng.standard_normal((2, 2, 2 * patch[0], 3 * patch[1]))
    assert_module_parity(module, reference, x_np, rng, rename=renet_key)


def test_sequential_state_dict_nests_like_torch():
    rng = np.random.default_rng(3)
    module = randomize(ts.nn.Sequential(ts.nn.Conv2d(2, 3, 3, padding=1), ts.nn.BatchNorm2d(3), ts.nn.ReLU(),
                                        ts.nn.MaxPool2d(2), ts.nn.ConvTranspose2d(3, 2, 2, stride=2)), rng)
    reference = load_into_torch(module, torch.nn.Sequential(
        torch.nn.Conv2d(2, 3, 3, padding=1), torch.nn.BatchNorm2d(3), torch.nn.ReLU(),
        torch.nn.MaxPool2d(2), torch.nn.ConvTranspose2d(3, 2, 2, stride=2)))
    x_np = rng.standard_normal((2, 2, 6, 5))
    # training: batch norm removes each channel's mean, so the conv bias's gradient is exactly 0
    x = assert_module_parity(module, reference, x_np, rng, skip=("0.bias",))
    grad_scale = np.abs(x.grad).max()
    assert np.abs(module[0].bias.grad).max() <= 1e-12 * grad_scale
    module.zero_grad()
    reference.zero_grad()
    module.eval()
    reference.eval()
    assert_module_parity(module, reference, x_np, rng)
