"""H-ReNet: output sizes, presets, gradient flow and a float64 gradient check."""
import numpy as np
import pytest

import tinyseg as ts
import tinyseg.functional as F
from tinyseg.models.hrenet import PRESETS, bilinear_kernel

# A tiny but complete H-ReNet: every layer of the topology, a few channels each.
TINY = dict(preset="small", widths=(2, 3, 3, 4), convs_per_block=(1, 1, 2, 1), conv7_width=4,
            conv7_kernel=3, hidden_size=3)


def image(rng, n, h, w, dtype=np.float32):
    return ts.tensor(rng.standard_normal((n, 1, h, w)).astype(dtype))


@pytest.mark.parametrize("size", [(64, 80), (50, 70), (32, 32), (17, 45), (128, 160)])
def test_output_matches_input_size(size):
    model = ts.models.HReNet(n_classes=3, preset="small", seed=1)
    out = model(image(np.random.default_rng(0), 2, *size))
    assert out.shape == (2, 3) + size
    assert np.isfinite(out.numpy()).all()


def test_too_small_or_wrong_channels_raise():
    model = ts.models.HReNet(**TINY)
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="at least 16x16"):
        model(image(rng, 1, 8, 40))
    with pytest.raises(ValueError, match="expects input"):
        model(ts.tensor(rng.standard_normal((1, 2, 32, 32)).astype(np.float32)))


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="preset"):
        ts.models.HReNet(preset="huge")
    with pytest.raises(ValueError, match="init"):
        ts.models.HReNet(preset="small", init="xavier")
    with pytest.raises(TypeError, match="unexpected"):
        ts.models.HReNet(preset="small", width=3)


def test_paper_preset_shapes():
    model = ts.models.HReNet(preset="paper")
    shapes = dict((name, p.shape) for name, p in model.named_parameters())
    assert shapes["conv1_1.weight"] == (64, 1, 3, 3)
    assert shapes["conv4_3.weight"] == (512, 512, 3, 3)
    assert "conv5_1.weight" not in shapes                      # conv5 is dropped
    assert shapes["conv6.weight"] == (4096, 512, 7, 7)
    assert shapes["conv7.weight"] == (4096, 4096, 1, 1)
    assert shapes["renet.h_fwd.weight_ih"] == (4 * 256, (512 + 4096) * 4)
    assert shapes["renet.v_fwd.weight_ih"] == (4 * 256, 2 * 256)
    assert shapes["classifier.weight"] == (3, 512, 1, 1)
    assert shapes["upsample.weight"] == (3, 3, 64, 64)
    assert dict(model.named_buffers())["bn_conv7.running_var"].shape == (4096,)
    assert PRESETS["paper"]["input_size"] == (400, 500)
    # one forward pass at a small size (the full 400x500 pass is examples/paper_preset_pass.py)
    model.eval()
    with ts.no_grad():
        assert model(image(np.random.default_rng(0), 1, 40, 56)).shape == (1, 3, 40, 56)


def test_small_preset_forward_at_small_input():
    model = ts.models.HReNet(preset="small")
    assert model(image(np.random.default_rng(0), 2, 40, 48)).shape == (2, 3, 40, 48)


def test_same_seed_same_weights_and_inits_differ():
    a, b = ts.models.HReNet(**TINY, seed=3), ts.models.HReNet(**TINY, seed=3)
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        np.testing.assert_array_equal(x, y, err_msg=name)
    paper, he = ts.models.HReNet(**TINY, init="paper"), ts.models.HReNet(**TINY, init="he")
    assert np.std(paper.conv3_2.weight.numpy()) == pytest.approx(0.1, rel=0.3)
    assert np.abs(paper.renet.h_fwd.weight_ih.numpy()).max() <= 0.4
    assert np.abs(paper.renet.h_fwd.weight_ih.numpy()).max() > 0.3
    he_std = np.sqrt(2 / (3 * 3 * 3))                           # fan-in of conv3_2
    assert np.std(he.conv3_2.weight.numpy()) == pytest.approx(he_std, rel=0.3)


def test_upsampling_starts_bilinear():
    kernel = bilinear_kernel(2, 4)
    np.testing.assert_allclose(kernel[0, 0, 0], [0.0625, 0.1875, 0.1875, 0.0625])
    assert kernel[0, 1].sum() == 0
    # A constant score map upsamples to the same constant away from the padded border.
    model = ts.models.HReNet(**TINY)
    up = model.upsample(ts.tensor(np.ones((1, 3, 3, 3), dtype=np.float32))).numpy()
    np.testing.assert_allclose(up[:, :, 16:-16, 16:-16], 1.0, rtol=1e-6)


def test_gradients_reach_every_parameter():
    model = ts.models.HReNet(**TINY, init="he")
    rng = np.random.default_rng(0)
    logits = model(image(rng, 2, 40, 56))
    F.cross_entropy(logits, ts.tensor(rng.integers(0, 3, (2, 40, 56)))).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert np.abs(p.grad).sum() > 0, name


def test_gradcheck_tiny_hrenet_float64():
    model = ts.models.HReNet(**TINY, init="he", seed=2).astype(np.float64)
    x = image(np.random.default_rng(1), 2, 32, 48, dtype=np.float64)
    # A few small parameters spread from the first convolution to the upsampling layer.
    checked = [model.conv1_1.weight, model.conv4_1.bias, model.bn_conv7.weight,
               model.renet.v_bwd.bias_hh, model.classifier.bias, model.upsample.bias]
    assert ts.gradcheck(lambda *params: model(x), checked, atol=1e-6, rtol=1e-4)
