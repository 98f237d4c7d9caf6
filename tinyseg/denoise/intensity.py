"""Checking an input image and moving it to float64 and back.

The denoisers work in the image's own intensity units.  An image carries a
nominal range ``[0, max_value]``:

- unsigned integers: ``2**bit_depth - 1``; without ``bit_depth`` it is 255 for
  uint8, 4095 for uint16 whose values all fit in 12 bits (a 12-bit radiograph
  stored as uint16), otherwise the dtype's maximum;
- floats: 1.0 when all values lie in [0, 1], otherwise no nominal range
  (``max_value`` is then ``None``; scale-dependent defaults use max - min).

Outputs are clipped to ``[0, max_value]`` when there is a nominal range,
rounded for integer dtypes, and returned in the input's dtype.
"""
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Intensity:
    dtype: np.dtype
    max_value: float | None   # upper end of the nominal range, None when unbounded
    data_range: float         # the span used to scale defaults (e.g. lambda)


def _max_value_for(img, max_value, bit_depth):
    if max_value is not None and bit_depth is not None:
        raise ValueError("give max_value or bit_depth, not both")
    if bit_depth is not None:
        if int(bit_depth) != bit_depth or not 1 <= bit_depth <= 32:
            raise ValueError(f"bit_depth must be an integer in [1, 32], got {bit_depth!r}")
        return float(2 ** int(bit_depth) - 1)
    if max_value is not None:
        if not np.isfinite(max_value) or max_value <= 0:
            raise ValueError(f"max_value must be a finite number > 0, got {max_value!r}")
        return float(max_value)
    if np.issubdtype(img.dtype, np.integer):
        if img.dtype == np.uint16 and img.max() <= 4095:
            return 4095.0
        return float(np.iinfo(img.dtype).max)
    if img.min() >= 0 and img.max() <= 1:
        return 1.0
    return None


def to_float(img, max_value=None, bit_depth=None, min_size=1):
    """Validate a 2-D grayscale image; return (float64 copy, Intensity)."""
    if not isinstance(img, np.ndarray):
        img = np.asarray(img)
    if img.ndim != 2:
        raise ValueError(f"image must be a 2-D grayscale array, got {img.ndim}-D with shape {img.shape}")
    if img.size == 0:
        raise ValueError(f"image is empty (shape {img.shape})")
    if img.dtype == np.bool_ or not (np.issubdtype(img.dtype, np.integer)
                                     or np.issubdtype(img.dtype, np.floating)):
        raise ValueError(f"image must have an integer or float dtype, got {img.dtype}")
    if min(img.shape) < min_size:
        raise ValueError(f"image of shape {img.shape} is smaller than the {min_size}x{min_size} patch")
    if np.issubdtype(img.dtype, np.floating) and not np.all(np.isfinite(img)):
        raise ValueError("image contains NaN or infinite values")
    if np.issubdtype(img.dtype, np.signedinteger) and img.min() < 0:
        raise ValueError("integer images must be non-negative")
    top = _max_value_for(img, max_value, bit_depth)
    if np.issubdtype(img.dtype, np.integer) and top is not None and img.max() > top:
        raise ValueError(f"image values reach {img.max()} but the range ends at {top:g}")
    image = img.astype(np.float64)
    span = top if top is not None else float(image.max() - image.min())
    return image, Intensity(img.dtype, top, span if span > 0 else 1.0)


def from_float(image, info):
    """Clip to the nominal range, round for integer dtypes, cast to the input dtype."""
    if info.max_value is not None:
        image = np.clip(image, 0.0, info.max_value)
    if np.issubdtype(info.dtype, np.integer):
        image = np.rint(image)
    return image.astype(info.dtype)
