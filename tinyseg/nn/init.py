"""Weight initialisers; each fills a parameter in place from a NumPy Generator."""
from __future__ import annotations

import numpy as np

from ..backend import to_device


def _fill(param, values):
    param.data = to_device(values.astype(param.dtype), param.device)
    return param


def fan_in(param):
    return int(np.prod(param.shape[1:]))


def normal_(param, std, rng, mean=0.0):
    """N(mean, std^2) (the paper's convolution init, Table 1: std 0.1)."""
    return _fill(param, rng.normal(mean, std, size=param.shape))


def uniform_(param, bound, rng):
    """U(-bound, bound) (the paper's ReNet init, Table 1: bound 0.4)."""
    return _fill(param, rng.uniform(-bound, bound, size=param.shape))


def he_normal_(param, rng, fan=None):
    """He et al. 2015: N(0, 2 / fan_in), which keeps ReLU activations' variance constant."""
    return normal_(param, np.sqrt(2.0 / (fan or fan_in(param))), rng)


def zeros_(param):
    return _fill(param, np.zeros(param.shape))


_default = np.random.default_rng(0)


def seed(value):
    """Reseed the generator layers use when they are not given one."""
    global _default
    _default = np.random.default_rng(value)


def default_rng(rng=None):
    return _default if rng is None else rng
