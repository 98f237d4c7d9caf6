"""Segmenting new radiographs with a trained checkpoint.

``Segmenter.from_checkpoint(path)`` rebuilds the model a checkpoint was
trained with and the preprocessing it saw: resize to the training size,
optional denoising, subtraction of the training mean image, scaling. Its
``segment(image)`` returns a label map at the image's own resolution
(0 background, 1 lungs, 2 heart), resized back by nearest neighbour.
"""
from __future__ import annotations

import os

import numpy as np

from ..autograd import no_grad
from ..data import read_grayscale, read_jsrt_image, resize_image, resize_labels
from ..models import HReNet
from ..tensor import tensor
from .checkpoint import CheckpointError, read_checkpoint
from .config import default_cache_dir


def read_radiograph(path):
    """A grey image in [0, 1]: JSRT ``.IMG`` files and PNG / JPEG / TIFF via the data package."""
    if str(path).lower().endswith(".img"):
        return read_jsrt_image(path).pixels
    return read_grayscale(path)[0]


def model_from_metadata(path, metadata):
    """An HReNet with the architecture described in a checkpoint's metadata."""
    described = metadata.get("model", {})
    if described.get("model") != HReNet.__name__:
        raise CheckpointError(f"checkpoint {path!r} holds a {described.get('model')!r}, not an HReNet")
    return HReNet(n_classes=described["n_classes"], preset=described["preset"],
                  in_channels=described.get("in_channels", 1), init=described.get("init", "he"),
                  **described.get("config", {}))


class Segmenter:
    def __init__(self, model, size, mean_image=None, input_scale=1.0, denoise="none",
                 cache_dir=None, device="cpu"):
        self.model, self.size = model.eval(), tuple(size)
        self.mean_image, self.input_scale = mean_image, input_scale
        self.denoise, self.cache_dir, self.device = denoise, cache_dir, device

    @classmethod
    def from_checkpoint(cls, path, device="cpu", cache_dir=None):
        checkpoint = read_checkpoint(path)
        metadata, extra = checkpoint.metadata, checkpoint.extra
        if "size" not in metadata:
            raise CheckpointError(f"checkpoint {path!r} lacks the training image size; "
                                  "was it written by tinyseg.app.train?")
        model = model_from_metadata(path, metadata)
        checkpoint.load_into(model)
        # the training default, for a checkpoint in <out>
        cache_dir = cache_dir or default_cache_dir(os.path.dirname(os.path.abspath(path)))
        return cls(model.to(device), metadata["size"], extra.get("mean_image"),
                   metadata.get("input_scale", 1.0), metadata.get("denoise", "none"), cache_dir, device)

    def preprocess(self, image):
        """(H, W) image in [0, 1] -> the network's (size) input, as in training."""
        x = resize_image(image, self.size) if image.shape != self.size else image.astype(np.float32)
        if self.denoise != "none":
            from ..denoise.cache import denoise_images   # Numba-compiled: load when used
            x = denoise_images(x[None], self.denoise, self.cache_dir)[0]
        if self.mean_image is not None:
            x = x - self.mean_image
        return (x * self.input_scale).astype(np.float32)

    def segment(self, image):
        """Label map (H, W) of a grey (H, W) image in [0, 1]."""
        image = np.asarray(image, dtype=np.float32)
        with no_grad():
            logits = self.model(tensor(self.preprocess(image)[None, None], device=self.device))
        labels = logits.numpy()[0].argmax(axis=0)
        return resize_labels(labels, image.shape) if labels.shape != image.shape else labels
