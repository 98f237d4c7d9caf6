"""Resizing, exposure screening, intensity normalisation and mean subtraction.

Intensity normalisation
-----------------------
Films from other scanners differ in exposure, contrast and gamma.
:func:`normalize_intensity` maps every image onto a common scale that does
not depend on them (applied after resizing, before the mean image):

* ``"none"``: the image as read (the pipeline's behaviour so far).
* ``"percentile"``: the image's 1st and 99th percentiles go to 0 and 1
  (clipped to [-0.1, 1.1]); invariant to any change of brightness and
  contrast, and robust to a few burned-in letters or black borders.
* ``"equalize"``: histogram equalisation, each pixel replaced by the fraction
  of pixels darker than it (ties share their mean rank); invariant to every
  increasing grey-level change, gamma included.

None has learned parameters: the method's name is all a checkpoint must store.

Overexposure criterion
----------------------
Too much radiation burns the film black, so after the JSRT inversion an
overexposed radiograph has large areas at the dark end of the range.  An
image is *overexposed* when the fraction of its pixels at or below
``level`` (default 0.02, i.e. the darkest 2% of the grey range, about 82 of
4095 levels) exceeds ``max_fraction`` (default 0.15).  The fraction is
measured on the image as read, before resizing.  The H-ReNet authors dropped
7 of the 247 JSRT images as overexposed without stating their rule; both
numbers are parameters of :func:`tinyseg.data.load_dataset`, which also
reports the measured fraction of every image so the threshold can be chosen
from data.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

from .errors import DatasetError

DARK_LEVEL = 0.02
MAX_DARK_FRACTION = 0.15
NORMALIZATIONS = ("none", "percentile", "equalize")
PERCENTILES = (1.0, 99.0)


def _target(size):
    height, width = (int(v) for v in size)
    if height < 1 or width < 1:
        raise ValueError(f"target size must be positive, got {size}")
    return height, width


def resize_image(image, size) -> np.ndarray:
    """Resize a grey image to ``size = (H, W)``, returning float32.

    Each axis is resampled on its own: area averaging (box filter) where it
    shrinks, bilinear interpolation where it grows.
    """
    height, width = _target(size)
    picture = Image.fromarray(np.ascontiguousarray(image, dtype=np.float32))
    if picture.height != height:
        picture = picture.resize((picture.width, height), _filter(picture.height, height))
    if picture.width != width:
        picture = picture.resize((width, height), _filter(picture.width, width))
    return np.asarray(picture, dtype=np.float32).copy()


def _filter(old: int, new: int):
    return Image.Resampling.BOX if new < old else Image.Resampling.BILINEAR


def resize_labels(labels, size) -> np.ndarray:
    """Nearest-neighbour resize of a label map or mask (keeps the dtype).

    Output pixel ``i`` takes input pixel ``floor((i + 0.5) * old / new)``: the
    input pixel under its centre.
    """
    height, width = _target(size)
    labels = np.asarray(labels)
    rows = ((np.arange(height) + 0.5) * labels.shape[0] / height).astype(np.intp)
    cols = ((np.arange(width) + 0.5) * labels.shape[1] / width).astype(np.intp)
    return labels[rows[:, None], cols[None, :]]


def dark_fraction(image, level: float = DARK_LEVEL) -> float:
    """Fraction of pixels at or below ``level`` (images in [0, 1], dark = 0)."""
    return float(np.mean(np.asarray(image) <= level))


def is_overexposed(image, level: float = DARK_LEVEL, max_fraction: float = MAX_DARK_FRACTION) -> bool:
    """The overexposure rule of this module (see its docstring)."""
    return dark_fraction(image, level) > max_fraction


def mean_image(images, indices) -> np.ndarray:
    """Per-pixel mean of ``images[indices]`` (float32); use training indices only."""
    indices = np.asarray(indices, dtype=np.intp)
    if indices.size == 0:
        raise ValueError("cannot compute a mean image over an empty set of images")
    return np.asarray(images)[indices].mean(axis=0, dtype=np.float64).astype(np.float32)


def check_mask_fits(mask_shape, image_shape, path) -> None:
    """A mask may differ from its image only by a whole scale factor at the same aspect ratio
    (SCR's 1024x1024 masks of JSRT's 2048x2048 films); anything else is an error, never a stretch."""
    (mh, mw), (ih, iw) = tuple(mask_shape), tuple(image_shape)
    if (mh, mw) == (ih, iw):
        return
    same_aspect = mh * iw == mw * ih
    whole_factor = (ih % mh == 0 and iw % mw == 0) or (mh % ih == 0 and mw % iw == 0)
    if not (same_aspect and whole_factor):
        raise DatasetError(f"mask {path} is {mh}x{mw} but its image is {ih}x{iw}; a mask must have the "
                           "image's size or a whole multiple of it at the same aspect ratio", path)


def normalize_intensity(image, method: str = "percentile", percentiles=PERCENTILES) -> np.ndarray:
    """One image (H, W) on a scanner-independent grey scale (see the module docstring)."""
    if method not in NORMALIZATIONS:
        raise ValueError(f"unknown intensity normalisation {method!r}; expected one of {NORMALIZATIONS}")
    image = np.asarray(image, dtype=np.float32)
    if method == "none":
        return image
    if method == "percentile":
        low, high = np.percentile(image, percentiles)
        scaled = (image - low) / max(float(high - low), 1e-6)
        return np.clip(scaled, -0.1, 1.1).astype(np.float32)
    flat = image.ravel()
    values, inverse, counts = np.unique(flat, return_inverse=True, return_counts=True)
    below = np.cumsum(counts) - counts                      # pixels strictly darker than each value
    mean_rank = (below + 0.5 * counts) / flat.size          # ties share the middle of their ranks
    return mean_rank[inverse].reshape(image.shape).astype(np.float32)


def normalize_images(images, method: str = "percentile", percentiles=PERCENTILES) -> np.ndarray:
    """:func:`normalize_intensity` on each image of a stack (N, H, W)."""
    return np.stack([normalize_intensity(image, method, percentiles) for image in np.asarray(images)])
