"""Optimisers: momentum SGD (the H-ReNet paper's rule) and Adam.

On the CPU each rule is one fused Numba pass over a parameter (``sgd_kernel``,
``adam_kernel``), in the parameter's dtype; as NumPy expressions it would be eight to ten
passes and as many temporary arrays per parameter, which for a model of a few dozen small
tensors costs more in calls than in arithmetic. On the GPU the same formulas run as CuPy
array expressions. ``adam_kernel`` is compiled with ``error_model="numpy"``: Numba's default
checks each float division for a zero divisor (to raise as Python does), and that branch
kept the loop from vectorising (4.8 ns an element against 0.6 ns, float32); a zero divisor
now gives inf or NaN, as the NumPy expressions do.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from .autograd import no_grad
from .backend import as_numpy, get_array_module, to_device


class Optimizer:
    def __init__(self, params, lr):
        self.params = list(params)
        if not self.params:
            raise ValueError(f"{type(self).__name__} got an empty parameter list")
        if lr <= 0:
            raise ValueError(f"learning rate must be positive, got {lr}")
        self.lr = lr
        self.state = [{} for _ in self.params]

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    def step(self):
        with no_grad():
            for p, state in zip(self.params, self.state):
                if p.grad is not None:
                    self.update(p, p.grad, state)

    def update(self, p, grad, state):
        raise NotImplementedError

    def state_dict(self):
        """Flat name -> NumPy array (plus ``lr``), storable in the same .npz as the weights."""
        out = {"lr": np.asarray(self.lr)}
        for i, state in enumerate(self.state):
            for k, v in state.items():
                out[f"{i}.{k}"] = as_numpy(v) if hasattr(v, "shape") else np.asarray(v)
        return out

    def load_state_dict(self, flat):
        self.lr = float(flat["lr"])
        self.state = [{} for _ in self.params]
        for key, value in flat.items():
            if key == "lr":
                continue
            index, name = key.split(".", 1)
            i = int(index)
            if i >= len(self.params):
                raise ValueError(f"optimizer state has entry {key} but only {len(self.params)} parameters")
            p = self.params[i]
            self.state[i][name] = (to_device(np.asarray(value, dtype=p.dtype), p.device)
                                   if np.ndim(value) else value.item())


@njit(nogil=True, cache=True)
def sgd_kernel(p, g, velocity, lr, momentum, weight_decay):
    # One pass over a flat parameter: V <- mu V - lr (g + wd W), then W <- W + V.
    for i in range(p.size):
        step = momentum * velocity[i] - lr * (g[i] + weight_decay * p[i])
        velocity[i] = step
        p[i] += step


@njit(nogil=True, cache=True, error_model="numpy")
def adam_kernel(p, g, m, v, lr, b1, b2, eps, bias1, bias2, weight_decay):
    # One pass over a flat parameter: g <- g + wd W; m <- b1 m + (1 - b1) g;
    # v <- b2 v + (1 - b2) g^2; W <- W - lr (m / bias1) / (sqrt(v / bias2) + eps),
    # with bias1 = 1 - b1^t and bias2 = 1 - b2^t (the bias corrections).
    for i in range(p.size):
        gi = g[i] + weight_decay * p[i]
        mi = b1 * m[i] + (1 - b1) * gi
        vi = b2 * v[i] + (1 - b2) * gi * gi
        m[i] = mi
        v[i] = vi
        p[i] -= lr * (mi / bias1) / (math.sqrt(vi / bias2) + eps)


def fused(p, *arrays):
    """Whether the CPU kernels can update ``p`` in place: NumPy arrays, all C-contiguous, of p's
    dtype (so that their flat views are the arrays themselves)."""
    return all(isinstance(a, np.ndarray) and a.flags.c_contiguous and a.dtype == p.dtype for a in (p, *arrays))


class SGD(Optimizer):
    """Momentum SGD as written in the paper (Sect. 4):

        V <- mu * V - lr * (grad + weight_decay * W)
        W <- W + V
    """

    def __init__(self, params, lr, momentum=0.9, weight_decay=0.0):
        super().__init__(params, lr)
        self.momentum, self.weight_decay = momentum, weight_decay

    def update(self, p, grad, state):
        if "velocity" not in state:
            state["velocity"] = get_array_module(p.data).zeros_like(p.data)
        v = state["velocity"]
        if fused(p.data, grad, v):
            t = p.data.dtype.type
            sgd_kernel(p.data.reshape(-1), grad.reshape(-1), v.reshape(-1), t(self.lr), t(self.momentum),
                       t(self.weight_decay))
            return
        if self.weight_decay:
            grad = grad + self.weight_decay * p.data
        v *= self.momentum
        v -= self.lr * grad
        p.data += v


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) with bias-corrected moment estimates:

        m <- b1 m + (1 - b1) g;   v <- b2 v + (1 - b2) g^2
        W <- W - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr)
        self.betas, self.eps, self.weight_decay = betas, eps, weight_decay

    def update(self, p, grad, state):
        xp = get_array_module(p.data)
        if "m" not in state:
            state.update(m=xp.zeros_like(p.data), v=xp.zeros_like(p.data), t=0)
        b1, b2 = self.betas
        state["t"] += 1
        m, v, t = state["m"], state["v"], state["t"]
        if fused(p.data, grad, m, v):
            d = p.data.dtype.type
            adam_kernel(p.data.reshape(-1), grad.reshape(-1), m.reshape(-1), v.reshape(-1), d(self.lr), d(b1), d(b2),
                        d(self.eps), d(1 - b1 ** t), d(1 - b2 ** t), d(self.weight_decay))
            return
        if self.weight_decay:
            grad = grad + self.weight_decay * p.data
        m *= b1
        m += (1 - b1) * grad
        v *= b2
        v += (1 - b2) * grad * grad
        m_hat = m / (1 - b1 ** t)
        v_hat = v / (1 - b2 ** t)
        p.data -= self.lr * m_hat / (xp.sqrt(v_hat) + self.eps)
