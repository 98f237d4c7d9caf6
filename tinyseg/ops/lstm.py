"""A single-direction LSTM over a whole sequence, with backpropagation through time.

x (T, B, I) -> hidden states h (T, B, H). Weights follow PyTorch's layout:
w_ih (4H, I), w_hh (4H, H), b_ih and b_hh (4H,), gates stacked in the order
i, f, g, o. At each step, with z = x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh:

    i = sigmoid(z_i)   f = sigmoid(z_f)   g = tanh(z_g)   o = sigmoid(z_o)
    c_t = f * c_{t-1} + i * g
    h_t = o * tanh(c_t)

starting from h = c = 0. ``reverse=True`` runs from the last step to the
first; h_t is still returned at position t.

The input projection of all T steps is one GEMM before the loop; only the
recurrent product h_{t-1} W_hh^T has to wait for the previous step.
"""
from __future__ import annotations

from ..autograd import Function
from ..backend import get_array_module
from . import gpu
from .elementwise import sigmoid_array


class LSTM(Function):
    def __init__(self, reverse=False):
        self.reverse = reverse

    def forward(self, x, w_ih, w_hh, b_ih, b_hh):
        xp = get_array_module(x)
        if x.ndim != 3:
            raise ValueError(f"lstm: input must be (T, B, I), got shape {x.shape}")
        steps, batch, n_in = x.shape
        hidden = w_hh.shape[1]
        expected = {"w_ih": (4 * hidden, n_in), "w_hh": (4 * hidden, hidden),
                    "b_ih": (4 * hidden,), "b_hh": (4 * hidden,)}
        for name, array in zip(expected, (w_ih, w_hh, b_ih, b_hh)):
            if array.shape != expected[name]:
                raise ValueError(f"lstm: {name} has shape {array.shape}, expected {expected[name]} "
                                 f"for input size {n_in} and hidden size {hidden}")
        if gpu.on_gpu(x):
            return gpu.lstm.lstm_forward(self, x, w_ih, w_hh, b_ih, b_hh)
        if self.reverse:
            x = x[::-1]
        # All input projections at once: (T*B, I) @ (I, 4H).
        z_input = (x.reshape(steps * batch, n_in) @ w_ih.T + (b_ih + b_hh)).reshape(steps, batch, 4 * hidden)
        gates = xp.empty_like(z_input)          # activated gates i, f, g, o per step
        cells = xp.empty((steps, batch, hidden), dtype=x.dtype)
        tanh_cells = xp.empty_like(cells)
        hs = xp.empty_like(cells)
        h = xp.zeros((batch, hidden), dtype=x.dtype)
        c = xp.zeros_like(h)
        w_hh_t = xp.ascontiguousarray(w_hh.T)
        for t in range(steps):
            z = z_input[t] + h @ w_hh_t
            a = gates[t]
            a[...] = sigmoid_array(z)                                   # i, f, o (g fixed below)
            a[:, 2 * hidden:3 * hidden] = xp.tanh(z[:, 2 * hidden:3 * hidden])
            i, f, g, o = (a[:, k * hidden:(k + 1) * hidden] for k in range(4))
            c = f * c + i * g
            cells[t] = c
            tanh_cells[t] = xp.tanh(c)
            h = hs[t] = o * tanh_cells[t]
        self.x, self.w_ih, self.w_hh = x, w_ih, w_hh
        self.gates, self.cells, self.tanh_cells, self.hs = gates, cells, tanh_cells, hs
        return hs[::-1] if self.reverse else hs

    def backward(self, gh):
        if gpu.on_gpu(gh):
            return gpu.lstm.lstm_backward(self, gh)
        xp = get_array_module(gh)
        if self.reverse:
            gh = gh[::-1]
        steps, batch, hidden = self.hs.shape
        gz = xp.empty_like(self.gates)           # dL/dz for every step
        dh_next = xp.zeros((batch, hidden), dtype=gh.dtype)
        dc_next = xp.zeros_like(dh_next)
        for t in reversed(range(steps)):
            a = self.gates[t]
            i, f, g, o = (a[:, k * hidden:(k + 1) * hidden] for k in range(4))
            dh = gh[t] + dh_next
            tc = self.tanh_cells[t]
            # h = o tanh(c): do = dh tanh(c); dc gets dh o (1 - tanh^2 c) plus what c_{t+1} sent back
            dc = dh * o * (1 - tc * tc) + dc_next
            c_prev = self.cells[t - 1] if t > 0 else xp.zeros_like(dc)
            dz = gz[t]
            dz[:, 0 * hidden:1 * hidden] = dc * g * i * (1 - i)        # c = f c' + i g
            dz[:, 1 * hidden:2 * hidden] = dc * c_prev * f * (1 - f)
            dz[:, 2 * hidden:3 * hidden] = dc * i * (1 - g * g)
            dz[:, 3 * hidden:4 * hidden] = dh * tc * o * (1 - o)
            dc_next = dc * f
            dh_next = dz @ self.w_hh                                  # z depends on h_{t-1} via W_hh
        gz_flat = gz.reshape(steps * batch, 4 * hidden)
        gx = (gz_flat @ self.w_ih).reshape(self.x.shape)
        if self.reverse:
            gx = gx[::-1]
        g_w_ih = gz_flat.T @ self.x.reshape(steps * batch, -1)
        h_prev = xp.concatenate([xp.zeros((1, batch, hidden), dtype=gh.dtype), self.hs[:-1]])
        g_w_hh = gz_flat.T @ h_prev.reshape(steps * batch, hidden)
        g_b = gz_flat.sum(axis=0)
        return xp.ascontiguousarray(gx), g_w_ih, g_w_hh, g_b, g_b.copy()


def lstm(x, w_ih, w_hh, b_ih, b_hh, reverse=False):
    return LSTM(reverse)(x, w_ih, w_hh, b_ih, b_hh)
