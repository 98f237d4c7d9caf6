"""The recurrence of an LSTM sweep on the CPU: NumPy, one time step after another.

Arrays as ``tinyseg/ops/lstm.py`` and the GPU's ``gpu/lstm.py`` take them, in natural
time order: z_input and gates (D, T, B, 4H), cells, tanh(cells), hidden states and their
gradients (D, T, B, H), w_hh (D, 4H, H); direction d runs from the last step to the
first when ``reverse[d]``. Each step is a (B, H) @ (H, 4H) GEMM plus elementwise gate
math over the whole batch.
"""
from __future__ import annotations

import numpy as np

from ..elementwise import sigmoid_array


def visiting_order(steps, reverse):
    return range(steps - 1, -1, -1) if reverse else range(steps)


def sweep_forward(z_input, w_hh, reverse):
    """-> (gates, cells, tanh_cells, hs); the formulas are in ``tinyseg/ops/lstm.py``."""
    directions, steps, batch, four_h = z_input.shape
    hidden = four_h // 4
    gates = np.empty_like(z_input)
    cells, tanh_cells, hs = (np.empty((directions, steps, batch, hidden), z_input.dtype) for _ in range(3))
    for d in range(directions):
        h = np.zeros((batch, hidden), z_input.dtype)
        c = np.zeros_like(h)
        w_hh_t = np.ascontiguousarray(w_hh[d].T)
        for t in visiting_order(steps, reverse[d]):
            z = z_input[d, t] + h @ w_hh_t
            a = gates[d, t]
            a[...] = sigmoid_array(z)                                   # i, f, o (g fixed below)
            a[:, 2 * hidden:3 * hidden] = np.tanh(z[:, 2 * hidden:3 * hidden])
            i, f, g, o = (a[:, k * hidden:(k + 1) * hidden] for k in range(4))
            c = f * c + i * g
            cells[d, t] = c
            tanh_cells[d, t] = np.tanh(c)
            h = hs[d, t] = o * tanh_cells[d, t]
    return gates, cells, tanh_cells, hs


def sweep_backward(gh, w_hh, gates, cells, tanh_cells, reverse):
    """gh (D, T, B, H), the gradients of the hidden states -> gz = dL/dz (D, T, B, 4H)."""
    directions, steps, batch, hidden = gh.shape
    gz = np.empty_like(gates)
    for d in range(directions):
        order = list(visiting_order(steps, reverse[d]))
        dh_next = np.zeros((batch, hidden), gh.dtype)
        dc_next = np.zeros_like(dh_next)
        for s in reversed(range(steps)):
            t = order[s]
            i, f, g, o = (gates[d, t, :, k * hidden:(k + 1) * hidden] for k in range(4))
            dh = gh[d, t] + dh_next
            tc = tanh_cells[d, t]
            # h = o tanh(c): do = dh tanh(c); dc gets dh o (1 - tanh^2 c) plus what the next c sent back
            dc = dh * o * (1 - tc * tc) + dc_next
            c_prev = cells[d, order[s - 1]] if s > 0 else np.zeros_like(dc)
            dz = gz[d, t]
            dz[:, 0 * hidden:1 * hidden] = dc * g * i * (1 - i)        # c = f c' + i g
            dz[:, 1 * hidden:2 * hidden] = dc * c_prev * f * (1 - f)
            dz[:, 2 * hidden:3 * hidden] = dc * i * (1 - g * g)
            dz[:, 3 * hidden:4 * hidden] = dh * tc * o * (1 - o)
            dc_next = dc * f
            dh_next = dz @ w_hh[d]                                     # z depends on h_prev via W_hh
    return gz
