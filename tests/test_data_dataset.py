"""load_dataset end to end: synthetic default, a fake JSRT + SCR tree, batches."""
import numpy as np
import pytest
from PIL import Image

from tinyseg.data import (Augmentation, DatasetError, MissingFileError, load_dataset,
                          make_synthetic_dataset, write_jsrt_raw)

SIDE = 2048


def test_synthetic_default_is_split_and_centred_on_train_only():
    data = load_dataset(size=(32, 40), n_synthetic=24, seed=3)
    raw, labels = make_synthetic_dataset(24, (32, 40), seed=3)
    assert data.source == "synthetic" and data.images.shape == (24, 32, 40)
    assert data.split("train")[0].shape[0] + len(data.val) + len(data.test) == 24
    np.testing.assert_array_equal(data.labels, labels)
    np.testing.assert_allclose(data.mean_image, raw[data.train].mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(data.images + data.mean_image, raw, atol=1e-6)
    assert not np.allclose(data.mean_image, raw.mean(axis=0), atol=1e-4)   # test images not used
    assert data.excluded == {}


def display_to_raw(display):
    """Stored JSRT values for a wanted display image in [0, 1] (bones bright)."""
    return np.round((1.0 - display) * 4095).astype(np.uint16)


def scr_masks(side=64):
    masks = {s: np.zeros((side, side), bool) for s in ("heart", "left lung", "right lung")}
    masks["right lung"][8:48, 6:26] = True
    masks["left lung"][8:52, 38:58] = True
    masks["heart"][36:56, 24:44] = True
    return masks


def write_scr(root, names, masks):
    for name in names:
        for structure, mask in masks.items():
            folder = root / "scratch" / "masks" / structure
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.where(mask, 255, 0).astype(np.uint8)).save(folder / f"{name}.gif")


