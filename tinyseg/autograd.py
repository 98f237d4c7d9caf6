"""Reverse-mode automatic differentiation.

Every differentiable operation is a :class:`Function`. Calling one on
tensors runs ``forward`` on their raw arrays and, when gradients are wanted,
records the function as the ``creator`` of its outputs. The recorded
functions form a directed acyclic graph from the inputs to the loss.

``backward`` walks that graph once, in reverse topological order, so that a
node's gradient is complete (every consumer has contributed) before it is
passed further back. The order is built with an explicit stack, so graphs of
any depth (an LSTM unrolled over thousands of steps) never hit Python's
recursion limit.
"""
from __future__ import annotations

import contextlib
import threading
from typing import NamedTuple

import numpy

from .backend import get_array_module
from .cpu_runtime import blas_on_one_thread

_state = threading.local()


def grad_enabled() -> bool:
    return getattr(_state, "enabled", True)


@contextlib.contextmanager
def no_grad():
    """Run without recording the graph: inference and in-place parameter updates.

    Inside this block no ``Function`` keeps references to its inputs or
    saved arrays, so intermediate results are freed as soon as they are no
    longer used.
    """
    previous = grad_enabled()
    _state.enabled = False
    try:
        yield
    finally:
        _state.enabled = previous


def cpu_blas_scope(on_cpu):
    """Where an op runs on the CPU, the BLAS on one thread while it runs (its idle workers
    would otherwise spin on the cores the Numba kernels need: cpu_runtime)."""
    return blas_on_one_thread() if on_cpu else contextlib.nullcontext()


def sum_to_shape(grad, shape):
    """Sum ``grad`` over the axes that broadcasting expanded to reach ``shape``.

    Broadcasting copies a value along new leading axes and along axes of
    length 1, so the gradient of each original value is the sum over its
    copies.
    """
    if grad.shape == tuple(shape):
        return grad
    extra = grad.ndim - len(shape)
    axes = tuple(range(extra)) + tuple(
        extra + i for i, n in enumerate(shape) if n == 1 and grad.shape[extra + i] != 1
    )
    grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(shape)


def on_gpu(array) -> bool:
    """True for a CuPy array: the op runs its GPU path."""
    return get_array_module(array) is not numpy


class Edge(NamedTuple):
    """A computed input of a function: output ``index`` of the function ``producer``."""
    producer: "Function"
    index: int


class Function:
    """One differentiable operation.

    ``forward(*arrays)`` returns an array or a tuple of arrays and ``backward(*grad_outputs)``
    one gradient per input (``None`` where an input needs none). An op whose NumPy code runs
    unchanged on CuPy arrays defines the two directly; an op with a device-specific path
    defines ``forward_cpu`` / ``forward_gpu`` and ``backward_cpu`` / ``backward_gpu``, and the
    default ``forward`` / ``backward`` pick one by the array module of the first array.

    Hyper-parameters (stride, padding, ...) go to ``__init__``. What ``backward`` needs is
    declared once in the class attribute ``saves`` and stored with ``self.save(...)``,
    which takes exactly those names, so both devices keep the same state.
    """

    saves = ()
    freed = False     # set once backward() has released what the function saved

    def __call__(self, *inputs):
        from .tensor import Tensor, as_tensor

        tensors = [as_tensor(x) for x in inputs]
        self.needs_grad = tuple(t.requires_grad for t in tensors)
        arrays = [t.data for t in tensors]
        with cpu_blas_scope(bool(arrays) and isinstance(arrays[0], numpy.ndarray)):
            outputs = self.forward(*arrays)
        single = not isinstance(outputs, tuple)
        if single:
            outputs = (outputs,)
        outputs = tuple(get_array_module(y).asarray(y) for y in outputs)  # numpy scalars -> 0-d arrays
        record = grad_enabled() and any(self.needs_grad)
        results = tuple(Tensor(y, requires_grad=record) for y in outputs)
        if record:
            # The graph keeps what the backward walk needs and nothing more. A leaf
            # input is kept (its .grad gets filled); a computed input only as an Edge
            # to the function that made it, so its array is freed once nobody else
            # holds it: a Function saves exactly the arrays its derivative needs (ReLU
            # its output, not its input). Outputs are known by shape and dtype.
            self.inputs = tuple(t if t.creator is None else Edge(t.creator, t.output_index) for t in tensors)
            self.output_meta = tuple((y.shape, y.dtype) for y in outputs)
            self.xp = get_array_module(outputs[0])
            for index, y in enumerate(results):
                y.creator, y.output_index = self, index
        return results[0] if single else results

    def save(self, **values):
        """Keep ``values`` for backward as attributes; the names must be exactly ``saves``."""
        if set(values) != set(self.saves):
            raise TypeError(f"{type(self).__name__}.save takes {sorted(self.saves)}, got {sorted(values)}")
        self.__dict__.update(values)

    def saved(self) -> dict:
        """What forward saved, by name."""
        return {name: getattr(self, name) for name in self.saves}

    def forward(self, *arrays):
        return (self.forward_gpu if on_gpu(arrays[0]) else self.forward_cpu)(*arrays)

    def backward(self, *grad_outputs):
        return (self.backward_gpu if on_gpu(grad_outputs[0]) else self.backward_cpu)(*grad_outputs)

    def forward_cpu(self, *arrays):
        raise NotImplementedError(f"{type(self).__name__} has no CPU forward")

    def forward_gpu(self, *arrays):
        raise NotImplementedError(f"{type(self).__name__} has no GPU forward")

    def backward_cpu(self, *grad_outputs):
        raise NotImplementedError(f"{type(self).__name__} has no CPU backward")

    def backward_gpu(self, *grad_outputs):
        raise NotImplementedError(f"{type(self).__name__} has no GPU backward")


