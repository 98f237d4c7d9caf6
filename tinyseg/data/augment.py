"""Seeded data augmentation for training, in plain NumPy / SciPy.

Geometric changes (small rotation, scaling, shift, cropping) move image and
label map together: the image is interpolated bilinearly, the labels by
nearest neighbour so they stay class numbers.  Intensity changes (contrast,
brightness, noise) touch the image only.  No flips: the heart sits on the
patient's left, and a mirrored chest is not a plausible radiograph.

Other hospitals' scanners (``Augmentation.scanner()``, off by default):
gamma, blur, black collimation borders and burned-in text.  They work in
units of the image's own range (its minimum is "black", its maximum "white"),
so they apply to raw [0, 1] films and to mean-subtracted inputs alike.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class Augmentation:
    """Ranges of the random changes; ``Augmentation()`` is a mild default."""

    max_rotation_deg: float = 5.0
    scale_range: tuple = (0.93, 1.07)
    max_shift: float = 0.03          # fraction of the image size
    contrast_range: tuple = (0.85, 1.15)
    max_brightness: float = 0.05     # in units of the image's standard deviation
    noise_std: float = 0.01          # in units of the image's standard deviation
    # scanner changes; the defaults leave them off (and draw no random numbers)
    crop_fraction: float = 1.0       # keep a random window of at least this side fraction, resized back
    gamma_range: tuple = (1.0, 1.0)  # exponent on the image's own [min, max] range
    max_blur: float = 0.0            # Gaussian sigma in pixels, uniform in [0, max_blur]
    border_probability: float = 0.0  # black collimation borders
    max_border: float = 0.08         # widest border, fraction of the image side
    text_probability: float = 0.0    # burned-in white text (markers, labels)

    def __call__(self, image, labels, rng: np.random.Generator):
        """Augment one (H, W) image and its labels."""
        return augment_pair(image, labels, rng, self)

    @classmethod
    def scanner(cls, **changes):
        """Mild geometry plus what differs between scanners and hospitals."""
        settings = dict(scale_range=(0.9, 1.1), max_shift=0.04, contrast_range=(0.7, 1.3),
                        max_brightness=0.15, noise_std=0.03, crop_fraction=0.85,
                        gamma_range=(0.6, 1.7), max_blur=1.2, border_probability=0.3,
                        text_probability=0.3)
        return cls(**{**settings, **changes})


def random_affine(image, labels, rng: np.random.Generator, max_rotation_deg: float = 5.0,
                  scale_range=(0.93, 1.07), max_shift: float = 0.03):
    """Rotate, scale and shift an image and its label map by the same random amount."""
    image, labels = np.asarray(image), np.asarray(labels)
    if image.shape != labels.shape:
        raise ValueError(f"image {image.shape} and labels {labels.shape} differ in shape")
    angle = math.radians(rng.uniform(-max_rotation_deg, max_rotation_deg))
    scale = rng.uniform(*scale_range)
    shift = rng.uniform(-max_shift, max_shift, size=2) * np.array(image.shape)
    # affine_transform maps each output pixel o to the input pixel M @ o + offset.
    cos, sin = math.cos(angle), math.sin(angle)
    matrix = np.array([[cos, -sin], [sin, cos]]) / scale
    centre = (np.array(image.shape) - 1) / 2.0
    offset = centre - matrix @ (centre + shift)
    moved_image = ndimage.affine_transform(image, matrix, offset, order=1, mode="nearest")
    moved_labels = ndimage.affine_transform(labels, matrix, offset, order=0, mode="nearest")
    return moved_image.astype(image.dtype, copy=False), moved_labels


def random_intensity(image, rng: np.random.Generator, contrast_range=(0.85, 1.15),
                     max_brightness: float = 0.05, noise_std: float = 0.01):
    """Stretch contrast about the image mean, shift brightness, add noise.

    Amounts are relative to the image's standard deviation, so this works on
    raw [0, 1] images and on mean-subtracted ones alike.
    """
    image = np.asarray(image)
    mean, std = float(image.mean()), float(image.std()) or 1.0
    contrast = rng.uniform(*contrast_range)
    brightness = rng.uniform(-max_brightness, max_brightness) * std
    changed = (image - mean) * contrast + mean + brightness
    if noise_std > 0:
        changed = changed + rng.normal(0.0, noise_std * std, size=image.shape)
    return changed.astype(image.dtype, copy=False)


def random_crop(image, labels, rng: np.random.Generator, min_fraction: float = 0.85):
    """Cut a random window (each side at least ``min_fraction``) and resize it back."""
    image, labels = np.asarray(image), np.asarray(labels)
    shape = np.array(image.shape)
    fraction = rng.uniform(min_fraction, 1.0, size=2)
    start = rng.uniform(0.0, 1.0, size=2) * (1 - fraction) * shape
    # output pixel o samples the input at start + o * fraction (a per-axis zoom)
    moved_image = ndimage.affine_transform(image, fraction, start, order=1, mode="nearest")
    moved_labels = ndimage.affine_transform(labels, fraction, start, order=0, mode="nearest")
    return moved_image.astype(image.dtype, copy=False), moved_labels


def _range(image):
    low, high = float(image.min()), float(image.max())
    return low, max(high - low, 1e-12)


def random_gamma(image, rng: np.random.Generator, gamma_range=(0.6, 1.7)):
    """Raise the image, scaled to its own [min, max], to a random power; the range is kept."""
    image = np.asarray(image)
    low, span = _range(image)
    gamma = np.exp(rng.uniform(np.log(gamma_range[0]), np.log(gamma_range[1])))
    return (low + span * ((image - low) / span) ** gamma).astype(image.dtype, copy=False)


def random_blur(image, rng: np.random.Generator, max_sigma: float = 1.2):
    """Gaussian blur of a random width in [0, max_sigma] pixels (a softer detector or screen)."""
    sigma = rng.uniform(0.0, max_sigma)
    return ndimage.gaussian_filter(np.asarray(image), sigma, mode="nearest") if sigma > 0.05 else image


def black_borders(image, rng: np.random.Generator, max_border: float = 0.08):
    """Collimation: black bands of random widths at each side, at the image's minimum.

    Returns ``(image, covered)``; nothing under ``covered`` can be seen, so a
    caller sets its labels to background there.
    """
    image = np.array(image)
    height, width = image.shape
    top, bottom = (int(v) for v in rng.uniform(0, max_border, 2) * height)
    left, right = (int(v) for v in rng.uniform(0, max_border, 2) * width)
    covered = np.zeros(image.shape, dtype=bool)
    covered[:top], covered[height - bottom:] = True, True
    covered[:, :left], covered[:, width - right:] = True, True
    image[covered] = image.min()
    return image, covered


def burn_in_text(image, rng: np.random.Generator, max_glyphs: int = 8):
    """White block letters in a random corner, like a side marker or a hospital label."""
    image = np.array(image)
    height, width = image.shape
    high = image.max()
    glyph_h = max(3, int(rng.uniform(0.03, 0.06) * height))
    glyph_w = max(2, int(0.6 * glyph_h))
    n = int(rng.integers(1, max_glyphs + 1))
    top = int(rng.uniform(0.01, 0.06) * height) if rng.random() < 0.5 else \
        height - glyph_h - int(rng.uniform(0.01, 0.06) * height)
    left = int(rng.uniform(0.01, 0.1) * width) if rng.random() < 0.5 else \
        max(0, width - n * (glyph_w + 1) - int(rng.uniform(0.01, 0.1) * width))
    stroke = max(1, glyph_h // 5)
    for g in range(n):                        # each glyph: a few random strokes of a 3x5 grid
        x0 = left + g * (glyph_w + 1)
        for part in rng.choice(7, size=int(rng.integers(2, 5)), replace=False):
            if part < 3:                      # horizontal bars: top, middle, bottom
                r = top + part * (glyph_h - stroke) // 2
                image[r:r + stroke, x0:x0 + glyph_w] = high
            else:                             # vertical bars: upper/lower, left/right
                r = top + (part - 3) // 2 * glyph_h // 2
                c = x0 if part % 2 else x0 + glyph_w - stroke
                image[r:r + glyph_h // 2 + 1, c:c + stroke] = high
    return image


def augment_pair(image, labels, rng: np.random.Generator, settings: Augmentation = Augmentation()):
    """Apply :func:`random_affine` then :func:`random_intensity`, then the scanner changes that
    ``settings`` switches on (crop, gamma, blur, borders, text)."""
    image, labels = random_affine(image, labels, rng, settings.max_rotation_deg,
                                  settings.scale_range, settings.max_shift)
    if settings.crop_fraction < 1.0:
        image, labels = random_crop(image, labels, rng, settings.crop_fraction)
    if tuple(settings.gamma_range) != (1.0, 1.0):
        image = random_gamma(image, rng, settings.gamma_range)
    if settings.max_blur > 0:
        image = random_blur(image, rng, settings.max_blur)
    image = random_intensity(image, rng, settings.contrast_range, settings.max_brightness,
                             settings.noise_std)
    if settings.border_probability > 0 and rng.random() < settings.border_probability:
        image, covered = black_borders(image, rng, settings.max_border)
        labels = np.where(covered, 0, labels).astype(labels.dtype, copy=False)
    if settings.text_probability > 0 and rng.random() < settings.text_probability:
        image = burn_in_text(image, rng)
    return image, labels
