"""Checkpoints: round trip, atomic writes, and clear errors for wrong files and models."""
import json
import os

import numpy as np
import pytest

import tinyseg as ts
import tinyseg.functional as F
from tinyseg.app.checkpoint import CheckpointError, load_checkpoint, read_checkpoint, save_checkpoint

TINY = dict(preset="small", widths=(2, 2, 2, 2), convs_per_block=(1, 1, 1, 1), conv7_width=2,
            conv7_kernel=3, hidden_size=2)


def trained_model_and_optimizer(seed=0):
    model = ts.models.HReNet(**TINY, seed=seed)
    optimizer = ts.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    rng = np.random.default_rng(seed)
    x = ts.tensor(rng.standard_normal((2, 1, 32, 32)).astype(np.float32))
    F.cross_entropy(model(x), ts.tensor(rng.integers(0, 3, (2, 32, 32)))).backward()
    optimizer.step()                                   # fills momentum buffers and BN statistics
    return model, optimizer


def test_round_trip(tmp_path):
    model, optimizer = trained_model_and_optimizer()
    path = tmp_path / "ckpt.npz"
    save_checkpoint(path, model, optimizer, metadata={"epoch": 3, "history": {"loss": [1.0, 0.5]}},
                    extra={"mean_image": np.arange(6.0).reshape(2, 3)})
    fresh = ts.models.HReNet(**TINY, seed=99)
    fresh_opt = ts.optim.SGD(fresh.parameters(), lr=1.0)
    meta = load_checkpoint(path, fresh, fresh_opt)
    assert meta["epoch"] == 3 and meta["history"]["loss"] == [1.0, 0.5]
    assert meta["model"]["preset"] == "small"
    for (name, a), b in zip(model.state_dict().items(), fresh.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=name)
    assert fresh_opt.lr == 0.01
    np.testing.assert_array_equal(read_checkpoint(path).extra["mean_image"], np.arange(6.0).reshape(2, 3))
    for a, b in zip(optimizer.state, fresh_opt.state):
        np.testing.assert_array_equal(a["velocity"], b["velocity"])
    # every entry is a plain array: readable without pickle
    with np.load(path, allow_pickle=False) as archive:
        assert "model/conv1_1.weight" in archive.files and "optim/0.velocity" in archive.files
        assert json.loads(str(archive["metadata"]))["format"].startswith("tinyseg")


def test_failed_write_leaves_old_file_and_no_temporary(tmp_path, monkeypatch):
    model, _ = trained_model_and_optimizer()
    path = tmp_path / "ckpt.npz"
    save_checkpoint(path, model, metadata={"epoch": 1})
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, model, metadata={"epoch": 2})
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["ckpt.npz"]


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.npz"):
        load_checkpoint(tmp_path / "nothing.npz")


def test_not_a_checkpoint(tmp_path):
    text = tmp_path / "notes.npz"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match="not a tinyseg checkpoint"):
        load_checkpoint(text)
    plain = tmp_path / "plain.npz"
    np.savez(plain, weights=np.zeros(3))
    with pytest.raises(CheckpointError, match="not a tinyseg checkpoint"):
        read_checkpoint(plain)


def test_other_model_or_preset_names_both(tmp_path):
    model, _ = trained_model_and_optimizer()
    path = tmp_path / "ckpt.npz"
    save_checkpoint(path, model)
    other = ts.models.HReNet(**{**TINY, "hidden_size": 3})
    with pytest.raises(CheckpointError, match="hidden_size.*2.*hidden_size.*3"):
        load_checkpoint(path, other)
    paper = ts.models.HReNet.__new__(ts.models.HReNet)   # describe() only, no 167M weights
    paper.__dict__.update(preset="paper", n_classes=3, in_channels=1, init="paper", config={})
    with pytest.raises(CheckpointError, match="preset='small'.*preset='paper'"):
        load_checkpoint(path, paper)


def test_shape_mismatch_is_reported(tmp_path):
    model, _ = trained_model_and_optimizer()
    path = tmp_path / "ckpt.npz"
    save_checkpoint(path, model)
    checkpoint = read_checkpoint(path)
    metadata, state = checkpoint.metadata, checkpoint.model_state
    state["classifier.weight"] = np.zeros((5, 4, 1, 1), np.float32)
    arrays = {f"model/{k}": v for k, v in state.items()}
    np.savez(path, metadata=np.array(json.dumps(metadata)), **arrays)
    fresh = ts.models.HReNet(**TINY)
    with pytest.raises(CheckpointError, match="classifier.weight"):
        load_checkpoint(path, fresh)


def test_wrong_optimizer_kind(tmp_path):
    model, optimizer = trained_model_and_optimizer()
    path = tmp_path / "ckpt.npz"
    save_checkpoint(path, model, optimizer)
    fresh = ts.models.HReNet(**TINY, seed=5)
    before = fresh.state_dict()
    with pytest.raises(CheckpointError, match="SGD.*Adam"):
        load_checkpoint(path, fresh, ts.optim.Adam(fresh.parameters()))
    for name, value in fresh.state_dict().items():       # nothing was loaded
        np.testing.assert_array_equal(value, before[name], err_msg=name)
