"""Segmentation metrics on integer label maps: Dice, Jaccard, pixel accuracy, and the
boundary metrics of the SCR literature: mean contour distance and Hausdorff distance.

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

Boundary metrics (one image at a time): the contour of a class region is
the region minus its erosion (4-neighbourhood; outside the image counts as
outside the region), so it is the region's outermost ring of pixels. For
contours A and B, d(a, B) is the Euclidean distance from pixel a to the
nearest pixel of B, in pixels or, with ``spacing``, in millimetres:

    mean contour distance(c) = (mean over a in A of d(a, B) + mean over b in B of d(b, A)) / 2
    Hausdorff distance(c)    = max(max over a in A of d(a, B), max over b in B of d(b, A))

A class absent from both maps scores 0.0 for both; a class present in only
one of them has no contour to measure against, so both are NaN (undefined;
its Dice of 0.0 is where such a miss shows).
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

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
    """Per-class Jaccard index (IoU), shape (n_classes,). Per image it equals Dice / (2 - Dice);
    the mean over images does not (the map is not linear)."""
    return _overlap(pred, target, n_classes, reduction,
                    lambda both, p, t: both / (p + t - both))


def pixel_accuracy(pred, target, n_classes=None):
    """Fraction of pixels whose predicted class is right (all images pooled)."""
    pred, target = _check(pred, target, n_classes)
    return float((pred == target).mean()) if pred.size else 1.0


def contour(region):
    """Boundary pixels of a boolean region: the region minus its erosion."""
    region = np.asarray(region, dtype=bool)
    return region & ~ndimage.binary_erosion(region, border_value=0)


def contour_distances(pred, target, n_classes, spacing=(1.0, 1.0), classes=None):
    """Mean (symmetric) contour distance and Hausdorff distance of one image's label maps
    (H, W), per class: two arrays of shape (n_classes,). ``spacing`` = (row, column) pixel
    size, e.g. in mm; ``classes``: the class indices to measure (default all; the others
    are NaN). See the module docstring for the definitions and empty classes."""
    pred, target = _check(pred, target, n_classes)
    if pred.ndim != 2:
        raise ValueError(f"contour distances need one label map (H, W), got shape {pred.shape}")
    mean, hausdorff = np.full(n_classes, np.nan), np.full(n_classes, np.nan)
    for c in range(n_classes) if classes is None else classes:
        a, b = contour(pred == c), contour(target == c)
        if not a.any() and not b.any():
            mean[c] = hausdorff[c] = 0.0
        elif a.any() and b.any():
            # the nearest contour pixel lies inside the box around both contours: measure there
            rows, cols = np.nonzero(a | b)
            box = slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1)
            a, b = a[box], b[box]
            a_to_b = ndimage.distance_transform_edt(~b, sampling=spacing)[a]
            b_to_a = ndimage.distance_transform_edt(~a, sampling=spacing)[b]
            mean[c] = (a_to_b.mean() + b_to_a.mean()) / 2
            hausdorff[c] = max(a_to_b.max(), b_to_a.max())
    return mean, hausdorff
