"""Train / validation / test splits as sorted index arrays.

Paper protocol (H-ReNet, Sect. 4.3): the images left after dropping the
overexposed ones (240 of 247) are split at random into 200 training and 40
test images.  Here the test share defaults to 1/6, which gives exactly 200/40
for 240 images and scales down to small sets; a validation split (default 10%)
is then carved out of the training part.  The alternative SCR protocol is a
2-fold split by the parity of the image index.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PAPER_TEST_FRACTION = 40 / 240
DEFAULT_VAL_FRACTION = 0.1


@dataclass(frozen=True)
class Splits:
    """Disjoint, sorted int64 index arrays into a dataset."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def __post_init__(self):
        for name in ("train", "val", "test"):
            object.__setattr__(self, name, np.sort(np.asarray(getattr(self, name), dtype=np.int64)))
        together = np.concatenate([self.train, self.val, self.test])
        if np.unique(together).size != together.size:
            raise ValueError("train, val and test splits overlap")

    def sizes(self) -> tuple[int, int, int]:
        return len(self.train), len(self.val), len(self.test)


def _round(x: float) -> int:
    return int(np.floor(x + 0.5))


def split_sizes(n: int, n_test=None, test_fraction: float = PAPER_TEST_FRACTION,
                n_val=None, val_fraction: float = DEFAULT_VAL_FRACTION) -> tuple[int, int, int]:
    """Sizes ``(n_train, n_val, n_test)`` for ``n`` images.

    Fractions are rounded; with at least 2 images a nonzero fraction keeps at
    least one image, and at least one image is always left for training.
    Explicit counts ``n_test`` / ``n_val`` override the fractions.
    """
    if n < 1:
        raise ValueError("cannot split an empty dataset")
    if n_test is None:
        n_test = _at_least_one(n, test_fraction)
    if n_test < 0 or n_test >= n:
        raise ValueError(f"n_test={n_test} must leave at least one of {n} images for training")
    rest = n - n_test
    if n_val is None:
        n_val = _at_least_one(rest, val_fraction)
    if n_val < 0 or n_val >= rest:
        raise ValueError(f"n_val={n_val} must leave at least one of {rest} images for training")
    return rest - n_val, n_val, n_test


def _at_least_one(n: int, fraction: float) -> int:
    if not 0 <= fraction < 1:
        raise ValueError(f"split fractions must lie in [0, 1), got {fraction}")
    if fraction == 0 or n < 2:
        return 0
    return min(max(1, _round(n * fraction)), n - 1)


def random_split(n: int, n_test=None, test_fraction: float = PAPER_TEST_FRACTION, n_val=None,
                 val_fraction: float = DEFAULT_VAL_FRACTION, seed: int = 0) -> Splits:
    """Seeded random split.  The test set depends only on ``n``, its size and
    ``seed``: changing the validation share never moves a test image."""
    n_train, n_val, n_test = split_sizes(n, n_test, test_fraction, n_val, val_fraction)
    order = np.random.default_rng(seed).permutation(n)
    return Splits(train=order[n_test + n_val:], val=order[n_test:n_test + n_val], test=order[:n_test])


def two_fold_split(positions, fold: int, n_val=None, val_fraction: float = DEFAULT_VAL_FRACTION,
                   seed: int = 0) -> Splits:
    """Fold 0 tests on the images at even positions 0, 2, 4, ... and trains on
    the odd ones; fold 1 the other way round.  Validation comes out of training.

    ``positions`` is the number of images, or each image's position in the
    complete list before any were excluded, so the folds do not shift when an
    image is dropped.  With all 247 JSRT images in name order, fold 0 tests on
    the odd-numbered images (JPCLN001, JPCLN003, ..., JPCNN001, ...).
    """
    if fold not in (0, 1):
        raise ValueError(f"fold must be 0 or 1, got {fold}")
    positions = np.arange(positions) if np.ndim(positions) == 0 else np.asarray(positions)
    indices = np.arange(len(positions))
    test, train = indices[positions % 2 == fold], indices[positions % 2 != fold]
    if len(test) == 0 or len(train) == 0:
        raise ValueError("a 2-fold split needs images at both even and odd positions")
    n_val = _at_least_one(len(train), val_fraction) if n_val is None else n_val
    if n_val < 0 or n_val >= len(train):
        raise ValueError(f"n_val={n_val} must leave at least one of {len(train)} images for training")
    shuffled = np.random.default_rng(seed).permutation(train)
    return Splits(train=shuffled[n_val:], val=shuffled[:n_val], test=test)


def splits_from_labels(split_of_name: dict, names) -> Splits:
    """Splits from a ``{name: 'train' | 'val' | 'test'}`` mapping."""
    groups = {"train": [], "val": [], "test": []}
    for index, name in enumerate(names):
        groups[split_of_name[name]].append(index)
    return Splits(**groups)
