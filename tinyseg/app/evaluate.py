"""Scoring a model on a split and writing what people look at: metrics.json, curves, overlays.

Besides the mean Dice and Jaccard per class, metrics.json holds every image's scores (by
name) and their spread (``score_split``), at two resolutions: the network's, and each
image's own (the prediction resized back by nearest neighbour and compared with the labels
as stored, e.g. SCR's 1024 x 1024 masks), which is what a user of the segmentation sees.
``evaluate_checkpoint`` scores any checkpoint on any labelled dataset
(``examples/evaluate.py``).
"""
from __future__ import annotations

import json
import math
import os

import numpy as np

from .. import functional as F
from ..autograd import no_grad
from ..data import load_dataset, resize_labels
from ..data.atomic import atomic_write
from ..tensor import tensor
from .checkpoint import read_checkpoint
from .inference import Segmenter
from .metrics import contour_distances, dice, jaccard, pixel_accuracy
from ..data.classes import CLASS_COLORS
from .pictures import comparison_panel, plot_curves


ORANGE = (255, 127, 14)


def batched_logits(model, images, input_scale, device, batch_size=8):
    """Yield ``(start, logits)`` over (N, H, W) mean-subtracted images, in eval mode, no graph."""
    model.eval()
    with no_grad():
        for start in range(0, len(images), batch_size):
            yield start, model(tensor(images[start:start + batch_size, None] * input_scale, device=device))


def predict(model, images, input_scale, device, batch_size=8):
    """Predicted labels (N, H, W) for (N, H, W) mean-subtracted images."""
    return np.concatenate([logits.numpy().argmax(axis=1) for _, logits in
                           batched_logits(model, images, input_scale, device, batch_size)])


def evaluate(model, images, labels, input_scale, device, n_classes, batch_size=8):
    """Mean cross-entropy, per-class Dice and Jaccard, pixel accuracy, and the predictions."""
    predictions, loss_sum = [], 0.0
    for start, logits in batched_logits(model, images, input_scale, device, batch_size):
        y = labels[start:start + batch_size]
        loss_sum += F.cross_entropy(logits, tensor(y, device=device)).item() * len(y)
        predictions.append(logits.numpy().argmax(axis=1))
    return score_predictions(np.concatenate(predictions), labels, n_classes, loss_sum / len(images))


def score_predictions(predictions, labels, n_classes, loss):
    """The scores of ``evaluate`` from the predicted labels and the mean loss."""
    return {"loss": loss,
            "dice": dice(predictions, labels, n_classes), "jaccard": jaccard(predictions, labels, n_classes),
            "pixel_accuracy": pixel_accuracy(predictions, labels, n_classes), "predictions": predictions}


def foreground(values, class_names):
    """{class name: value} for every class but background (index 0)."""
    return {name: float(v) for name, v in zip(class_names[1:], values[1:])}


# Per-image metrics in metrics.json; for "higher" ones a high value is good.
HIGHER = ("dice", "jaccard")
LOWER = ("mean_contour_distance_px", "hausdorff_px", "mean_contour_distance_mm", "hausdorff_mm")
N_WORST = 5


def image_scores(prediction, truth, class_names, spacing_mm=None):
    """Every per-image metric of one (H, W) prediction, {metric: {class: value or None}}, for
    the foreground classes; distances in mm only when the pixel size is known."""
    n = len(class_names)
    px = contour_distances(prediction, truth, n, classes=range(1, n))
    if not spacing_mm:
        mm = None, None
    elif spacing_mm[0] == spacing_mm[1]:     # square pixels: the same distances, scaled
        mm = px[0] * spacing_mm[0], px[1] * spacing_mm[0]
    else:
        mm = contour_distances(prediction, truth, n, spacing=spacing_mm, classes=range(1, n))
    values = {"dice": dice(prediction, truth, n), "jaccard": jaccard(prediction, truth, n),
              "mean_contour_distance_px": px[0], "hausdorff_px": px[1],
              "mean_contour_distance_mm": mm[0], "hausdorff_mm": mm[1]}
    return {"size": list(truth.shape), "pixel_spacing_mm": list(spacing_mm) if spacing_mm else None,
            **{metric: {name: _number(v[k]) if v is not None else None
                        for k, name in enumerate(class_names) if k > 0}
               for metric, v in values.items()}}


def _number(value):
    """A float for JSON; NaN (an undefined distance) becomes None (null)."""
    return None if math.isnan(value) else float(value)


