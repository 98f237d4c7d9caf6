"""LSTM sweeps on the GPU: the input projections of all steps are one cuBLAS GEMM per
direction, then one launch of cuda/lstm.cu runs the whole recurrence (every step of
every sequence, one or both directions); backward likewise, then GEMMs for the weights.

Launch: grid (ceil(B / group), directions) x block (threads,), threads = H rounded up to
a warp, at most 256 (each thread then owns several hidden units); group = sequences per
block. A block's step should cost about the same for 1 or 8 sequences (its time goes to
streaming W_hh, read once per step whatever the group), so sequences are first spread
over the multiprocessors, one block each, and only packed when there are more of them: group = ceil(B * directions / multiprocessors), at
most 8 and small enough that the backward's shared memory (5 * group * H values) fits
in 48 KiB. Forward shared memory: group * H values.

``BidirectionalLSTM`` runs a ReNet sweep's two directions in one launch (grid y = 2), so
they proceed concurrently: the recurrence is sequential in time, and both directions
together fill the GPU twice as well as one. Arrays stay in natural time order; the
reversed direction is a flag of the kernel.
"""
from __future__ import annotations

import functools

from numpy import int32

from ...autograd import Function
from ...backend import get_array_module
from . import contiguous, empty, kernel

MAX_GROUP = 8              # LSTM_MAX_GROUP in cuda/lstm.cu
SHARED_BYTES = 48 * 1024   # dynamic shared memory a block gets without opting in to more
MAX_THREADS = 256


