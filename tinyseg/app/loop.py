"""The training loop: one run from data to checkpoints and result files.

Before training one line says what will run and about how long it will take
(timed on the first batches), and another after the first epoch (measured).
Every epoch the training split is reshuffled (as in the paper), the model is
scored on the held-out split (validation when there is one, else test), and
``last.npz`` / ``best.npz`` are written atomically. At the end the final model
is scored on the test split and ``--out`` receives:

    metrics.json      Dice / Jaccard per foreground class, pixel accuracy, run facts, and
                      every test image's Dice, Jaccard and contour distances with their
                      spread, at the network's resolution and at the images' own
    history.json      per-epoch training loss, held-out loss and Dice, learning rate
    curves.png        loss and Dice curves
    overlays/*.png    image | ground truth | prediction for every test image
    last.npz, best.npz

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

import dataclasses
import glob
import math
import os
import shutil
import sys
import tempfile
import time

import numpy as np

from .. import functional as F
from ..backend import get_array_module, pick_device
from ..data import Augmentation, load_dataset, normalize_images
from ..models import HReNet
from ..optim import SGD, Adam
from ..tensor import tensor
from . import distributed
from .checkpoint import read_checkpoint, save_checkpoint
from .config import (TrainConfig, adopt_stored_settings, config_record, faster_alternative,
                     resolve_defaults)
from .errors import TrainingDiverged
from .evaluate import evaluate, foreground, write_results
from .progress import ProgressBar, RunEstimate


class OutputInUse(FileExistsError):
    """A fresh run was pointed at an ``--out`` that already holds a run."""


# What a run writes into --out; a fresh run replaces them only when told to (--overwrite).
RUN_FILES = ("last.npz", "best.npz", "metrics.json", "history.json", "curves.png", "overlays")


def prepare_output(config):
    """Make ``config.out`` ready before any work is done, so that no run is ever lost.

    A resumed run continues where it is. A fresh run refuses a folder that holds a run
    unless ``overwrite`` says to replace it (then that run's files, and only they, go).
    Temporary files that a killed save left behind are removed, and the folder is
    checked to be writable now rather than after the first epoch.
    """
    if config.resume and config.overwrite:
        raise ValueError("--resume continues the run in --out and --overwrite replaces it: pass one of them")
    try:
        os.makedirs(config.out, exist_ok=True)
        tempfile.TemporaryFile(dir=config.out).close()
    except OSError as err:
        raise OSError(f"--out {config.out} cannot be written to ({err.strerror or err}); "
                      "choose another folder with --out") from None
    for stale in glob.glob(os.path.join(glob.escape(config.out), ".*.tmp")):
        os.unlink(stale)
    if config.resume:
        return
    present = [name for name in RUN_FILES if os.path.lexists(os.path.join(config.out, name))]
    if present and not config.overwrite:
        if "last.npz" not in present:
            raise OutputInUse(f"{config.out} holds files of a run that saved nothing to resume from "
                              f"({', '.join(present)}); start over in it with --overwrite, or pick another --out")
        raise OutputInUse(f"{config.out} already holds a run ({', '.join(present)}); continue it with "
                          "--resume, start over in it with --overwrite, or pick another --out")
    for name in present:
        path = os.path.join(config.out, name)
        shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) else os.unlink(path)


def learning_rate(config, epoch):
    """Learning rate of ``epoch`` (0-based): constant, or cosine from lr down to lr/100."""
    if config.schedule == "constant":
        return config.lr
    floor = config.lr / 100
    return floor + 0.5 * (config.lr - floor) * (1 + math.cos(math.pi * epoch / config.epochs))


# -- data --------------------------------------------------------------------------------

def load_training_data(config):
    """The dataset of ``config``: read, denoised and normalised when asked (each on the
    images as read, as inference does it), then centred on the training mean image; with
    its input scale."""
    screen = {"max_dark_fraction": None} if config.keep_overexposed else {}
    dataset = load_dataset(config.data, scr=config.scr, size=config.size, seed=config.seed,
                           n_synthetic=config.n_synthetic, val_fraction=config.val_fraction,
                           progress=config.progress and config.data is not None, subtract_mean=False,
                           **screen)
    if config.denoise != "none":
        dataset.images = denoised(dataset.images, config)
    dataset.images = normalize_images(dataset.images, config.normalize)
    if len(dataset.train):                    # an empty split is refused by check_splits
        dataset.mean_image = dataset.images[dataset.train].mean(axis=0, dtype=np.float64).astype(np.float32)
        dataset.images -= dataset.mean_image
    return dataset, input_scale_of(dataset)


def input_scale_of(dataset):
    """One over the training images' standard deviation (1 for constant images)."""
    return 1.0 / (float(dataset.images[dataset.train].std()) or 1.0)


def denoised(images, config):
    """The images denoised with ``config.denoise``, through the shared on-disk cache."""
    from ..denoise.cache import denoise_images   # Numba-compiled denoisers: load when used
    bar = ProgressBar(len(images), f"denoising ({config.denoise})", enabled=config.progress)
    distributed.denoise_share(distributed.current(), images, config.denoise, config.cache_dir)
    clean = denoise_images(images, config.denoise, config.cache_dir, on_image=lambda done: bar.update(done, done))
    bar.close()
    return clean


# -- model ---------------------------------------------------------------------------------

def build_model(config, n_classes):
    return HReNet(n_classes=n_classes, preset=config.preset, init=config.init, seed=config.seed,
                  **config.model_options)


def build_optimizer(config, model):
    if config.optimizer == "sgd":
        return SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                   weight_decay=config.weight_decay)
    return Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)