def summarise(per_image, class_names):
    """{metric: {class: {mean, std, min, max, worst, undefined}}} over ``per_image``:
    std is the sample standard deviation, worst the names of the N_WORST worst images
    (lowest Dice / Jaccard, largest distances), undefined the number of images without
    a value (see tinyseg.app.metrics), which the other numbers leave out."""
    summary = {}
    for metric in HIGHER + LOWER:
        summary[metric] = {}
        for name in class_names[1:]:
            scored = [(image, scores[metric][name]) for image, scores in per_image.items()
                      if scores[metric][name] is not None]
            values = np.array([v for _, v in scored], dtype=np.float64)
            ranked = sorted(scored, key=lambda item: item[1], reverse=metric in LOWER)
            summary[metric][name] = {
                "mean": float(values.mean()) if len(values) else None,
                "std": float(values.std(ddof=1)) if len(values) > 1 else (0.0 if len(values) else None),
                "min": float(values.min()) if len(values) else None,
                "max": float(values.max()) if len(values) else None,
                "worst": [image for image, _ in ranked[:N_WORST]],
                "undefined": len(per_image) - len(scored)}
    return summary


def score_split(dataset, indices, predictions):
    """Overall, per-image and summary scores of ``predictions`` (network size) for the
    images ``indices`` of ``dataset``, at the network's resolution and at each image's own."""
    class_names = tuple(dataset.class_names)
    names = [dataset.names[i] for i in indices]
    truths = dataset.labels[indices]
    per_image = {name: image_scores(p, t, class_names, dataset.pixel_spacing(t.shape))
                 for name, p, t in zip(names, predictions, truths)}
    own, hits, pixels = {}, 0, 0
    for name, i, prediction in zip(names, indices, predictions):
        truth = dataset.original_labels(i)
        if prediction.shape != truth.shape:
            prediction = resize_labels(prediction, truth.shape)
        own[name] = image_scores(prediction, truth, class_names, dataset.pixel_spacing(truth.shape))
        hits, pixels = hits + int((prediction == truth).sum()), pixels + truth.size
    own_summary = summarise(own, class_names)
    return {"dice": foreground(dice(predictions, truths, len(class_names)), class_names),
            "jaccard": foreground(jaccard(predictions, truths, len(class_names)), class_names),
            "pixel_accuracy": pixel_accuracy(predictions, truths, len(class_names)),
            "summary": summarise(per_image, class_names), "per_image": per_image,
            "original_resolution": {
                "dice": {c: v["mean"] for c, v in own_summary["dice"].items()},
                "jaccard": {c: v["mean"] for c, v in own_summary["jaccard"].items()},
                "pixel_accuracy": hits / pixels if pixels else 1.0,
                "summary": own_summary, "per_image": own}}


def write_results(out, run_facts, model, dataset, input_scale, device, history, scores=None):
    """Score the final model on the test split (unless its ``scores`` are given); write
    metrics.json (with ``run_facts``), history.json, curves.png and one overlay per test
    image to ``out``."""
    class_names = tuple(dataset.class_names)
    test_x, test_y = dataset.split("test")
    if scores is None:
        scores = evaluate(model, test_x, test_y, input_scale, device, dataset.n_classes)
    scored = score_split(dataset, dataset.test, scores["predictions"])
    metrics = {"dice": foreground(scores["dice"], class_names),
               "jaccard": foreground(scores["jaccard"], class_names),
               "pixel_accuracy": scores["pixel_accuracy"], "loss": scores["loss"], "split": "test",
               "n_images": int(len(test_y)), "epochs": len(history), **run_facts,
               "excluded": dict(dataset.excluded), **{k: scored[k] for k in
                                                      ("summary", "per_image", "original_resolution")}}
    write_json(os.path.join(out, "metrics.json"), metrics)
    write_json(os.path.join(out, "history.json"), history)
    if history:
        epochs = [h["epoch"] for h in history]
        heldout = history[-1]["heldout"]
        plot_curves(os.path.join(out, "curves.png"), [
            ("cross-entropy loss", {"train": (epochs, [h["train_loss"] for h in history]),
                                    heldout: (epochs, [h["heldout_loss"] for h in history], ORANGE)}),
            (f"Dice on the {heldout} split", {
                name: (epochs, [h["dice"][name] for h in history], CLASS_COLORS.get(k, (0, 0, 0)))
                for k, name in enumerate(class_names) if k > 0}),
        ])
    names = [dataset.names[i] for i in dataset.test]
    shown = test_x + dataset.mean_image if dataset.mean_image is not None else test_x   # the radiographs
    write_overlays(os.path.join(out, "overlays"), names, shown, test_y, scores["predictions"])
    return metrics


