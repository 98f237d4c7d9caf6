"""Reader for plain folder datasets (Montgomery, Shenzhen or your own data).

Layout::

    DIR/images/NAME.png   (or .jpg / .jpeg; grey or colour)
    DIR/masks/NAME.png    label map with values 0 background, 1 lungs, 2 heart
    DIR/splits.csv        optional: header "name,split", split in train/val/test
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

from .errors import DatasetError, MissingFileError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
MASK_SUFFIX = ".png"
SPLIT_NAMES = ("train", "val", "test")
SPLITS_FILE = "splits.csv"


def is_folder_dataset(root) -> bool:
    """True when ``root`` has ``images/`` and ``masks/`` subfolders."""
    root = Path(root)
    return (root / "images").is_dir() and (root / "masks").is_dir()


def find_folder_pairs(root) -> dict[str, tuple[Path, Path]]:
    """Map each image name to ``(image path, mask path)``, sorted by name.

    Raises when an image has no mask, a mask has no image, a name appears
    with two image files, or there are no images at all.
    """
    root = Path(root)
    for sub in ("images", "masks"):
        if not (root / sub).is_dir():
            raise MissingFileError(f"folder dataset {root} has no {sub}/ folder", root / sub)
    images = _files_by_name(root / "images", IMAGE_SUFFIXES)
    masks = _files_by_name(root / "masks", (MASK_SUFFIX,))
    if not images:
        raise DatasetError(
            f"no images ({', '.join(IMAGE_SUFFIXES)}) in {root / 'images'}: empty dataset", root / "images")
    for name, path in images.items():
        if name not in masks:
            raise MissingFileError(
                f"image {path} has no mask: expected {root / 'masks' / (name + MASK_SUFFIX)}",
                root / "masks" / (name + MASK_SUFFIX))
    for name, path in masks.items():
        if name not in images:
            raise DatasetError(f"mask {path} has no image named {name} in {root / 'images'}", path)
    return {name: (images[name], masks[name]) for name in sorted(images)}


def _files_by_name(folder: Path, suffixes) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.suffix.lower() not in suffixes:
            continue
        if path.stem in files:
            raise DatasetError(
                f"two files named {path.stem} in {folder}: {files[path.stem].name}, {path.name}", path)
        files[path.stem] = path
    return files


def read_splits_csv(path, names, excluded=()) -> dict[str, str]:
    """Read ``name,split`` rows; every name in ``names`` must appear exactly once.

    A name may be given with or without its image extension. Rows naming an image of
    ``excluded`` (dropped by the exposure screen, and already reported) are skipped.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"split file not found: {path}", path)
    known, excluded = set(names), set(excluded)
    splits: dict[str, str] = {}
    rows = iter(_csv_rows(path))
    header = [cell.strip().lower() for cell in next(rows, [])]
    if header[:2] != ["name", "split"]:
        raise DatasetError(
            f"{path} must start with the header 'name,split', got {','.join(header)!r}", path)
    for line, row in enumerate(rows, start=2):
        if not row or not "".join(row).strip():
            continue
        if len(row) < 2:
            raise DatasetError(f"{path} line {line}: expected 'name,split', got {','.join(row)!r}", path)
        name, split = row[0].strip(), row[1].strip().lower()
        if Path(name).suffix.lower() in IMAGE_SUFFIXES:
            name = Path(name).stem
        if split not in SPLIT_NAMES:
            raise DatasetError(f"{path} line {line}: split {split!r} is not one of {SPLIT_NAMES}", path)
        if name in excluded:
            continue
        if name not in known:
            raise DatasetError(f"{path} line {line}: no image named {name!r}", path)
        if name in splits:
            raise DatasetError(f"{path} line {line}: {name!r} is listed twice", path)
        splits[name] = split
    unlisted = sorted(known - set(splits))
    if unlisted:
        shown = ", ".join(unlisted[:5]) + (" ..." if len(unlisted) > 5 else "")
        raise DatasetError(f"{path} does not list {len(unlisted)} image(s): {shown}", path)
    return splits


def _csv_rows(path: Path) -> list:
    """The rows of a CSV text file; binary or undecodable content is a DatasetError."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise DatasetError(f"{path} is not a UTF-8 text file (byte {err.start}); expected CSV rows "
                           "'name,split'", path) from None
    except OSError as err:
        raise DatasetError(f"cannot read {path}: {err.strerror or err}", path) from None
    if "\0" in text:
        raise DatasetError(f"{path} holds binary data; expected CSV rows 'name,split'", path)
    try:
        return list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as err:
        raise DatasetError(f"{path} is not valid CSV: {err}", path) from None
