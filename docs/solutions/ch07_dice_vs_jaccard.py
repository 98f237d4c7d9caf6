"""Chapter 7, exercise 1: two methods that mean Dice and mean Jaccard rank in opposite order.

    python docs/solutions/ch07_dice_vs_jaccard.py

Per image J = D / (2 - D), convex in D: averaging rewards spread. Method A is perfect on
one image and misses the other entirely (Dice 1 and 0: mean Dice 0.5, mean Jaccard 0.5);
method B is mediocre on both (Dice 0.55 each: mean Dice 0.55, mean Jaccard 0.379).
Dice prefers B, Jaccard prefers A. Neither is "better" in general: a clinic that needs
every heart found wants B's consistency, and only the per-image table shows that A
failed one patient completely.
"""
import numpy as np

from tinyseg.app import dice, jaccard


def image_with_dice(d, width=40):
    """(pred, target) rows where class 1 has the Dice score d: |T| = 20 pixels and a
    prediction of 20 pixels overlapping k of them gives Dice k / 20."""
    k = round(d * 20)
    target = np.zeros((1, width), np.int64)
    target[0, :20] = 1
    pred = np.zeros_like(target)
    pred[0, 20 - k:40 - k] = 1
    return pred, target


def method(dices):
    pairs = [image_with_dice(d) for d in dices]
    pred, target = np.stack([p for p, _ in pairs]), np.stack([t for _, t in pairs])
    return dice(pred, target, 2)[1], jaccard(pred, target, 2)[1], dice(pred, target, 2, reduction="none")[:, 1]


dice_a, jaccard_a, table_a = method([1.0, 0.0])
dice_b, jaccard_b, table_b = method([0.55, 0.55])
assert dice_b > dice_a and jaccard_a > jaccard_b
assert np.allclose(table_a, [1.0, 0.0]) and np.allclose(table_b, [0.55, 0.55])
print(f"A: Dice {dice_a:.3f} Jaccard {jaccard_a:.3f} per image {table_a}")
print(f"B: Dice {dice_b:.3f} Jaccard {jaccard_b:.3f} per image {table_b}")