def write_overlays(folder, names, images, truths, predictions):
    """One ``<name>.png`` per image: image | ground truth | prediction."""
    os.makedirs(folder, exist_ok=True)
    for name, image, truth, prediction in zip(names, images, truths, predictions):
        comparison_panel(image, truth, prediction).save(os.path.join(folder, f"{name}.png"))


def write_json(path, value):
    atomic_write(path, lambda f: f.write(json.dumps(value, indent=2).encode()))


def evaluate_checkpoint(checkpoint, data, scr=None, split="test", device="cpu", progress=True, out=None):
    """Score ``checkpoint`` on the labelled dataset ``data`` (JSRT with ``scr``, or a folder
    dataset), read at the checkpoint's size and preprocessed as in its training (mean image,
    input scale, denoising). ``split``: "test" (the split the training run made, for the
    same data, seed and validation share) or "all". Returns the metrics; with ``out``, also
    writes them to ``out/metrics.json`` and one comparison panel per image to ``out/overlays``."""
    if split not in ("test", "all"):
        raise ValueError(f"split must be 'test' or 'all', got {split!r}")
    stored = read_checkpoint(checkpoint).metadata.get("config", {})
    segmenter = Segmenter.from_checkpoint(checkpoint, device=device)
    kwargs = {k: stored[k] for k in ("seed", "val_fraction") if stored.get(k) is not None}
    dataset = load_dataset(data, scr=scr, size=segmenter.size, subtract_mean=False,
                           progress=progress, **kwargs)
    if segmenter.model.n_classes != dataset.n_classes:
        raise ValueError(f"{checkpoint} predicts {segmenter.model.n_classes} classes; "
                         f"{data} has {dataset.n_classes}")
    indices = dataset.test if split == "test" else np.arange(len(dataset))
    if len(indices) == 0:
        raise ValueError(f"the test split of {data} is empty; score every image with --split all")
    inputs = np.stack([segmenter.preprocess(dataset.images[i]) for i in indices])
    scores = evaluate(segmenter.model, inputs, dataset.labels[indices], 1.0, device, dataset.n_classes)
    scored = score_split(dataset, indices, scores["predictions"])
    metrics = {**{k: scored[k] for k in ("dice", "jaccard", "pixel_accuracy")}, "loss": scores["loss"],
               "split": split, "n_images": int(len(indices)), "checkpoint": str(checkpoint),
               "data": str(data), "size": list(segmenter.size), "excluded": dict(dataset.excluded),
               **{k: scored[k] for k in ("summary", "per_image", "original_resolution")}}
    if out is not None:
        os.makedirs(out, exist_ok=True)
        write_json(os.path.join(out, "metrics.json"), metrics)
        write_overlays(os.path.join(out, "overlays"), [dataset.names[i] for i in indices],
                       dataset.images[indices], dataset.labels[indices], scores["predictions"])
    return metrics


def summary_lines(metrics):
    """A few lines for the terminal: per class the mean +- std Dice with the worst image, the
    mean Jaccard and the mean contour distances, at the network's resolution and the images' own."""
    lines = []
    for title, block in (("network resolution", metrics), ("own resolution", metrics["original_resolution"])):
        lines.append(f"{title}: pixel accuracy {block['pixel_accuracy']:.4f}")
        summary = block["summary"]
        for name, d in summary["dice"].items():
            text = f"  {name}: Dice {_fmt(d['mean'])} +- {_fmt(d['std'])}"
            if d["worst"]:
                text += f" (worst {_fmt(d['min'])}, {d['worst'][0]})"
            text += f", Jaccard {_fmt(summary['jaccard'][name]['mean'])}"
            for metric, label in (("mean_contour_distance", "contour distance"), ("hausdorff", "Hausdorff")):
                values = [f"{summary[f'{metric}_{unit}'][name]['mean']:.2f} {unit}" for unit in ("px", "mm")
                          if summary[f"{metric}_{unit}"][name]["mean"] is not None]
                if values:
                    text += f", {label} {' = '.join(values)}"
            undefined = summary["mean_contour_distance_px"][name]["undefined"]
            if undefined:
                text += f"; in only one map in {undefined} image(s), without distances"
            lines.append(text)
    return lines


def _fmt(value):
    return "n/a" if value is None else f"{value:.4f}"
