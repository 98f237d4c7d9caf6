"""Chapter 3, exercise 3: a stride-2 transposed convolution by pasting kernels.

    python docs/solutions/ch03_transpose_by_hand.py
"""
import numpy as np

import tinyseg as ts
import tinyseg.functional as F

x = np.array([[1.0, 2.0], [3.0, 4.0]])
k = np.arange(9.0).reshape(3, 3)
s = 2
canvas = np.zeros(((2 - 1) * s + 3, (2 - 1) * s + 3))          # (H - 1) * s + kh = 5
for r in range(2):
    for q in range(2):
        canvas[r * s:r * s + 3, q * s:q * s + 3] += x[r, q] * k   # overlaps add up
y = F.conv_transpose2d(ts.tensor(x[None, None]), ts.tensor(k[None, None]), stride=s).numpy()[0, 0]
assert np.allclose(y, canvas)
assert canvas[2, 2] == 1 * 8 + 2 * 6 + 3 * 2 + 4 * 0               # the centre: four kernels overlap
print(canvas)
