"""Differentiable operations, one module per op family.

Each op is one ``Function`` class (``tinyseg.autograd``) with its CPU path (NumPy and the
Numba kernels in ``cpu/``) and GPU path (the launchers in ``gpu/``) side by side.
Importing this package attaches the operators to ``Tensor`` (``setup_tensor``).
"""
from ..tensor import Tensor
from . import elementwise


def _shape_arg(args):
    """``reshape(2, 3)`` and ``reshape((2, 3))`` alike."""
    return tuple(args[0]) if len(args) == 1 and isinstance(args[0], (tuple, list)) else tuple(args)


def setup_tensor():
    """Give ``Tensor`` its arithmetic operators, indexing and array methods, once, from the ops."""
    e = elementwise
    Tensor.__add__ = lambda self, other: e.add(self, other)
    Tensor.__radd__ = lambda self, other: e.add(other, self)
    Tensor.__sub__ = lambda self, other: e.sub(self, other)
    Tensor.__rsub__ = lambda self, other: e.sub(other, self)
    Tensor.__mul__ = lambda self, other: e.mul(self, other)
    Tensor.__rmul__ = lambda self, other: e.mul(other, self)
    Tensor.__truediv__ = lambda self, other: e.div(self, other)
    Tensor.__rtruediv__ = lambda self, other: e.div(other, self)
    Tensor.__neg__ = e.neg
    Tensor.__pow__ = e.pow
    Tensor.__matmul__ = lambda self, other: e.matmul(self, other)
    Tensor.__rmatmul__ = lambda self, other: e.matmul(other, self)
    Tensor.__getitem__ = e.getitem
    for name in ("exp", "log", "tanh", "sigmoid", "relu", "sum", "mean"):
        setattr(Tensor, name, getattr(e, name))
    Tensor.reshape = lambda self, *shape: e.reshape(self, _shape_arg(shape))
    Tensor.transpose = lambda self, *axes: e.transpose(self, _shape_arg(axes) or None)


setup_tensor()
