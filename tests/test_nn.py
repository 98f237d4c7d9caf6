"""Modules: registration, modes, state dicts with clear errors, device moves, and state dicts
that convert to the equivalent PyTorch modules key by key (same names, shapes, layouts)."""
import numpy as np
import pytest

import tinyseg as ts
import tinyseg.functional as F
from tinyseg import nn
from tests.ops.torch_parity import (TorchReNet, assert_close, assert_grads, backward_both, needs_torch, ours,  # noqa: F401
                                    renet_key, theirs, torch)


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2), nn.ReLU(),
                                      nn.MaxPool2d(2))
        self.renet = nn.ReNet(2, 3)
        self.up = nn.ConvTranspose2d(6, 2, 4, stride=4)

    def forward(self, x):
        return self.up(self.renet(self.features(x)))


def test_named_parameters_and_buffers():
    model = Tiny()
    names = [n for n, _ in model.named_parameters()]
    assert names[:4] == ["features.0.weight", "features.0.bias", "features.1.weight", "features.1.bias"]
    assert "renet.h_fwd.weight_ih" in names and "renet.v_bwd.bias_hh" in names
    assert [n for n, _ in model.named_buffers()] == ["features.1.running_mean", "features.1.running_var"]
    assert len(model.parameters()) == len(names) == 4 + 16 + 2
    assert model.renet.h_fwd.weight_ih.shape == (12, 8) and model.renet.v_fwd.weight_ih.shape == (12, 6)


def test_forward_backward_reaches_every_parameter():
    model = Tiny()
    x = ts.tensor(np.random.default_rng(0).standard_normal((2, 1, 8, 8)))
    y = model(x)
    assert y.shape == (2, 2, 8, 8)
    F.cross_entropy(y, ts.tensor(np.zeros((2, 8, 8), dtype=np.int64))).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.shape == p.shape, name
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_train_eval_switches_batch_norm():
    model = Tiny()
    x = ts.tensor(np.random.default_rng(0).standard_normal((2, 1, 8, 8)) * 5 + 3)
    bn = model.features[1]
    model(x)
    moved = bn.running_mean.data.copy()
    assert np.abs(moved).sum() > 0
    model.eval()
    assert not bn.training and not model.renet.h_fwd.training
    model(x)
    np.testing.assert_array_equal(bn.running_mean.data, moved)
    assert model.train() is model and bn.training


def test_state_dict_round_trip():
    a, b = Tiny(), Tiny()
    a(ts.tensor(np.ones((2, 1, 8, 8))))   # move running statistics
    b.load_state_dict(a.state_dict())
    for (name, pa), (_, pb) in zip(a.state_dict().items(), b.state_dict().items()):
        np.testing.assert_array_equal(pa, pb, err_msg=name)
    state = a.state_dict()
    state["features.0.weight"][...] = 0   # a copy: editing it does not touch the model
    assert np.abs(a.features[0].weight.data).sum() > 0


def test_load_state_dict_errors_name_the_keys():
    model = Tiny()
    state = model.state_dict()
    del state["up.bias"]
    state["extra.weight"] = np.zeros(1)
    with pytest.raises(KeyError, match=r"missing keys \['up.bias'\].*unexpected keys \['extra.weight'\]"):
        model.load_state_dict(state)
    state = model.state_dict()
    state["up.weight"] = np.zeros((1, 2, 3, 4))
    before = model.features[0].weight.data.copy()
    state["features.0.weight"] = np.zeros_like(before)
    with pytest.raises(ValueError, match=r"up.weight: checkpoint \(1, 2, 3, 4\) vs model \(6, 2, 4, 4\)"):
        model.load_state_dict(state)
    np.testing.assert_array_equal(model.features[0].weight.data, before)   # nothing changed on error
    partial = {"up.bias": np.ones(2)}
    model.load_state_dict(partial, strict=False)
    np.testing.assert_array_equal(model.up.bias.data, [1, 1])


def test_to_cpu_and_astype_keep_parameter_identity():
    model = Tiny()
    params = model.parameters()
    model.to("cpu").astype(np.float64)
    assert model.parameters()[0] is params[0] and params[0].dtype == np.float64
    with pytest.raises(ValueError, match="unknown device"):
        model.to("gpu")


def test_module_without_super_init_is_reported():
    class Broken(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(np.zeros(1))
    with pytest.raises(RuntimeError, match="super"):
        Broken()


def test_tiny_model_gradcheck_float64():
    model = Tiny().astype(np.float64)
    model.eval()     # batch statistics of a 2-image batch make a poor finite-difference target
    x = ts.tensor(np.random.default_rng(1).standard_normal((1, 1, 8, 8)), requires_grad=True)
    params = [model.features[0].weight, model.renet.v_bwd.weight_hh, model.up.bias]
    assert ts.gradcheck(lambda x, *p: model(x), [x] + params)


# -- state dicts against PyTorch modules ----------------------------------------------
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


@needs_torch
@pytest.mark.parametrize("stride, padding, bias", [(1, 0, True), (2, 1, False), (3, 2, True)])
def test_conv2d_module_state_dict(stride, padding, bias):
    rng = np.random.default_rng(stride)
    module = randomize(ts.nn.Conv2d(3, 4, 3, stride=stride, padding=padding, bias=bias), rng)
    reference = load_into_torch(module, torch.nn.Conv2d(3, 4, 3, stride=stride, padding=padding, bias=bias))
    assert_module_parity(module, reference, rng.standard_normal((2, 3, 7, 6)), rng)


@needs_torch
@pytest.mark.parametrize("stride, padding, bias", [(2, 0, True), (2, 1, False), (1, 1, True)])
def test_conv_transpose2d_module_state_dict(stride, padding, bias):
    rng = np.random.default_rng(stride + padding)
    module = randomize(ts.nn.ConvTranspose2d(3, 2, 3, stride=stride, padding=padding, bias=bias), rng)
    assert module.weight.shape == (3, 2, 3, 3)  # (C_in, C_out, k, k), torch's layout
    reference = load_into_torch(module, torch.nn.ConvTranspose2d(3, 2, 3, stride=stride, padding=padding,
                                                                 bias=bias))
    assert_module_parity(module, reference, rng.standard_normal((2, 3, 4, 5)), rng)


@needs_torch
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


@needs_torch
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


@needs_torch
@pytest.mark.parametrize("patch", [(2, 2), (1, 2), (3, 1)])
def test_renet_module_state_dict(patch):
    rng = np.random.default_rng(sum(patch))
    module = randomize(ts.nn.ReNet(2, 3, patch=patch), rng)
    reference = load_into_torch(module, TorchReNet(2, 3, patch), rename=renet_key)
    x_np = rng.standard_normal((2, 2, 2 * patch[0], 3 * patch[1]))
    assert_module_parity(module, reference, x_np, rng, rename=renet_key)


@needs_torch
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
