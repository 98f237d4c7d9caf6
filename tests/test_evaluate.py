"""metrics.json's per-image and boundary scores, at the network's resolution and the images'
own, and examples/evaluate.py on a folder dataset and a JSRT-like one written here."""
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tinyseg.app import TrainConfig, train
from tinyseg.app.cli import run_command
from tinyseg.app.evaluate import score_split
from tinyseg.data import load_dataset, make_synthetic_dataset, resize_labels

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_MODEL = dict(widths=(2, 3, 3, 4), convs_per_block=(1, 1, 1, 1), conv7_width=4, conv7_kernel=3,
                  hidden_size=3)
METRICS = ("dice", "jaccard", "mean_contour_distance_px", "hausdorff_px", "mean_contour_distance_mm",
           "hausdorff_mm")


def evaluate_command():
    spec = importlib.util.spec_from_file_location("evaluate_example", os.path.join(ROOT, "examples", "evaluate.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def write_folder_dataset(root, n=10, splits=None):
    """Phantoms as a folder dataset; masks stored at twice the images' resolution."""
    images, labels = make_synthetic_dataset(n, (40, 60), 1)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i, (image, label) in enumerate(zip(images, labels)):
        Image.fromarray((image * 255).astype(np.uint8)).save(root / "images" / f"case{i:02d}.png")
        Image.fromarray(np.kron(label, np.ones((2, 2), int)).astype(np.uint8)).save(root / "masks" / f"case{i:02d}.png")
    if splits:
        (root / "splits.csv").write_text("name,split\n" + "".join(f"case{i:02d},{s}\n" for i, s in enumerate(splits)))
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = write_folder_dataset(tmp_path_factory.mktemp("data") / "folder")
    out = tmp_path_factory.mktemp("run")
    metrics = train(TrainConfig(data=str(folder), size=(32, 48), epochs=2, batch_size=3, lr=5e-3,
                                out=str(out), model_options=TINY_MODEL, progress=False))
    return folder, out, metrics


def test_training_metrics_hold_every_test_image(trained):
    folder, out, metrics = trained
    data = load_dataset(str(folder), size=(32, 48))
    names = [data.names[i] for i in data.test]
    assert json.loads((out / "metrics.json").read_text()) == metrics
    assert sorted(metrics["per_image"]) == sorted(names) and metrics["excluded"] == {}
    for block in (metrics, metrics["original_resolution"]):
        assert set(block["summary"]) == set(METRICS)
        for name in names:
            assert set(block["per_image"][name]) == {"size", "pixel_spacing_mm", *METRICS}
            assert set(block["per_image"][name]["dice"]) == {"lungs", "heart"}
        lungs = block["summary"]["dice"]["lungs"]
        assert set(lungs) == {"mean", "std", "min", "max", "worst", "undefined"}
        assert lungs["mean"] == pytest.approx(np.mean([block["per_image"][n]["dice"]["lungs"] for n in names]))
    assert metrics["dice"]["lungs"] == pytest.approx(metrics["summary"]["dice"]["lungs"]["mean"])
    assert metrics["per_image"][names[0]]["size"] == [32, 48]
    assert metrics["original_resolution"]["per_image"][names[0]]["size"] == [80, 120]   # masks as stored
    assert metrics["per_image"][names[0]]["pixel_spacing_mm"] is None      # a folder dataset: unknown


def test_evaluate_command_reproduces_the_training_scores(trained, tmp_path):
    folder, out, metrics = trained
    result = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "evaluate.py"), str(out / "last.npz"),
                             "--data", str(folder), "--out", str(tmp_path / "eval"), "--device", "cpu", "--quiet"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "network resolution" in result.stdout and "own resolution" in result.stdout
    assert "lungs: Dice" in result.stdout and "metrics.json" in result.stdout
    scored = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert scored["split"] == "test" and scored["n_images"] == metrics["n_images"]
    for key in ("dice", "jaccard", "pixel_accuracy", "summary", "per_image", "original_resolution"):
        assert scored[key] == metrics[key], key
    assert scored["loss"] == pytest.approx(metrics["loss"])


def test_evaluate_command_all_split_and_user_errors(trained, tmp_path, capsys):
    folder, out, _ = trained
    main = evaluate_command()
    assert run_command(main, [str(out / "best.npz"), "--data", str(folder), "--split", "all",
                              "--out", str(tmp_path / "all"), "--device", "cpu", "--quiet"]) == 0
    scored = json.loads((tmp_path / "all" / "metrics.json").read_text())
    assert scored["n_images"] == 10 and len(scored["per_image"]) == 10 and scored["split"] == "all"
    assert sorted(os.listdir(tmp_path / "all" / "overlays")) == sorted(f"{n}.png" for n in scored["per_image"])
    capsys.readouterr()

    def fails(argv, *words):
        assert run_command(main, argv + ["--device", "cpu", "--quiet"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1, err
        for word in words:
            assert word in err, err
    before = (tmp_path / "all" / "metrics.json").read_bytes()
    fails([str(out / "best.npz"), "--data", str(folder), "--split", "all", "--out", str(tmp_path / "all")],
          "already exists", "--overwrite")
    assert (tmp_path / "all" / "metrics.json").read_bytes() == before      # nothing overwritten
    fails([str(tmp_path / "missing.npz"), "--data", str(folder)], "missing.npz")
    fails([str(out / "best.npz"), "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x")], "nowhere")
    (tmp_path / "junk.npz").write_bytes(b"not a checkpoint")
    fails([str(tmp_path / "junk.npz"), "--data", str(folder), "--out", str(tmp_path / "y")], "junk.npz")
    no_test = write_folder_dataset(tmp_path / "no_test", n=4, splits=["train", "train", "val", "train"])
    fails([str(out / "best.npz"), "--data", str(no_test), "--out", str(tmp_path / "z")], "--split all")


def write_jsrt_like(root, n=4):
    """JSRT names as 64 x 64 PNG conversions, SCR masks as 32 x 32 GIFs."""
    images, labels = make_synthetic_dataset(n, (64, 64), 2)
    (root / "jsrt").mkdir(parents=True)
    for structure in ("heart", "left lung", "right lung"):
        (root / "scr" / structure).mkdir(parents=True)
    for i, (image, label) in enumerate(zip(images, labels)):
        name = f"JPCLN{i + 1:03d}"
        Image.fromarray((image * 255).astype(np.uint8)).save(root / "jsrt" / f"{name}.png")
        small = label[::2, ::2]
        heart, lungs = small == 2, small == 1
        left, right = lungs & (np.arange(32) >= 16), lungs & (np.arange(32) < 16)
        for structure, mask in (("heart", heart), ("left lung", left), ("right lung", right)):
            Image.fromarray(mask.astype(np.uint8) * 255).save(root / "scr" / structure / f"{name}.gif")
    return root / "jsrt", root / "scr"


def test_jsrt_pixel_size_and_labels_as_stored(tmp_path):
    jsrt, scr = write_jsrt_like(tmp_path)
    data = load_dataset(str(jsrt), scr=str(scr), size=(16, 20), progress=False, max_dark_fraction=None)
    assert data.field_mm == (2048 * 0.175, 2048 * 0.175)
    assert data.pixel_spacing((1024, 1024)) == pytest.approx((0.35, 0.35))     # SCR's own masks
    assert data.pixel_spacing((16, 20)) == pytest.approx((358.4 / 16, 358.4 / 20))
    assert data.original_labels(0).shape == (32, 32)
    assert set(data.label_files[0]) == {"heart", "left lung", "right lung"}     # the SCR files read
    as_read = resize_labels(data.original_labels(0), (64, 64))           # masks at the image's size
    np.testing.assert_array_equal(resize_labels(as_read, (16, 20)), data.labels[0])

    perfect = data.labels[data.test]
    scored = score_split(data, data.test, perfect)
    name = data.names[data.test[0]]
    network, own = scored["per_image"][name], scored["original_resolution"]["per_image"][name]
    assert network["dice"] == {"lungs": 1.0, "heart": 1.0} and network["hausdorff_mm"] == {"lungs": 0.0, "heart": 0.0}
    assert network["pixel_spacing_mm"] == pytest.approx([358.4 / 16, 358.4 / 20])
    assert own["size"] == [32, 32] and own["pixel_spacing_mm"] == pytest.approx([11.2, 11.2])
    assert 0.5 < own["dice"]["lungs"] < 1.0            # the network's 16 x 20 seen at 32 x 32
    ratio = own["hausdorff_mm"]["lungs"] / own["hausdorff_px"]["lungs"]
    assert ratio == pytest.approx(11.2)                # square pixels: mm = px x 11.2
