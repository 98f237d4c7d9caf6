"""Elementwise arithmetic, reductions and shape ops.

Each class is one ``Function``; the lowercase function after it is the
public entry point. Backward formulas are written next to each op. Binary
ops broadcast like NumPy; their backward sums the gradient back to each
input's shape (``sum_to_shape``).
"""
from __future__ import annotations

import numpy as np

from ..autograd import Function, sum_to_shape
from ..backend import get_array_module
from ..tensor import Tensor, as_tensor
from . import gpu


def _as_operands(a, b):
    """Turn Python numbers into arrays of the other operand's dtype and device."""
    if not isinstance(a, Tensor) and not hasattr(a, "shape"):
        xp = get_array_module(as_tensor(b).data)
        a = Tensor(xp.asarray(a, dtype=as_tensor(b).dtype))
    if not isinstance(b, Tensor) and not hasattr(b, "shape"):
        xp = get_array_module(as_tensor(a).data)
        b = Tensor(xp.asarray(b, dtype=as_tensor(a).dtype))
    return a, b


class _Binary(Function):
    """A broadcasting binary op; the sum rule sends its gradients back to each input's shape."""

    def sum_to_inputs(self, grad_a, grad_b, shape_a, shape_b):
        """The gradients of a broadcasting op, each summed back to its input's shape."""
        return (sum_to_shape(grad_a, shape_a) if self.needs_grad[0] else None,
                sum_to_shape(grad_b, shape_b) if self.needs_grad[1] else None)


class Add(_Binary):
    saves = ("shape_a", "shape_b")

    def forward(self, a, b):
        self.save(shape_a=a.shape, shape_b=b.shape)
        return a + b

    def backward(self, gy):  # d(a+b) = da + db
        return self.sum_to_inputs(gy, gy, self.shape_a, self.shape_b)


class Sub(_Binary):
    saves = ("shape_a", "shape_b")

    def forward(self, a, b):
        self.save(shape_a=a.shape, shape_b=b.shape)
        return a - b

    def backward(self, gy):  # d(a-b) = da - db
        return self.sum_to_inputs(gy, -gy, self.shape_a, self.shape_b)


class Mul(_Binary):
    saves = ("a", "b")

    def forward(self, a, b):
        self.save(a=a, b=b)
        return a * b

    def backward(self, gy):  # d(ab) = b da + a db
        return self.sum_to_inputs(gy * self.b, gy * self.a, self.a.shape, self.b.shape)


class Div(_Binary):
    saves = ("a", "b")

    def forward(self, a, b):
        self.save(a=a, b=b)
        return a / b

    def backward(self, gy):  # d(a/b) = da / b - a db / b^2
        ga = gy / self.b
        return self.sum_to_inputs(ga, -ga * self.a / self.b, self.a.shape, self.b.shape)


def add(a, b): return Add()(*_as_operands(a, b))
def sub(a, b): return Sub()(*_as_operands(a, b))
def mul(a, b): return Mul()(*_as_operands(a, b))
def div(a, b): return Div()(*_as_operands(a, b))


class Neg(Function):
    def forward(self, x):
        return -x

    def backward(self, gy):
        return -gy


class Pow(Function):
    """x ** p for a constant exponent p."""

    def __init__(self, exponent):
        self.exponent = exponent

    saves = ("x",)

    def forward(self, x):
        self.save(x=x)
        return x ** self.exponent

    def backward(self, gy):  # d(x^p) = p x^(p-1) dx
        return gy * self.exponent * self.x ** (self.exponent - 1)


class Exp(Function):
    saves = ("y",)

    def forward(self, x):
        self.save(y=get_array_module(x).exp(x))
        return self.y

    def backward(self, gy):  # d(e^x) = e^x dx
        return gy * self.y


class Log(Function):
    saves = ("x",)

    def forward(self, x):
        self.save(x=x)
        return get_array_module(x).log(x)

    def backward(self, gy):  # d(log x) = dx / x
        return gy / self.x


class Tanh(Function):
    saves = ("y",)

    def forward(self, x):
        self.save(y=get_array_module(x).tanh(x))
        return self.y

    def backward(self, gy):  # d(tanh x) = (1 - tanh^2 x) dx
        return gy * (1 - self.y * self.y)


def sigmoid_array(x):
    """Numerically stable logistic function: 0.5 * (1 + tanh(x / 2)) never overflows."""
    xp = get_array_module(x)
    return 0.5 * (1 + xp.tanh(0.5 * x))


class Sigmoid(Function):
    saves = ("y",)

    def forward(self, x):
        self.save(y=sigmoid_array(x))
        return self.y

    def backward(self, gy):  # d(s(x)) = s (1 - s) dx
        return gy * self.y * (1 - self.y)


class ReLU(Function):
    """y = max(x, 0). The output doubles as the mask (y > 0 exactly where x > 0), so no
    boolean array is kept. Backward: the gradient passes where the input was positive."""

    saves = ("y",)

    def forward_cpu(self, x):
        self.save(y=x * (x > 0))
        return self.y

    def forward_gpu(self, x):
        self.save(y=gpu.elementwise.relu_forward(x))
        return self.y

    def backward_cpu(self, gy):
        return gy * (self.y > 0)

    def backward_gpu(self, gy):
        return gpu.elementwise.relu_backward(gy, self.y)


def neg(x): return Neg()(x)
def pow(x, exponent): return Pow(exponent)(x)  # noqa: A001 - mirrors the operator name
def exp(x): return Exp()(x)
def log(x): return Log()(x)
def tanh(x): return Tanh()(x)
def sigmoid(x): return Sigmoid()(x)
def relu(x): return ReLU()(x)


