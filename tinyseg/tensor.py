"""``Tensor``: an array plus the gradient bookkeeping of reverse-mode autograd."""
from __future__ import annotations

import numpy as np

from . import autograd
from .backend import as_numpy, check_device, device_of, module_for, to_device


class Tensor:
    """An n-dimensional array (``numpy`` or ``cupy``) that can record how it was made.

    Attributes:
        data: the array.
        grad: the accumulated gradient (an array of the same shape) or None.
        requires_grad: whether gradients flow to this tensor.
        creator: the :class:`~tinyseg.autograd.Function` that produced it (None for leaves).
    """

    __array_priority__ = 100  # numpy scalars/arrays on the left defer to our operators

    def __init__(self, data, requires_grad=False):
        self.data = data
        self.grad = None
        self.requires_grad = bool(requires_grad)
        self.creator = None
        self.output_index = 0     # which output of ``creator`` this is

    # -- basic properties -------------------------------------------------
    shape = property(lambda self: self.data.shape)
    ndim = property(lambda self: self.data.ndim)
    dtype = property(lambda self: self.data.dtype)
    size = property(lambda self: self.data.size)
    device = property(lambda self: device_of(self.data))

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        grad = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor({as_numpy(self.data)!r}, device={self.device!r}{grad})"

    def numpy(self) -> np.ndarray:
        """The data as a NumPy array (copied from the GPU when needed)."""
        return as_numpy(self.data)

    def item(self) -> float:
        return self.numpy().item()

    def to(self, device: str) -> "Tensor":
        """A leaf copy on ``device`` (the tensor itself if already there)."""
        if device == self.device:
            return self
        out = Tensor(to_device(self.data, device), requires_grad=self.requires_grad)
        if self.grad is not None:
            out.grad = to_device(self.grad, device)
        return out

    def detach(self) -> "Tensor":
        return Tensor(self.data)

    # -- autograd -----------------------------------------------------------
    def backward(self, grad=None, retain_graph=False):
        """Back-propagate from this tensor; a scalar needs no ``grad`` (an array or a Tensor)."""
        if isinstance(grad, Tensor):
            grad = grad.data
        autograd.backward(self, grad, retain_graph=retain_graph)

    def _accumulate(self, grad):
        if not self.requires_grad:
            return
        self.grad = grad.copy() if self.grad is None else self.grad + grad

    def zero_grad(self):
        self.grad = None

    # Operators (+, *, @, indexing, .sum(), ...) are attached by ``tinyseg.ops.setup_tensor()``,
    # from the ops that implement them, when ``tinyseg.ops`` is imported.

    @property
    def T(self):
        return self.transpose()


def _default_dtype(source, array, xp):
    if array.dtype.kind in "iub" or (array.dtype == xp.float64 and hasattr(source, "dtype")):
        return array.dtype  # labels stay integer; float64 arrays stay float64 (gradient checks)
    return xp.float32


def tensor(data, requires_grad=False, device="cpu", dtype=None) -> Tensor:
    """Make a leaf tensor on ``device`` ("cpu" or "cuda").

    Python numbers and lists become float32 (or int64 when all integers);
    arrays keep float64 (for gradient checks) and integer or boolean types
    (class labels); other floating arrays become float32.
    """
    if isinstance(data, Tensor):
        data = data.data
    if data is None:
        raise TypeError("tensor(None): expected an array, a number or a (nested) list of numbers")
    xp = module_for(check_device(device))
    array = xp.asarray(to_device(data, device) if hasattr(data, "shape") else data)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"tensor() takes real numbers, got {array.dtype} data"
                        + (" (complex values would lose their imaginary part)" if array.dtype.kind == "c" else ""))
    array = array.astype(dtype or _default_dtype(data, array, xp), copy=False)
    if requires_grad and array.dtype.kind != "f":
        raise TypeError(f"only floating tensors can require gradients, got {array.dtype}")
    return Tensor(array, requires_grad=requires_grad)


def as_tensor(value) -> Tensor:
    """Wrap arrays and Python numbers met as op inputs (never requiring grad)."""
    if isinstance(value, Tensor):
        return value
    if hasattr(value, "shape"):
        return Tensor(value)
    return Tensor(np.asarray(value))


def zeros(shape, device="cpu", dtype=np.float32, requires_grad=False) -> Tensor:
    return Tensor(module_for(device).zeros(shape, dtype=dtype), requires_grad=requires_grad)