def run_estimate(config, device, dataset, heldout, start_epoch):
    """The time estimate of the epochs left to run (see progress.RunEstimate)."""
    epochs = config.epochs - start_epoch
    plan = (f"preset {config.preset} at {config.size[0]}x{config.size[1]} on {device}, {epochs} "
            f"epoch{'s' if epochs > 1 else ''} of {len(dataset.train)} images in batches of "
            f"{config.batch_size}, each scored on {len(getattr(dataset, heldout))} {heldout} images")
    return RunEstimate(plan, math.ceil(len(dataset.train) / config.batch_size), epochs, config.batch_size,
                       len(getattr(dataset, heldout)), len(dataset.test), faster_alternative(config, device))


def _last_good(config, last_path, history):
    lower = f"--lr {config.lr / 10:g}"
    if history and os.path.isfile(last_path):
        return (f"The last good checkpoint, {last_path}, is from epoch {history[-1]['epoch']}; "
                f"continue from it at a lower learning rate with --resume {lower} --out {config.out}")
    return f"No checkpoint was written yet; start again with a lower learning rate: --overwrite {lower}"


def _all_finite(model):
    """Parameters and buffers (batch norm's running statistics) all finite."""
    arrays = [p.data for p in model.parameters()] + [b.data for _, b in model.named_buffers()]
    return all(bool(get_array_module(a).isfinite(a).all()) for a in arrays)


def check_splits(dataset, heldout):
    """Refuse, before any epoch runs, a split that would make training or scoring impossible."""
    sizes = {"train": len(dataset.train), "test": len(dataset.test), heldout: len(getattr(dataset, heldout))}
    empty = [name for name, n in sizes.items() if n == 0]
    if empty:
        counts = "/".join(str(n) for n in (len(dataset.train), len(dataset.val), len(dataset.test)))
        raise ValueError(f"the {' and '.join(empty)} split of {dataset.source} data is empty "
                         f"(train/val/test {counts} images); training needs images in train and test")


def check_same_data(stored, current, last_path):
    """--resume on other data (a folder that grew, another split) would mix test images into
    training: refuse it, naming both."""
    if stored is not None and stored != current:
        raise ValueError(f"--resume: the data differ from the interrupted run's ({last_path} was trained on "
                         f"{stored}, the data now are {current}); resume with the same --data and "
                         "settings, or start a new run with another --out")


# -- the loop -----------------------------------------------------------------------------

def train(config: TrainConfig, dataset=None, on_epoch_end=None):
    """Run training as configured; returns the final test metrics (also written to metrics.json).

    ``dataset`` (a ``tinyseg.data.SegmentationDataset``) skips loading;
    ``on_epoch_end(epoch, record)`` is called after each epoch's checkpoint.
    Launched by mpiexec, every process runs this as one rank of a data-parallel run
    (``tinyseg.app.distributed``).
    """
    comm = distributed.communicator(config.distributed, config.rank_timeout)
    return comm.run(_train, config, dataset, on_epoch_end, comm)


