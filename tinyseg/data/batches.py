"""Mini-batches for training and evaluation."""
from __future__ import annotations

import numpy as np


def iterate_batches(images, labels, indices, batch_size: int, shuffle: bool = True, seed: int = 0,
                    augment=None, drop_last: bool = False, shard=(0, 1)):
    """Yield ``(x, y)`` with x float32 (B, 1, H, W) and y int64 (B, H, W).

    ``indices`` picks the images (e.g. ``dataset.train``); with ``shuffle``
    their order is a seeded permutation (pass a new ``seed`` each epoch, as the
    paper reshuffles before every epoch).  ``augment(image, labels, rng)``, for
    instance an :class:`~tinyseg.data.augment.Augmentation`, is applied to each
    pair with a generator seeded by ``seed`` and the pair's place in the epoch, so
    an image is augmented the same way whoever draws it.

    ``shard=(rank, ranks)`` yields only the rank-th of ``ranks`` contiguous parts of
    every batch (data-parallel training: together the ranks see each batch once; a
    part may be empty when a batch has fewer images than there are ranks).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    indices = np.asarray(indices, dtype=np.intp)
    rng = np.random.default_rng(seed)
    if shuffle:
        indices = rng.permutation(indices)
    stop = len(indices) - len(indices) % batch_size if drop_last else len(indices)
    rank, ranks = shard
    for start in range(0, stop, batch_size):
        n = min(batch_size, stop - start)
        first, last = start + rank * n // ranks, start + (rank + 1) * n // ranks
        chosen = indices[first:last]
        x, y = images[chosen].astype(np.float32), labels[chosen].astype(np.int64)
        if augment is not None:
            for k in range(len(chosen)):
                x[k], y[k] = augment(x[k], y[k], np.random.default_rng((seed, first + k)))
        yield x[:, None], y
