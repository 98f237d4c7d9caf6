"""Chapter 7, exercise 2: pixel accuracy flatters predictors that Dice sees through.

    python docs/solutions/ch07_trivial_predictors.py
"""
import numpy as np

from tinyseg.app import dice, pixel_accuracy

# the label map of chapter 7's SCR example, at 64 x 64: 0 background, 1 lungs, 2 heart
truth = np.zeros((64, 64), np.int64)
truth[10:50, 8:28] = 1
truth[10:50, 36:56] = 1
truth[30:52, 22:42] = 2

predictors = {"all background": np.zeros_like(truth), "all lung": np.ones_like(truth),
              "shifted 3 px": np.roll(truth, 3, axis=1)}
for name, pred in predictors.items():
    scores = dice(pred, truth, 3)
    print(f"{name:15s} accuracy {pixel_accuracy(pred, truth):.2f}  Dice background/lungs/heart "
          + " / ".join(f"{s:.2f}" for s in scores))

background = dice(predictors["all background"], truth, 3)
# Over half the pixels are background: predicting nothing scores more than 0.5 by accuracy
# but 0 on the two classes that matter.
assert pixel_accuracy(predictors["all background"], truth) > 0.5 and background[1] == background[2] == 0
# "All lung" finds every lung pixel, so its lung Dice is far from 0, while accuracy is low.
assert dice(predictors["all lung"], truth, 3)[1] > 0.4 > pixel_accuracy(predictors["all lung"], truth)
# A 3-pixel shift keeps accuracy high; Dice drops most for the narrow structures' edges.
shifted = dice(predictors["shifted 3 px"], truth, 3)
assert pixel_accuracy(predictors["shifted 3 px"], truth) > 0.8 and shifted[1:].min() < 0.9
