"""Training: the CLI end to end, exact resume, divergence handling, the denoise cache, inference."""
import io
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import tinyseg as ts
from tinyseg.app import (TrainConfig, TrainingDiverged, learning_rate, main, read_checkpoint,
                        resolve_defaults, train)
from tinyseg.app.progress import ProgressBar
from tinyseg.denoise.cache import cached_apply

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_MODEL = dict(widths=(2, 3, 3, 4), convs_per_block=(1, 1, 1, 1), conv7_width=4, conv7_kernel=3,
                  hidden_size=3)


def tiny_config(out, **changes):
    settings = dict(n_synthetic=10, size=(32, 48), epochs=4, batch_size=3, lr=5e-3, out=str(out),
                    augment=True, model_options=TINY_MODEL, progress=False)
    return TrainConfig(**{**settings, **changes})


def test_cli_smoke_writes_metrics_pngs_and_checkpoints(tmp_path):
    out = tmp_path / "run"
    code = main(["--epochs", "1", "--n-synthetic", "8", "--size", "32", "48", "--batch-size", "4",
                 "--out", str(out), "--quiet"])
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["dice"]) == {"lungs", "heart"} and set(metrics["jaccard"]) == {"lungs", "heart"}
    assert 0 <= metrics["pixel_accuracy"] <= 1
    assert metrics["split"] == "test" and metrics["epochs"] == 1 and metrics["n_images"] >= 1
    assert metrics["seconds"] > 0
    overlays = sorted(os.listdir(out / "overlays"))
    assert len(overlays) == metrics["n_images"]
    with Image.open(out / "overlays" / overlays[0]) as panel:
        assert panel.width > 3 * 48 and panel.height > 32                  # three panels side by side
    with Image.open(out / "curves.png") as curves:
        assert curves.mode == "RGB" and curves.width > 100
    for name in ("last.npz", "best.npz", "history.json"):
        assert (out / name).is_file()

    # the segmentation example reads the checkpoint and writes an overlay and a label map
    image = (np.random.default_rng(0).random((40, 50)) * 255).astype(np.uint8)
    Image.fromarray(image).save(tmp_path / "chest.png")
    result = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "segment.py"),
                             str(out / "best.npz"), str(tmp_path / "chest.png"), "--out", str(tmp_path / "seg"),
                             "--device", "cpu"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    with Image.open(tmp_path / "seg" / "chest_labels.png") as labels:
        assert labels.size == (50, 40) and set(np.unique(np.asarray(labels))) <= {0, 1, 2}
    with Image.open(tmp_path / "seg" / "chest_overlay.png") as overlay:
        assert overlay.size == (50, 40) and overlay.mode == "RGB"


def final_weights(out):
    return read_checkpoint(os.path.join(out, "last.npz")).model_state


class Interrupt(Exception):
    pass


def test_resume_gives_identical_weights(tmp_path):
    straight = tmp_path / "straight"
    train(tiny_config(straight))

    interrupted = tmp_path / "interrupted"

    def stop_after_two(epoch, record):
        if epoch == 2:
            raise Interrupt
    with pytest.raises(Interrupt):
        train(tiny_config(interrupted), on_epoch_end=stop_after_two)
    assert read_checkpoint(interrupted / "last.npz").metadata["epoch"] == 2
    # settings not given on resume are taken from the checkpoint
    train(TrainConfig(out=str(interrupted), resume=True, progress=False))

    a, b = final_weights(straight), final_weights(interrupted)
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    history_a = json.loads((straight / "history.json").read_text())
    history_b = json.loads((interrupted / "history.json").read_text())
    assert [h["train_loss"] for h in history_a] == [h["train_loss"] for h in history_b]


def test_resume_refuses_other_settings_and_missing_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="last.npz"):
        train(tiny_config(tmp_path, resume=True))
    train(tiny_config(tmp_path, epochs=1))
    with pytest.raises(ValueError, match="batch_size: interrupted run 3, now 2"):
        train(tiny_config(tmp_path, epochs=2, batch_size=2, resume=True))


@pytest.fixture
def built_models(monkeypatch):
    """The models train() builds, kept so that a test can damage one between epochs."""
    import tinyseg.app.loop as training
    built, build = [], training.build_model

    def build_and_keep(config, n_classes):
        built.append(build(config, n_classes))
        return built[-1]
    monkeypatch.setattr(training, "build_model", build_and_keep)
    return built


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, built_models):
    def poison_after_first_epoch(epoch, record):     # after epoch 1 has been checkpointed
        if epoch == 1:
            built_models[0].classifier.bias.data[...] = np.nan
    with pytest.raises(TrainingDiverged, match=r"epoch 2: loss became nan at batch 1.*last.npz.*epoch 1"):
        train(tiny_config(tmp_path), on_epoch_end=poison_after_first_epoch)
    checkpoint = read_checkpoint(tmp_path / "last.npz")
    assert checkpoint.metadata["epoch"] == 1
    assert all(np.isfinite(v).all() for v in checkpoint.model_state.values())


