"""Checkpoints: one ``.npz`` with weights, optimizer state and JSON metadata.

Layout of the archive (every entry a plain array, so ``np.load(...,
allow_pickle=False)`` reads it):

    model/<name>   each parameter and buffer of ``model.state_dict()``
    optim/<name>   each entry of ``optimizer.state_dict()`` (momentum buffers, Adam moments, lr)
    extra/<name>   arrays the caller adds (e.g. the mean image inference must subtract)
    metadata       a 0-d unicode array holding a JSON object: the format tag, the model's
                   description (class, preset, n_classes, config), the optimizer class and
                   whatever the caller adds (epoch, RNG state, metrics history, ...)

Writes are atomic: the archive goes to a temporary file in the target's
directory and is moved over the target with ``os.replace`` only once it is
complete, so a crash leaves either the old checkpoint or the new one, never
half of one.
"""
from __future__ import annotations

import json
import os
import struct
import zipfile
import zlib
from dataclasses import dataclass, field

import numpy as np

from ..data.atomic import atomic_write

FORMAT = "tinyseg-checkpoint-v1"
MODEL_PREFIX, OPTIM_PREFIX, EXTRA_PREFIX, METADATA_KEY = "model/", "optim/", "extra/", "metadata"


class CheckpointError(ValueError):
    """A file that is not a tinyseg checkpoint, or one that does not fit the model given."""


@dataclass
class Checkpoint:
    """The contents of a checkpoint file, as read by :func:`read_checkpoint`."""

    path: str
    metadata: dict
    model_state: dict
    optimizer_state: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    def load_into(self, model=None, optimizer=None):
        """Load the state into ``model`` and ``optimizer`` (either may be None); return the metadata.

        Everything is checked before anything is loaded, so on error both are left unchanged.
        """
        if model is not None:
            _check_same_model(self.path, self.metadata.get("model", {}), model)
            _check_model_shapes(self.path, self.model_state, model)
            _check_values(self.path, "weight", self.model_state)
        if optimizer is not None:
            stored = self.metadata.get("optimizer")
            if stored != type(optimizer).__name__:
                raise CheckpointError(f"checkpoint {self.path!r} holds {stored or 'no'} optimizer "
                                      f"state, not {type(optimizer).__name__}")
            _check_optimizer_shapes(self.path, self.optimizer_state, optimizer)
            _check_values(self.path, "optimizer entry", self.optimizer_state, counters_allowed=True)
        if model is not None:
            model.load_state_dict(self.model_state)
        if optimizer is not None:
            optimizer.load_state_dict(self.optimizer_state)
        return self.metadata


def describe_model(model):
    """The identity of a model as stored in metadata (``describe()`` when the model has one)."""
    if hasattr(model, "describe"):
        return model.describe()
    return {"model": type(model).__name__}


def save_checkpoint(path, model, optimizer=None, metadata=None, extra=None):
    """Write ``model`` (and ``optimizer``) state, JSON-serialisable ``metadata`` and
    ``extra`` arrays (name -> array) to ``path``."""
    arrays = {MODEL_PREFIX + k: v for k, v in model.state_dict().items()}
    if optimizer is not None:
        arrays.update({OPTIM_PREFIX + k: v for k, v in optimizer.state_dict().items()})
    arrays.update({EXTRA_PREFIX + k: np.asarray(v) for k, v in (extra or {}).items()})
    info = {"format": FORMAT, "model": describe_model(model),
            "optimizer": type(optimizer).__name__ if optimizer is not None else None,
            **(metadata or {})}
    arrays[METADATA_KEY] = np.array(json.dumps(info))
    atomic_write(path, lambda f: np.savez(f, **arrays))
    return path


