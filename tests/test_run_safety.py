"""Nothing a user had is lost: a used --out, an interruption between checkpoint writes, a
diverged run continued at a lower rate, killed saves, and segment.py's output names."""
import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import tinyseg.app.loop as loop
from tinyseg.app import TrainConfig, main, read_checkpoint, train
from tinyseg.app.loop import OutputInUse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_MODEL = dict(widths=(2, 3, 3, 4), convs_per_block=(1, 1, 1, 1), conv7_width=4, conv7_kernel=3,
                  hidden_size=3)
CLI_TINY = ["--n-synthetic", "8", "--size", "32", "48", "--batch-size", "4", "--quiet"]


def tiny_config(out, **changes):
    settings = dict(n_synthetic=10, size=(32, 48), epochs=3, batch_size=3, lr=5e-3, out=str(out),
                    augment=False, model_options=TINY_MODEL, progress=False)
    return TrainConfig(**{**settings, **changes})


def file_bytes(folder):
    return {name: (folder / name).read_bytes() for name in ("last.npz", "best.npz", "metrics.json")}


def test_fresh_run_into_a_used_out_refuses_and_keeps_every_file(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["--epochs", "1", "--out", str(out)] + CLI_TINY) == 0
    before = file_bytes(out)
    capsys.readouterr()
    assert main(["--epochs", "2", "--out", str(out)] + CLI_TINY) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "--resume" in err and "--overwrite" in err
    assert file_bytes(out) == before                                     # nothing was touched
    with pytest.raises(OutputInUse):
        train(tiny_config(out, epochs=1))
    assert main(["--epochs", "1", "--out", str(out), "--overwrite", "--resume"] + CLI_TINY) == 2


def test_overwrite_replaces_only_the_runs_files(tmp_path):
    out = tmp_path / "run"
    train(tiny_config(out, epochs=1))
    (out / "notes.txt").write_text("mine")
    train(tiny_config(out, epochs=2, overwrite=True))
    assert read_checkpoint(out / "last.npz").metadata["epoch"] == 2
    assert len(json.loads((out / "history.json").read_text())) == 2
    assert (out / "notes.txt").read_text() == "mine"


def scores_by_weights(monkeypatch, scores):
    """Make the held-out Dice of the i-th distinct set of weights ``scores[i]``: a resumed run
    that recomputes an epoch (same weights) gets that epoch's score again."""
    real_evaluate, seen = loop.evaluate, []

    def evaluate(model, *args, **kwargs):
        result = real_evaluate(model, *args, **kwargs)
        key = hashlib.sha1(b"".join(np.ascontiguousarray(v).tobytes()
                                    for v in model.state_dict().values())).hexdigest()
        if key not in seen:
            seen.append(key)
        result["dice"] = np.full_like(result["dice"], scores[seen.index(key)])
        return result
    monkeypatch.setattr(loop, "evaluate", evaluate)


def test_interruption_between_best_and_last_keeps_best_correct(tmp_path, monkeypatch):
    scores_by_weights(monkeypatch, [0.1, 0.3, 0.2])                   # epoch 2 is the best
    straight = tmp_path / "straight"
    train(tiny_config(straight))
    assert read_checkpoint(straight / "best.npz").metadata["epoch"] == 2

    interrupted = tmp_path / "interrupted"
    real_save, saves = loop.save_checkpoint, []

    def save_then_die(path, model, optimizer, metadata, extra):
        if metadata["epoch"] == 2:
            saves.append(os.path.basename(path))
            if len(saves) == 2:            # the epoch's second file: killed between the two writes
                raise KeyboardInterrupt
        return real_save(path, model, optimizer, metadata, extra)
    monkeypatch.setattr(loop, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(interrupted))
    monkeypatch.setattr(loop, "save_checkpoint", real_save)
    train(TrainConfig(out=str(interrupted), resume=True, progress=False))

    expected = read_checkpoint(straight / "best.npz")
    actual = read_checkpoint(interrupted / "best.npz")
    assert actual.metadata["epoch"] == 2
    for name, value in expected.model_state.items():
        np.testing.assert_array_equal(actual.model_state[name], value, err_msg=name)


