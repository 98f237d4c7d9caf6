"""Radiographs with their label maps laid over them: one overlay, and PNG montages of many."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from .atomic import atomic_write
from .classes import CLASS_COLORS


def to_gray_uint8(image):
    """Stretch a float image to 0..255 using its own 1st and 99th percentiles, so that
    mean-subtracted inputs and a few outlier pixels display well."""
    image = np.asarray(image, dtype=np.float64)
    lo, hi = np.percentile(image, [1, 99]) if image.size else (0.0, 1.0)
    scaled = (image - lo) / (hi - lo) if hi > lo else np.zeros_like(image)
    return (np.clip(scaled, 0, 1) * 255).astype(np.uint8)


def gray_rgb(image):
    """(H, W) image -> (H, W, 3) uint8 grey picture (``to_gray_uint8`` in every channel)."""
    return np.repeat(to_gray_uint8(image)[..., None], 3, axis=2)


def overlay_labels(image, labels, alpha=0.45):
    """(H, W) image + (H, W) labels -> (H, W, 3) uint8, each class tinted with its colour."""
    rgb = gray_rgb(image).astype(np.float64)
    for cls, color in CLASS_COLORS.items():
        mask = np.asarray(labels) == cls
        rgb[mask] = (1 - alpha) * rgb[mask] + alpha * np.asarray(color, dtype=np.float64)
    return rgb.round().astype(np.uint8)


def save_montage(path, images, labels=None, columns: int = 4, alpha: float = 0.35,
                 zoom: int = 1) -> Path:
    """Write images (N, H, W) as a grid PNG; with ``labels`` each image is
    shown twice, plain on top and with its overlay below.  ``zoom`` enlarges
    every pixel to a ``zoom x zoom`` block.  Returns the path."""
    images = np.asarray(images)
    if images.ndim != 3 or len(images) == 0:
        raise ValueError(f"expected a non-empty stack of images (N, H, W), got shape {images.shape}")
    if zoom > 1:
        images = images.repeat(zoom, axis=1).repeat(zoom, axis=2)
        labels = None if labels is None else np.asarray(labels).repeat(zoom, axis=1).repeat(zoom, axis=2)
    tiles = [gray_rgb(image) for image in images]
    n_rows_per_image = 1
    if labels is not None:
        overlays = [overlay_labels(image, label, alpha) for image, label in zip(images, labels)]
        n_rows_per_image = 2
    n, height, width = images.shape
    columns = max(1, min(columns, n))
    rows = -(-n // columns)
    gap = 2
    canvas = np.full((rows * n_rows_per_image * (height + gap), columns * (width + gap), 3), 255, np.uint8)
    for index in range(n):
        row, col = divmod(index, columns)
        top, left = row * n_rows_per_image * (height + gap), col * (width + gap)
        canvas[top:top + height, left:left + width] = tiles[index]
        if labels is not None:
            top += height + gap
            canvas[top:top + height, left:left + width] = overlays[index]
    picture = Image.fromarray(canvas)
    return atomic_write(path, lambda f: picture.save(f, format="PNG"))
