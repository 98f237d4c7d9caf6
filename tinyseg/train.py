"""Training H-ReNet end to end: data, loop, evaluation, checkpoints and result files.

``python -m tinyseg.train`` (or ``examples/train_jsrt.py``) with no arguments
trains the "small" preset on synthetic chest radiographs; ``--data`` points at
JSRT (with ``--scr`` masks) or a folder dataset. Every epoch the training split
is reshuffled (as in the paper), the model is scored on the held-out split
(validation when there is one, else test), and ``last.npz`` / ``best.npz`` are
written atomically. At the end the final model is scored on the test split and
``--out`` receives:

    metrics.json      Dice / Jaccard per foreground class, pixel accuracy, run facts
    history.json      per-epoch training loss, held-out loss and Dice, learning rate
    curves.png        loss and Dice curves
    overlays/*.png    image | ground truth | prediction for every test image
    last.npz, best.npz

Defaults (``resolve_defaults``)
-------------------------------
Synthetic data: 240 phantoms (180 train / 20 validation / 40 test), preset
"small" at 128x160, He init, Adam (lr 4e-3, cosine decay to 1/100), batch 8,
40 epochs, no augmentation: about 5 s per epoch on two CPU cores, test Dice
about 0.96 lungs / 0.94 heart. (With 30 epochs, seeds 0-2 gave lungs
0.956-0.960, heart 0.937-0.942.) The paper's momentum SGD at lr 1e-4 barely
moves the loss in the first epochs (the paper trained 440 epochs, about 12 h
on a GPU), far beyond a CPU budget of minutes, hence Adam.

Real data: preset "paper" at the paper's 400x500, He init, Adam (lr 1e-3,
cosine decay), batch 4, weight decay 1e-4, 150 epochs, and augmentation
(rotation up to 5 degrees, scaling 0.93-1.07, shifts up to 3%, contrast,
brightness and noise changes; no flips: the heart is on one side). From
scratch on 200 images augmentation is the regulariser that matters; Adam
with He init converges in far fewer epochs than the paper's recipe. For the
wide paper preset lr 1e-3 is already large relative to its small weights
(He std 0.009 in conv6), so it was checked on a short CPU run (paper preset
at 64x80, 54 phantoms, augmentation, 5 epochs): loss 0.80 -> 0.37 steadily,
against 0.82 -> 0.64 at lr 3e-4. These defaults are a bet, not a measured
JSRT result. The paper preset wants a GPU: on two CPU cores one 400x500
image takes 10-15 s forward and backward, and a batch of 4 50 s and 5 GB
(peak resident set; 3.8 GiB of it arrays). ``--preset small --size 256 320`` is the CPU-sized alternative. The
paper's recipe is available as ``--optimizer sgd --lr 1e-4 --momentum 0.9
--init paper --schedule constant --epochs 440``.

Inputs are the data package's mean-subtracted images, further divided by
one scalar (the training images' standard deviation) so that their scale
does not depend on the bit depth or the dataset. Both the mean image and
the scale are stored in the checkpoints for inference.

Resuming (``--resume``) restores weights, batch-norm statistics, optimizer
state, the epoch counter, the history and the random generator that draws
each epoch's shuffling and augmentation seed, so an interrupted run
continues exactly as if it had not stopped.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time

import numpy as np

from . import functional as F
from .backend import cuda_available, get_array_module
from .checkpoint import read_checkpoint, save_checkpoint
from .models import PRESETS, HReNet
from .optim import SGD, Adam
from .progress import ProgressBar
from .report import evaluate, foreground, write_results
from .tensor import tensor


class TrainingDiverged(FloatingPointError):
    """The loss or the weights became NaN or infinite."""


@dataclasses.dataclass
class TrainConfig:
    """Everything that defines a run. ``None`` means "not given": a resumed run takes the
    interrupted run's value, otherwise the default for synthetic or real data applies
    (``resolve_defaults``)."""

    data: str | None = None            # JSRT folder or folder dataset; None: synthetic
    scr: str | None = None             # SCR masks root for JSRT
    preset: str | None = None
    size: tuple | None = None          # (H, W) images are resized to; default: the preset's size
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    momentum: float | None = None      # SGD only
    optimizer: str | None = None       # "sgd" | "adam"
    schedule: str | None = None        # "cosine" | "constant"
    weight_decay: float | None = None
    init: str | None = None            # "he" | "paper"
    augment: bool | None = None
    denoise: str | None = None         # "none" or one of DENOISERS
    seed: int | None = None
    n_synthetic: int | None = None     # size of the synthetic set
    val_fraction: float | None = None  # share of the training part held out for validation
    model_options: dict | None = None  # HReNet overrides (widths, hidden_size, ...)
    device: str = "auto"               # "auto" | "cpu" | "cuda"
    out: str = os.path.join("runs", "jsrt")
    resume: bool = False
    cache_dir: str | None = None       # denoising cache; default <out>/../denoise_cache
    progress: bool = True


DENOISERS = ("ksvd", "adaptive_filter", "collaborative")   # tinyseg.denoise.<name>_denoise
COMMON_DEFAULTS = dict(momentum=0.9, denoise="none", seed=0, n_synthetic=240, val_fraction=0.1,
                       model_options={})
SYNTHETIC_DEFAULTS = dict(preset="small", epochs=40, batch_size=8, lr=4e-3, optimizer="adam",
                          schedule="cosine", weight_decay=0.0, init="he", augment=False)
REAL_DATA_DEFAULTS = dict(preset="paper", epochs=150, batch_size=4, lr=1e-3, optimizer="adam",
                          schedule="cosine", weight_decay=1e-4, init="he", augment=True)
# Fields that define the computation; a resumed run must not change them.
RUN_DEFINING = ("data", "scr", "preset", "size", "batch_size", "lr", "momentum", "optimizer",
                "schedule", "weight_decay", "init", "augment", "denoise", "seed", "n_synthetic",
                "val_fraction", "model_options")


def resolve_defaults(config: TrainConfig) -> TrainConfig:
    """Fill every ``None`` with the default for synthetic or real data and check the values."""
    defaults = {**COMMON_DEFAULTS, **(SYNTHETIC_DEFAULTS if config.data is None else REAL_DATA_DEFAULTS)}
    config = dataclasses.replace(config, **{k: v for k, v in defaults.items() if getattr(config, k) is None})
    config.model_options = dict(config.model_options)
    if config.size is None:
        config.size = PRESETS[config.preset]["input_size"]
    config.size = tuple(int(v) for v in config.size)
    if config.cache_dir is None:
        config.cache_dir = os.path.join(os.path.dirname(os.path.abspath(config.out)), "denoise_cache")
    for name, allowed in (("optimizer", ("sgd", "adam")), ("schedule", ("cosine", "constant")),
                          ("device", ("auto", "cpu", "cuda")), ("denoise", ("none",) + DENOISERS),
                          ("preset", tuple(PRESETS))):
        if getattr(config, name) not in allowed:
            raise ValueError(f"{name} must be one of {allowed}, got {getattr(config, name)!r}")
    if config.epochs < 1 or config.batch_size < 1 or config.lr <= 0:
        raise ValueError("epochs and batch size must be positive and the learning rate > 0")
    return config


def config_record(config):
    """The run-defining settings (and epochs) as JSON values, as stored in checkpoints."""
    record = dataclasses.asdict(config)
    return json.loads(json.dumps({k: record[k] for k in RUN_DEFINING + ("epochs",)}))


def adopt_stored_settings(config, stored):
    """For ``--resume``: settings not given take the interrupted run's values; a setting given
    with a different value is an error (only ``epochs`` may change, e.g. to train longer)."""
    given = config_record(config)
    changed = [f"{k}: interrupted run {stored.get(k)!r}, now {given[k]!r}" for k in RUN_DEFINING
               if given[k] is not None and k in stored and stored[k] != given[k]]
    if changed:
        raise ValueError("--resume must keep the settings of the interrupted run; these differ: "
                         + "; ".join(changed))
    taken = {k: stored[k] for k in RUN_DEFINING + ("epochs",) if given[k] is None and k in stored}
    return dataclasses.replace(config, **taken)


def learning_rate(config, epoch):
    """Learning rate of ``epoch`` (0-based): constant, or cosine from lr down to lr/100."""
    if config.schedule == "constant":
        return config.lr
    floor = config.lr / 100
    return floor + 0.5 * (config.lr - floor) * (1 + math.cos(math.pi * epoch / config.epochs))


def pick_device(name):
    if name == "auto":
        return "cuda" if cuda_available() else "cpu"
    if name == "cuda" and not cuda_available():
        raise RuntimeError("--device cuda was requested but CuPy or a CUDA device is not available")
    return name


# -- data --------------------------------------------------------------------------------

def load_training_data(config):
    """The dataset of ``config``, denoised when asked, with its input scale."""
    from .data import load_dataset
    dataset = load_dataset(config.data, scr=config.scr, size=config.size, seed=config.seed,
                           n_synthetic=config.n_synthetic, val_fraction=config.val_fraction,
                           progress=config.progress and config.data is not None)
    if config.denoise != "none":
        denoise_dataset(dataset, config)
    scale = float(dataset.images[dataset.train].std()) or 1.0
    return dataset, 1.0 / scale


def denoiser(method):
    """The denoising function for ``--denoise``; a clear error when it is not available."""
    try:
        from . import denoise
    except ImportError as err:
        raise RuntimeError(f"--denoise {method} needs the tinyseg.denoise package ({err})") from err
    name = f"{method}_denoise"
    if not hasattr(denoise, name):
        raise RuntimeError(f"--denoise {method}: tinyseg.denoise has no {name}()")
    return getattr(denoise, name)


def denoise_images(raw_images, method, cache_dir, progress=True):
    """Denoise each (H, W) image in [0, 1] once; results are cached on disk by content hash."""
    from .cache import cached_apply
    fn = denoiser(method)
    bar = ProgressBar(len(raw_images), f"denoising ({method})", enabled=progress)
    out = np.empty_like(raw_images)
    for i, image in enumerate(raw_images):
        out[i] = cached_apply(fn, np.clip(image, 0.0, 1.0), {}, cache_dir)
        bar.update(i + 1, i + 1)
    bar.close()
    return out


def denoise_dataset(dataset, config):
    """Replace the images by denoised ones (the raw images, before mean subtraction)."""
    raw = dataset.images + (dataset.mean_image if dataset.mean_image is not None else 0)
    clean = denoise_images(raw, config.denoise, config.cache_dir, config.progress)
    if dataset.mean_image is not None:
        dataset.mean_image = clean[dataset.train].mean(axis=0, dtype=np.float64).astype(np.float32)
        clean -= dataset.mean_image
    dataset.images = clean


# -- model ---------------------------------------------------------------------------------

def build_model(config, n_classes):
    return HReNet(n_classes=n_classes, preset=config.preset, init=config.init, seed=config.seed,
                  **config.model_options)


def build_optimizer(config, model):
    if config.optimizer == "sgd":
        return SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                   weight_decay=config.weight_decay)
    return Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)


def _last_good(last_path, history):
    if history and os.path.isfile(last_path):
        return (f"The last good checkpoint, {last_path}, is from epoch {history[-1]['epoch']}. "
                "Try a lower --lr.")
    return "No checkpoint was written yet. Try a lower --lr."


def _all_finite(model):
    return all(bool(get_array_module(p.data).isfinite(p.data).all()) for p in model.parameters())


# -- the loop -----------------------------------------------------------------------------

def train(config: TrainConfig, dataset=None, on_epoch_end=None):
    """Run training as configured; returns the final test metrics (also written to metrics.json).

    ``dataset`` (a ``tinyseg.data.SegmentationDataset``) skips loading;
    ``on_epoch_end(epoch, record)`` is called after each epoch's checkpoint.
    """
    started = time.perf_counter()
    last_path, best_path = os.path.join(config.out, "last.npz"), os.path.join(config.out, "best.npz")
    checkpoint = None
    if config.resume:
        if not os.path.isfile(last_path):
            raise FileNotFoundError(f"--resume: no checkpoint {last_path} to continue from")
        checkpoint = read_checkpoint(last_path)
        config = adopt_stored_settings(config, checkpoint.metadata.get("config", {}))
    config = resolve_defaults(config)
    device = pick_device(config.device)
    os.makedirs(config.out, exist_ok=True)

    if dataset is None:
        dataset, input_scale = load_training_data(config)
    else:
        input_scale = 1.0 / (float(dataset.images[dataset.train].std()) or 1.0)
    class_names = tuple(dataset.class_names)
    heldout = "val" if len(dataset.val) else "test"
    model = build_model(config, dataset.n_classes).to(device)
    optimizer = build_optimizer(config, model)
    rng = np.random.default_rng(config.seed)
    history, best_score, start_epoch = [], -1.0, 0

    if checkpoint is not None:
        meta = checkpoint.load_into(model, optimizer)
        rng.bit_generator.state = meta["rng_state"]
        history, best_score, start_epoch = meta["history"], meta["best_score"], meta["epoch"]

    def checkpoint_metadata(epoch):
        return {"epoch": epoch, "config": config_record(config), "rng_state": rng.bit_generator.state,
                "history": history, "best_score": best_score, "input_scale": input_scale,
                "size": list(config.size), "class_names": list(class_names), "denoise": config.denoise}

    extra = {"mean_image": dataset.mean_image} if dataset.mean_image is not None else {}
    augment = None
    if config.augment:
        from .data import Augmentation
        augment = Augmentation()
    eval_x, eval_y = dataset.split(heldout)

    for epoch in range(start_epoch, config.epochs):
        optimizer.lr = learning_rate(config, epoch)
        epoch_seed = int(rng.integers(2 ** 63))     # shuffling and augmentation of this epoch
        bar = ProgressBar(math.ceil(len(dataset.train) / config.batch_size),
                          f"epoch {epoch + 1}/{config.epochs}", enabled=config.progress)
        try:
            train_loss = train_one_epoch(model, optimizer, dataset, config, input_scale, device,
                                         epoch_seed, augment, bar)
        except TrainingDiverged as err:
            bar.close()
            raise TrainingDiverged(f"epoch {epoch + 1}: {err}; training stopped. "
                                   + _last_good(last_path, history)) from None
        scores = evaluate(model, eval_x, eval_y, input_scale, device, dataset.n_classes)
        record = {"epoch": epoch + 1, "lr": optimizer.lr, "train_loss": train_loss,
                  "heldout": heldout, "heldout_loss": scores["loss"],
                  "dice": foreground(scores["dice"], class_names),
                  "pixel_accuracy": scores["pixel_accuracy"], "seconds": bar_elapsed(bar)}
        history.append(record)
        score = float(np.mean(scores["dice"][1:]))
        improved = score > best_score
        best_score = max(best_score, score)
        bar.close(**{f"{heldout}_{k}": v for k, v in record["dice"].items()})
        save_checkpoint(last_path, model, optimizer, checkpoint_metadata(epoch + 1), extra)
        if improved:   # for inference: no optimizer state, which would triple the file
            save_checkpoint(best_path, model, None, checkpoint_metadata(epoch + 1), extra)
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1, record)

    facts = {"seconds": round(time.perf_counter() - started, 1),
             "train_seconds": round(sum(h["seconds"] for h in history), 1), "preset": config.preset,
             "size": list(config.size), "data": config.data or "synthetic", "device": device}
    return write_results(config.out, facts, model, dataset, input_scale, device, history)


def train_one_epoch(model, optimizer, dataset, config, input_scale, device, seed, augment, bar):
    """One pass over the shuffled training split; returns the mean loss.

    Raises TrainingDiverged (naming the batch) as soon as the loss is not
    finite, and after the last step if any weight is NaN or infinite, so
    broken weights are never checkpointed.
    """
    model.train()
    losses, seen = [], 0
    for step, (x, y) in enumerate(dataset.batches("train", config.batch_size, seed=seed,
                                                  augment=augment)):
        logits = model(tensor(x * input_scale, device=device))
        loss = F.cross_entropy(logits, tensor(y, device=device))
        value = loss.item()
        if not math.isfinite(value):
            raise TrainingDiverged(f"loss became {value} at batch {step + 1}")
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(value)
        seen += len(y)
        bar.update(step + 1, seen, loss=float(np.mean(losses)))
    if not _all_finite(model):
        raise TrainingDiverged("weights became NaN or infinite by the end of the epoch")
    return float(np.mean(losses))


def bar_elapsed(bar):
    return round(time.perf_counter() - bar.start, 3)


# -- command line -------------------------------------------------------------------------

def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="Train H-ReNet on chest radiographs (synthetic phantoms unless --data is given).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", help="JSRT folder (with --scr) or a folder dataset (images/ + masks/); "
                                  "default: synthetic radiographs")
    p.add_argument("--scr", help="root of the SCR masks for a JSRT folder")
    p.add_argument("--preset", choices=sorted(PRESETS), help="default: small (synthetic), paper (--data)")
    p.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), help="default: the preset's input size")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--momentum", type=float, help="for --optimizer sgd (default 0.9)")
    p.add_argument("--optimizer", choices=["sgd", "adam"])
    p.add_argument("--schedule", choices=["cosine", "constant"])
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--init", choices=["he", "paper"])
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                   help="default: on for --data, off for synthetic")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--denoise", choices=("none",) + DENOISERS,
                   help="denoise every image once before training with tinyseg.denoise's <name>_denoise, "
                        "cached on disk (default none; ksvd is the paper's K-SVD step)")
    p.add_argument("--seed", type=int, help="default 0")
    p.add_argument("--out", default=os.path.join("runs", "jsrt"))
    p.add_argument("--resume", action="store_true",
                   help="continue from <out>/last.npz with the interrupted run's settings")
    p.add_argument("--n-synthetic", type=int, help="size of the synthetic set (default 240)")
    p.add_argument("--val-fraction", type=float,
                   help="share of the training part held out for validation, default 0.1 "
                        "(0: evaluate on the test split every epoch)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {k: v for k, v in vars(args).items() if k in fields}
    return TrainConfig(**values, progress=not args.quiet)


def main(argv=None):
    config = parse_args(argv)
    try:
        metrics = train(config)
    except TrainingDiverged as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    summary = ", ".join(f"{k} {v:.4f}" for k, v in metrics["dice"].items())
    print(f"test Dice: {summary}; pixel accuracy {metrics['pixel_accuracy']:.4f} "
          f"({metrics['n_images']} images, {metrics['seconds']:.0f} s); results in {config.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
