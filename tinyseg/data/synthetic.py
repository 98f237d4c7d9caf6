"""Synthetic chest radiographs with exact ground truth.

A phantom is drawn directly at the requested size as an attenuation map: a
torso of soft tissue, two air-filled lung fields, the heart, the mediastinum
with spine and trachea, ribs, clavicles, diaphragm domes and an occasional
stomach gas bubble.  The map is turned into film brightness (bones bright,
lungs dark), given film-like correlated grain, exposure and contrast changes,
and quantised to 12 bits.  Labels come from the same geometry: 1 where a lung
field is, 2 where the heart is (the heart wins where the two overlap).

Geometry lives in normalised coordinates (x, y in [0, 1], y pointing down), so
a non-square size stretches the chest the way resizing a square JSRT film
does.  Patient's left is image right: the heart leans into the right-hand lung.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from .anatomy import Anatomy, sample_anatomy
from .augment import black_borders, burn_in_text
from .classes import BACKGROUND, HEART, LUNGS
from .phantom import draw_phantom

__all__ = ["synthesize_radiograph", "make_synthetic_dataset", "scanner_shift", "make_shifted_images", "Anatomy"]

LEVELS_12_BIT = 4095


def synthesize_radiograph(rng: np.random.Generator, size=(128, 160)):
    """Draw one phantom radiograph and its label map.

    Returns ``(image, labels)``: ``image`` is float32 (H, W) in [0, 1] on the
    12-bit grid (multiples of 1/4095), ``labels`` is int64 (H, W) with
    0 background, 1 lungs, 2 heart.
    """
    height, width = _check_size(size)
    anatomy = sample_anatomy(rng)
    attenuation, lungs, heart = draw_phantom(anatomy, height, width)
    image = _expose_film(attenuation, anatomy, rng)
    labels = np.full((height, width), BACKGROUND, dtype=np.int64)
    labels[lungs] = LUNGS
    labels[heart] = HEART
    return image, labels


def make_synthetic_dataset(n_images: int = 240, size=(128, 160), seed: int = 0):
    """Generate ``n_images`` phantoms, deterministic by ``seed``.

    Image ``i`` depends only on ``(seed, i)``, so a larger set starts with the
    images of a smaller one.  Returns ``(images, labels)`` as float32 and
    int64 arrays of shape (N, H, W).
    """
    if int(n_images) < 1:
        raise ValueError(f"n_images must be at least 1, got {n_images}")
    height, width = _check_size(size)
    images = np.empty((n_images, height, width), dtype=np.float32)
    labels = np.empty((n_images, height, width), dtype=np.int64)
    for index in range(n_images):
        rng = np.random.default_rng([seed, index])
        images[index], labels[index] = synthesize_radiograph(rng, (height, width))
    return images, labels


def _check_size(size):
    height, width = (int(v) for v in size)
    if height < 16 or width < 16:
        raise ValueError(f"synthetic images need a size of at least 16x16, got {size}")
    return height, width


def _correlated_noise(rng: np.random.Generator, shape, sigma: float) -> np.ndarray:
    """Gaussian noise blurred by ``sigma`` pixels, rescaled to unit deviation."""
    noise = ndimage.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), sigma)
    return noise / (noise.std() + 1e-12)


def _expose_film(attenuation: np.ndarray, anatomy: Anatomy, rng: np.random.Generator):
    """Map attenuation to 12-bit film brightness with grain and exposure changes."""
    height, width = attenuation.shape
    grain = _correlated_noise(rng, (height, width), anatomy.grain_sigma)
    mottle = _correlated_noise(rng, (-(-height // 8), -(-width // 8)), 1.2)
    mottle = ndimage.zoom(mottle, (height / mottle.shape[0], width / mottle.shape[1]), order=1,
                          grid_mode=True, mode="nearest")
    heel = 1.0 + anatomy.heel * np.linspace(-0.5, 0.5, height, dtype=np.float32)[:, None]
    density = attenuation * anatomy.exposure * heel + anatomy.mottle_amount * mottle
    brightness = np.power(np.maximum(1.0 - np.exp(-density), 0.0), anatomy.gamma)
    brightness = anatomy.film_floor + anatomy.contrast * brightness
    brightness += anatomy.grain_amount * grain
    quantised = np.round(np.clip(brightness, 0.0, 1.0) * LEVELS_12_BIT)
    return (quantised / LEVELS_12_BIT).astype(np.float32)


# Another hospital's films: each setting drawn uniformly from its range (gamma log-uniformly).
SHIFT_RANGES = {"gamma": (0.45, 2.2), "gain": (0.6, 1.0), "offset": (-0.1, 0.25),
                "blur": (0.0, 1.5), "noise": (0.0, 0.04)}


def scanner_shift(image, labels, rng: np.random.Generator, border_probability=0.7, text_probability=0.7):
    """Re-render one [0, 1] film as another scanner would show it: other gamma, gain
    and offset (exposure, contrast, base density), blur, noise, black collimation
    borders and burned-in text. Returns ``(image, labels)``: the labels are
    unchanged except under a border, where nothing can be seen (background)."""
    r = {name: rng.uniform(*bounds) for name, bounds in SHIFT_RANGES.items()}
    gamma = float(np.exp(rng.uniform(*np.log(SHIFT_RANGES["gamma"]))))
    film = np.asarray(image, dtype=np.float32) ** gamma
    film = np.clip(r["offset"] + r["gain"] * film, 0.0, 1.0)
    if r["blur"] > 0.05:
        film = ndimage.gaussian_filter(film, r["blur"], mode="nearest")
    film = np.clip(film + r["noise"] * rng.standard_normal(film.shape, dtype=np.float32), 0.0, 1.0)
    labels = np.array(labels)
    if rng.random() < border_probability:
        film, covered = black_borders(film, rng, 0.07)
        film[covered], labels[covered] = 0.0, 0
    if rng.random() < text_probability:
        film = burn_in_text(film, rng)
        film[film == film.max()] = 1.0
    return (np.round(film * LEVELS_12_BIT) / LEVELS_12_BIT).astype(np.float32), labels


def make_shifted_images(images, labels, seed: int = 0, **options):
    """:func:`scanner_shift` on each pair; pair ``i`` depends only on ``(seed, i)``.
    Returns ``(images, labels)`` like :func:`make_synthetic_dataset`."""
    pairs = [scanner_shift(image, image_labels, np.random.default_rng([seed, index]), **options)
             for index, (image, image_labels) in enumerate(zip(np.asarray(images), np.asarray(labels)))]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