def _topological_order(root):
    """Functions reachable from ``root``, each after every function that consumes its outputs."""
    order, visited = [], set()
    stack = [(root.creator, False)]
    while stack:
        fn, expanded = stack.pop()
        if expanded:
            order.append(fn)
            continue
        if id(fn) in visited:
            continue
        if fn.freed:
            raise RuntimeError(
                f"backward() reached a {type(fn).__name__} whose graph an earlier backward() freed "
                "(its saved arrays are gone); pass retain_graph=True to the first backward() to "
                "go through the graph again")
        visited.add(id(fn))
        stack.append((fn, True))
        for edge in fn.inputs:
            if isinstance(edge, Edge) and id(edge.producer) not in visited:
                stack.append((edge.producer, False))
    order.reverse()  # post-order lists producers first; we need consumers first
    return order


def _check_gradient(fn, grad, shape):
    if grad.shape != shape:
        raise RuntimeError(f"{type(fn).__name__}.backward returned a gradient of shape "
                           f"{grad.shape} for an input of shape {shape}")


def backward(root, grad=None, retain_graph=False):
    """Accumulate d(root)/d(leaf) into ``leaf.grad`` for every leaf that requires it."""
    xp = get_array_module(root.data)
    if grad is None:
        if root.data.size != 1:
            raise RuntimeError(
                f"backward() without a gradient needs a scalar, got shape {root.shape}; "
                "pass backward(grad_array) with the output's shape")
        grad = xp.ones_like(root.data)
    else:
        grad = xp.asarray(grad, dtype=root.data.dtype)
        if grad.shape != root.shape:
            raise ValueError(f"gradient shape {grad.shape} does not match output shape {root.shape}")
    if root.creator is None:
        root._accumulate(grad)
        return

    with cpu_blas_scope(xp is numpy):
        _walk(root, grad, retain_graph)


def _walk(root, grad, retain_graph):
    # gradients of computed tensors, by (id of the function that made it, output index)
    grads = {(id(root.creator), root.output_index): grad}
    for fn in _topological_order(root):
        grad_outputs = [grads.pop((id(fn), i), None) for i in range(len(fn.output_meta))]
        if all(g is None for g in grad_outputs):
            continue
        grad_outputs = [fn.xp.zeros(shape, dtype) if g is None else g
                        for g, (shape, dtype) in zip(grad_outputs, fn.output_meta)]
        grad_inputs = fn.backward(*grad_outputs)
        if not isinstance(grad_inputs, tuple):
            grad_inputs = (grad_inputs,)
        for edge, g in zip(fn.inputs, grad_inputs):
            if g is None:
                continue
            if isinstance(edge, Edge):           # a computed tensor: its gradient travels on
                _check_gradient(fn, g, edge.producer.output_meta[edge.index][0])
                key = (id(edge.producer), edge.index)
                grads[key] = grads[key] + g if key in grads else g   # used twice: gradients add up
            elif edge.requires_grad:             # a leaf: the gradient lands in .grad
                _check_gradient(fn, g, edge.shape)
                edge._accumulate(g)
        if not retain_graph:  # free saved arrays and graph edges; outputs still know their maker,
            fn.__dict__.clear()   # so a later backward() through them is an error, not a silent 0
            fn.freed = True
