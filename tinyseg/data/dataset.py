"""One entry point that loads, screens, resizes, splits and centres a dataset.

``load_dataset()`` with no path gives the synthetic chest radiographs; a folder
with ``images/`` and ``masks/`` is read as a folder dataset; a folder with
JSRT files (``JPCLN001.IMG`` or PNG conversions) is read with SCR masks from
``scr`` (or from the same folder when ``scr`` is None).
"""
from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .classes import CLASS_NAMES
from .errors import DatasetError, MissingFileError
from .folder import SPLITS_FILE, find_folder_pairs, is_folder_dataset, read_splits_csv
from .imagefile import read_binary_mask, read_grayscale, read_label_map
from .jsrt import JSRT_BIT_DEPTH, JSRT_SHAPE, find_jsrt_images, read_jsrt_image
from .preprocess import (DARK_LEVEL, MAX_DARK_FRACTION, check_mask_fits, dark_fraction, mean_image,
                         resize_image, resize_labels)
from .scr import find_scr_masks, read_scr_labels
from .splits import (DEFAULT_VAL_FRACTION, PAPER_TEST_FRACTION, Splits, random_split,
                     splits_from_labels, two_fold_split)
from .synthetic import make_synthetic_dataset

PROTOCOLS = ("random", "two_fold", "csv")
JSRT_PIXEL_MM = 0.175   # pixel size of the JSRT films as digitised at 2048 x 2048


@dataclass
class SegmentationDataset:
    """Images, labels and splits, ready for training.

    ``images`` (N, H, W) float32 have ``mean_image`` (computed on the training
    split only) subtracted when it is not None; ``labels`` (N, H, W) int64 hold
    0 background, 1 lungs, 2 heart.  ``train`` / ``val`` / ``test`` are sorted
    index arrays.  ``dark_fractions`` is the overexposure measure of each kept
    image; ``excluded`` maps the names dropped as overexposed to theirs.
    ``field_mm`` is the (height, width) in millimetres that each image covers,
    when known (JSRT); ``label_files`` names, per image, the file its labels
    come from (a folder dataset's mask) or the files ({structure: path}, SCR);
    None when ``labels`` are all there is (synthetic data).
    """

    images: np.ndarray
    labels: np.ndarray
    names: list
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    mean_image: np.ndarray | None
    source: str
    bit_depths: np.ndarray
    dark_fractions: np.ndarray
    excluded: dict = field(default_factory=dict)
    class_names: tuple = CLASS_NAMES
    field_mm: tuple | None = None
    label_files: list | None = None
    sixteen_bit_depth: int = 16        # what the dataset's 16-bit files hold: 12- or 16-bit data

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def size(self) -> tuple[int, int]:
        return self.images.shape[1], self.images.shape[2]

    def __len__(self) -> int:
        return len(self.images)

    def fingerprint(self) -> dict:
        """What identifies the data of a run: the images, labels and names, and which split
        each belongs to (a digest over all of them, plus the counts, to name in messages)."""
        digest = hashlib.sha256()
        for part in (self.images, self.labels, self.mean_image):
            if part is not None:
                digest.update(np.ascontiguousarray(part).tobytes())
        digest.update("\n".join(self.names).encode())
        for indices in (self.train, self.val, self.test):
            digest.update(np.asarray(indices, dtype=np.int64).tobytes() + b"|")
        return {"digest": digest.hexdigest()[:16], "images": len(self),
                "train/val/test": [len(self.train), len(self.val), len(self.test)]}

    def split(self, name: str):
        """``(images, labels)`` of ``'train'``, ``'val'`` or ``'test'``."""
        if name not in ("train", "val", "test"):
            raise ValueError(f"unknown split {name!r}; expected 'train', 'val' or 'test'")
        indices = getattr(self, name)
        return self.images[indices], self.labels[indices]

    def original_labels(self, index: int) -> np.ndarray:
        """Labels of image ``index`` as stored on disk, before resizing (SCR: 1024 x 1024)."""
        files = None if self.label_files is None else self.label_files[index]
        if files is None:
            return self.labels[index]
        if isinstance(files, dict):
            return read_scr_labels(files, read_binary_mask(files["heart"]).shape)
        return read_label_map(files)

    def pixel_spacing(self, shape):
        """(row, column) pixel size in mm of a map of ``shape`` covering a whole image, or None."""
        if self.field_mm is None:
            return None
        return self.field_mm[0] / shape[0], self.field_mm[1] / shape[1]

    def batches(self, split: str = "train", batch_size: int = 4, shuffle=None, seed: int = 0,
                augment=None, drop_last: bool = False, shard=(0, 1)):
        """Mini-batches of a split; see :func:`tinyseg.data.batches.iterate_batches`."""
        from .batches import iterate_batches
        if shuffle is None:
            shuffle = split == "train"
        return iterate_batches(self.images, self.labels, getattr(self, split), batch_size,
                               shuffle=shuffle, seed=seed, augment=augment, drop_last=drop_last,
                               shard=shard)


