"""Whole models on the GPU against the CPU: device moves, then forward, backward and one
momentum-SGD step of a small network of every layer type, and of HReNet's small preset.

float64 runs must agree to 1e-8 (only summation order differs); float32 runs to 1e-3
relative to each array's largest entry, as float32 rounding differences of the single
ops (each within 1e-4, see test_gpu_ops.py) compound through a dozen layers.
"""
import numpy as np
import pytest

cupy = pytest.importorskip("cupy")
import tinyseg as ts  # noqa: E402

if not ts.cuda_available():
    pytest.skip("no CUDA device", allow_module_level=True)

import tinyseg.functional as F  # noqa: E402
from tinyseg import nn  # noqa: E402
from tinyseg.backend import as_numpy  # noqa: E402
from parity import assert_close  # noqa: E402

MODEL_RTOL = {np.float32: 1e-3, np.float64: 1e-8}


def test_tensors_and_modules_move_between_devices():
    a = np.arange(6.0).reshape(2, 3)
    t = ts.tensor(a, device="cuda", requires_grad=True)
    assert t.device == "cuda" and isinstance(t.data, cupy.ndarray) and t.dtype == np.float64
    assert ts.tensor([1.5, 2.0], device="cuda").dtype == np.float32
    assert ts.tensor(np.array([1, 2]), device="cuda").dtype == np.int64
    (t * 2.0).sum().backward()
    back = t.to("cpu")
    assert back.device == "cpu" and isinstance(back.grad, np.ndarray)
    np.testing.assert_array_equal(back.numpy(), a)
    np.testing.assert_array_equal(back.grad, np.full((2, 3), 2.0))
    assert t.to("cuda") is t
    layer = nn.Conv2d(2, 3, 3)
    assert layer.to("cuda") is layer
    assert all(isinstance(p.data, cupy.ndarray) for p in layer.parameters())
    state = layer.state_dict()
    assert all(isinstance(v, np.ndarray) for v in state.values())
    layer.load_state_dict(state)
    assert layer.weight.device == "cuda"
    assert layer.to("cpu").weight.device == "cpu"


def small_network(dtype):
    rng = np.random.default_rng(0)
    # no convolution bias before batch norm: its exact gradient is zero, so both devices would
    # only compare rounding noise
    model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1, bias=False, rng=rng), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.MaxPool2d(2), nn.ReNet(4, 3, rng=rng), nn.ConvTranspose2d(6, 3, 4, stride=4, rng=rng))
    return model.astype(dtype)


def train_step(model, x, target, device):
    """One forward, backward and SGD step on ``device``: loss, gradients, state afterwards."""
    model.to(device)
    loss = F.cross_entropy(model(ts.tensor(x, device=device)), ts.tensor(target, device=device))
    loss.backward()
    grads = {name: as_numpy(p.grad) for name, p in model.named_parameters()}
    ts.optim.SGD(model.parameters(), lr=0.1, momentum=0.9).step()
    return loss.item(), grads, model.state_dict()


def assert_same_step(make_model, x, target, rtol):
    loss_cpu, grads_cpu, state_cpu = train_step(make_model(), x, target, "cpu")
    loss_gpu, grads_gpu, state_gpu = train_step(make_model(), x, target, "cuda")
    assert abs(loss_gpu - loss_cpu) <= rtol * abs(loss_cpu)
    for name in grads_cpu:
        assert_close(grads_gpu[name], grads_cpu[name], rtol, f"gradient of {name}")
    for name in state_cpu:
        assert_close(state_gpu[name], state_cpu[name], rtol, f"{name} after one SGD step")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_small_network_step_matches_cpu(dtype):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 2, 8, 12)).astype(dtype)
    target = rng.integers(0, 3, (2, 8, 12))
    assert_same_step(lambda: small_network(dtype), x, target, MODEL_RTOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_hrenet_small_step_matches_cpu(dtype):
    models = pytest.importorskip("tinyseg.models")
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 1, 32, 64)).astype(dtype)
    target = rng.integers(0, 3, (2, 32, 64))
    assert_same_step(lambda: models.HReNet(preset="small", seed=0).astype(dtype), x, target, MODEL_RTOL[dtype])


TINY_MODEL = dict(widths=(2, 3, 3, 4), convs_per_block=(1, 1, 1, 1), conv7_width=4, conv7_kernel=3,
                  hidden_size=3)


def test_training_on_the_gpu_follows_the_cpu_and_resumes(tmp_path):
    """The training loop end to end on "cuda": the same losses as on the CPU, checkpoints
    that load on the CPU, and a resumed run that ends where an uninterrupted one does."""
    from tinyseg.app import TrainConfig, read_checkpoint, train

    def config(out, device, **changes):
        return TrainConfig(**{**dict(n_synthetic=10, size=(32, 48), epochs=3, batch_size=3, lr=5e-3,
                                     augment=True, model_options=TINY_MODEL, progress=False,
                                     out=str(tmp_path / out), device=device), **changes})

    def history(out):
        return [h["train_loss"] for h in read_checkpoint(tmp_path / out / "last.npz").metadata["history"]]

    gpu = train(config("gpu", "cuda"))
    cpu = train(config("cpu", "cpu"))
    assert gpu["device"] == "cuda" and cpu["device"] == "cpu"
    np.testing.assert_allclose(history("gpu"), history("cpu"), rtol=1e-3)
    for name in ("lungs", "heart"):
        assert abs(gpu["dice"][name] - cpu["dice"][name]) < 0.02, name

    class Interrupt(Exception):
        pass

    def stop_after_one(epoch, record):
        raise Interrupt
    with pytest.raises(Interrupt):
        train(config("resumed", "cuda"), on_epoch_end=stop_after_one)
    train(TrainConfig(out=str(tmp_path / "resumed"), resume=True, progress=False, device="cuda"))
    straight = read_checkpoint(tmp_path / "gpu" / "last.npz").model_state
    resumed = read_checkpoint(tmp_path / "resumed" / "last.npz").model_state
    for name in straight:
        assert_close(resumed[name], straight[name], 1e-6, name)
