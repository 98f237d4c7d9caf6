"""Chapter 1, exercise 1: Sin and Max as Functions, checked against finite differences.

    python docs/solutions/ch01_sin_max.py
"""
import numpy as np

import tinyseg as ts
from tinyseg.autograd import Function


class Sin(Function):
    saves = ("x",)

    def forward(self, x):
        self.save(x=x)
        return np.sin(x)

    def backward(self, gy):          # d(sin x) = cos x dx
        return gy * np.cos(self.x)


class Max(Function):
    """The maximum along ``axis`` (removed). The whole gradient of a slice goes to its
    first maximum: nudging any other element does not change the output."""

    saves = ("winner", "shape")

    def __init__(self, axis):
        self.axis = axis

    def forward(self, x):
        winner = np.argmax(x, axis=self.axis)               # first maximum of each slice
        self.save(winner=winner, shape=x.shape)
        return np.take_along_axis(x, np.expand_dims(winner, self.axis), self.axis).squeeze(self.axis)

    def backward(self, gy):
        gx = np.zeros(self.shape, gy.dtype)
        np.put_along_axis(gx, np.expand_dims(self.winner, self.axis), np.expand_dims(gy, self.axis), self.axis)
        return gx


def sin(x):
    return Sin()(x)


def max_along(x, axis):
    return Max(axis)(x)


rng = np.random.default_rng(0)
x = ts.tensor(rng.standard_normal((3, 4)), requires_grad=True)
assert np.allclose(sin(x).numpy(), np.sin(x.numpy()))
assert ts.gradcheck(sin, [x])
for axis in (0, 1):
    assert np.array_equal(max_along(x, axis).numpy(), x.numpy().max(axis=axis))
    assert ts.gradcheck(lambda t: max_along(t, axis), [x])

# Chained: sin of a maximum, through both backward methods
assert ts.gradcheck(lambda t: sin(max_along(t, 1)) * 3.0, [x])

# Max fails gradcheck at a tie: the function has a kink there, the derivative does not
# exist, and the central difference gives each tied element half. Sin is smooth everywhere.
tie = ts.tensor(np.array([[2.0, 2.0, 1.0]]), requires_grad=True)
try:
    ts.gradcheck(lambda t: max_along(t, 1), [tie])
    raise AssertionError("a tie passed")
except ts.GradcheckError as err:
    assert "analytic 0," in str(err) and "(2 of 3 elements" in str(err)
print("Sin and Max pass gradcheck; Max fails only at a tie, a kink of the function")
