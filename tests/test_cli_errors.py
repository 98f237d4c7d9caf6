"""Every error a user can cause ends as one line, ``error: <message>``, exit status 2, no
traceback (``--debug`` shows it), for the training CLI, segment.py and python -m tinyseg.data."""
import errno
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import tinyseg.app.loop as loop
from tinyseg.app import main, read_checkpoint, train
from tinyseg.app.cli import run_command
from tinyseg.backend import cuda_available

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--n-synthetic", "8", "--size", "32", "48", "--batch-size", "4", "--epochs", "1", "--quiet"]
TINY_MODEL = {"widths": (2, 3, 3, 4), "convs_per_block": (1, 1, 1, 1), "conv7_width": 4,
              "conv7_kernel": 3, "hidden_size": 3}


def one_error_line(capsys, code, *fragments):
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err
    return err


def folder_dataset(root, mask_shape=(40, 50), image_shape=(40, 50), n=4):
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray((rng.random(image_shape) * 200 + 40).astype(np.uint8)).save(root / "images" / f"img{i}.png")
        Image.fromarray(rng.integers(0, 3, mask_shape).astype(np.uint8)).save(root / "masks" / f"img{i}.png")
    return root


@pytest.mark.parametrize("argv, fragments", [
    (["--lr", "nan"], ["--lr must be a number", "nan"]),
    (["--lr", "inf"], ["--lr must be a number"]),
    (["--lr", "-1"], ["--lr must be > 0"]),
    (["--weight-decay", "-0.1"], ["--weight-decay must be >= 0"]),
    (["--momentum", "-0.5"], ["--momentum must be >= 0"]),
    (["--momentum", "1.5"], ["--momentum must be"]),
    (["--epochs", "0"], ["--epochs must be >= 1"]),
    (["--batch-size", "0"], ["--batch-size must be >= 1"]),
    (["--val-fraction", "1.5"], ["--val-fraction"]),
    (["--size", "8", "8"], ["--size must be >= 16"]),
])
def test_each_bad_option_has_its_own_message(tmp_path, capsys, argv, fragments):
    base = [a for a in TINY if a not in ("--epochs", "1")] + ["--epochs", "1"]
    code = main(base + argv + ["--out", str(tmp_path / "run")])
    one_error_line(capsys, code, *fragments)
    assert not (tmp_path / "run" / "last.npz").exists()