@pytest.fixture(scope="module")
def jsrt_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("jsrt")
    images = root / "All247images"
    images.mkdir()
    display = np.full((SIDE, SIDE), 0.3)
    display[:, : SIDE // 2] = 0.9                  # left half bright
    write_jsrt_raw(images / "JPCLN001.IMG", display_to_raw(display))
    burnt = np.zeros((SIDE, SIDE))                 # overexposed: black film
    burnt[: SIDE // 4] = 0.6
    write_jsrt_raw(images / "JPCNN001.IMG", display_to_raw(burnt))
    small = np.full((256, 256), 200, np.uint8)
    small[:, 128:] = 60
    Image.fromarray(small).save(images / "JPCLN002.png")
    Image.fromarray(small).save(images / "JPCNN002.PNG")
    scr = root / "scr"
    write_scr(scr, ["JPCLN001", "JPCNN001", "JPCLN002", "JPCNN002"], scr_masks())
    return images, scr


def test_jsrt_and_scr_end_to_end(jsrt_tree):
    images, scr = jsrt_tree
    data = load_dataset(images, scr=scr, size=(32, 32), subtract_mean=False)
    assert data.source == "jsrt"
    assert data.names == ["JPCLN001", "JPCLN002", "JPCNN002"]
    assert list(data.excluded) == ["JPCNN001"] and data.excluded["JPCNN001"] > 0.7
    assert list(data.bit_depths) == [12, 8, 8]
    first = data.images[0]
    np.testing.assert_allclose(first[:, :16], 0.9, atol=1e-3)    # inversion kept bones bright
    np.testing.assert_allclose(first[:, 16:], 0.3, atol=1e-3)
    np.testing.assert_allclose(data.images[1][:, :16], 200 / 255, atol=1e-3)
    expected = np.zeros((32, 32), np.int64)
    expected[4:24, 3:13] = 1
    expected[4:26, 19:29] = 1
    expected[18:28, 12:22] = 2
    for labels in data.labels:
        np.testing.assert_array_equal(labels, expected)


def test_jsrt_protocols_and_exclusion_switch(jsrt_tree):
    images, scr = jsrt_tree
    kept = load_dataset(images, scr=scr, size=(16, 16), max_dark_fraction=None, protocol="two_fold",
                        fold=1, val_fraction=0.0)
    assert len(kept) == 4 and kept.excluded == {}
    assert list(kept.test) == [1, 3] and list(kept.train) == [0, 2]
    screened = load_dataset(images, scr=scr, size=(16, 16), protocol="two_fold", fold=1,
                            val_fraction=0.0)
    # JPCNN001 (position 2) is dropped; the folds keep the parity of the full list
    assert screened.names == ["JPCLN001", "JPCLN002", "JPCNN002"]
    assert list(screened.test) == [1, 2] and list(screened.train) == [0]
    np.testing.assert_allclose(kept.mean_image, (kept.images[[0, 2]] + kept.mean_image).mean(0), atol=1e-6)


def test_image_without_masks_names_the_image(jsrt_tree, tmp_path):
    images, _ = jsrt_tree
    scr = tmp_path / "scr"
    write_scr(scr, ["JPCLN001", "JPCLN002", "JPCNN002"], scr_masks())
    with pytest.raises(MissingFileError, match=r"JPCNN001\.IMG has no SCR masks"):
        load_dataset(images, scr=scr)


def test_masks_without_image_name_the_mask(jsrt_tree, tmp_path):
    images, _ = jsrt_tree
    scr = tmp_path / "scr"
    write_scr(scr, ["JPCLN001", "JPCNN001", "JPCLN002", "JPCNN002", "JPCLN077"], scr_masks())
    with pytest.raises(DatasetError, match=r"JPCLN077\.gif has no JSRT image"):
        load_dataset(images, scr=scr)


def test_scr_defaults_to_the_dataset_folder(jsrt_tree):
    images, _ = jsrt_tree
    with pytest.raises(MissingFileError, match="no SCR structure folders"):
        load_dataset(images)


def test_truncated_image_in_a_tree_names_the_file(tmp_path):
    (tmp_path / "JPCLN001.IMG").write_bytes(bytes(1000))
    write_scr(tmp_path, ["JPCLN001"], scr_masks())
    with pytest.raises(DatasetError, match=r"JPCLN001\.IMG has 1000 bytes"):
        load_dataset(tmp_path)


def test_unknown_and_missing_folders(tmp_path):
    with pytest.raises(MissingFileError, match="nowhere"):
        load_dataset(tmp_path / "nowhere")
    (tmp_path / "stuff.txt").write_text("hello")
    with pytest.raises(DatasetError, match="cannot tell what kind of dataset"):
        load_dataset(tmp_path)


def test_everything_excluded_is_an_error():
    with pytest.raises(DatasetError, match="excluded as overexposed"):
        load_dataset(size=(32, 32), n_synthetic=3, max_dark_fraction=0.0, dark_level=1.0)


def test_batches_cover_the_split_once_and_are_seeded():
    data = load_dataset(size=(32, 32), n_synthetic=20)
    seen = []
    for x, y in data.batches("train", batch_size=4, seed=7):
        assert x.dtype == np.float32 and x.ndim == 4 and x.shape[1] == 1
        assert y.dtype == np.int64 and y.shape == (x.shape[0], 32, 32)
        seen.extend(x[:, 0, 0, 0])
    assert len(seen) == len(data.train)
    again = [x for x, _ in data.batches("train", batch_size=4, seed=7)]
    other = [x for x, _ in data.batches("train", batch_size=4, seed=8)]
    np.testing.assert_array_equal(np.concatenate(again)[:, 0, 0, 0], seen)
    assert not np.array_equal(np.concatenate(other)[:, 0, 0, 0], seen)
    test_x = np.concatenate([x for x, _ in data.batches("test", batch_size=3)])
    np.testing.assert_array_equal(test_x[:, 0], data.images[data.test])      # in order
    augmented = next(iter(data.batches("train", batch_size=2, augment=Augmentation())))
    assert set(np.unique(augmented[1])) <= {0, 1, 2}


def test_command_line_summary_and_montage(tmp_path, capsys):
    from tinyseg.data.__main__ import main
    main(["--size", "32", "40", "--out", str(tmp_path / "look.png")])
    printed = capsys.readouterr().out
    assert "synthetic: 240 images of 32x40, train/val/test 180/20/40" in printed
    assert (tmp_path / "look.png").is_file()
