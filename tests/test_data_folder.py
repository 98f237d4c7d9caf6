"""Folder datasets: pairing, label checks, splits.csv, errors naming files."""
import numpy as np
import pytest
from PIL import Image

from tinyseg.data import DatasetError, MissingFileError, load_dataset, read_splits_csv


def write_pair(root, name, shape=(24, 30), value=100, suffix=".png", mask_value=None):
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    image = np.full(shape, value, np.uint8)
    image[:, : shape[1] // 2] = 20
    Image.fromarray(image).save(root / "images" / f"{name}{suffix}")
    mask = np.zeros(shape, np.uint8)
    mask[2:10, 2:12] = 1
    mask[12:20, 15:25] = 2
    if mask_value is not None:
        mask[0, 0] = mask_value
    Image.fromarray(mask).save(root / "masks" / f"{name}.png")
    return image, mask


@pytest.fixture
def folder(tmp_path):
    for index in range(6):
        write_pair(tmp_path, f"case{index}", value=100 + 20 * index,
                   suffix=".jpg" if index == 5 else ".png")
    return tmp_path


def test_reads_pairs_and_resizes(folder):
    data = load_dataset(folder, size=(12, 15), subtract_mean=False)
    assert data.source == "folder" and len(data) == 6
    assert data.names == [f"case{i}" for i in range(6)]
    assert data.images.shape == (6, 12, 15) and data.images.dtype == np.float32
    assert data.labels.shape == (6, 12, 15) and data.labels.dtype == np.int64
    assert set(np.unique(data.labels)) == {0, 1, 2}
    assert data.labels[0, 7, 10] == 2 and data.labels[0, 3, 3] == 1
    np.testing.assert_allclose(data.images[0, :, 0], 20 / 255, atol=1e-6)
    assert list(data.bit_depths) == [8] * 6
    assert sorted(np.concatenate([data.train, data.val, data.test])) == list(range(6))


def test_splits_csv_is_used_when_present(folder):
    rows = ["name,split", "case0,test", "case1.png,train", "case2,train", "case3,val",
            "case4,train", "case5,test"]
    (folder / "splits.csv").write_text("\n".join(rows) + "\n")
    data = load_dataset(folder, size=(12, 15))
    assert list(data.test) == [0, 5] and list(data.val) == [3] and list(data.train) == [1, 2, 4]


def test_bad_split_value_names_the_csv_line(folder):
    (folder / "splits.csv").write_text("name,split\ncase0,holdout\n")
    with pytest.raises(DatasetError, match=r"splits\.csv line 2.*holdout"):
        load_dataset(folder)


def test_csv_must_list_every_image(folder):
    with pytest.raises(DatasetError, match="does not list 5 image"):
        (folder / "splits.csv").write_text("name,split\ncase0,train\n")
        read_splits_csv(folder / "splits.csv", [f"case{i}" for i in range(6)])


def test_label_values_outside_range_name_the_mask(tmp_path):
    write_pair(tmp_path, "ok")
    write_pair(tmp_path, "bad", mask_value=255)
    with pytest.raises(DatasetError, match=r"bad\.png.*outside 0\.\.2"):
        load_dataset(tmp_path)


def test_image_without_mask_names_the_missing_mask(folder):
    (folder / "masks" / "case3.png").unlink()
    with pytest.raises(MissingFileError, match=r"case3\.png has no mask.*masks.case3\.png"):
        load_dataset(folder)


def test_mask_without_image_names_the_mask(folder):
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(folder / "masks" / "stray.png")
    with pytest.raises(DatasetError, match=r"stray\.png has no image"):
        load_dataset(folder)


def test_empty_folder_dataset(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    with pytest.raises(DatasetError, match="empty dataset"):
        load_dataset(tmp_path)


def test_unreadable_image_names_the_file(folder):
    (folder / "images" / "case2.png").write_bytes(b"garbage")
    with pytest.raises(DatasetError, match=r"case2\.png"):
        load_dataset(folder)


def test_scr_root_is_refused_for_folder_datasets(folder, tmp_path):
    with pytest.raises(ValueError, match="folder dataset"):
        load_dataset(folder, scr=tmp_path)


def sixteen_bit_folder(root, peaks):
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i, peak in enumerate(peaks):
        image = np.full((40, 40), peak // 2, np.uint16)
        image[:20] = peak
        Image.fromarray(image).save(root / "images" / f"img{i}.png")
        Image.fromarray(np.zeros((40, 40), np.uint8)).save(root / "masks" / f"img{i}.png")
    return root


def test_sixteen_bit_files_are_scaled_by_one_rule_for_the_whole_dataset(tmp_path):
    """A folder of 12-bit data in 16-bit files reads as 12-bit; one file past 4095 makes the
    whole folder 16-bit data. Two images of one dataset are never scaled differently."""
    twelve = load_dataset(sixteen_bit_folder(tmp_path / "a", [4095, 4000, 3000]), size=(40, 40),
                          subtract_mean=False)
    assert twelve.sixteen_bit_depth == 12 and list(twelve.bit_depths) == [12, 12, 12]
    np.testing.assert_allclose(twelve.images[:, 0, 0], np.array([4095, 4000, 3000]) / 4095, rtol=1e-5)
    sixteen = load_dataset(sixteen_bit_folder(tmp_path / "b", [4095, 4096, 3000]), size=(40, 40),
                           subtract_mean=False, max_dark_fraction=None)
    assert sixteen.sixteen_bit_depth == 16 and list(sixteen.bit_depths) == [16, 16, 16]
    ratio = sixteen.images[1, 0, 0] / sixteen.images[0, 0, 0]
    assert ratio == pytest.approx(4096 / 4095, rel=1e-5)               # no 16x jump between them
