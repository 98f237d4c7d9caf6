"""``Module`` and ``Parameter``: named, movable, savable collections of tensors."""
from __future__ import annotations

from collections import OrderedDict

import numpy as np

from ..backend import as_numpy, get_array_module, to_device
from ..tensor import Tensor


class Parameter(Tensor):
    """A tensor that a Module trains: it always requires gradients."""

    def __init__(self, data):
        super().__init__(data, requires_grad=True)

    def __repr__(self):
        return f"Parameter(shape={self.shape}, dtype={self.dtype}, device={self.device!r})"


class Module:
    """Base class of layers and models.

    Assigning a Parameter or a Module to an attribute registers it under the
    attribute's name; ``register_buffer`` registers state that is saved but
    not trained (batch-norm running statistics). Names nest with dots, as
    in PyTorch, so state dicts convert key by key.
    """

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise RuntimeError(f"{type(self).__name__}.__init__ must call super().__init__() first")
        for registry in (self._parameters, self._buffers, self._modules):
            registry.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        object.__setattr__(self, name, value)

    def register_buffer(self, name, tensor: Tensor):
        setattr(self, name, tensor)
        self._buffers[name] = tensor

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def forward(self, *args, **kwargs):
        raise NotImplementedError

    # -- traversal ----------------------------------------------------------------
    def named_modules(self, prefix=""):
        yield prefix, self
        for name, module in self._modules.items():
            yield from module.named_modules(f"{prefix}{name}.")

    def named_parameters(self):
        for prefix, module in self.named_modules():
            for name, p in module._parameters.items():
                yield prefix + name, p

    def named_buffers(self):
        for prefix, module in self.named_modules():
            for name, b in module._buffers.items():
                yield prefix + name, b

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def children(self):
        return list(self._modules.values())

    # -- modes and devices ---------------------------------------------------------
    def train(self, mode=True):
        for _, module in self.named_modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self):
        for p in self.parameters():
            p.grad = None

    def to(self, device):
        """Move every parameter and buffer to ``device`` in place (optimizers keep working)."""
        for t in self._tensors():
            t.data = to_device(t.data, device)
            if t.grad is not None:
                t.grad = to_device(t.grad, device)
        return self

    def astype(self, dtype):
        """Cast every parameter and buffer (float64 for gradient checks)."""
        for t in self._tensors():
            t.data = t.data.astype(dtype)
            t.grad = None
        return self

    def _tensors(self):
        return [t for _, t in self.named_parameters()] + [t for _, t in self.named_buffers()]

    # -- state ---------------------------------------------------------------------
    def state_dict(self):
        """Name -> NumPy copy of every parameter and buffer."""
        state = OrderedDict((name, as_numpy(p.data).copy()) for name, p in self.named_parameters())
        state.update((name, as_numpy(b.data).copy()) for name, b in self.named_buffers())
        return state

    def load_state_dict(self, state, strict=True):
        """Copy arrays into this module's tensors, keeping their device and dtype.

        Raises KeyError listing missing and unexpected keys (when ``strict``) and
        ValueError naming every shape mismatch; nothing is changed on error.
        """
        own = dict(self.named_parameters())
        own.update(self.named_buffers())
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        if strict and (missing or unexpected):
            raise KeyError(f"{type(self).__name__}.load_state_dict: missing keys {missing}, "
                           f"unexpected keys {unexpected}")
        mismatched = [f"{k}: checkpoint {tuple(np.shape(state[k]))} vs model {own[k].shape}"
                      for k in own if k in state and tuple(np.shape(state[k])) != own[k].shape]
        if mismatched:
            raise ValueError(f"{type(self).__name__}.load_state_dict: shape mismatch for "
                             + "; ".join(mismatched))
        for k, t in own.items():
            if k in state:
                xp = get_array_module(t.data)
                t.data = xp.asarray(to_device(np.asarray(state[k]), t.device), dtype=t.dtype)
        return self

    def __repr__(self):
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        for name, module in self._modules.items():
            lines.append(f"  ({name}): " + repr(module).replace("\n", "\n  "))
        return lines[0] + (")" if len(lines) == 1 else "\n" + "\n".join(lines[1:]) + "\n)")

    def extra_repr(self):
        return ""
