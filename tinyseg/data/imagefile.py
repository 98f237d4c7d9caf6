"""Reading grey-level images, binary masks and label maps with Pillow."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from .errors import DatasetError, MissingFileError


def open_image(path) -> Image.Image:
    """Open an image file fully, turning every failure into a clear error."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"image file not found: {path}", path)
    try:
        with Image.open(path) as image:
            image.load()
            return image
    except Image.DecompressionBombError as error:
        raise DatasetError(f"{path} is larger than Pillow's decompression-bomb limit ({error}); "
                           "raise PIL.Image.MAX_IMAGE_PIXELS if the file is trusted", path) from None
    except MemoryError:
        raise
    except Exception as error:   # a damaged file can fail anywhere in a decoder: always name it
        reason = str(error) or type(error).__name__
        raise DatasetError(f"cannot read image {path}: {reason}", path) from error


def read_grayscale(path, sixteen_bit_depth: int = 16):
    """Read an image as float32 grey levels in [0, 1].

    Returns ``(pixels, bit_depth)``.  8-bit files are scaled by 255. Files of 16-bit
    integers hold data of ``sixteen_bit_depth`` bits and are scaled by 2**bits - 1:
    65535 by default; 12 for JSRT-range data, which a dataset decides once for all its
    files (see ``load_dataset``) and a checkpoint remembers for inference. A value that
    does not fit is an error naming the file. Colour images are converted to luminance
    and an alpha channel is dropped.
    """
    image = open_image(path)
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        if image.mode == "F" and values.max(initial=0.0) <= 1.0:
            return _checked(values.astype(np.float32), 32, path)
        if values.min(initial=0.0) < 0:
            raise DatasetError(f"negative pixel values in {path}", path)
        top = 2 ** sixteen_bit_depth - 1
        if values.max(initial=0.0) > top:
            raise DatasetError(f"{path} holds values up to {values.max():.0f}, more than {sixteen_bit_depth}-bit "
                               f"data can ({top}); it is not {sixteen_bit_depth}-bit data like the images "
                               "the model was trained on", path)
        return _checked((values / top).astype(np.float32), sixteen_bit_depth, path)
    values = np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    return _checked(values, 8, path)


def _checked(pixels: np.ndarray, bit_depth: int, path):
    if pixels.ndim != 2 or pixels.size == 0:
        raise DatasetError(f"expected a 2-D grey image in {path}, got shape {pixels.shape}", path)
    if not np.all(np.isfinite(pixels)) or pixels.min() < 0 or pixels.max() > 1:
        raise DatasetError(f"pixel values of {path} are outside the expected range", path)
    return pixels, bit_depth


def read_binary_mask(path) -> np.ndarray:
    """Read a mask image; nonzero (after applying any palette) means inside."""
    image = open_image(path)
    if image.mode in ("P", "PA", "RGB", "RGBA", "LA", "CMYK", "YCbCr"):
        image = image.convert("L")
    values = np.asarray(image)
    if values.ndim != 2:
        raise DatasetError(f"expected a single-channel mask in {path}, got shape {values.shape}", path)
    return values != 0


def read_label_map(path, n_classes: int = 3) -> np.ndarray:
    """Read a label map whose pixel values are class numbers 0..n_classes-1."""
    image = open_image(path)
    if image.mode in ("RGB", "RGBA", "LA"):
        raise DatasetError(
            f"label map {path} is a colour image ({image.mode}); expected one channel "
            f"with values 0..{n_classes - 1}", path)
    values = np.asarray(image)
    if values.ndim != 2:
        raise DatasetError(f"expected a single-channel label map in {path}, got shape {values.shape}", path)
    found = np.unique(values)
    bad = found[(found < 0) | (found >= n_classes)]
    if bad.size:
        shown = ", ".join(str(v) for v in bad[:5])
        raise DatasetError(
            f"label map {path} has values outside 0..{n_classes - 1}: {shown}", path)
    return values.astype(np.int64)
