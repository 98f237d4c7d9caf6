"""Contour distances on hand-made label maps with known distances, and their summaries."""
import math

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from tinyseg.app.evaluate import image_scores, summarise
from tinyseg.app.metrics import contour, contour_distances

NAMES = ("background", "lungs", "heart")


def test_contour_is_the_outer_ring_of_a_region():
    region = np.zeros((7, 7), bool)
    region[1:6, 1:6] = True
    ring = region.copy()
    ring[2:5, 2:5] = False
    np.testing.assert_array_equal(contour(region), ring)            # 16 pixels of a 5 x 5 square
    edge = np.ones((3, 4), bool)                                     # outside the image is outside
    np.testing.assert_array_equal(contour(edge), [[1, 1, 1, 1], [1, 0, 0, 1], [1, 1, 1, 1]])


def test_single_pixels_give_their_distance_in_pixels_and_mm():
    pred, target = np.zeros((12, 12), int), np.zeros((12, 12), int)
    pred[5, 8], target[5, 5] = 2, 2
    mean, hausdorff = contour_distances(pred, target, 3)
    assert mean[2] == 3.0 and hausdorff[2] == 3.0
    mean, hausdorff = contour_distances(pred, target, 3, spacing=(0.5, 2.0))   # columns 2 mm apart
    assert mean[2] == 6.0 and hausdorff[2] == 6.0
    pred[5, 8], pred[8, 9] = 0, 2                                    # 3 rows and 4 columns away
    assert contour_distances(pred, target, 3)[1][2] == 5.0


def test_mean_is_symmetric_and_hausdorff_the_worst_direction():
    pred, target = np.zeros((5, 15), int), np.zeros((5, 15), int)
    pred[2, 2] = 1
    target[2, 2] = target[2, 12] = 1
    # pred -> target: 0; target -> pred: 0 and 10 (mean 5); mean of the two directions 2.5
    mean, hausdorff = contour_distances(pred, target, 3)
    assert mean[1] == 2.5 and hausdorff[1] == 10.0
    swapped = contour_distances(target, pred, 3)
    assert swapped[0][1] == 2.5 and swapped[1][1] == 10.0


def test_square_grown_by_two_pixels():
    target = np.zeros((30, 30), int)
    target[10:20, 10:20] = 2
    pred = np.zeros_like(target)
    pred[8:22, 8:22] = 2
    # every ring pixel is 2 from the other ring along its side, corners 2*sqrt(2) diagonally
    mean, hausdorff = contour_distances(pred, target, 3)
    assert hausdorff[2] == pytest.approx(2 * math.sqrt(2))
    assert 2 < mean[2] < 2 * math.sqrt(2)
    assert contour_distances(target, target, 3)[0][2] == 0.0


def brute_force(pred, target, c, spacing):
    a = np.argwhere(contour(pred == c)) * spacing
    b = np.argwhere(contour(target == c)) * spacing
    d = cdist(a, b)
    return (d.min(axis=1).mean() + d.min(axis=0).mean()) / 2, max(d.min(axis=1).max(), d.min(axis=0).max())


@pytest.mark.parametrize("seed", range(4))
def test_matches_all_pairs_distances_on_random_blobs(seed):
    rng = np.random.default_rng(seed)
    from scipy import ndimage
    pred = ndimage.uniform_filter(rng.random((40, 50)), 7)
    target = ndimage.uniform_filter(rng.random((40, 50)), 7)
    pred = np.digitize(pred, np.quantile(pred, [0.4, 0.8]))
    target = np.digitize(target, np.quantile(target, [0.4, 0.8]))
    spacing = (0.7, 1.3)
    mean, hausdorff = contour_distances(pred, target, 3, spacing=spacing)
    for c in range(3):
        expected = brute_force(pred, target, c, np.array(spacing))
        assert mean[c] == pytest.approx(expected[0]) and hausdorff[c] == pytest.approx(expected[1])


def test_empty_classes():
    nothing = np.zeros((6, 6), int)
    heart = nothing.copy()
    heart[2:4, 2:4] = 2
    mean, hausdorff = contour_distances(nothing, nothing, 3)
    assert mean[2] == 0.0 and hausdorff[2] == 0.0                   # absent from both: perfect
    for pred, target in ((nothing, heart), (heart, nothing)):        # in one only: undefined
        mean, hausdorff = contour_distances(pred, target, 3)
        assert np.isnan(mean[2]) and np.isnan(hausdorff[2])


