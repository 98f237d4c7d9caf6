"""Dice, Jaccard and pixel accuracy on hand-made label maps."""
import numpy as np
import pytest

from tinyseg.app.metrics import dice, jaccard, pixel_accuracy

TARGET = np.array([[0, 0, 1, 1],
                   [0, 2, 2, 1],
                   [0, 2, 2, 1]])
PRED = np.array([[0, 1, 1, 1],      # one background pixel called lung
                 [0, 2, 2, 1],
                 [0, 0, 2, 1]])     # one heart pixel called background


def test_dice_by_hand():
    # background: P=4, T=4, both=3 -> 6/8; lungs: P=5, T=4, both 4 -> 8/9; heart: P=3, T=4, both 3 -> 6/7
    np.testing.assert_allclose(dice(PRED, TARGET, 3), [6 / 8, 8 / 9, 6 / 7])


def test_jaccard_by_hand_and_relation_to_dice():
    np.testing.assert_allclose(jaccard(PRED, TARGET, 3), [3 / 5, 4 / 5, 3 / 4])
    d = dice(PRED, TARGET, 3)
    np.testing.assert_allclose(jaccard(PRED, TARGET, 3), d / (2 - d))


def test_pixel_accuracy_by_hand():
    assert pixel_accuracy(PRED, TARGET) == pytest.approx(10 / 12)
    assert pixel_accuracy(TARGET, TARGET, 3) == 1.0


def test_perfect_and_disjoint():
    np.testing.assert_array_equal(dice(TARGET, TARGET, 3), [1, 1, 1])
    a, b = np.zeros((2, 2), int), np.ones((2, 2), int)
    np.testing.assert_array_equal(dice(a, b, 2), [0, 0])
    np.testing.assert_array_equal(jaccard(a, b, 2), [0, 0])


def test_empty_class_rules():
    empty = np.zeros((3, 4), int)
    lungs_only = np.where(TARGET == 1, 1, 0)
    # background: P=12, T=8, both 8 -> 16/20; lungs only in the target: 0.0; heart in neither: 1.0
    np.testing.assert_array_equal(dice(empty, lungs_only, 3), [16 / 20, 0, 1])
    np.testing.assert_array_equal(jaccard(empty, empty, 3), [1, 1, 1])


def test_batch_is_mean_of_images():
    batch_pred, batch_target = np.stack([PRED, TARGET]), np.stack([TARGET, TARGET])
    per_image = dice(batch_pred, batch_target, 3, reduction="none")
    assert per_image.shape == (2, 3)
    np.testing.assert_allclose(per_image[0], dice(PRED, TARGET, 3))
    np.testing.assert_allclose(dice(batch_pred, batch_target, 3), per_image.mean(axis=0))


def test_input_errors():
    with pytest.raises(ValueError, match="shape"):
        dice(PRED, TARGET[:2], 3)
    with pytest.raises(ValueError, match="lie in"):
        dice(PRED, TARGET, 2)
    with pytest.raises(TypeError, match="integer"):
        dice(PRED.astype(float), TARGET, 3)
    with pytest.raises(ValueError, match="reduction"):
        dice(PRED, TARGET, 3, reduction="sum")