class MatMul(Function):
    """Matrix product with NumPy's batching rules (both operands at least 2-D)."""

    saves = ("a", "b")

    def forward(self, a, b):
        if a.ndim < 2 or b.ndim < 2:
            raise ValueError(f"matmul needs operands of at least 2 dimensions, got {a.shape} and {b.shape}")
        self.save(a=a, b=b)
        return a @ b

    def backward(self, gy):  # Y = A B: dA = dY B^T, dB = A^T dY (summed over broadcast batches)
        xp = get_array_module(gy)
        ga = gb = None
        if self.needs_grad[0]:
            ga = sum_to_shape(gy @ xp.swapaxes(self.b, -1, -2), self.a.shape)
        if self.needs_grad[1]:
            gb = sum_to_shape(xp.swapaxes(self.a, -1, -2) @ gy, self.b.shape)
        return ga, gb


def matmul(a, b): return MatMul()(a, b)


def _normalize_axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    return tuple(a % ndim for a in axes)


class Sum(Function):
    def __init__(self, axis=None, keepdims=False):
        self.axis, self.keepdims = axis, keepdims

    saves = ("in_shape",)

    def forward(self, x):
        self.save(in_shape=x.shape)
        return x.sum(axis=_normalize_axes(self.axis, x.ndim), keepdims=self.keepdims)

    def backward(self, gy):  # every summed element receives the output's gradient
        xp = get_array_module(gy)
        if not self.keepdims:
            gy = xp.expand_dims(gy, _normalize_axes(self.axis, len(self.in_shape)))
        return xp.broadcast_to(gy, self.in_shape).copy()


def sum(x, axis=None, keepdims=False):  # noqa: A001
    return Sum(axis, keepdims)(x)


def mean(x, axis=None, keepdims=False):
    x = as_tensor(x)
    count = int(np.prod([x.shape[a] for a in _normalize_axes(axis, x.ndim)]))
    return div(sum(x, axis, keepdims), float(count))


class Reshape(Function):
    def __init__(self, shape):
        self.shape = shape

    saves = ("in_shape",)

    def forward(self, x):
        self.save(in_shape=x.shape)
        return x.reshape(self.shape)

    def backward(self, gy):
        return gy.reshape(self.in_shape)


class Transpose(Function):
    def __init__(self, axes=None):
        self.axes = axes

    saves = ("in_axes",)

    def forward(self, x):
        self.save(in_axes=tuple(range(x.ndim))[::-1] if self.axes is None else self.axes)
        return x.transpose(self.in_axes)

    def backward(self, gy):  # undo the permutation
        return gy.transpose(tuple(np.argsort(self.in_axes).tolist()))


def reshape(x, shape): return Reshape(tuple(shape))(x)
def transpose(x, axes=None): return Transpose(None if axes is None else tuple(axes))(x)


class GetItem(Function):
    """Indexing and slicing; backward scatters the gradient into zeros (adding repeats)."""

    def __init__(self, index):
        self.index = index

    saves = ("in_shape", "in_dtype")

    def forward(self, x):
        self.save(in_shape=x.shape, in_dtype=x.dtype)
        return x[self.index]

    def backward(self, gy):
        xp = get_array_module(gy)
        gx = xp.zeros(self.in_shape, dtype=self.in_dtype)
        if _is_basic_index(self.index):
            gx[self.index] = gy  # slices and integers select each element at most once
        else:
            xp.add.at(gx, self.index, gy)  # fancy indices may repeat: accumulate
        return gx


def _is_basic_index(index):
    parts = index if isinstance(index, tuple) else (index,)
    return all(isinstance(p, (int, slice)) or p is None or p is Ellipsis for p in parts)


def getitem(x, index):
    if isinstance(index, Tensor):
        index = index.data
    elif isinstance(index, tuple):
        index = tuple(i.data if isinstance(i, Tensor) else i for i in index)
    return GetItem(index)(x)


class Concat(Function):
    def __init__(self, axis):
        self.axis = axis

    saves = ("sizes",)

    def forward(self, *xs):
        xp = get_array_module(xs[0])
        self.save(sizes=[x.shape[self.axis] for x in xs])
        return xp.concatenate(xs, axis=self.axis)

    def backward(self, gy):  # each input gets its own slab of the gradient
        xp = get_array_module(gy)
        bounds = np.cumsum(self.sizes)[:-1].tolist()
        return tuple(xp.split(gy, bounds, axis=self.axis))


def concat(xs, axis=0):
    if len(xs) == 0:
        raise ValueError("concat needs at least one tensor")
    return Concat(axis)(*xs)


class Pad(Function):
    """Constant padding; ``pad_width`` is NumPy's ((before, after), ...) per axis."""

    def __init__(self, pad_width, value=0.0):
        self.pad_width, self.value = pad_width, value

    saves = ("slices",)

    def forward(self, x):
        xp = get_array_module(x)
        pad_width = tuple(tuple(p) for p in np.broadcast_to(
            np.asarray(self.pad_width, dtype=int), (x.ndim, 2)).tolist())
        self.save(slices=tuple(slice(b, b + n) for (b, _), n in zip(pad_width, x.shape)))
        return xp.pad(x, pad_width, mode="constant", constant_values=self.value)

    def backward(self, gy):  # the gradient of the padded border is dropped
        return gy[self.slices].copy()


def pad(x, pad_width, value=0.0): return Pad(pad_width, value)(x)
