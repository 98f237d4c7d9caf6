"""Optimisers: momentum SGD (the H-ReNet paper's rule) and Adam."""
from __future__ import annotations

import numpy as np

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


class SGD(Optimizer):
    """Momentum SGD as written in the paper (Sect. 4):

        V <- mu * V - lr * (grad + weight_decay * W)
        W <- W + V
    """

    def __init__(self, params, lr, momentum=0.9, weight_decay=0.0):
        super().__init__(params, lr)
        self.momentum, self.weight_decay = momentum, weight_decay

    def update(self, p, grad, state):
        if self.weight_decay:
            grad = grad + self.weight_decay * p.data
        if "velocity" not in state:
            state["velocity"] = get_array_module(p.data).zeros_like(p.data)
        v = state["velocity"]
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
        if self.weight_decay:
            grad = grad + self.weight_decay * p.data
        if "m" not in state:
            state.update(m=xp.zeros_like(p.data), v=xp.zeros_like(p.data), t=0)
        b1, b2 = self.betas
        state["t"] += 1
        m, v, t = state["m"], state["v"], state["t"]
        m *= b1
        m += (1 - b1) * grad
        v *= b2
        v += (1 - b2) * grad * grad
        m_hat = m / (1 - b1 ** t)
        v_hat = v / (1 - b2 ** t)
        p.data -= self.lr * m_hat / (xp.sqrt(v_hat) + self.eps)