def test_the_nan_guard_covers_batch_norm_buffers(tmp_path, built_models):
    def infinite_running_variance(epoch, record):   # the loss stays finite: only a buffer is broken
        if epoch == 1:
            built_models[0].bn_pool4.running_var.data[...] = np.inf
    with pytest.raises(TrainingDiverged, match="epoch 2.*NaN or infinite"):
        train(tiny_config(tmp_path / "run"), on_epoch_end=infinite_running_variance)
    saved = read_checkpoint(tmp_path / "run" / "last.npz")
    assert saved.metadata["epoch"] == 1 and all(np.isfinite(v).all() for v in saved.model_state.values())


def test_defaults_and_schedule():
    synthetic = resolve_defaults(TrainConfig())
    assert (synthetic.preset, synthetic.size, synthetic.optimizer) == ("small", (128, 160), "adam")
    real = resolve_defaults(TrainConfig(data="somewhere"), "cuda")
    assert (real.preset, real.size, real.augment) == ("paper", (400, 500), True)
    config = resolve_defaults(TrainConfig(lr=1.0, epochs=10))
    assert learning_rate(config, 0) == 1.0
    assert learning_rate(config, 5) == pytest.approx(0.505)
    assert learning_rate(config, 9) < 0.05
    with pytest.raises(ValueError, match="optimizer"):
        resolve_defaults(TrainConfig(optimizer="rmsprop"))


def test_denoise_cache_computes_once(tmp_path):
    calls = []

    def blur(image, amount=1):
        calls.append(amount)
        return image * 0.5 * amount
    image = np.arange(12, dtype=np.float32).reshape(3, 4)
    first = cached_apply(blur, image, {"amount": 1}, tmp_path)
    again = cached_apply(blur, image, {"amount": 1}, tmp_path)
    np.testing.assert_array_equal(first, again)
    assert calls == [1]
    cached_apply(blur, image, {"amount": 2}, tmp_path)          # other parameters: new entry
    cached_apply(blur, image + 1, {"amount": 1}, tmp_path)      # other content: new entry
    assert calls == [1, 2, 1] and len(os.listdir(tmp_path)) == 3


def test_unknown_denoiser_is_a_clear_error(monkeypatch):
    import tinyseg.denoise as denoise
    from tinyseg.denoise.cache import denoiser
    monkeypatch.delattr(denoise, "ksvd_denoise")
    with pytest.raises(RuntimeError, match="ksvd_denoise"):
        denoiser("ksvd")


def test_progress_bar_reports_rate():
    stream = io.StringIO()
    bar = ProgressBar(4, "epoch 1/2", stream=stream)
    bar.update(4, 32, loss=0.25)
    bar.close(val_lungs=0.9)
    line = stream.getvalue()
    assert line.count("\n") == 1 and "4/4" in line and "loss 0.2500" in line and "img/s" in line
    assert "val_lungs 0.9000" in line


def test_segmenter_matches_training_predictions(tmp_path):
    from tinyseg.app import Segmenter, predict
    from tinyseg.data import load_dataset
    train(tiny_config(tmp_path, epochs=1, augment=False))
    segmenter = Segmenter.from_checkpoint(tmp_path / "last.npz")
    from tinyseg.app.loop import load_training_data
    data, scale = load_training_data(resolve_defaults(tiny_config(tmp_path, epochs=1), "cpu"))  # as trained
    raw = load_dataset(None, size=(32, 48), n_synthetic=10, seed=0, subtract_mean=False).images[data.test]
    assert segmenter.normalize == "equalize"
    assert scale == read_checkpoint(tmp_path / "last.npz").metadata["input_scale"]
    expected = predict(segmenter.model, data.images[data.test], scale, "cpu")
    for image, labels in zip(raw, expected):
        np.testing.assert_array_equal(segmenter.segment(image), labels)
    assert isinstance(segmenter.model, ts.models.HReNet)