def read_checkpoint(path) -> Checkpoint:
    """Read and validate an archive without loading it into anything."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise CheckpointError(f"{path!r} is a folder; give the checkpoint file in it (e.g. best.npz)")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint {path!r} does not exist")
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic == b"\x93NUMPY":
        raise CheckpointError(f"{path!r} is a single NumPy array (.npy), not a tinyseg checkpoint (.npz archive)")
    if magic[:4] != b"PK\x03\x04":
        raise CheckpointError(f"{path!r} is not a tinyseg checkpoint (.npz archive)"
                              + ("; the file is empty" if not magic else ""))
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError, NotImplementedError,
            zlib.error, struct.error) as err:
        reason = "it holds Python objects, which tinyseg never loads" if "pickle" in str(err) else err
        raise CheckpointError(f"{path!r} is not a readable tinyseg checkpoint (damaged or truncated "
                              f".npz: {reason})") from None
    try:
        metadata = json.loads(str(arrays.pop(METADATA_KEY)))
    except (KeyError, ValueError, RecursionError) as err:
        raise CheckpointError(f"{path!r} is not a tinyseg checkpoint (no JSON metadata entry)") from err
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise CheckpointError(f"{path!r} is not a tinyseg checkpoint (format "
                              f"{metadata.get('format') if isinstance(metadata, dict) else None!r}, "
                              f"expected {FORMAT!r})")

    def with_prefix(prefix):
        return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
    return Checkpoint(path, metadata, with_prefix(MODEL_PREFIX), with_prefix(OPTIM_PREFIX),
                      with_prefix(EXTRA_PREFIX))


def _check_same_model(path, stored, model):
    """Raise naming both models when the checkpoint describes a different architecture."""
    current = describe_model(model)
    keys = [k for k in ("model", "preset", "n_classes", "in_channels", "config") if k in current]
    if any(stored.get(k) != current[k] for k in keys):
        def name(d):
            return " ".join(f"{k}={d.get(k)!r}" for k in keys)
        raise CheckpointError(f"checkpoint {path!r} holds a different model: {name(stored)}; "
                              f"the model given is {name(current)}")


def _check_model_shapes(path, model_state, model):
    """Every stored array must exist in the model with the same shape, and vice versa."""
    own = dict(model.named_parameters())
    own.update(model.named_buffers())
    missing = sorted(set(own) - set(model_state))
    unexpected = sorted(set(model_state) - set(own))
    wrong = [f"{k}: checkpoint {tuple(v.shape)} vs model {own[k].shape}"
             for k, v in model_state.items() if k in own and tuple(v.shape) != own[k].shape]
    if missing or unexpected or wrong:
        raise CheckpointError(f"checkpoint {path!r} does not fit the model: missing {missing}, "
                              f"unexpected {unexpected}, shape mismatches {wrong}")


def _check_values(path, what, arrays, counters_allowed=False):
    """Stored arrays must be finite floating point (an optimizer's step counters may be
    integers): a NaN weight would segment nothing."""
    for key, value in arrays.items():
        if counters_allowed and value.dtype.kind in "iu" and value.ndim == 0:
            continue
        if value.dtype.kind != "f":
            raise CheckpointError(f"checkpoint {path!r}: {what} {key!r} holds {value.dtype} values, "
                                  "expected floating point; the file is damaged or not from tinyseg")
        if not np.isfinite(value).all():
            raise CheckpointError(f"checkpoint {path!r}: {what} {key!r} holds NaN or infinite values; "
                                  "use an earlier checkpoint of the run")


def _check_optimizer_shapes(path, optim_state, optimizer):
    """Per-parameter buffers are stored as "<index>.<name>"; each must match its parameter."""
    for key, value in optim_state.items():
        index, _, _ = key.partition(".")
        if not index.isdigit() or np.ndim(value) == 0:
            continue
        i = int(index)
        if i >= len(optimizer.params) or tuple(value.shape) != optimizer.params[i].shape:
            expected = optimizer.params[i].shape if i < len(optimizer.params) else "no parameter"
            raise CheckpointError(f"checkpoint {path!r}: optimizer entry {key!r} has shape "
                                  f"{tuple(value.shape)}, expected {expected}")


def load_checkpoint(path, model=None, optimizer=None):
    """Read ``path``, load its state into ``model`` / ``optimizer`` when given, return the metadata.

    Raises FileNotFoundError for a missing file, CheckpointError for a file that
    is not a tinyseg checkpoint, that holds another model or preset, or whose
    arrays do not fit (the message names the file and the mismatch).
    """
    return read_checkpoint(path).load_into(model, optimizer)