def test_a_diverged_run_continues_from_its_last_good_checkpoint_at_a_lower_rate(tmp_path):
    out = tmp_path / "run"
    train(tiny_config(out, epochs=1))
    train(tiny_config(out, epochs=2, lr=5e-4, resume=True))
    stored = read_checkpoint(out / "last.npz").metadata
    assert stored["epoch"] == 2 and stored["config"]["lr"] == 5e-4
    history = json.loads((out / "history.json").read_text())
    assert history[0]["lr"] > history[1]["lr"] and history[1]["lr"] <= 5e-4


def test_temporary_files_of_a_killed_save_are_removed_at_the_next_start(tmp_path):
    out = tmp_path / "run"
    train(tiny_config(out, epochs=1))
    stale = out / ".last.npz.k3j2l1.tmp"
    stale.write_bytes(b"half a checkpoint")
    train(tiny_config(out, epochs=2, resume=True))
    assert not stale.exists()


def test_an_unusable_out_is_an_error_before_training(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["--epochs", "1", "--out", str(blocker / "run")] + CLI_TINY) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot be written" in err and str(blocker) in err


def run_segment(*args):
    return subprocess.run([sys.executable, os.path.join(ROOT, "examples", "segment.py"), *args,
                           "--device", "cpu"], capture_output=True, text=True, timeout=120)


def test_segment_never_writes_two_inputs_to_the_same_files(tmp_path):
    train(tiny_config(tmp_path / "run", epochs=1))
    checkpoint = str(tmp_path / "run" / "best.npz")
    rng = np.random.default_rng(0)
    images = []
    for folder, shape in (("a", (40, 50)), ("b", (36, 60))):
        (tmp_path / folder).mkdir()
        Image.fromarray((rng.random(shape) * 255).astype(np.uint8)).save(tmp_path / folder / "chest.png")
        images.append(str(tmp_path / folder / "chest.png"))
    out = tmp_path / "seg"
    result = run_segment(checkpoint, *images, "--out", str(out))
    assert result.returncode == 0, result.stderr
    written = sorted(os.listdir(out))
    assert len(written) == 4 and all(name.endswith(("_overlay.png", "_labels.png")) for name in written)
    sizes = {Image.open(out / name).size for name in written if name.endswith("_labels.png")}
    assert sizes == {(50, 40), (60, 36)}                              # each input kept its own result

    again = run_segment(checkpoint, images[0], "--out", str(tmp_path / "seg2"))
    assert again.returncode == 0
    refused = run_segment(checkpoint, images[0], "--out", str(tmp_path / "seg2"))
    assert refused.returncode == 2 and refused.stderr.startswith("error: ") and "--overwrite" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert run_segment(checkpoint, images[0], "--out", str(tmp_path / "seg2"), "--overwrite").returncode == 0
    same = run_segment(checkpoint, images[0], images[0], "--out", str(tmp_path / "seg3"))
    assert same.returncode == 2 and "same files" in same.stderr


def test_checkpoints_and_results_follow_the_umask(tmp_path):
    previous = os.umask(0o022)
    try:
        train(tiny_config(tmp_path / "run", epochs=1))
    finally:
        os.umask(previous)
    for name in ("last.npz", "best.npz", "metrics.json"):
        assert (tmp_path / "run" / name).stat().st_mode & 0o777 == 0o644, name


def test_resume_refuses_data_that_changed(tmp_path):
    """The folder grew after the run started: the split would move a trained-on image into
    the test set. The checkpoint's fingerprint of the data catches it, naming both."""
    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    (data / "masks").mkdir()
    rng = np.random.default_rng(0)

    def add(i):
        Image.fromarray((rng.random((40, 40)) * 200 + 40).astype(np.uint8)).save(data / "images" / f"img{i}.png")
        Image.fromarray(rng.integers(0, 3, (40, 40)).astype(np.uint8)).save(data / "masks" / f"img{i}.png")
    for i in range(8):
        add(i)
    config = dict(data=str(data), size=(32, 32), preset="small", augment=False)
    train(tiny_config(tmp_path / "run", epochs=1, **config))
    add(8)
    with pytest.raises(ValueError, match=r"data differ.*'images': 8.*'images': 9"):
        train(tiny_config(tmp_path / "run", epochs=2, resume=True, **config))
