"""Chapter 2, exercise 2: a minimal gradient check, and why its weights must be random.

    python docs/solutions/ch02_my_gradcheck.py
"""
import numpy as np

import tinyseg as ts
from tinyseg.autograd import Function


def my_gradcheck(f, x, eps=1e-6, tol=1e-5, random_weights=True):
    """True when the gradient of sum(f(x) * R) agrees with central differences."""
    x = np.array(x, dtype=np.float64)
    y = f(ts.tensor(x)).numpy()
    R = np.random.default_rng(0).standard_normal(y.shape) if random_weights else np.ones(y.shape)

    def loss(values):
        return float((f(ts.tensor(values)).numpy() * R).sum())

    t = ts.tensor(x, requires_grad=True)
    (f(t) * ts.tensor(R)).sum().backward()
    numeric = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        plus, minus = x.copy(), x.copy()
        plus[i] += eps
        minus[i] -= eps
        numeric[i] = (loss(plus) - loss(minus)) / (2 * eps)
    return bool(np.all(np.abs(t.grad - numeric) <= tol * (1 + np.abs(numeric))))


class Square(Function):
    saves = ("x",)

    def forward(self, x):
        self.save(x=x)
        return x * x

    def backward(self, gy):
        return gy * self.x           # wrong: misses the factor 2


class GoodSquare(Square):
    def backward(self, gy):
        return 2 * gy * self.x


class Flip(Function):
    def forward(self, x):
        return x[::-1].copy()

    def backward(self, gy):
        return gy                    # wrong: should be gy[::-1]


x = np.array([0.5, -1.0, 2.0, 1.5])
assert my_gradcheck(lambda t: GoodSquare()(t), x)
assert not my_gradcheck(lambda t: Square()(t), x)
assert not my_gradcheck(lambda t: Flip()(t), x)
# With R = 1 the loss is sum(flip(x)) = sum(x), whose gradient is all ones whichever way the
# backward routes it: the misrouting is invisible.
assert my_gradcheck(lambda t: Flip()(t), x, random_weights=False)
print("my_gradcheck: accepts GoodSquare, rejects Square and Flip; with R = 1 it misses Flip")
