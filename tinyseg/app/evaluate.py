"""Scoring a model on a split and writing what people look at: metrics.json, curves, overlays."""
from __future__ import annotations

import json
import os

import numpy as np

from .. import functional as F
from ..autograd import no_grad
from ..data.atomic import atomic_write
from ..tensor import tensor
from .metrics import dice, jaccard, pixel_accuracy
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


def write_results(out, run_facts, model, dataset, input_scale, device, history, scores=None):
    """Score the final model on the test split (unless its ``scores`` are given); write
    metrics.json (with ``run_facts``), history.json, curves.png and one overlay per test
    image to ``out``."""
    class_names = tuple(dataset.class_names)
    test_x, test_y = dataset.split("test")
    if scores is None:
        scores = evaluate(model, test_x, test_y, input_scale, device, dataset.n_classes)
    metrics = {"dice": foreground(scores["dice"], class_names),
               "jaccard": foreground(scores["jaccard"], class_names),
               "pixel_accuracy": scores["pixel_accuracy"], "loss": scores["loss"], "split": "test",
               "n_images": int(len(test_y)), "epochs": len(history), **run_facts}
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
    overlay_dir = os.path.join(out, "overlays")
    os.makedirs(overlay_dir, exist_ok=True)
    names = [dataset.names[i] for i in dataset.test]
    shown = test_x + dataset.mean_image if dataset.mean_image is not None else test_x   # the radiographs
    for name, image, truth, prediction in zip(names, shown, test_y, scores["predictions"]):
        comparison_panel(image, truth, prediction).save(os.path.join(overlay_dir, f"{name}.png"))
    return metrics


def write_json(path, value):
    atomic_write(path, lambda f: f.write(json.dumps(value, indent=2).encode()))
