"""The recurrence of an LSTM sweep on the GPU: one launch of cuda/lstm.cu runs every step
of every sequence, one or both directions; backward likewise. The GEMMs before and after
(input projections, weight gradients) are in ``tinyseg/ops/lstm.py``.

Launch: grid (ceil(B / group), directions) x block (threads,), threads = H rounded up to
a warp, at most 256 (each thread then owns several hidden units); group = sequences per
block. A block's step should cost about the same for 1 or 8 sequences (its time goes to
streaming W_hh, read once per step whatever the group), so sequences are first spread
over the multiprocessors, one block each, and only packed when there are more of them:
group = ceil(B * directions / multiprocessors), at most 8 and small enough that the
backward's shared memory (5 * group * H values) fits in 48 KiB. Forward shared memory:
group * H values.

A ReNet sweep's two directions run in one launch (grid y = 2), so they proceed
concurrently: the recurrence is sequential in time, and both directions together fill
the GPU twice as well as one. Arrays stay in natural time order; the reversed direction
is a flag of the kernel.
"""
from __future__ import annotations

import functools

from numpy import int32

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


def _flags(reverse):
    return int32(sum(1 << d for d, r in enumerate(reverse) if r))


def sweep_forward(z_input, w_hh, reverse):
    """z_input (D, T, B, 4H) = x W_ih^T + b_ih + b_hh, w_hh (D, 4H, H) -> (gates (D, T, B, 4H),
    cells, tanh_cells, hs (D, T, B, H)), in natural time order."""
    xp = get_array_module(z_input)
    directions, steps, batch, four_h = z_input.shape
    hidden, dtype = four_h // 4, z_input.dtype
    z_input = contiguous(z_input)
    w_hh_t = contiguous(w_hh.transpose(0, 2, 1), dtype)                           # (D, H, 4H)
    gates = empty(z_input, z_input.shape)
    cells, tanh_cells, hs = (empty(z_input, (directions, steps, batch, hidden)) for _ in range(3))
    if steps * batch * hidden:
        grid, block, group = launch_shape(batch, hidden, dtype.itemsize, directions, multiprocessors(xp))
        kernel("lstm.cu", "lstm_forward", dtype)(
            grid, block, (z_input, w_hh_t, gates, cells, tanh_cells, hs, int32(steps), int32(batch),
                          int32(hidden), int32(group), _flags(reverse)),
            shared_mem=group * hidden * dtype.itemsize)
    return gates, cells, tanh_cells, hs


def sweep_backward(gh, w_hh, gates, cells, tanh_cells, reverse):
    """gh (D, T, B, H): gradients of the hidden states -> gz = dL/dz (D, T, B, 4H)."""
    xp = get_array_module(gh)
    directions, steps, batch, hidden = gh.shape
    dtype = gates.dtype
    gh = contiguous(gh, dtype)
    w_hh = contiguous(w_hh, dtype)
    gz = empty(gh, (directions, steps, batch, 4 * hidden))
    if steps * batch * hidden:
        grid, block, group = launch_shape(batch, hidden, dtype.itemsize, directions, multiprocessors(xp))
        kernel("lstm.cu", "lstm_backward", dtype)(
            grid, block, (gh, w_hh, gates, cells, tanh_cells, gz, int32(steps), int32(batch),
                          int32(hidden), int32(group), _flags(reverse)),
            shared_mem=5 * group * hidden * dtype.itemsize)
    return gz
