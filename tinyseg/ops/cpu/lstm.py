"""The recurrence of an LSTM sweep on the CPU: one Numba kernel per direction, forward and backward.

Arrays as ``tinyseg/ops/lstm.py`` and the GPU's ``gpu/lstm.py`` take them, in natural
time order: z_input and gates (D, T, B, 4H), cells, tanh(cells), hidden states and their
gradients (D, T, B, H), w_hh (D, 4H, H); direction d runs from the last step to the
first when ``reverse[d]``.

Why kernels: written in NumPy, a step is a (B, H) @ (H, 4H) product plus about fifteen
small elementwise calls, and for the hidden sizes of H-ReNet (32 to 256) the time went
into the calls, not the arithmetic. ``forward_kernel`` and ``backward_kernel`` run every
step of one direction, for a run of batch rows, in one call: the recurrent product as one
np.dot per step (scipy's BLAS), then the gate math of the step fused into one pass.
Sequences (batch rows) never interact, so the work splits
into independent pieces, one per (direction, run of rows) (``pieces``), which
``sweep_forward`` / ``sweep_backward`` run side by side with ``cpu_runtime.run_parallel``:
the kernels are compiled with ``nogil=True`` and without ``parallel=True``.

sigmoid and tanh come from ``gate``, built on an exp written with arithmetic only: Numba has
no vector math library without Intel's SVML, and glibc's tanh, called one value at a time,
was most of a forward step's time. The forms never overflow, stay within a few ulp of
float64, and NaN propagates through every formula.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from ... import cpu_runtime
from .vmath import expm1_parts_float64


# ---------------------------------------------------------------- gate functions LLVM can vectorise

# exp(x) for x <= 0 comes from vmath's arithmetic exp, so that loops calling it vectorise
# (Numba calls libm's exp and tanh one value at a time: about 15 ns each for tanh, the whole
# step's time at H = 32): x = n ln2 + r, exp(x) = 2^n (1 + q) with q = expm1(r), 2^n read
# from a table. Everything is computed in float64, also for float32 arrays.
EXP_FLOOR = -708.0                                   # exp(-708) ~ 3e-308, still a normal double
POW2_NEG = np.ldexp(1.0, -np.arange(1023))           # 2^-k for k = 0 .. 1022

# The kernels below are compiled with error_model="numpy": a division by zero gives inf or
# NaN as in NumPy instead of raising, so no check (a branch) sits in the loops and LLVM
# vectorises them; the ternaries of these functions become vector selects.
KERNEL = dict(nogil=True, cache=True, error_model="numpy")


@njit(inline="always", **KERNEL)
def exp_parts(x):
    # -> (p, q) with exp(x) = p (1 + q), p = 2^n, for x <= 0. Below EXP_FLOOR (and for NaN,
    # which the callers put back themselves) the parts of exp(EXP_FLOOR) come back, so
    # the table index stays in range; callers turn x < EXP_FLOOR into exp(x) = 0.
    x = x if x >= EXP_FLOOR else EXP_FLOOR
    n, q = expm1_parts_float64(x)                    # 0 >= n >= -1021
    return POW2_NEG[np.intp(-n)], q


@njit(inline="always", **KERNEL)
def gate(z, is_tanh):
    # sigmoid(z), or tanh(z) when is_tanh, from one exp and one division, with nothing that
    # overflows. With e = exp(-a|z|) in [0, 1] (a = 1 for sigmoid, 2 for tanh) and r = 1 / (1 + e):
    #   sigmoid(z) = r for z >= 0, and e^z / (1 + e^z) = e r for z < 0;
    #   tanh|z| = (1 - e) / (1 + e) = -m r with m = e - 1, then given the sign of z.
    # m = p q + (p - 1) keeps a few ulp of relative accuracy for small |z| (there p = 1 and
    # m = q = expm1(r) from its series), where 1 - e would cancel. Both forms are computed and
    # one is selected, so that a loop over the 4H gate columns, whose third quarter is tanh,
    # vectorises as one loop. NaN in, NaN out.
    x = -(2.0 if is_tanh else 1.0) * abs(z)
    p, q = exp_parts(x)
    e = p + p * q if x >= EXP_FLOOR else 0.0
    m = p * q + (p - 1.0) if x >= EXP_FLOOR else -1.0
    r = 1.0 / (1.0 + e)
    sig = r if z >= 0 else e * r
    th = math.copysign((0.0 - m) * r, z)
    y = th if is_tanh else sig
    return y if z == z else z


# ---------------------------------------------------------------- kernels: one direction, rows first..last-1

@njit(**KERNEL)
def forward_kernel(z, bias, w_hh_t, reverse, first, last, cells, tanh_cells, hs):
    # One direction of the forward sweep for batch rows first .. last - 1.
    # z (T, B, 4H): x_t W_ih^T on entry; overwritten, step by step, with the activated gates
    # [i, f, g, o] (the op's saved ``gates``). bias (4H,) = b_ih + b_hh. w_hh_t (H, 4H) = W_hh^T.
    # cells, tanh_cells, hs (T, B, H) are written at rows first .. last - 1 of every step.
    # Threads: none inside; the caller runs one call per (direction, run of rows) side by side
    # (nogil). Calls write disjoint rows or directions, and a row's steps only read that row.
    # Per step: z_t = x_t W_ih^T + bias + h_prev W_hh^T, where h_prev is the state of the
    # step visited before (zero at the first); the product of all the rows is one np.dot,
    # which Numba hands to scipy's BLAS (on one thread inside an op; measured a little
    # faster than loops from H = 32 to 128). Then, row by row, the gates
    # i = s(z_i), f = s(z_f), g = tanh(z_g), o = s(z_o) in place, and for each unit
    # c = f c_prev + i g, h = o tanh(c): loops over contiguous runs, which LLVM vectorises.
    # Arrays are indexed with all their indices, never through row views: a view made in
    # a loop costs a reference count update each time.
    steps, batch, four_h = z.shape
    hidden = four_h // 4
    for s in range(steps):
        t = steps - 1 - s if reverse else s
        t_prev = t + 1 if reverse else t - 1               # the step visited before (s > 0)
        if s > 0:
            z[t, first:last] += np.dot(hs[t_prev, first:last], w_hh_t)
        for b in range(first, last):
            for j in range(four_h):
                z[t, b, j] += bias[j]
            for j in range(four_h):                      # i, f, o: sigmoid; g: tanh
                z[t, b, j] = gate(z[t, b, j], 2 * hidden <= j < 3 * hidden)
            if s == 0:                                   # c_prev = 0
                for j in range(hidden):
                    cells[t, b, j] = z[t, b, j] * z[t, b, 2 * hidden + j]
            else:
                for j in range(hidden):
                    cells[t, b, j] = z[t, b, hidden + j] * cells[t_prev, b, j] + z[t, b, j] * z[t, b, 2 * hidden + j]
            for j in range(hidden):
                tanh_cells[t, b, j] = gate(cells[t, b, j], True)
                hs[t, b, j] = z[t, b, 3 * hidden + j] * tanh_cells[t, b, j]


@njit(**KERNEL)
def backward_kernel(gh, w_hh, gates, cells, tanh_cells, reverse, first, last, gz, dh, dc):
    # One direction of backpropagation through time for batch rows first .. last - 1.
    # gh (T, B, H): the gradients of the hidden states from above; w_hh (4H, H); gates, cells,
    # tanh_cells as the forward saved them. Writes gz (T, B, 4H) = dL/dz at rows first .. last-1.
    # dh and dc (B, H) are scratch: the gradients reaching h_t and c_t of the current step.
    # Threads: none inside, as forward_kernel (one call per direction and run of rows, nogil).
    # Steps go in reverse visiting order; "next" is the step visited after t (already done):
    #   dh = gh_t + dz_next W_hh           h_t feeds the loss and z of the next step (W_hh);
    #                                      one np.dot (BLAS) for all the rows
    #   dc = dh o (1 - tanh^2 c) + dc_next h = o tanh(c), and c_t feeds c_next = f_next c_t + ...
    #   dz_i = dc g i (1 - i)              c = f c_prev + i g, and s' = s (1 - s)
    #   dz_f = dc c_prev f (1 - f)         (c_prev = 0 at the first visited step)
    #   dz_g = dc i (1 - g^2)              tanh' = 1 - tanh^2
    #   dz_o = dh tanh(c) o (1 - o)
    #   dc_next <- dc f                    what c_prev receives through the forget gate
    steps, batch, hidden = gh.shape
    four_h = 4 * hidden
    for s in range(steps - 1, -1, -1):
        t = steps - 1 - s if reverse else s
        t_prev = t + 1 if reverse else t - 1               # visited before t (s > 0)
        t_next = t - 1 if reverse else t + 1               # visited after t (s < steps - 1)
        if s == steps - 1:
            dh[first:last] = gh[t, first:last]
            dc[first:last] = 0
        else:
            dh[first:last] = gh[t, first:last] + np.dot(gz[t_next, first:last], w_hh)
        for b in range(first, last):
            for k in range(hidden):
                i, f = gates[t, b, k], gates[t, b, hidden + k]
                g, o = gates[t, b, 2 * hidden + k], gates[t, b, 3 * hidden + k]
                tc = tanh_cells[t, b, k]
                c_prev = cells[t_prev, b, k] if s > 0 else 0
                dc_k = dh[b, k] * o * (1 - tc * tc) + dc[b, k]
                gz[t, b, k] = dc_k * g * i * (1 - i)
                gz[t, b, hidden + k] = dc_k * c_prev * f * (1 - f)
                gz[t, b, 2 * hidden + k] = dc_k * i * (1 - g * g)
                gz[t, b, 3 * hidden + k] = dh[b, k] * tc * o * (1 - o)
                dc[b, k] = dc_k * f


# ---------------------------------------------------------------- the sweeps: pieces side by side

def pieces(directions, batch):
    """The independent pieces of a sweep, (direction, first row, last row): every direction,
    its batch cut into runs so that there are about as many pieces as threads."""
    runs = max(1, -(-cpu_runtime.threads() // directions))
    return [(d, rows[0], rows[-1] + 1) for d in range(directions)
            for rows in cpu_runtime.split(range(batch), runs)]


def sweep_forward(x, w_ih, w_hh, bias, reverse):
    """x (T, B, I), w_ih (D, 4H, I), w_hh (D, 4H, H), bias (D, 4H) = b_ih + b_hh
    -> (gates, cells, tanh_cells, hs); the formulas are in ``tinyseg/ops/lstm.py``.
    Each piece first projects its rows of x (x_t W_ih^T, a GEMM that releases the GIL) into
    its part of ``gates``, then runs ``forward_kernel`` over them."""
    steps, batch, n_in = x.shape
    directions, four_h, hidden = w_hh.shape
    dtype = np.result_type(x, w_ih, w_hh, bias)      # mixed precisions promote, as NumPy would
    x, w_ih, bias = (a.astype(dtype, copy=False) for a in (x, w_ih, bias))
    gates = np.empty((directions, steps, batch, four_h), dtype)
    cells, tanh_cells, hs = (np.empty((directions, steps, batch, hidden), dtype) for _ in range(3))
    w_hh_t = np.ascontiguousarray(w_hh.transpose(0, 2, 1), dtype=dtype)

    def run(d, first, last):
        if last - first == batch:      # the whole batch: one (T*B, I) @ (I, 4H) GEMM
            np.matmul(x.reshape(steps * batch, n_in), w_ih[d].T, out=gates[d].reshape(steps * batch, four_h))
        else:
            gates[d, :, first:last] = x[:, first:last] @ w_ih[d].T
        forward_kernel(gates[d], bias[d], w_hh_t[d], reverse[d], first, last, cells[d], tanh_cells[d], hs[d])

    cpu_runtime.run_parallel(lambda piece=piece: run(*piece) for piece in pieces(directions, batch))
    return gates, cells, tanh_cells, hs


def sweep_backward(gh, w_hh, gates, cells, tanh_cells, reverse):
    """gh (D, T, B, H), the gradients of the hidden states -> gz = dL/dz (D, T, B, 4H)."""
    directions, steps, batch, hidden = gh.shape
    dtype = np.result_type(gh, w_hh, gates)
    gz = np.empty(gates.shape, dtype)
    dh, dc = np.empty((directions, batch, hidden), dtype), np.empty((directions, batch, hidden), dtype)
    gh = np.ascontiguousarray(gh, dtype=dtype)
    w_hh = np.ascontiguousarray(w_hh, dtype=dtype)
    gates, cells, tanh_cells = (np.ascontiguousarray(a, dtype=dtype) for a in (gates, cells, tanh_cells))

    def run(d, first, last):
        backward_kernel(gh[d], w_hh[d], gates[d], cells[d], tanh_cells[d], reverse[d], first, last, gz[d],
                        dh[d], dc[d])

    cpu_runtime.run_parallel(lambda piece=piece: run(*piece) for piece in pieces(directions, batch))
    return gz
