"""PNG montages of radiographs with their label maps laid over them."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from .atomic import atomic_write

# Colours of the overlay: lungs green, heart red (as in the H-ReNet figures).
LABEL_COLOURS = np.array([[0, 0, 0], [40, 200, 60], [230, 40, 40]], dtype=np.float32)


def overlay_labels(image: np.ndarray, labels: np.ndarray, alpha: float = 0.35) -> np.ndarray:
    """Blend a label map onto a grey image; returns uint8 RGB (H, W, 3).

    ``image`` is min-max scaled for display, so mean-subtracted inputs work.
    """
    image = np.asarray(image, dtype=np.float32)
    low, high = float(image.min()), float(image.max())
    grey = (image - low) / (high - low) if high > low else np.zeros_like(image)
    rgb = np.repeat(grey[..., None] * 255.0, 3, axis=-1)
    labels = np.asarray(labels)
    tinted = labels > 0
    colours = LABEL_COLOURS[np.clip(labels, 0, len(LABEL_COLOURS) - 1)]
    rgb[tinted] = (1 - alpha) * rgb[tinted] + alpha * colours[tinted]
    return np.clip(rgb + 0.5, 0, 255).astype(np.uint8)


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
    tiles = [overlay_labels(image, np.zeros(image.shape, np.int64)) for image in images]
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
