"""Reader for the SCR (Segmentation in Chest Radiographs) masks of JSRT.

SCR stores one binary image per structure per radiograph, usually GIFs of
1024 x 1024 pixels, in folders named after the structure, e.g.
``scratch/masks/heart/JPCLN001.gif`` or ``fold1/masks/left lung/JPCLN001.gif``.
Labels combine them: 0 background, 1 lungs (left or right), 2 heart; the heart
wins where it overlaps a lung.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .classes import BACKGROUND, HEART, LUNGS
from .errors import DatasetError, MissingFileError
from .imagefile import read_binary_mask
from .preprocess import check_mask_fits, resize_labels

STRUCTURES = ("heart", "left lung", "right lung")
MASK_SUFFIXES = (".gif", ".png")


def structure_of_folder(folder_name: str):
    """The structure a folder holds (``'left lung'`` for ``Left_Lung``), or None."""
    words = folder_name.lower().replace("_", " ").replace("-", " ").split()
    name = " ".join(words)
    return name if name in STRUCTURES else None


def find_scr_masks(root) -> dict[str, dict[str, Path]]:
    """Map each image name (upper case) to ``{structure: mask path}``.

    Structure folders may sit anywhere under ``root``; the folder holding them
    (a fold) must have all three.  When a name occurs in several folds the
    first fold in sorted order provides all of its masks.
    """
    root = Path(root)
    if not root.is_dir():
        raise MissingFileError(f"SCR mask folder not found: {root}", root)
    folds: dict[Path, dict[str, dict[str, Path]]] = {}
    for folder, subfolders, files in os.walk(root):
        subfolders.sort()
        structure = structure_of_folder(os.path.basename(folder))
        if structure is None:
            continue
        masks = folds.setdefault(Path(folder).parent, {}).setdefault(structure, {})
        for file_name in sorted(files):
            path = Path(folder, file_name)
            if path.suffix.lower() in MASK_SUFFIXES:
                masks.setdefault(path.stem.upper(), path)
    if not folds:
        raise MissingFileError(
            f"no SCR structure folders ({', '.join(repr(s) for s in STRUCTURES)}) under {root}", root)
    for fold, structures in folds.items():
        missing = [s for s in STRUCTURES if s not in structures]
        if missing:
            raise MissingFileError(
                f"SCR folder {fold} has no {' / '.join(repr(s) for s in missing)} mask folder "
                f"(found {', '.join(sorted(structures))})", fold / missing[0])

    chosen: dict[str, dict[str, Path]] = {}
    for fold in sorted(folds):
        structures = folds[fold]
        for name in sorted(set().union(*(structures[s] for s in STRUCTURES))):
            if name in chosen:
                continue
            absent = [s for s in STRUCTURES if name not in structures[s]]
            if absent:
                present = next(structures[s][name] for s in STRUCTURES if name in structures[s])
                raise MissingFileError(
                    f"{present} has no matching {absent[0]!r} mask: expected "
                    f"{fold / _folder_name(structures[absent[0]], absent[0]) / present.name}",
                    present)
            chosen[name] = {s: structures[s][name] for s in STRUCTURES}
    return dict(sorted(chosen.items()))


def _folder_name(masks: dict[str, Path], structure: str) -> str:
    """Actual name of a structure folder (e.g. ``left_lung``), from any file in it."""
    for path in masks.values():
        return path.parent.name
    return structure


def read_scr_labels(mask_paths: dict[str, Path], shape) -> np.ndarray:
    """Combine the three structure masks into an int64 label map of ``shape``.

    Each mask is resized to ``shape`` with nearest neighbour (it must have that shape
    or a whole multiple of it at the same aspect ratio); nonzero pixels are inside.
    """
    missing = [s for s in STRUCTURES if s not in mask_paths]
    if missing:
        raise DatasetError(f"mask paths lack the structure(s) {missing}")
    inside = {}
    for structure in STRUCTURES:
        mask = read_binary_mask(mask_paths[structure])
        check_mask_fits(mask.shape, shape, mask_paths[structure])
        inside[structure] = resize_labels(mask, shape)
    labels = np.full(tuple(shape), BACKGROUND, dtype=np.int64)
    labels[inside["left lung"] | inside["right lung"]] = LUNGS
    labels[inside["heart"]] = HEART
    return labels
