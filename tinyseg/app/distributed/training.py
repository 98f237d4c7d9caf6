"""The pieces of a distributed run the training loop calls: settings agreed by every rank,
the shares of batches, evaluation and denoising, the data-parallel epoch, the CLI flags."""
from __future__ import annotations

import math

import numpy as np

from ... import functional as F
from ...backend import get_array_module
from ...tensor import tensor
from .batchnorm import synchronise_batchnorm
from .buckets import GradientReducer
from .comm import BATCHNORM_MODES, DEFAULT_BUCKET_MB, DEFAULT_RANK_TIMEOUT, DistributedError


def check_settings(comm, config):
    """The settings of distributed training, each with its own message."""
    if config.batch_size < comm.size:
        raise ValueError(f"--batch-size {config.batch_size} is the global batch, shared by the {comm.size} "
                         f"ranks: it must be at least {comm.size}; raise --batch-size or launch fewer ranks")
    for flag, value in (("--bucket-mb", config.bucket_mb), ("--rank-timeout", config.rank_timeout)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 \
                or not math.isfinite(value):
            raise ValueError(f"{flag} must be a positive number, got {value!r}")


def check_same_everywhere(comm, value, what):
    """Refuse a run whose ranks disagree on ``value`` (e.g. they read different data)."""
    values = comm.allgather(value, what)
    for rank, other in enumerate(values):
        if other != values[0]:
            raise comm.agreed_error(DistributedError(
                f"rank {rank} has other {what} than rank 0 ({other} vs {values[0]}); every rank "
                "must see the same files"))


def broadcast_weights(comm, model):
    """Rank 0's parameters and buffers on every rank (they agree already when built from the
    same seed; this makes it so whatever the initialiser does)."""
    if comm.size == 1:
        return
    for t in model.parameters() + [b for _, b in model.named_buffers()]:
        xp = get_array_module(t.data)
        buffer = t.data.copy() if comm.rank == 0 else xp.zeros_like(t.data)
        t.data[...] = comm.allreduce(buffer, "sharing the weights")


def average_buffers(comm, model):
    """Per-rank batch norm: the running statistics become the mean over the ranks."""
    for _, b in model.named_buffers():
        b.data[...] = comm.allreduce(b.data.copy(), "averaging batch-norm statistics") / comm.size


def denoise_share(comm, raw_images, method, cache_dir):
    """Each rank denoises every size-th image (rank, rank + size, ...) into the shared cache;
    afterwards every image's result is there for every rank to read."""
    if comm.size == 1:
        return
    from ...denoise.cache import denoise_images
    denoise_images(raw_images[comm.rank::comm.size], method, cache_dir)
    comm.allgather(None, "denoising")


def batch_share(comm, n_items, batch_size):
    """The slice of ``n_items`` this rank scores: whole batches, contiguous, in rank order."""
    batches = math.ceil(n_items / batch_size)
    first, last = comm.rank * batches // comm.size, (comm.rank + 1) * batches // comm.size
    return slice(first * batch_size, min(last * batch_size, n_items))


def evaluate(comm, evaluate_all, model, images, labels, input_scale, device, n_classes, batch_size=8):
    """``evaluate_all`` (``tinyseg.app.evaluate.evaluate``) with the images shared out over the
    ranks and the predictions gathered: the same scores as one process."""
    from ..evaluate import score_predictions
    if comm.size == 1:
        return evaluate_all(model, images, labels, input_scale, device, n_classes, batch_size)
    share = batch_share(comm, len(images), batch_size)
    label_type = np.min_scalar_type(n_classes)          # a byte per pixel to send
    predictions, loss_sum = np.zeros((0,) + labels.shape[1:], label_type), 0.0
    if share.stop > share.start:
        local = evaluate_all(model, images[share], labels[share], input_scale, device, n_classes, batch_size)
        predictions, loss_sum = local["predictions"].astype(label_type), local["loss"] * (share.stop - share.start)
    parts = comm.allgather((loss_sum, predictions), "gathering the scores")
    predictions = np.concatenate([p for _, p in parts]).astype(np.int64)
    return score_predictions(predictions, labels, n_classes, sum(s for s, _ in parts) / len(images))


class DataParallel:
    """What one rank of a distributed run adds to the model: synchronised batch norm (or
    per-rank statistics) and the bucketed gradient reducer."""

    def __init__(self, comm, model, batchnorm="sync", bucket_mb=DEFAULT_BUCKET_MB):
        if batchnorm not in BATCHNORM_MODES:
            raise ValueError(f"--batchnorm must be one of {BATCHNORM_MODES}, got {batchnorm!r}")
        self.comm, self.model, self.batchnorm = comm, model, batchnorm
        broadcast_weights(comm, model)
        self.sync_layers = synchronise_batchnorm(model, comm) if batchnorm == "sync" else []
        self.reducer = GradientReducer(comm, model.parameters(), bucket_mb * 2 ** 20)

    def train_one_epoch(self, optimizer, dataset, config, input_scale, device, seed, augment, bar,
                        on_step=None):
        """``loop.train_one_epoch`` over this rank's share of every global batch.

        Each rank weighs its mean loss by its share of the batch (n_rank / n_batch), so the
        summed gradients are those of the whole batch's mean loss. A rank left without an
        image (the last batch of an epoch can be smaller than the number of ranks) runs a
        zero placeholder that counts for nothing, to keep the collectives in step.
        """
        from ..errors import TrainingDiverged
        from ..loop import _all_finite
        comm, model = self.comm, self.model
        comm.end_setup()
        model.train()
        losses, seen, n_train = [], 0, len(dataset.train)
        batches = dataset.batches("train", config.batch_size, seed=seed, augment=augment,
                                  shard=(comm.rank, comm.size))
        for step, (x, y) in enumerate(batches):
            n_batch = min(config.batch_size, n_train - step * config.batch_size)
            weight = len(y) / n_batch
            computes = len(y) > 0 or self.sync_layers
            if len(y) == 0:
                x, y = np.zeros((1,) + x.shape[1:], x.dtype), np.zeros((1,) + y.shape[1:], y.dtype)
            for layer in self.sync_layers:
                object.__setattr__(layer, "counted", weight > 0)
            loss = None
            if computes:
                logits = model(tensor(x * input_scale, device=device))
                loss = F.cross_entropy(logits, tensor(y, device=device))
            local = np.array([loss.item() * weight if weight > 0 else 0.0])
            value = float(comm.allreduce(local, "summing the loss")[0])
            if not math.isfinite(value):
                raise comm.agreed_error(TrainingDiverged(f"loss became {value} at batch {step + 1}"))
            optimizer.zero_grad()
            self.reducer.start(loss)
            if loss is not None:
                loss.backward(np.asarray(weight, dtype=loss.dtype) if device == "cpu"
                              else get_array_module(loss.data).asarray(weight, dtype=loss.dtype))
            self.reducer.finish()
            optimizer.step()
            losses.append(value)
            seen += n_batch
            bar.update(step + 1, seen, loss=float(np.mean(losses)))
            if on_step is not None:
                on_step(step + 1)
        if self.batchnorm == "per-rank":
            average_buffers(comm, model)
        if not _all_finite(model):
            raise comm.agreed_error(TrainingDiverged("weights became NaN or infinite by the end of the epoch"))
        return float(np.mean(losses))


def add_arguments(parser):
    """The command-line options of distributed training."""
    group = parser.add_argument_group("distributed training (launch with mpiexec -n N)")
    group.add_argument("--distributed", action="store_true", default=None,
                       help="train on the processes mpiexec started (implied when it started more than one)")
    group.add_argument("--batchnorm", choices=BATCHNORM_MODES,
                       help="batch-norm statistics over the global batch (sync, default) or each rank's share "
                            "(per-rank, as PyTorch DDP)")
    group.add_argument("--bucket-mb", type=float, default=DEFAULT_BUCKET_MB,
                       help="size of the gradient buckets reduced together")
    group.add_argument("--rank-timeout", type=float, default=DEFAULT_RANK_TIMEOUT,
                       help="seconds a rank waits for the others before the run is stopped")