def test_missing_data_folder_a_file_as_data_and_resume_without_checkpoint(tmp_path, capsys):
    one_error_line(capsys, main(TINY + ["--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "a")]),
                   "dataset folder not found", "nowhere")
    (tmp_path / "file.txt").write_text("x")
    one_error_line(capsys, main(TINY + ["--data", str(tmp_path / "file.txt"), "--out", str(tmp_path / "b")]),
                   "is a file", "file.txt")
    one_error_line(capsys, main(TINY + ["--resume", "--out", str(tmp_path / "c")]), "last.npz")


def test_a_mask_of_another_shape_is_an_error_naming_it(tmp_path, capsys):
    data = folder_dataset(tmp_path / "data", mask_shape=(50, 40))          # transposed
    one_error_line(capsys, main(TINY + ["--data", str(data), "--out", str(tmp_path / "run")]),
                   "img0.png", "50x40", "40x50")
    ok = folder_dataset(tmp_path / "data2", mask_shape=(20, 25))           # a whole factor: resized
    assert main(TINY + ["--data", str(ok), "--out", str(tmp_path / "run2"), "--preset", "small",
                        "--size", "32", "32"]) == 0


def test_a_binary_splits_csv_is_an_error_naming_it(tmp_path, capsys):
    data = folder_dataset(tmp_path / "data")
    (data / "splits.csv").write_bytes(b"\xff\xfe\x00\x01garbage")
    one_error_line(capsys, main(TINY + ["--data", str(data), "--out", str(tmp_path / "run")]), "splits.csv")


def test_a_split_without_test_images_is_refused_before_training(tmp_path, capsys):
    data = folder_dataset(tmp_path / "data")
    (data / "splits.csv").write_text("name,split\n" + "".join(f"img{i},train\n" for i in range(4)))
    one_error_line(capsys, main(TINY + ["--data", str(data), "--out", str(tmp_path / "run")]),
                   "test split", "empty")
    assert not (tmp_path / "run" / "last.npz").exists()


@pytest.mark.skipif(cuda_available(), reason="a GPU is present")
def test_no_gpu(tmp_path, capsys):
    one_error_line(capsys, main(TINY + ["--device", "cuda", "--out", str(tmp_path / "run")]),
                   "cuda", "--device cpu")


def test_ctrl_c_is_one_line_and_debug_shows_the_traceback(capsys):
    def interrupted(argv):
        raise KeyboardInterrupt
    one_error_line(capsys, run_command(interrupted, []), "interrupted")

    def broken(argv):
        raise ValueError("bad value")
    with pytest.raises(ValueError):
        run_command(broken, ["--debug"])


def test_disk_full_names_the_path_and_keeps_the_last_checkpoint(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    assert main(TINY + ["--out", str(out)]) == 0
    before = (out / "last.npz").read_bytes()

    def full(path, write):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))
    monkeypatch.setattr(loop, "save_checkpoint", lambda path, *args, **kwargs: full(path, None))
    capsys.readouterr()
    code = main([a for a in TINY if a not in ("--epochs", "1")] + ["--epochs", "2", "--resume", "--out", str(out)])
    one_error_line(capsys, code, "No space left on device", "npz")
    assert (out / "last.npz").read_bytes() == before


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("trained")
    train(loop.TrainConfig(n_synthetic=8, size=(32, 48), epochs=1, batch_size=4, out=str(out),
                           model_options=TINY_MODEL, progress=False))
    return out / "best.npz"


def segment(*args):
    return subprocess.run([sys.executable, os.path.join(ROOT, "examples", "segment.py"), *args,
                           "--device", "cpu"], capture_output=True, text=True, timeout=120)


def assert_cli_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


def test_segment_errors(tmp_path, checkpoint):
    chest = tmp_path / "chest.png"
    Image.fromarray(np.full((64, 64), 128, np.uint8)).save(chest)
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    assert_cli_error(segment(str(tmp_path / "notes.txt"), str(chest)), "notes.txt", "not a tinyseg checkpoint")
    np.save(tmp_path / "weights.npy", np.zeros(3))
    os.replace(tmp_path / "weights.npy", tmp_path / "weights.npz")
    assert_cli_error(segment(str(tmp_path / "weights.npz"), str(chest)), ".npy")
    assert_cli_error(segment(str(tmp_path), str(chest)), "is a folder")
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(checkpoint.read_bytes()[:200])
    assert_cli_error(segment(str(truncated), str(chest)), "truncated.npz")
    assert_cli_error(segment(str(checkpoint), str(tmp_path / "missing.png")), "missing.png")
    Image.fromarray(np.zeros((1, 3000), np.uint8)).save(tmp_path / "strip.png")
    assert_cli_error(segment(str(checkpoint), str(tmp_path / "strip.png")), "strip.png", "1x3000")


def test_checkpoint_values_are_validated(tmp_path, checkpoint):
    from tinyseg.app import Segmenter
    from tinyseg.app.checkpoint import CheckpointError
    stored = read_checkpoint(checkpoint)
    arrays = {f"model/{k}": v for k, v in stored.model_state.items()}
    arrays["extra/mean_image"] = stored.extra["mean_image"]

    def write(name, metadata, **changes):
        path = tmp_path / name
        import json
        np.savez(path, metadata=np.array(json.dumps(metadata)), **{**arrays, **changes})
        return path
    meta = stored.metadata
    first = next(iter(stored.model_state))
    nan = write("nan.npz", meta, **{f"model/{first}": np.full_like(stored.model_state[first], np.nan)})
    with pytest.raises(CheckpointError, match="NaN"):
        Segmenter.from_checkpoint(nan)
    ints = write("ints.npz", meta, **{f"model/{first}": stored.model_state[first].astype(np.int64)})
    with pytest.raises(CheckpointError, match="int64"):
        Segmenter.from_checkpoint(ints)
    huge = dict(meta, model=dict(meta["model"], config=dict(meta["model"]["config"], conv7_width=10**7)))
    with pytest.raises(CheckpointError, match="conv7_width"):
        Segmenter.from_checkpoint(write("huge.npz", huge))
    no_preset = dict(meta, model={k: v for k, v in meta["model"].items() if k != "preset"})
    with pytest.raises(CheckpointError, match="preset"):
        Segmenter.from_checkpoint(write("nopreset.npz", no_preset))
    bad_size = dict(meta, size="big")
    with pytest.raises(CheckpointError, match="size"):
        Segmenter.from_checkpoint(write("badsize.npz", bad_size))


def test_python_m_tinyseg_data_errors(tmp_path):
    result = subprocess.run([sys.executable, "-m", "tinyseg.data", str(tmp_path / "nowhere")],
                            capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert_cli_error(result, "nowhere")


def test_inference_reads_sixteen_bit_files_at_the_training_data_depth(tmp_path, checkpoint):
    import json
    from tinyseg.app import Segmenter
    stored = read_checkpoint(checkpoint)
    arrays = {f"model/{k}": v for k, v in stored.model_state.items()}
    arrays["extra/mean_image"] = stored.extra["mean_image"]
    twelve_bit = tmp_path / "twelve.npz"
    np.savez(twelve_bit, metadata=np.array(json.dumps(dict(stored.metadata, sixteen_bit_depth=12))), **arrays)
    image = np.full((64, 64), 4095, np.uint16)
    image[:32] = 1000
    Image.fromarray(image).save(tmp_path / "chest.png")
    np.testing.assert_allclose(Segmenter.from_checkpoint(twelve_bit).read(tmp_path / "chest.png")[0, 0],
                               1000 / 4095, rtol=1e-6)
    np.testing.assert_allclose(Segmenter.from_checkpoint(checkpoint).read(tmp_path / "chest.png")[0, 0],
                               1000 / 65535, rtol=1e-6)