def load_dataset(path=None, scr=None, size=(128, 160), *, protocol=None, fold: int = 0,
                 n_test=None, test_fraction: float = PAPER_TEST_FRACTION, n_val=None,
                 val_fraction: float = DEFAULT_VAL_FRACTION, seed: int = 0,
                 subtract_mean: bool = True, max_dark_fraction=MAX_DARK_FRACTION,
                 dark_level: float = DARK_LEVEL, n_synthetic: int = 240,
                 progress=None) -> SegmentationDataset:
    """Load a dataset, drop overexposed images, resize to ``size = (H, W)``,
    split it and subtract the training mean image.

    path: None for the synthetic set (``n_synthetic`` images, seeded by
        ``seed``), a folder dataset (``images/`` + ``masks/``), or a JSRT folder.
    scr: root of the SCR masks for a JSRT folder (default: ``path`` itself).
    protocol: ``'random'`` (seeded, 1/6 test = 200/40 for 240 images),
        ``'two_fold'`` (by the parity of each image's position in name order
        before exclusion; ``fold`` 0 or 1) or ``'csv'``
        (``splits.csv`` of a folder dataset).  Default: ``'csv'`` when that file
        exists, else ``'random'``.
    max_dark_fraction: images with more than this fraction of pixels at or
        below ``dark_level`` are dropped as overexposed; None keeps all.
    progress: print a running count to stderr while reading; by default only
        for datasets read from disk.
    """
    kind, items = _find_items(path, scr, size, n_synthetic, seed)
    label_files = {name: files for name, _, files in items}
    if progress is None:
        progress = kind != "synthetic"
    kept = _read_and_screen(kind, items, size, max_dark_fraction, dark_level, progress)
    if kept.excluded:
        shown = ", ".join(f"{name} ({share:.0%} dark)" for name, share in kept.excluded.items())
        print(f"excluded {len(kept.excluded)} of {len(items)} images as overexposed (more than "
              f"{max_dark_fraction:.0%} of pixels at or below {dark_level}): {shown}; "
              "--keep-overexposed keeps them", file=sys.stderr)
    if not kept.names:
        where = path if path is not None else "the synthetic set"
        raise DatasetError(
            f"no images left in {where}: all {len(items)} were excluded as overexposed "
            f"(more than {max_dark_fraction:.0%} of pixels at or below {dark_level}); "
            "pass --keep-overexposed (max_dark_fraction=None) to keep them", path)

    splits = _make_splits(kind, path, kept.names, kept.positions, protocol, fold, n_test,
                          test_fraction, n_val, val_fraction, seed, kept.excluded)
    images = np.stack(kept.images).astype(np.float32, copy=False)
    mean = None
    if subtract_mean:
        if len(splits.train) == 0:
            raise DatasetError("the training split is empty; cannot compute the mean image", path)
        mean = mean_image(images, splits.train)
        images -= mean
    return SegmentationDataset(
        images=images, labels=np.stack(kept.labels).astype(np.int64, copy=False),
        names=kept.names, train=splits.train, val=splits.val, test=splits.test, mean_image=mean,
        source=kind, bit_depths=np.array(kept.bit_depths, dtype=np.int64),
        dark_fractions=np.array(kept.dark_fractions), excluded=kept.excluded,
        sixteen_bit_depth=kept.sixteen_bit_depth,
        field_mm=tuple(n * JSRT_PIXEL_MM for n in JSRT_SHAPE) if kind == "jsrt" else None,
        label_files=None if kind == "synthetic" else [label_files[name] for name in kept.names])


def _find_items(path, scr, size, n_synthetic, seed):
    """Detect the kind of dataset; return it and a list of ``(name, reader, label files)``
    (the mask file, SCR's {structure: file}, or None for synthetic images)."""
    if path is None:
        return "synthetic", _synthetic_items(n_synthetic, size, seed)
    root = Path(path)
    if not root.exists():
        raise MissingFileError(f"dataset folder not found: {root}", root)
    if not root.is_dir():
        raise DatasetError(f"{root} is a file; --data takes a folder (JSRT files, or images/ and masks/)", root)
    if is_folder_dataset(root):
        if scr is not None:
            raise ValueError(f"{root} is a folder dataset with its own masks/; scr is only for JSRT")
        return "folder", _folder_items(root)
    if find_jsrt_images(root):
        return "jsrt", _jsrt_items(root, Path(scr) if scr is not None else root)
    raise DatasetError(
        f"cannot tell what kind of dataset {root} is: expected images/ and masks/ "
        "folders, or JSRT files such as JPCLN001.IMG or JPCLN001.png", root)


@dataclass
class _Kept:
    """The images that passed the exposure screen, already resized."""

    names: list = field(default_factory=list)
    positions: list = field(default_factory=list)   # place in the full list (2-fold split)
    images: list = field(default_factory=list)
    labels: list = field(default_factory=list)
    bit_depths: list = field(default_factory=list)
    dark_fractions: list = field(default_factory=list)
    excluded: dict = field(default_factory=dict)
    sixteen_bit_depth: int = 16


