"""Seeded data augmentation for training, in plain NumPy / SciPy.

Geometric changes (small rotation, scaling, shift) move image and label map
together: the image is interpolated bilinearly, the labels by nearest
neighbour so they stay class numbers.  Intensity changes (contrast,
brightness, noise) touch the image only.  No flips: the heart sits on the
patient's left, and a mirrored chest is not a plausible radiograph.
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

    def __call__(self, image, labels, rng: np.random.Generator):
        """Augment one (H, W) image and its labels."""
        return augment_pair(image, labels, rng, self)


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


def augment_pair(image, labels, rng: np.random.Generator, settings: Augmentation = Augmentation()):
    """Apply :func:`random_affine` then :func:`random_intensity`."""
    image, labels = random_affine(image, labels, rng, settings.max_rotation_deg,
                                  settings.scale_range, settings.max_shift)
    image = random_intensity(image, rng, settings.contrast_range, settings.max_brightness,
                             settings.noise_std)
    return image, labels
