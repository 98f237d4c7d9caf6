"""Segmentation metrics on integer label maps: Dice, Jaccard, pixel accuracy.

All functions take NumPy integer arrays of class indices, either one image
(H, W) or a batch (N, H, W), prediction and target of the same shape.

For a class c with predicted region P and true region T:

    Dice(c)    = 2 |P n T| / (|P| + |T|)
    Jaccard(c) = |P n T| / |P u T|          (intersection over union)

Empty classes: when a class is absent from both prediction and target of an
image, that image's score for the class is 1.0 (nothing to find, nothing
wrongly found). When it is absent from only one of them, the score is 0.0.

Batches are scored image by image and averaged (``reduction="mean"``), the
way segmentation papers report a test set: a small heart in one image counts
as much as a large one in another. ``reduction="none"`` returns the
(N, n_classes) per-image table.
"""
from __future__ import annotations

import numpy as np

from ..backend import as_numpy


def _check(pred, target, n_classes):
    pred, target = as_numpy(pred), as_numpy(target)   # label maps may come from the GPU
    if pred.shape != target.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from target shape {target.shape}")
    if pred.ndim not in (2, 3):
        raise ValueError(f"expected label maps (H, W) or (N, H, W), got shape {pred.shape}")
    for name, a in (("prediction", pred), ("target", target)):
        if a.dtype.kind not in "iub":
            raise TypeError(f"{name} must hold integer class indices, got {a.dtype}")
        if n_classes is not None and a.size and (a.min() < 0 or a.max() >= n_classes):
            raise ValueError(f"{name} values must lie in [0, {n_classes - 1}], "
                             f"found [{a.min()}, {a.max()}]")
    return pred, target


def _per_image_counts(pred, target, n_classes):
    """Per image and class: |P n T|, |P|, |T| as (N, n_classes) arrays."""
    n = pred.shape[0]
    pred, target = pred.reshape(n, -1), target.reshape(n, -1)
    classes = np.arange(n_classes)[None, :, None]
    in_pred, in_target = pred[:, None] == classes, target[:, None] == classes   # (N, C, pixels)
    return ((in_pred & in_target).sum(-1), in_pred.sum(-1), in_target.sum(-1))


def _reduce(scores, single, reduction):
    if reduction == "none":
        return scores[0] if single else scores
    if reduction == "mean":
        return scores.mean(axis=0)
    raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")


def _overlap(pred, target, n_classes, reduction, score):
    pred, target = _check(pred, target, n_classes)
    single = pred.ndim == 2
    if single:
        pred, target = pred[None], target[None]
    both, n_pred, n_target = _per_image_counts(pred, target, n_classes)
    empty = (n_pred + n_target) == 0
    with np.errstate(invalid="ignore", divide="ignore"):
        scores = np.where(empty, 1.0, score(both, n_pred, n_target))
    return _reduce(scores, single, reduction)


def dice(pred, target, n_classes, reduction="mean"):
    """Per-class Dice coefficient, shape (n_classes,) (see the module docstring)."""
    return _overlap(pred, target, n_classes, reduction,
                    lambda both, p, t: 2.0 * both / (p + t))


def jaccard(pred, target, n_classes, reduction="mean"):
    """Per-class Jaccard index (IoU), shape (n_classes,); equals Dice / (2 - Dice)."""
    return _overlap(pred, target, n_classes, reduction,
                    lambda both, p, t: both / (p + t - both))


def pixel_accuracy(pred, target, n_classes=None):
    """Fraction of pixels whose predicted class is right (all images pooled)."""
    pred, target = _check(pred, target, n_classes)
    return float((pred == target).mean()) if pred.size else 1.0
