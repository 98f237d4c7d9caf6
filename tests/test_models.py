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


# -- options: FCN skips and batch norm ---------------------------------------------------

OPTIONS = [dict(fcn_stride=16), dict(fcn_stride=8), dict(fcn_stride=4), dict(batch_norm=True),
           dict(fcn_stride=8, batch_norm=True)]


@pytest.mark.parametrize("options", OPTIONS)
@pytest.mark.parametrize("size", [(50, 70), (17, 45), (33, 97), (64, 64)])
def test_options_keep_the_output_size(options, size):
    model = ts.models.HReNet(**TINY, **options, init="he", seed=2)
    for training in (True, False):
        model.train(training)
        out = model(image(np.random.default_rng(0), 2, *size))
        assert out.shape == (2, 3) + size and np.isfinite(out.numpy()).all()


def test_option_layers_and_names():
    plain = dict(ts.models.HReNet(**TINY).named_parameters())
    fcn8 = ts.models.HReNet(**TINY, fcn_stride=8)
    shapes = {name: p.shape for name, p in fcn8.named_parameters()}
    assert set(shapes) - set(plain) == {"upscore32.weight", "upscore32.bias", "score_pool4.weight",
                                        "score_pool4.bias", "upscore16.weight", "upscore16.bias",
                                        "score_pool3.weight", "score_pool3.bias"}
    assert shapes["score_pool3.weight"] == (3, TINY["widths"][2], 1, 1)
    assert shapes["upsample.weight"] == (3, 3, 16, 16)                  # the final x8
    assert not fcn8.score_pool4.weight.numpy().any()                    # FCN: skips start silent
    np.testing.assert_allclose(fcn8.upscore16.weight.numpy(), bilinear_kernel(3, 4))
    bn = dict(ts.models.HReNet(**TINY, batch_norm=True).named_parameters())
    assert "conv1_1.bias" not in bn and "bn1_1.weight" in bn and "bn6.bias" in bn
    assert "conv7.bias" in bn                                           # conv7 is followed by bn_conv7
    with pytest.raises(ValueError, match="fcn_stride"):
        ts.models.HReNet(**TINY, fcn_stride=2)


def test_untrained_fcn_only_interpolates():
    """With the skip scores at zero, FCN-8s upsamples the ReNet scores smoothly, as the paper's does."""
    rng = np.random.default_rng(0)
    x = image(rng, 1, 64, 96)
    paper = ts.models.HReNet(**TINY, seed=4, init="he").eval()
    fcn = ts.models.HReNet(**TINY, seed=4, init="he", fcn_stride=8).eval()
    fcn.load_state_dict({**fcn.state_dict(), **{k: v for k, v in paper.state_dict().items() if k != "upsample.weight"}})
    with ts.no_grad():
        a, b = paper(x).numpy(), fcn(x).numpy()
    inner = (slice(None), slice(None), slice(16, -16), slice(16, -16))     # borders see zero padding
    assert np.corrcoef(a[inner].ravel(), b[inner].ravel())[0, 1] > 0.97


@pytest.mark.parametrize("options", [dict()] + OPTIONS)
def test_options_are_described_and_rebuild_from_a_checkpoint(tmp_path, options):
    from tinyseg.app.checkpoint import load_checkpoint, save_checkpoint
    from tinyseg.app.inference import model_from_metadata

    model = ts.models.HReNet(**TINY, **options, init="he", seed=5)
    model.train()
    model(image(np.random.default_rng(1), 2, 40, 40))                   # move the running statistics
    described = model.describe()["config"]
    for key, value in options.items():
        assert described[key] == value
    assert "fcn_stride" not in described or options.get("fcn_stride")  # the paper's model: as before
    path = save_checkpoint(tmp_path / "m.npz", model, metadata={"size": [40, 40]})
    metadata = load_checkpoint(path)
    rebuilt = model_from_metadata(path, metadata)
    load_checkpoint(path, rebuilt)
    for (name, a), b in zip(model.state_dict().items(), rebuilt.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=name)
    model.eval(), rebuilt.eval()
    x = image(np.random.default_rng(2), 1, 40, 56)
    with ts.no_grad():
        np.testing.assert_array_equal(model(x).numpy(), rebuilt(x).numpy())


def test_gradcheck_fcn_and_batch_norm_float64():
    """The new wiring (pads, adds, extra transposed convolutions, batch norms) end to end."""
    model = ts.models.HReNet(**TINY, fcn_stride=4, batch_norm=True, init="he", seed=6).astype(np.float64)
    for name, p in model.named_parameters():
        if name.startswith("score_pool"):
            p.data[...] = np.random.default_rng(0).standard_normal(p.shape)
    model.eval()
    rng = np.random.default_rng(3)
    x = ts.tensor(rng.standard_normal((1, 1, 36, 40)), requires_grad=True)
    labels = ts.tensor(rng.integers(0, 3, (1, 36, 40)))
    weight = model.score_pool2.weight
    assert ts.gradcheck(lambda x, w: F.cross_entropy(model(x), labels), [x, weight])


def test_cpu_preset():
    model = ts.models.HReNet(preset="cpu", init="he")
    small = ts.models.HReNet(preset="small", init="he", fcn_stride=8, batch_norm=True)
    assert sum(p.size for p in model.parameters()) == sum(p.size for p in small.parameters())
    assert model.config["fcn_stride"] == 8 and model.config["batch_norm"]
    assert "conv4_2.bias" not in dict(model.named_parameters())
    assert PRESETS["cpu"]["input_size"] == (256, 256)
    assert model(image(np.random.default_rng(0), 1, 47, 61)).shape == (1, 3, 47, 61)
    # switching a preset's option off is remembered, too
    from tinyseg.app.inference import model_from_metadata
    plain = ts.models.HReNet(preset="cpu", fcn_stride=32, batch_norm=False)
    rebuilt = model_from_metadata("x.npz", {"model": plain.describe()})
    assert rebuilt.config == plain.config and rebuilt.describe() == plain.describe()