TWELVE_BITS = 2 ** 12 - 1     # the JSRT range


def _read_and_screen(kind, items, size, max_dark_fraction, dark_level, progress) -> _Kept:
    """Read every item, decide the data depth of 16-bit files, drop the overexposed
    images and resize the rest.

    16-bit files hold 12-bit data when every one of them stays within 4095 (JSRT
    conversions), else 16-bit data: one decision for the whole dataset, so that two of
    its images are never scaled differently. Files are read as 16-bit data and, when the
    dataset is 12-bit, multiplied by 65535 / 4095 after resizing (a linear map), with the
    darkness measured at the matching level.
    """
    read = []
    widening = (2 ** 16 - 1) / TWELVE_BITS
    for position, (name, read_item, _) in enumerate(items):
        if progress:
            _report_reading(kind, position + 1, len(items))
        image, labels, bit_depth = read_item()
        sixteen = bit_depth == 16
        fractions = (dark_fraction(image, dark_level),
                     dark_fraction(image, dark_level / widening) if sixteen else None)
        peak = float(image.max(initial=0.0)) * (2 ** 16 - 1) if sixteen else 0.0
        resized = resize_image(image, size) if image.shape != tuple(size) else image
        read.append((name, position, resized, resize_labels(labels, size), bit_depth, fractions, peak))
    if progress and items and sys.stderr.isatty():
        print(file=sys.stderr)
    sixteen_bit = [r for r in read if r[4] == 16]
    twelve = bool(sixteen_bit) and max(r[6] for r in sixteen_bit) <= TWELVE_BITS + 0.5
    kept = _Kept(sixteen_bit_depth=12 if twelve else 16)
    for name, position, image, labels, bit_depth, fractions, _ in read:
        fraction = fractions[0]
        if bit_depth == 16 and twelve:
            image, bit_depth, fraction = image * np.float32(widening), 12, fractions[1]
        if max_dark_fraction is not None and fraction > max_dark_fraction:
            kept.excluded[name] = fraction
            continue
        kept.names.append(name)
        kept.positions.append(position)
        kept.images.append(image)
        kept.labels.append(labels)
        kept.bit_depths.append(bit_depth)
        kept.dark_fractions.append(fraction)
    return kept


def _report_reading(kind, done, total):
    """A count redrawn in place on a terminal; in a log file, a line every tenth of the way."""
    if sys.stderr.isatty():
        print(f"\rreading {kind} images: {done}/{total}", end="", file=sys.stderr, flush=True)
    elif done == total or done * 10 // total != (done - 1) * 10 // total:
        print(f"reading {kind} images: {done}/{total}", file=sys.stderr, flush=True)


def _synthetic_items(n_images, size, seed):
    images, labels = make_synthetic_dataset(n_images, size, seed)
    return [(f"synthetic_{i:04d}", lambda i=i: (images[i], labels[i], JSRT_BIT_DEPTH), None)
            for i in range(n_images)]


def _folder_items(root: Path):
    def read(image_path, mask_path):
        image, bit_depth = read_grayscale(image_path)
        labels = read_label_map(mask_path)
        check_mask_fits(labels.shape, image.shape, mask_path)
        if labels.shape != image.shape:
            labels = resize_labels(labels, image.shape)
        return image, labels, bit_depth
    pairs = find_folder_pairs(root)
    return [(name, lambda p=paths: read(*p), paths[1]) for name, paths in pairs.items()]


def _jsrt_items(root: Path, scr_root: Path):
    images = find_jsrt_images(root)
    masks = find_scr_masks(scr_root)
    for name, path in images.items():
        if name not in masks:
            raise MissingFileError(
                f"image {path} has no SCR masks under {scr_root} "
                f"(expected heart, left lung and right lung files named {name}.gif)", path)
    for name, structures in masks.items():
        if name not in images:
            raise DatasetError(
                f"mask {structures['heart']} has no JSRT image named {name} under {root}",
                structures["heart"])

    def read(image_path, mask_paths):
        radiograph = read_jsrt_image(image_path)
        labels = read_scr_labels(mask_paths, radiograph.pixels.shape)
        return radiograph.pixels, labels, radiograph.bit_depth
    return [(name, lambda p=path, m=masks[name]: read(p, m), masks[name]) for name, path in images.items()]


def _make_splits(kind, path, names, positions, protocol, fold, n_test, test_fraction, n_val,
                 val_fraction, seed, excluded=()) -> Splits:
    csv_path = Path(path) / SPLITS_FILE if kind == "folder" else None
    if protocol is None:
        protocol = "csv" if csv_path is not None and csv_path.is_file() else "random"
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    if protocol == "csv":
        if csv_path is None:
            raise ValueError("protocol 'csv' needs a folder dataset with a splits.csv file")
        return splits_from_labels(read_splits_csv(csv_path, names, excluded), names)
    if protocol == "two_fold":
        return two_fold_split(np.array(positions), fold, n_val, val_fraction, seed)
    return random_split(len(names), n_test, test_fraction, n_val, val_fraction, seed)