def _train(config, dataset, on_epoch_end, comm):
    started = time.perf_counter()
    last_path, best_path = os.path.join(config.out, "last.npz"), os.path.join(config.out, "best.npz")
    checkpoint = None
    if config.resume:
        if not os.path.isfile(last_path):
            raise FileNotFoundError(f"--resume: no checkpoint {last_path} to continue from")
        checkpoint = read_checkpoint(last_path)
        config = adopt_stored_settings(config, checkpoint.metadata.get("config", {}))
    device = pick_device(config.device)      # before the defaults, which depend on it
    config = resolve_defaults(dataclasses.replace(config, progress=config.progress and comm.rank == 0), device)
    distributed.check_settings(comm, config)
    comm.use_device(device)
    comm.on_root(prepare_output, config)

    if dataset is None:
        dataset, input_scale = load_training_data(config)
    else:
        input_scale = input_scale_of(dataset)
    class_names = tuple(dataset.class_names)
    heldout = "val" if len(dataset.val) else "test"
    check_splits(dataset, heldout)
    fingerprint = dataset.fingerprint()
    distributed.check_same_everywhere(comm, fingerprint, "data")
    if checkpoint is not None:
        check_same_data(checkpoint.metadata.get("data"), fingerprint, last_path)
    model = build_model(config, dataset.n_classes).to(device)
    parallel = distributed.DataParallel(comm, model, config.batchnorm, config.bucket_mb) if comm.size > 1 else None
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
                "size": list(config.size), "class_names": list(class_names), "denoise": config.denoise,
                "data": fingerprint, "sixteen_bit_depth": dataset.sixteen_bit_depth,
                "normalize": config.normalize}

    extra = {"mean_image": dataset.mean_image} if dataset.mean_image is not None else {}
    augment = Augmentation.scanner() if config.scanner_augment else Augmentation() if config.augment else None
    eval_x, eval_y = dataset.split(heldout)
    steps = math.ceil(len(dataset.train) / config.batch_size)
    estimate = run_estimate(config, device, dataset, heldout, start_epoch) if config.progress else None

    for epoch in range(start_epoch, config.epochs):
        optimizer.lr = learning_rate(config, epoch)
        epoch_seed = int(rng.integers(2 ** 63))     # shuffling and augmentation of this epoch
        bar = ProgressBar(steps, f"epoch {epoch + 1}/{config.epochs}", enabled=config.progress)
        first = estimate is not None and epoch == start_epoch     # the one whose steps are timed
        try:
            on_step = estimate.timer(bar) if first else None
            if parallel is not None:
                train_loss = parallel.train_one_epoch(optimizer, dataset, config, input_scale, device,
                                                      epoch_seed, augment, bar, on_step)
            else:
                train_loss = train_one_epoch(model, optimizer, dataset, config, input_scale, device,
                                             epoch_seed, augment, bar, on_step)
        except TrainingDiverged as err:
            bar.close()
            raise TrainingDiverged(f"epoch {epoch + 1}: {err}; training stopped. "
                                   + _last_good(config, last_path, history)) from None
        scoring_started = time.perf_counter()
        scores = distributed.evaluate(comm, evaluate, model, eval_x, eval_y, input_scale, device,
                                      dataset.n_classes)
        scoring_seconds = time.perf_counter() - scoring_started
        record = {"epoch": epoch + 1, "lr": optimizer.lr, "train_loss": train_loss,
                  "heldout": heldout, "heldout_loss": scores["loss"],
                  "dice": foreground(scores["dice"], class_names),
                  "pixel_accuracy": scores["pixel_accuracy"], "seconds": bar_elapsed(bar)}
        history.append(record)
        score = float(np.mean(scores["dice"][1:]))
        improved = score > best_score
        best_score = max(best_score, score)
        bar.close(**{f"{heldout}_{k}": v for k, v in record["dice"].items()})
        if first and epoch + 1 < config.epochs:
            print(estimate.measured(record["seconds"], scoring_seconds, config.epochs - epoch - 1),
                  file=sys.stderr, flush=True)
        # best.npz first: last.npz records the new best score, so once it is written best.npz
        # must already hold that epoch's weights (an interruption in between reruns the epoch)
        if improved:   # for inference: no optimizer state, which would triple the file
            comm.on_root(save_checkpoint, best_path, model, None, checkpoint_metadata(epoch + 1), extra)
        comm.on_root(save_checkpoint, last_path, model, optimizer, checkpoint_metadata(epoch + 1), extra)
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1, record)

    # to the millisecond: a small run now ends in well under a tenth of a second
    facts = {"seconds": round(time.perf_counter() - started, 3),
             "train_seconds": round(sum(h["seconds"] for h in history), 3), "preset": config.preset,
             "size": list(config.size), "data": config.data or "synthetic", "device": device}
    test_scores = distributed.evaluate(comm, evaluate, model, *dataset.split("test"), input_scale, device,
                                       dataset.n_classes)
    return comm.on_root(write_results, config.out, facts, model, dataset, input_scale, device, history, test_scores)


def train_one_epoch(model, optimizer, dataset, config, input_scale, device, seed, augment, bar,
                    on_step=None):
    """One pass over the shuffled training split; returns the mean loss. ``on_step(step)``
    is called after each step (1-based).

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
        if on_step is not None:
            on_step(step + 1)
    if not _all_finite(model):
        raise TrainingDiverged("weights became NaN or infinite by the end of the epoch")
    return float(np.mean(losses))


def bar_elapsed(bar):
    return round(time.perf_counter() - bar.start, 3)