def test_real_data_defaults_depend_on_the_device():
    from tinyseg.app.config import REAL_DATA_DEVICE_DEFAULTS, faster_alternative
    cpu = resolve_defaults(TrainConfig(data="somewhere"), "cpu")
    assert (cpu.preset, cpu.size) == (REAL_DATA_DEVICE_DEFAULTS["cpu"]["preset"], (256, 256))
    assert (cpu.epochs, cpu.augment, cpu.optimizer) == (150, True, "adam")     # the rest as on a GPU
    # --preset and --size still decide; another preset comes at its own input size
    assert resolve_defaults(TrainConfig(data="d", preset="paper"), "cpu").size == (400, 500)
    assert resolve_defaults(TrainConfig(data="d", preset="small"), "cuda").size == (128, 160)
    sized = resolve_defaults(TrainConfig(data="d", size=(320, 320)), "cpu")
    assert (sized.preset, sized.size) == ("cpu", (320, 320))
    assert resolve_defaults(TrainConfig(data="d", device="cpu")).size == (256, 256)   # device picked
    assert resolve_defaults(TrainConfig(), "cuda").size == (128, 160)   # synthetic: same everywhere
    paper = resolve_defaults(TrainConfig(data="d"), "cuda")
    assert faster_alternative(paper, "cpu").startswith("--preset cpu --size 256 256 or a GPU")
    assert "--preset" not in faster_alternative(cpu, "cpu") and "GPU" in faster_alternative(cpu, "cpu")


def test_resume_keeps_the_stored_model_whatever_the_device(tmp_path):
    from tinyseg.app.config import adopt_stored_settings, config_record
    gpu_run = config_record(resolve_defaults(TrainConfig(data="d", out=str(tmp_path)), "cuda"))
    resumed = resolve_defaults(adopt_stored_settings(TrainConfig(data="d", resume=True), gpu_run), "cpu")
    assert (resumed.preset, resumed.size) == ("paper", (400, 500))


def test_training_says_what_runs_and_how_long_in_a_log(tmp_path, capsys):
    train(tiny_config(tmp_path, epochs=2, progress=True))
    err = capsys.readouterr().err                        # pytest's stderr is no terminal
    assert "\r" not in err
    lines = err.splitlines()
    estimate = [line for line in lines if line.startswith("estimate: ")]
    assert len(estimate) == 1 and re.match(
        r"estimate: preset small at 32x48 on cpu, 2 epochs of \d+ images in batches of 3, each scored "
        r"on 1 val images; about [\d.]+ (s|min|h) in all \([\d.]+ s per batch of 3, timed on \d batch", estimate[0])
    measured = [line for line in lines if line.startswith("measured: ")]
    assert len(measured) == 1 and "to go for 1 more epoch and the test split" in measured[0]
    epochs = [line for line in lines if line.startswith("epoch ")]
    assert len(epochs) == 2 and "epoch 2/2 [" in epochs[1] and "val_lungs" in epochs[1]
    assert lines.index(estimate[0]) < lines.index(epochs[0]) < lines.index(measured[0]) < lines.index(epochs[1])

    train(tiny_config(tmp_path, epochs=3, resume=True, progress=True))    # a resumed run: the rest
    lines = capsys.readouterr().err.splitlines()
    assert any(line.startswith("estimate: preset small at 32x48 on cpu, 1 epoch of") for line in lines)
    assert not any(line.startswith("measured: ") for line in lines)       # nothing left to estimate


def test_cli_on_real_data_takes_the_device_default_model(tmp_path, capsys):
    from tinyseg.app.config import REAL_DATA_DEVICE_DEFAULTS
    from tinyseg.data import make_synthetic_dataset
    images, labels = make_synthetic_dataset(8, (64, 64), 3)
    for sub in ("images", "masks"):
        (tmp_path / "data" / sub).mkdir(parents=True)
    for i, (image, label) in enumerate(zip(images, labels)):
        Image.fromarray((image * 255).astype(np.uint8)).save(tmp_path / "data" / "images" / f"c{i}.png")
        Image.fromarray(label.astype(np.uint8)).save(tmp_path / "data" / "masks" / f"c{i}.png")
    out = tmp_path / "run"
    assert main(["--data", str(tmp_path / "data"), "--epochs", "1", "--device", "cpu", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    cpu = REAL_DATA_DEVICE_DEFAULTS["cpu"]
    assert (metrics["preset"], metrics["size"], metrics["device"]) == (cpu["preset"], list(cpu["size"]), "cpu")
    err = capsys.readouterr().err
    assert f"estimate: preset {cpu['preset']} at {cpu['size'][0]}x{cpu['size'][1]} on cpu, 1 epoch of" in err