def test_contour_distance_input_errors():
    with pytest.raises(ValueError, match="one label map"):
        contour_distances(np.zeros((2, 3, 3), int), np.zeros((2, 3, 3), int), 3)
    with pytest.raises(ValueError, match="shape"):
        contour_distances(np.zeros((3, 3), int), np.zeros((3, 4), int), 3)


def test_image_scores_and_summary():
    target = np.zeros((10, 10), int)
    target[2:8, 1:4], target[2:8, 6:9], target[4:7, 4:6] = 1, 1, 2
    shifted = np.roll(target, 1, axis=1)
    no_heart = np.where(target == 2, 0, target)
    per_image = {"perfect": image_scores(target, target, NAMES),
                 "shifted": image_scores(shifted, target, NAMES, spacing_mm=(0.5, 0.5)),
                 "no_heart": image_scores(no_heart, target, NAMES)}
    assert per_image["perfect"]["dice"] == {"lungs": 1.0, "heart": 1.0}
    assert per_image["perfect"]["size"] == [10, 10] and per_image["perfect"]["pixel_spacing_mm"] is None
    assert per_image["perfect"]["hausdorff_mm"] == {"lungs": None, "heart": None}   # pixel size unknown
    shifted_scores = per_image["shifted"]
    assert shifted_scores["hausdorff_px"]["heart"] == 1.0 and shifted_scores["hausdorff_mm"]["heart"] == 0.5
    assert per_image["no_heart"]["dice"]["heart"] == 0.0
    assert per_image["no_heart"]["mean_contour_distance_px"]["heart"] is None

    summary = summarise(per_image, NAMES)
    heart = summary["dice"]["heart"]
    values = [1.0, shifted_scores["dice"]["heart"], 0.0]
    assert heart["mean"] == pytest.approx(np.mean(values)) and heart["std"] == pytest.approx(np.std(values, ddof=1))
    assert (heart["min"], heart["max"], heart["undefined"]) == (0.0, 1.0, 0)
    assert heart["worst"] == ["no_heart", "shifted", "perfect"]       # lowest Dice first
    distance = summary["hausdorff_px"]["heart"]
    assert distance["worst"] == ["shifted", "perfect"] and distance["undefined"] == 1   # largest first
    assert distance["mean"] == 0.5 and distance["max"] == 1.0
    assert summary["hausdorff_mm"]["heart"]["mean"] == 0.5 and summary["hausdorff_mm"]["heart"]["undefined"] == 2
    assert summarise({"a": per_image["perfect"]}, NAMES)["dice"]["lungs"]["std"] == 0.0


def test_summary_keeps_five_worst():
    rng = np.random.default_rng(1)
    per_image = {f"im{i}": {m: {"lungs": float(v), "heart": 1.0} for m in
                            ("dice", "jaccard", "mean_contour_distance_px", "hausdorff_px",
                             "mean_contour_distance_mm", "hausdorff_mm")}
                 for i, v in enumerate(rng.random(9))}
    worst = summarise(per_image, NAMES)["dice"]["lungs"]["worst"]
    assert worst == sorted(per_image, key=lambda n: per_image[n]["dice"]["lungs"])[:5]


def test_only_the_classes_asked_for_are_measured():
    target = np.zeros((14, 14), int)
    target[2:5, 2:5], target[6:9, 6:9] = 1, 2
    mean, hausdorff = contour_distances(np.roll(target, 2, axis=0), target, 3, classes=[2])
    assert np.isnan(mean[0]) and np.isnan(mean[1]) and hausdorff[2] == 2.0


def test_millimetres_on_square_and_oblong_pixels():
    target = np.zeros((12, 12), int)
    target[3:9, 3:7] = 2
    across = np.roll(target, 1, axis=1)                  # one column to the right
    down = np.roll(target, 1, axis=0)                    # one row down
    assert image_scores(across, target, NAMES, (0.5, 2.0))["hausdorff_mm"]["heart"] == 2.0
    assert image_scores(down, target, NAMES, (0.5, 2.0))["hausdorff_mm"]["heart"] == 0.5
    square = image_scores(across, target, NAMES, (0.7, 0.7))
    assert square["mean_contour_distance_mm"]["heart"] == pytest.approx(0.7 * square["mean_contour_distance_px"]["heart"])
