"""Modules: registration, modes, state dicts with clear errors, device moves."""
import numpy as np
import pytest

import tinyseg as ts
import tinyseg.functional as F
from tinyseg import nn


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