def launch_shape(batch, hidden, itemsize, directions, processors):
    """(grid, block, group) of both LSTM kernels on a GPU with ``processors`` multiprocessors."""
    per_sequence = 5 * hidden * itemsize
    fits = SHARED_BYTES // per_sequence
    if fits < 1:
        raise ValueError(f"lstm: hidden size {hidden} needs {per_sequence} bytes of shared memory per "
                         f"sequence on the GPU; a block has {SHARED_BYTES}")
    group = min(MAX_GROUP, fits, batch, max(1, -(-batch * directions // processors)))
    threads = min(MAX_THREADS, 32 * -(-hidden // 32))
    return (-(-batch // group), directions), (threads,), group


def multiprocessors(xp):
    return _multiprocessors(xp, xp.cuda.Device().id)


@functools.lru_cache(maxsize=None)
def _multiprocessors(xp, device_id):
    return xp.cuda.runtime.getDeviceProperties(device_id)["multiProcessorCount"]


def check_weights(x, weights):
    if x.ndim != 3:
        raise ValueError(f"lstm: input must be (T, B, I), got shape {x.shape}")
    hidden = weights[0][1].shape[1]
    n_in = x.shape[2]
    expected = ((4 * hidden, n_in), (4 * hidden, hidden), (4 * hidden,), (4 * hidden,))
    for direction in weights:
        for name, array, shape in zip(("w_ih", "w_hh", "b_ih", "b_hh"), direction, expected):
            if array.shape != shape:
                raise ValueError(f"lstm: {name} has shape {array.shape}, expected {shape} "
                                 f"for input size {n_in} and hidden size {hidden}")


def sweep_forward(x, weights, reverse):
    """Run one LSTM per entry of ``weights`` ((w_ih, w_hh, b_ih, b_hh) each) over x (T, B, I);
    ``reverse[d]`` says whether direction d runs from the last step to the first.

    Returns x as (T*B, I) and the saved gates (D, T, B, 4H), cells, tanh(cells) and hidden
    states (D, T, B, H)."""
    xp = get_array_module(x)
    steps, batch, n_in = x.shape
    hidden, directions, dtype = weights[0][1].shape[1], len(weights), x.dtype
    x2 = contiguous(x).reshape(steps * batch, n_in)
    z_input = contiguous(xp.stack([x2 @ w_ih.T + (b_ih + b_hh) for w_ih, _, b_ih, b_hh in weights]), dtype)
    w_hh_t = contiguous(xp.stack([w_hh.T for _, w_hh, _, _ in weights]), dtype)     # (D, H, 4H)
    gates = empty(x, (directions, steps, batch, 4 * hidden))
    cells, tanh_cells, hs = (empty(x, (directions, steps, batch, hidden)) for _ in range(3))
    if steps * batch * hidden:
        grid, block, group = launch_shape(batch, hidden, dtype.itemsize, directions, multiprocessors(xp))
        kernel("lstm.cu", "lstm_forward", dtype)(
            grid, block, (z_input, w_hh_t, gates, cells, tanh_cells, hs, int32(steps), int32(batch),
                          int32(hidden), int32(group), _flags(reverse)),
            shared_mem=group * hidden * dtype.itemsize)
    return x2, (gates, cells, tanh_cells, hs)


def sweep_backward(gh, weights, saved, reverse):
    """gh (D, T, B, H): gradients of the hidden states -> dL/dz (D, T, B, 4H)."""
    xp = get_array_module(gh)
    gates, cells, tanh_cells, _ = saved
    directions, steps, batch, hidden = gh.shape
    dtype = gates.dtype
    gh = contiguous(gh, dtype)
    w_hh = contiguous(xp.stack([w[1] for w in weights]), dtype)                  # (D, 4H, H)
    gz = empty(gh, (directions, steps, batch, 4 * hidden))
    if steps * batch * hidden:
        grid, block, group = launch_shape(batch, hidden, dtype.itemsize, directions, multiprocessors(xp))
        kernel("lstm.cu", "lstm_backward", dtype)(
            grid, block, (gh, w_hh, gates, cells, tanh_cells, gz, int32(steps), int32(batch),
                          int32(hidden), int32(group), _flags(reverse)),
            shared_mem=5 * group * hidden * dtype.itemsize)
    return gz


def weight_gradients(gz, x2, w_ih, hs, reverse):
    """One direction's GEMMs: gz (T, B, 4H) -> (dx as (T*B, I), dW_ih, dW_hh, db)."""
    xp = get_array_module(gz)
    steps, batch, hidden = hs.shape
    g = gz.reshape(steps * batch, 4 * hidden)
    h_prev = xp.zeros_like(hs)                 # the h each step read: the previous one in sweep order
    if reverse:
        h_prev[:-1] = hs[1:]
    else:
        h_prev[1:] = hs[:-1]
    return g @ w_ih, g.T @ x2, g.T @ h_prev.reshape(steps * batch, hidden), g.sum(axis=0)


def _flags(reverse):
    return int32(sum(1 << d for d, r in enumerate(reverse) if r))


def lstm_forward(op, x, w_ih, w_hh, b_ih, b_hh):
    """``tinyseg.ops.lstm.LSTM`` on the GPU: one direction, reversed if op.reverse."""
    op.weights = [(w_ih, w_hh, b_ih, b_hh)]
    op.x_shape = x.shape
    op.x2, op.saved = sweep_forward(x, op.weights, [op.reverse])
    return op.saved[3][0]


def lstm_backward(op, gh):
    gz = sweep_backward(gh[None], op.weights, op.saved, [op.reverse])
    gx, g_w_ih, g_w_hh, g_b = weight_gradients(gz[0], op.x2, op.weights[0][0], op.saved[3][0], op.reverse)
    return gx.reshape(op.x_shape), g_w_ih, g_w_hh, g_b, g_b.copy()


class BidirectionalLSTM(Function):
    """Both directions of a sweep: x (T, B, I) -> (T, B, 2H), [forward states, reverse states].

    Inputs: x, then (w_ih, w_hh, b_ih, b_hh) of the forward direction, then of the reverse one.
    """

    def forward(self, x, *weights):
        self.weights = [weights[:4], weights[4:]]
        check_weights(x, self.weights)
        self.x_shape = x.shape
        self.x2, self.saved = sweep_forward(x, self.weights, (False, True))
        hs = self.saved[3]
        return get_array_module(x).concatenate([hs[0], hs[1]], axis=2)

    def backward(self, gy):
        xp = get_array_module(gy)
        hidden = self.saved[3].shape[3]
        gh = xp.stack([gy[:, :, :hidden], gy[:, :, hidden:]])
        gz = sweep_backward(gh, self.weights, self.saved, (False, True))
        grads, gx = [], 0
        for d, reverse in enumerate((False, True)):
            g_x, g_w_ih, g_w_hh, g_b = weight_gradients(gz[d], self.x2, self.weights[d][0],
                                                        self.saved[3][d], reverse)
            gx = gx + g_x
            grads += [g_w_ih, g_w_hh, g_b, g_b.copy()]
        return (gx.reshape(self.x_shape), *grads)


def bidirectional_lstm(x, forward_weights, reverse_weights):
    return BidirectionalLSTM()(x, *forward_weights, *reverse_weights)
