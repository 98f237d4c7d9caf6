"""Layers: thin Modules that own parameters and call tinyseg.functional."""
from __future__ import annotations

import numpy as np

from .. import functional as F
from ..ops.renet import DIRECTIONS
from ..tensor import Tensor
from . import init
from .module import Module, Parameter


def _empty(*shape):
    return Parameter(np.zeros(shape, dtype=np.float32))


class Conv2d(Module):
    """Weights (C_out, C_in, k, k), He-normal by default, bias zero."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True, rng=None):
        super().__init__()
        self.stride, self.padding = stride, padding
        self.weight = init.he_normal_(_empty(out_channels, in_channels, kernel_size, kernel_size),
                                      init.default_rng(rng))
        self.bias = _empty(out_channels) if bias else None

    def forward(self, x, relu=False):
        """``relu=True``: relu(conv(x)) as one fused op (see ``tinyseg.ops.conv.Conv2d``)."""
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, relu=relu)

    def extra_repr(self):
        c_out, c_in, k, _ = self.weight.shape
        return f"{c_in}, {c_out}, kernel_size={k}, stride={self.stride}, padding={self.padding}"


class ConvTranspose2d(Module):
    """Weights (C_in, C_out, k, k) as in PyTorch."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True, rng=None):
        super().__init__()
        self.stride, self.padding = stride, padding
        self.weight = init.he_normal_(_empty(in_channels, out_channels, kernel_size, kernel_size),
                                      init.default_rng(rng), fan=in_channels * kernel_size ** 2 // stride ** 2)
        self.bias = _empty(out_channels) if bias else None

    def forward(self, x):
        return F.conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding)

    def extra_repr(self):
        c_in, c_out, k, _ = self.weight.shape
        return f"{c_in}, {c_out}, kernel_size={k}, stride={self.stride}, padding={self.padding}"


class MaxPool2d(Module):
    def __init__(self, kernel_size, stride=None):
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride

    def forward(self, x):
        return F.max_pool2d(x, self.kernel_size, self.stride)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride or self.kernel_size}"


class BatchNorm2d(Module):
    def __init__(self, num_features, momentum=0.1, eps=1e-5):
        super().__init__()
        self.momentum, self.eps = momentum, eps
        self.weight = Parameter(np.ones(num_features, dtype=np.float32))
        self.bias = Parameter(np.zeros(num_features, dtype=np.float32))
        self.register_buffer("running_mean", Tensor(np.zeros(num_features, dtype=np.float32)))
        self.register_buffer("running_var", Tensor(np.ones(num_features, dtype=np.float32)))

    def forward(self, x):
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            self.training, self.momentum, self.eps)

    def extra_repr(self):
        return f"{self.weight.shape[0]}, momentum={self.momentum}, eps={self.eps}"


class ReLU(Module):
    def forward(self, x):
        return F.relu(x)


class Sequential(Module):
    def __init__(self, *modules):
        super().__init__()
        for i, m in enumerate(modules):
            setattr(self, str(i), m)

    def __iter__(self):
        return iter(self._modules.values())

    def __len__(self):
        return len(self._modules)

    def __getitem__(self, i):
        return list(self._modules.values())[i]

    def forward(self, x):
        for m in self._modules.values():
            x = m(x)
        return x


class LSTM(Module):
    """One LSTM direction over (T, B, input_size) -> (T, B, hidden_size).

    Parameters ``weight_ih`` (4H, I), ``weight_hh`` (4H, H), ``bias_ih``,
    ``bias_hh`` (4H,), gates i, f, g, o; initialised U(-1/sqrt(H), 1/sqrt(H))
    like PyTorch unless ``init_bound`` is given.
    """

    def __init__(self, input_size, hidden_size, reverse=False, init_bound=None, rng=None):
        super().__init__()
        self.reverse = reverse
        bound = init_bound if init_bound is not None else 1.0 / np.sqrt(hidden_size)
        rng = init.default_rng(rng)
        self.weight_ih = init.uniform_(_empty(4 * hidden_size, input_size), bound, rng)
        self.weight_hh = init.uniform_(_empty(4 * hidden_size, hidden_size), bound, rng)
        self.bias_ih = init.uniform_(_empty(4 * hidden_size), bound, rng)
        self.bias_hh = init.uniform_(_empty(4 * hidden_size), bound, rng)

    def weights(self):
        return (self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)

    def forward(self, x):
        return F.lstm(x, *self.weights(), reverse=self.reverse)

    def extra_repr(self):
        return f"{self.weight_ih.shape[1]}, {self.weight_hh.shape[1]}, reverse={self.reverse}"


class ReNet(Module):
    """A ReNet layer group: horizontal then vertical bidirectional LSTM sweeps over patches.

    (N, in_channels, H, W) -> (N, 2*hidden_size, H/ph, W/pw). Sub-modules
    ``h_fwd``, ``h_bwd`` (input in_channels*ph*pw) and ``v_fwd``, ``v_bwd``
    (input 2*hidden_size); see ``tinyseg.ops.renet`` for the sweep order.
    """

    def __init__(self, in_channels, hidden_size, patch=(2, 2), init_bound=None, rng=None):
        super().__init__()
        self.patch = tuple(patch)
        patch_size = in_channels * self.patch[0] * self.patch[1]
        for name in DIRECTIONS:
            n_in = patch_size if name.startswith("h") else 2 * hidden_size
            setattr(self, name, LSTM(n_in, hidden_size, reverse=name.endswith("bwd"),
                                     init_bound=init_bound, rng=rng))

    def forward(self, x):
        params = {name: getattr(self, name).weights() for name in DIRECTIONS}
        return F.renet(x, params, self.patch)

    def extra_repr(self):
        return f"hidden_size={self.h_fwd.weight_hh.shape[1]}, patch={self.patch}"
