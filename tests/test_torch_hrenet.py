"""The PyTorch twin of H-ReNet (benchmarks/torch_twin.py) computes what tinyseg computes."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import tinyseg as ts  # noqa: E402
from benchmarks.torch_twin import TorchHReNet, tinyseg_twin_gradients  # noqa: E402

TINY = dict(preset="small", widths=(2, 3, 3, 4), convs_per_block=(1, 1, 2, 1), conv7_width=4,
            conv7_kernel=3, hidden_size=3)


OPTIONS = [dict(), dict(fcn_stride=16), dict(fcn_stride=8), dict(fcn_stride=4), dict(batch_norm=True),
           dict(fcn_stride=8, batch_norm=True)]


def randomise_skips(model, rng):
    """The FCN score layers start at zero; random weights make the parity test see them."""
    for name, p in model.named_parameters():
        if name.startswith("score_pool"):
            p.data[...] = rng.standard_normal(p.shape) * 0.3


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()) or "paper")
@pytest.mark.parametrize("size", [(64, 64), (50, 70)])
@pytest.mark.parametrize("training", [True, False])
def test_outputs_and_gradients_match_in_float64(size, training, options):
    model = ts.models.HReNet(seed=3, **TINY, **options).astype(np.float64)
    randomise_skips(model, np.random.default_rng(1))
    model.train(training)
    twin = TorchHReNet.from_tinyseg(model, dtype=torch.float64).train(training)
    rng = np.random.default_rng(0)
    images = rng.standard_normal((2, 1) + size)
    labels = rng.integers(0, 3, (2,) + size)
    ours, theirs = tinyseg_twin_gradients(model, twin, images, labels)
    assert set(ours) == set(theirs)
    # a gradient that is zero in exact arithmetic (a bias whose shift the next batch norm
    # removes) is rounding noise in both engines: compare it against the largest gradient
    overall = max(np.abs(g).max() for name, g in theirs.items() if name != "logits")
    for name in ours:
        scale = np.abs(theirs[name]).max() + 1e-30
        np.testing.assert_allclose(ours[name], theirs[name], rtol=1e-6, atol=1e-9 * scale + 1e-12 * overall,
                                   err_msg=name)
    if training:   # running statistics moved the same way
        for name, buf in model.named_buffers():
            np.testing.assert_allclose(buf.data, twin.state_dict()[name].numpy(), rtol=1e-6, err_msg=name)


@pytest.mark.parametrize("options", OPTIONS)
def test_state_dict_keys_all_map(options):
    model = ts.models.HReNet(preset="small", **options)
    twin = TorchHReNet.from_tinyseg(model)
    n_ours = sum(p.size for p in model.parameters())
    n_theirs = sum(p.numel() for p in twin.parameters())
    assert n_ours == n_theirs
