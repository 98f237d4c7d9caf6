"""SCR masks: folder discovery, label precedence, nearest resizing, errors."""
import numpy as np
import pytest
from PIL import Image

from tinyseg.data import MissingFileError, find_scr_masks, read_scr_labels


def save_gif(path, mask):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.where(mask, 255, 0).astype(np.uint8)).save(path)


def make_masks(side=8):
    right_lung = np.zeros((side, side), bool)     # image left
    left_lung = np.zeros((side, side), bool)      # image right
    heart = np.zeros((side, side), bool)
    right_lung[1:6, 1:3] = True
    left_lung[1:7, 5:7] = True
    heart[4:7, 3:6] = True                        # overlaps the left lung at [4:7, 5]
    return {"heart": heart, "left lung": left_lung, "right lung": right_lung}


def write_fold(fold, name, masks, folder_names=None):
    folder_names = folder_names or {s: s for s in masks}
    for structure, mask in masks.items():
        save_gif(fold / "masks" / folder_names[structure] / f"{name}.gif", mask)


def test_labels_combine_structures_with_heart_winning(tmp_path):
    masks = make_masks()
    write_fold(tmp_path / "scratch", "JPCLN001", masks)
    found = find_scr_masks(tmp_path)
    assert list(found) == ["JPCLN001"]
    labels = read_scr_labels(found["JPCLN001"], (8, 8))
    assert labels.dtype == np.int64
    expected = np.zeros((8, 8), np.int64)
    expected[masks["left lung"] | masks["right lung"]] = 1
    expected[masks["heart"]] = 2
    np.testing.assert_array_equal(labels, expected)
    assert labels[5, 5] == 2                      # overlap goes to the heart


def test_masks_are_resized_by_nearest_neighbour(tmp_path):
    masks = make_masks()
    write_fold(tmp_path, "JPCNN002", masks, {"heart": "Heart", "left lung": "left_lung",
                                             "right lung": "RIGHT LUNG"})
    labels_small = read_scr_labels(find_scr_masks(tmp_path)["JPCNN002"], (8, 8))
    labels_big = read_scr_labels(find_scr_masks(tmp_path)["JPCNN002"], (32, 32))
    np.testing.assert_array_equal(labels_big, np.kron(labels_small, np.ones((4, 4), np.int64)))


def test_real_size_masks(tmp_path):
    side = 1024
    masks = {s: np.kron(m, np.ones((128, 128), bool)) for s, m in make_masks().items()}
    assert masks["heart"].shape == (side, side)
    write_fold(tmp_path / "fold1", "JPCLN003", masks)
    labels = read_scr_labels(find_scr_masks(tmp_path)["JPCLN003"], (2048, 2048))
    assert labels.shape == (2048, 2048)
    assert labels[5 * 256 + 10, 5 * 256 + 10] == 2 and labels[2 * 256, 1 * 256 + 5] == 1


def test_same_name_in_two_folds_uses_one_fold(tmp_path):
    masks = make_masks()
    write_fold(tmp_path / "fold2", "JPCLN001", masks)
    write_fold(tmp_path / "fold1", "JPCLN001", masks)
    write_fold(tmp_path / "fold2", "JPCLN009", masks)
    found = find_scr_masks(tmp_path)
    assert {p.parts[-4] for p in found["JPCLN001"].values()} == {"fold1"}
    assert {p.parts[-4] for p in found["JPCLN009"].values()} == {"fold2"}


def test_missing_structure_folder_is_named(tmp_path):
    masks = make_masks()
    del masks["right lung"]
    write_fold(tmp_path / "scratch", "JPCLN001", masks)
    with pytest.raises(MissingFileError, match="scratch.*'right lung'"):
        find_scr_masks(tmp_path)


def test_no_structure_folders_at_all(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(MissingFileError, match="no SCR structure folders"):
        find_scr_masks(tmp_path)


def test_mask_missing_for_one_structure_names_the_file(tmp_path):
    masks = make_masks()
    write_fold(tmp_path, "JPCLN001", masks)
    save_gif(tmp_path / "masks" / "heart" / "JPCLN005.gif", masks["heart"])
    with pytest.raises(MissingFileError, match=r"JPCLN005\.gif.*'left lung'"):
        find_scr_masks(tmp_path)
