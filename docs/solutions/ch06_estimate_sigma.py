"""Chapter 6, exercise 2: Donoho's noise estimate from diagonal Haar coefficients.

    python docs/solutions/ch06_estimate_sigma.py

HH = (a - b - c + d) / 2 has unit norm, so white noise of deviation sigma gives HH of
deviation sigma; smooth image content cancels (a mixed second difference). Edges give a
few huge coefficients: the standard deviation follows them, the median barely notices.
For Gaussian noise median(|HH|) = 0.6745 sigma.
"""
import numpy as np

from tinyseg.data import synthesize_radiograph
from tinyseg.denoise import estimate_sigma


def my_sigma(image):
    hh = 0.5 * (image[:-1, :-1] - image[:-1, 1:] - image[1:, :-1] + image[1:, 1:])
    return np.median(np.abs(hh)) / 0.6745, hh.std()


clean, _ = synthesize_radiograph(np.random.default_rng(3), size=(128, 160))
# The phantom has fine texture of its own, which reads as noise of a few thousandths; it adds
# in quadrature (sqrt(sigma^2 + t^2)), so a noise level well above it is recovered to ~10%.
assert 0.002 < my_sigma(clean)[0] < 0.012
for sigma in (0.03, 0.05, 0.1):
    noisy = clean + np.random.default_rng(1).normal(0, sigma, clean.shape)
    by_median, by_std = my_sigma(noisy)
    assert abs(by_median - estimate_sigma(noisy)) < 1e-3 * sigma
    assert abs(by_median - sigma) < 0.15 * sigma
    print(f"sigma {sigma}: median rule {by_median:.4f}, std of HH {by_std:.4f}")
# Straight edges cancel in HH too; corners do not. A checkerboard of 4x4 tiles puts a corner
# at one position in 16: those outliers ruin the standard deviation, not the median.
tiles = ((np.indices((128, 160)) // 4).sum(axis=0) % 2).astype(float)
noisy = tiles + np.random.default_rng(2).normal(0, 0.03, tiles.shape)
by_median, by_std = my_sigma(noisy)
assert abs(by_median - 0.03) < 0.15 * 0.03 and by_std > 5 * 0.03
print(f"checkerboard, sigma 0.03: median rule {by_median:.4f}, std of HH {by_std:.4f}")
