"""Splits: paper sizes, proportional small sets, disjointness, determinism."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tinyseg.data import Splits, random_split, split_sizes, two_fold_split


def test_paper_protocol_sizes():
    assert split_sizes(240, val_fraction=0.0) == (200, 0, 40)
    assert split_sizes(240) == (180, 20, 40)
    assert split_sizes(247, n_test=40, val_fraction=0.0) == (207, 0, 40)


def test_small_sets_stay_sane():
    assert split_sizes(1) == (1, 0, 0)
    assert split_sizes(2) == (1, 0, 1)
    assert split_sizes(7) == (5, 1, 1)
    assert split_sizes(12) == (9, 1, 2)
    with pytest.raises(ValueError):
        split_sizes(5, n_test=5)
    with pytest.raises(ValueError):
        split_sizes(0)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 400), seed=st.integers(0, 2 ** 31), val=st.floats(0.0, 0.5))
def test_random_split_partitions_all_images(n, seed, val):
    splits = random_split(n, val_fraction=val, seed=seed)
    together = np.concatenate([splits.train, splits.val, splits.test])
    assert sorted(together) == list(range(n))
    assert splits.sizes() == split_sizes(n, val_fraction=val)
    assert len(splits.train) >= 1
    again = random_split(n, val_fraction=val, seed=seed)
    for a, b in zip((splits.train, splits.val, splits.test), (again.train, again.val, again.test)):
        np.testing.assert_array_equal(a, b)


def test_seed_changes_the_split_but_not_its_sizes():
    a, b = random_split(240, seed=0), random_split(240, seed=1)
    assert a.sizes() == b.sizes()
    assert not np.array_equal(a.test, b.test)


def test_test_set_does_not_depend_on_validation_share():
    np.testing.assert_array_equal(random_split(100, val_fraction=0.0, seed=3).test,
                                  random_split(100, val_fraction=0.3, seed=3).test)


def test_two_fold_split_by_parity():
    fold0, fold1 = two_fold_split(11, 0, val_fraction=0.0), two_fold_split(11, 1, val_fraction=0.0)
    assert list(fold0.test) == [0, 2, 4, 6, 8, 10] and list(fold0.train) == [1, 3, 5, 7, 9]
    np.testing.assert_array_equal(fold0.test, fold1.train)
    with_val = two_fold_split(11, 1, val_fraction=0.2, seed=5)
    assert len(with_val.val) == 1 and set(with_val.val) | set(with_val.train) == set(fold1.train)
    with pytest.raises(ValueError):
        two_fold_split(10, 2)
    survivors = two_fold_split(np.array([0, 1, 3, 4, 7]), 0, val_fraction=0.0)
    assert list(survivors.test) == [0, 3] and list(survivors.train) == [1, 2, 4]


def test_overlapping_splits_are_rejected():
    with pytest.raises(ValueError, match="overlap"):
        Splits(train=[0, 1], val=[], test=[1])
