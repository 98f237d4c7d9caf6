"""Noise level estimation.

Donoho's robust estimator: the finest diagonal wavelet coefficients of an
image are almost all noise, so for Gaussian noise of standard deviation sigma

    sigma ~= median(|HH|) / 0.6745,

0.6745 being the median of |N(0, 1)|.  The Haar diagonal coefficient of a
2x2 block [[a, b], [c, d]] is HH = (a - b - c + d) / 2; the filter has unit
norm, so white noise keeps its variance.  We take HH at every pixel position
(overlapping blocks), which quadruples the sample count on small images; the
median stays a consistent estimate.  Smooth content cancels (HH is a mixed
second difference), edges are outliers that the median ignores.
"""
import numpy as np

from .intensity import to_float

_MAD_TO_SIGMA = 1.0 / 0.6744897501960817   # 1 / Phi^{-1}(3/4)


def haar_diagonal(image):
    """Overlapping Haar HH coefficients (H-1, W-1) of a float image."""
    return 0.5 * (image[:-1, :-1] - image[:-1, 1:] - image[1:, :-1] + image[1:, 1:])


def mad_sigma(image):
    """Donoho's estimate on a float image (no validation)."""
    return float(np.median(np.abs(haar_diagonal(image))) * _MAD_TO_SIGMA)


def estimate_sigma(img, max_value=None, bit_depth=None):
    """Standard deviation of additive white Gaussian noise, in the image's units.

    Accepts float and unsigned-integer 2-D images (at least 2x2).
    ``max_value``/``bit_depth`` only serve validation here (see ``intensity``).
    """
    image, _ = to_float(img, max_value, bit_depth, min_size=2)
    return mad_sigma(image)
