"""LSTM sweeps over whole sequences, with backpropagation through time.

x (T, B, I) -> hidden states h (T, B, H). Weights follow PyTorch's layout:
w_ih (4H, I), w_hh (4H, H), b_ih and b_hh (4H,), gates stacked in the order
i, f, g, o. At each step, with z = x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh:

    i = sigmoid(z_i)   f = sigmoid(z_f)   g = tanh(z_g)   o = sigmoid(z_o)
    c_t = f * c_{t-1} + i * g
    h_t = o * tanh(c_t)

starting from h = c = 0. A reversed direction runs from the last step to the
first (its "previous" step is t + 1); h_t is still returned at position t.

``LSTM`` runs D = 1 or 2 directions over the same x, each with its own weights and
reverse flag, and returns their hidden states side by side, (T, B, D*H). ``lstm`` is
the one-direction case, ``bidirectional_lstm`` the two-direction case a ReNet sweep
uses. The input projections of all T steps are one GEMM per direction before the
recurrence; only the recurrent product h_{t-1} W_hh^T has to wait for the previous
step. The recurrence runs in ``cpu/lstm.py`` (a Numba kernel per direction that runs every
step, the directions and runs of the batch side by side; on the CPU each direction's task
also does its own input projection) or ``gpu/lstm.py`` (one launch for every step of every
sequence and direction).

Backward, per step in reverse visiting order (dh_next, dc_next from the step visited after):
    dh = gh_t + dz_next W_hh,   dc = dh o (1 - tanh^2 c) + dc_next,
    dz_i = dc g i (1 - i),  dz_f = dc c_prev f (1 - f),  dz_g = dc i (1 - g^2),
    dz_o = dh tanh(c) o (1 - o),  dc_next <- dc f;
then dx = dz W_ih, dW_ih = dz^T x, dW_hh = dz^T h_prev, db_ih = db_hh = sum dz.
"""
from __future__ import annotations

import functools

import numpy

from .. import cpu_runtime
from ..autograd import Function
from ..backend import get_array_module
from . import gpu
from .cpu import lstm as cpu_lstm

WEIGHT_NAMES = ("w_ih", "w_hh", "b_ih", "b_hh")


def check_lstm_shapes(x, weights):
    """x (T, B, I) and (w_ih, w_hh, b_ih, b_hh) for each direction, one after another."""
    if x.ndim != 3:
        raise ValueError(f"lstm: input must be (T, B, I), got shape {x.shape}")
    n_in, hidden = x.shape[2], weights[1].shape[1]
    expected = ((4 * hidden, n_in), (4 * hidden, hidden), (4 * hidden,), (4 * hidden,))
    for k, array in enumerate(weights):
        if array.shape != expected[k % 4]:
            raise ValueError(f"lstm: {WEIGHT_NAMES[k % 4]} has shape {array.shape}, expected {expected[k % 4]} "
                             f"for input size {n_in} and hidden size {hidden}")


