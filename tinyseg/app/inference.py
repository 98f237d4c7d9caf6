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
from ..data import (NORMALIZATIONS, normalize_intensity, read_grayscale, read_jsrt_image, resize_image,
                    resize_labels)
from ..models import PRESETS, HReNet
from ..tensor import tensor
from .checkpoint import CheckpointError, read_checkpoint
from .config import default_cache_dir


def read_radiograph(path, sixteen_bit_depth=16):
    """A grey image in [0, 1]: JSRT ``.IMG`` files and PNG / JPEG / TIFF via the data package
    (16-bit files as data of ``sixteen_bit_depth`` bits: ``Segmenter.read`` passes the
    training data's)."""
    if str(path).lower().endswith(".img"):
        return read_jsrt_image(path).pixels
    return read_grayscale(path, sixteen_bit_depth)[0]


# Bounds on a stored architecture, checked before anything is allocated: the paper preset
# lies well inside them, a damaged or crafted file's absurd sizes do not.
ARCHITECTURE_BOUNDS = {"widths": (1, 1024), "convs_per_block": (1, 8), "conv7_width": (1, 4096),
                       "conv7_kernel": (1, 11), "hidden_size": (1, 1024), "input_size": (16, 8192)}


def model_from_metadata(path, metadata):
    """An HReNet with the architecture described in a checkpoint's metadata (checked first)."""
    described = metadata.get("model")
    if not isinstance(described, dict) or described.get("model") != HReNet.__name__:
        found = described.get("model") if isinstance(described, dict) else described
        raise CheckpointError(f"checkpoint {path!r} holds a {found!r}, not an HReNet")
    preset, config = described.get("preset"), described.get("config", {})
    if preset not in PRESETS:
        raise CheckpointError(f"checkpoint {path!r} names the preset {preset!r}; expected one of "
                              f"{tuple(PRESETS)}")
    n_classes, in_channels = described.get("n_classes"), described.get("in_channels", 1)
    if not isinstance(config, dict) or not _whole(n_classes, 2, 64) or not _whole(in_channels, 1, 4):
        raise CheckpointError(f"checkpoint {path!r} has a malformed model description "
                              f"(n_classes {n_classes!r}, in_channels {in_channels!r})")
    for key, (low, high) in ARCHITECTURE_BOUNDS.items():
        values = config.get(key, PRESETS[preset][key])
        values = values if isinstance(values, list) else [values]
        if not values or not all(_whole(v, low, high) for v in values):
            raise CheckpointError(f"checkpoint {path!r}: model setting {key} = {config.get(key)!r} is "
                                  f"outside {low}..{high}; the file is damaged or not from tinyseg")
    try:
        return HReNet(n_classes=n_classes, preset=preset, in_channels=in_channels,
                      init=described.get("init", "he"), **config)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"checkpoint {path!r} describes a model tinyseg cannot build: {err}") from None


MIN_SIDE, MAX_ASPECT = 32, 4.0     # smaller, or longer than 4:1, is no chest radiograph


def check_plausible_radiograph(shape, name="image"):
    """Refuse what cannot be a chest radiograph rather than segment it without a word."""
    if len(shape) != 2 or min(shape) < MIN_SIDE or max(shape) > MAX_ASPECT * min(shape):
        raise ValueError(f"{name} is {'x'.join(map(str, shape))} pixels: not a plausible chest radiograph "
                         f"(expected a grey image at least {MIN_SIDE} pixels on each side, no longer "
                         f"than {MAX_ASPECT:g}:1)")


def _whole(value, low, high):
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def check_inference_metadata(path, metadata, extra):
    """The preprocessing facts inference needs: the image size, input scale and mean image."""
    size = metadata.get("size")
    if not (isinstance(size, list) and len(size) == 2 and all(_whole(v, 16, 8192) for v in size)):
        raise CheckpointError(f"checkpoint {path!r} lacks a valid training image size (found {size!r}); "
                              "was it written by tinyseg.app.train?")
    scale = metadata.get("input_scale", 1.0)
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale < 1e6:
        raise CheckpointError(f"checkpoint {path!r}: input scale {scale!r} is not a positive number")
    mean = extra.get("mean_image")
    if mean is not None and (mean.shape != tuple(size) or mean.dtype.kind != "f" or not np.isfinite(mean).all()):
        raise CheckpointError(f"checkpoint {path!r}: the mean image ({mean.shape}, {mean.dtype}) does not "
                              f"fit the image size {tuple(size)} or is not finite")


class Segmenter:
    def __init__(self, model, size, mean_image=None, input_scale=1.0, denoise="none",
                 cache_dir=None, device="cpu", sixteen_bit_depth=16, normalize="none"):
        self.model, self.size = model.eval(), tuple(size)
        self.mean_image, self.input_scale = mean_image, input_scale
        self.denoise, self.cache_dir, self.device = denoise, cache_dir, device
        self.sixteen_bit_depth, self.normalize = sixteen_bit_depth, normalize

    @classmethod
    def from_checkpoint(cls, path, device="cpu", cache_dir=None):
        checkpoint = read_checkpoint(path)
        metadata, extra = checkpoint.metadata, checkpoint.extra
        check_inference_metadata(path, metadata, extra)
        model = model_from_metadata(path, metadata)
        checkpoint.load_into(model)
        # the training default, for a checkpoint in <out>
        cache_dir = cache_dir or default_cache_dir(os.path.dirname(os.path.abspath(path)))
        depth = metadata.get("sixteen_bit_depth", 16)
        if depth not in (12, 16):
            raise CheckpointError(f"checkpoint {path!r}: sixteen_bit_depth {depth!r} is not 12 or 16")
        normalize = metadata.get("normalize", "none")
        if normalize not in NORMALIZATIONS:
            raise CheckpointError(f"checkpoint {path!r}: unknown intensity normalisation {normalize!r}")
        return cls(model.to(device), metadata["size"], extra.get("mean_image"),
                   metadata.get("input_scale", 1.0), metadata.get("denoise", "none"), cache_dir, device,
                   depth, normalize)

    def read(self, path):
        """An image file as the training data were read (16-bit files at their data depth)."""
        return read_radiograph(path, self.sixteen_bit_depth)

    def preprocess(self, image):
        """(H, W) image in [0, 1] -> the network's (size) input, as in training."""
        x = resize_image(image, self.size) if image.shape != self.size else image.astype(np.float32)
        if self.denoise != "none":
            from ..denoise.cache import denoise_images   # Numba-compiled: load when used
            x = denoise_images(x[None], self.denoise, self.cache_dir)[0]
        x = normalize_intensity(x, self.normalize)          # as the training images were
        if self.mean_image is not None:
            x = x - self.mean_image
        return (x * self.input_scale).astype(np.float32)

    def segment(self, image):
        """Label map (H, W) of a grey (H, W) image in [0, 1]."""
        image = np.asarray(image, dtype=np.float32)
        check_plausible_radiograph(image.shape)
        with no_grad():
            logits = self.model(tensor(self.preprocess(image)[None, None], device=self.device))
        labels = logits.numpy()[0].argmax(axis=0)
        return resize_labels(labels, image.shape) if labels.shape != image.shape else labels
