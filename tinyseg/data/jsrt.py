"""Reader and writer for the JSRT chest radiograph database.

The original JSRT files (``JPCLN001.IMG`` ... ``JPCLN154.IMG`` with a nodule,
``JPCNN001.IMG`` ... ``JPCNN093.IMG`` without) are headerless: 2048 x 2048
pixels, each a 12-bit value in a big-endian 16-bit word, with 0 the brightest
level.  They are inverted on reading (``4095 - v``) so that bones look bright
and lungs dark, as on a light box.  PNG (or TIFF/JPEG) conversions under the
same names are read as they are, assumed to already have that look.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .atomic import atomic_write
from .errors import DatasetError, MissingFileError
from .imagefile import read_grayscale
from .scr import structure_of_folder

JSRT_SHAPE = (2048, 2048)
JSRT_MAX = 4095
JSRT_BIT_DEPTH = 12
JSRT_FILE_BYTES = JSRT_SHAPE[0] * JSRT_SHAPE[1] * 2
JSRT_NAME_PATTERN = re.compile(r"^JPC(LN|NN)\d{3}$", re.IGNORECASE)
RAW_SUFFIX = ".img"
CONVERTED_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg")


@dataclass(frozen=True)
class Radiograph:
    """One radiograph: float32 ``pixels`` in [0, 1] (bones bright) and the
    ``bit_depth`` it was stored with (12 for JSRT ``.IMG`` files)."""

    pixels: np.ndarray
    bit_depth: int
    path: Path


def read_jsrt_raw(path) -> np.ndarray:
    """Stored values of a JSRT ``.IMG`` file: uint16 (2048, 2048), 0 brightest."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"JSRT image not found: {path}", path)
    size = path.stat().st_size
    if size != JSRT_FILE_BYTES:
        raise DatasetError(
            f"{path} has {size} bytes; a JSRT .IMG file has exactly {JSRT_FILE_BYTES} "
            f"(2048 x 2048 big-endian 16-bit words)" + (" - truncated?" if size < JSRT_FILE_BYTES else ""),
            path)
    raw = np.fromfile(path, dtype=">u2").reshape(JSRT_SHAPE)
    largest = int(raw.max())
    if largest > JSRT_MAX:
        raise DatasetError(
            f"{path} holds values up to {largest}, above the 12-bit maximum {JSRT_MAX}; "
            "not a big-endian JSRT file (byte-swapped?)", path)
    return raw.astype(np.uint16)


def write_jsrt_raw(path, raw) -> Path:
    """Write stored values (0 brightest, 0..4095) as a JSRT ``.IMG`` file."""
    raw = np.asarray(raw)
    if raw.shape != JSRT_SHAPE:
        raise ValueError(f"a JSRT image is {JSRT_SHAPE}, got {raw.shape}")
    if raw.min(initial=0) < 0 or raw.max(initial=0) > JSRT_MAX:
        raise ValueError(f"JSRT values must lie in 0..{JSRT_MAX}")
    big_endian = raw.astype(">u2")
    return atomic_write(path, big_endian.tofile)


def read_jsrt_image(path, sixteen_bit_depth: int = 16) -> Radiograph:
    """Read an original ``.IMG`` file (inverted) or a converted image file (16-bit
    conversions as data of ``sixteen_bit_depth`` bits, see ``read_grayscale``)."""
    path = Path(path)
    if path.suffix.lower() == RAW_SUFFIX:
        raw = read_jsrt_raw(path)
        pixels = (JSRT_MAX - raw.astype(np.float32)) / JSRT_MAX
        return Radiograph(pixels, JSRT_BIT_DEPTH, path)
    pixels, bit_depth = read_grayscale(path, sixteen_bit_depth)
    return Radiograph(pixels, bit_depth, path)


def is_jsrt_name(name: str) -> bool:
    """True for names shaped like ``JPCLN001`` / ``JPCNN093`` (any case)."""
    return bool(JSRT_NAME_PATTERN.match(name))


def find_jsrt_images(root) -> dict[str, Path]:
    """Map each JSRT name (upper case) to its image file anywhere under ``root``.

    Files inside SCR structure folders are ignored.  When a name occurs more
    than once, the original ``.IMG`` file wins, then the first path in sorted
    order.
    """
    root = Path(root)
    if not root.is_dir():
        raise MissingFileError(f"JSRT folder not found: {root}", root)
    found: dict[str, Path] = {}
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = sorted(d for d in subfolders if structure_of_folder(d) is None)
        for file_name in sorted(files):
            path = Path(folder, file_name)
            suffix = path.suffix.lower()
            if suffix != RAW_SUFFIX and suffix not in CONVERTED_SUFFIXES:
                continue
            if not is_jsrt_name(path.stem):
                continue
            name = path.stem.upper()
            if name not in found or _preference(path) < _preference(found[name]):
                found[name] = path
    return dict(sorted(found.items()))


def _preference(path: Path):
    return (path.suffix.lower() != RAW_SUFFIX, str(path))