class LSTM(Function):
    """Inputs: x, then (w_ih, w_hh, b_ih, b_hh) of each direction; ``reverse[d]`` says whether
    direction d runs from the last step to the first.

    Both devices save, in natural time order: x, the stacked weights w_ih (D, 4H, I) and
    w_hh (D, 4H, H), the activated gates (D, T, B, 4H), the cells c, tanh(c) and the
    hidden states h (D, T, B, H).
    """

    saves = ("x", "w_ih", "w_hh", "gates", "cells", "tanh_cells", "hs")

    def __init__(self, reverse=(False,)):
        self.reverse = tuple(bool(r) for r in reverse)

    def check_weights(self, x, weights):
        if len(weights) != 4 * len(self.reverse):
            raise ValueError(f"lstm: {len(self.reverse)} directions take {4 * len(self.reverse)} weight "
                             f"arrays, got {len(weights)}")
        check_lstm_shapes(x, weights)

    def input_projections(self, x, weights):
        """(w_ih, w_hh) stacked over directions, and z_input = x W_ih^T + b_ih + b_hh (D, T, B, 4H)."""
        self.check_weights(x, weights)
        xp = get_array_module(x)
        steps, batch, n_in = x.shape
        x2 = x.reshape(steps * batch, n_in)
        z_input = xp.stack([x2 @ w_ih.T + (b_ih + b_hh) for w_ih, b_ih, b_hh
                            in zip(weights[0::4], weights[2::4], weights[3::4])])
        z_input = z_input.reshape(len(self.reverse), steps, batch, -1)
        return xp.stack(weights[0::4]), xp.stack(weights[1::4]), z_input

    def forward_cpu(self, x, *weights):
        # The CPU projects the input inside each direction's task (cpu/lstm.py), side by side
        # with the other direction's projection and recurrence.
        self.check_weights(x, weights)
        xp = get_array_module(x)
        w_ih, w_hh = xp.stack(weights[0::4]), xp.stack(weights[1::4])
        bias = xp.stack([b_ih + b_hh for b_ih, b_hh in zip(weights[2::4], weights[3::4])])
        return self.finish(x, w_ih, w_hh, cpu_lstm.sweep_forward(x, w_ih, w_hh, bias, self.reverse))

    def forward_gpu(self, x, *weights):
        w_ih, w_hh, z_input = self.input_projections(x, weights)
        return self.finish(x, w_ih, w_hh, gpu.lstm.sweep_forward(z_input, w_hh, self.reverse))

    def finish(self, x, w_ih, w_hh, states):
        gates, cells, tanh_cells, hs = states
        self.save(x=x, w_ih=w_ih, w_hh=w_hh, gates=gates, cells=cells, tanh_cells=tanh_cells, hs=hs)
        return hs[0] if len(hs) == 1 else get_array_module(hs).concatenate(list(hs), axis=2)

    def backward_cpu(self, gh):
        return self.gradients(cpu_lstm.sweep_backward(self.split_directions(gh), self.w_hh, self.gates,
                                                      self.cells, self.tanh_cells, self.reverse))

    def backward_gpu(self, gh):
        return self.gradients(gpu.lstm.sweep_backward(self.split_directions(gh), self.w_hh, self.gates,
                                                      self.cells, self.tanh_cells, self.reverse))

    def split_directions(self, gh):
        """(T, B, D*H) -> (D, T, B, H)."""
        hidden = self.hs.shape[3]
        xp = get_array_module(gh)
        return xp.stack([gh[:, :, d * hidden:(d + 1) * hidden] for d in range(len(self.reverse))])

    def gradients(self, gz):
        """The GEMMs after the recurrence: gz = dL/dz (D, T, B, 4H) -> dx and every weight's gradient.
        On the CPU the directions' GEMMs run side by side (numpy's products release the GIL)."""
        xp = get_array_module(gz)
        tasks = [functools.partial(self.direction_gradients, gz, d) for d in range(len(self.reverse))]
        parts = cpu_runtime.run_parallel(tasks) if xp is numpy else [task() for task in tasks]
        gx = parts[0][0]
        for part in parts[1:]:
            gx += part[0]
        return (xp.ascontiguousarray(gx.reshape(self.x.shape)), *(g for part in parts for g in part[1:]))

    def direction_gradients(self, gz, d):
        """Direction d's part of dx = dz W_ih (all directions read the same x), and its
        dW_ih = dz^T x, dW_hh = dz^T h_prev, db_ih = db_hh = sum dz."""
        xp = get_array_module(gz)
        directions, steps, batch, hidden = self.hs.shape
        g = gz[d].reshape(steps * batch, 4 * hidden)
        h_prev = xp.zeros_like(self.hs[d])          # the h each step read: the previous one in its order
        if self.reverse[d]:
            h_prev[:-1] = self.hs[d, 1:]
        else:
            h_prev[1:] = self.hs[d, :-1]
        g_b = g.sum(axis=0)
        return (g @ self.w_ih[d], g.T @ self.x.reshape(steps * batch, -1),
                g.T @ h_prev.reshape(steps * batch, hidden), g_b, g_b.copy())

def lstm(x, w_ih, w_hh, b_ih, b_hh, reverse=False):
    """One direction: x (T, B, I) -> (T, B, H)."""
    return LSTM((reverse,))(x, w_ih, w_hh, b_ih, b_hh)


def bidirectional_lstm(x, forward_weights, reverse_weights):
    """Both directions of a sweep: x (T, B, I) -> (T, B, 2H), [forward states, reverse states]."""
    return LSTM((False, True))(x, *forward_weights, *reverse_weights)
