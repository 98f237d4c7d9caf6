"""The recurrence of an LSTM sweep on the GPU: one launch of cuda/lstm.cu runs every step
of every sequence, one or both directions; backward likewise. The GEMMs before and after
(input projections, weight gradients) are in ``tinyseg/ops/lstm.py``.

Launch: grid (ceil(B / group), directions) x block (threads,), threads = H rounded up to
a warp, at most 512 and at most what the kernel's register count allows (each thread
then owns several hidden units); group = sequences per block. A block's step should cost
about the same for 1 or 8 sequences (its time goes to streaming W_hh, read once per step
whatever the group), so sequences are first spread over the multiprocessors, one block
each, and only packed when there are more of them: group = ceil(B * directions /
multiprocessors), at most 8 and small enough that the block's shared memory (forward
group * H values, backward 5 * group * H) fits in the 48 KiB a block gets by default. A
hidden size whose single sequence needs more opts the kernel in to more, up to the
device's limit (``sharedMemPerBlockOptin``). ``launch_shape`` is a pure function of the
sizes and of ``Limits``, which ``limits`` reads from the device and the compiled kernel.

A ReNet sweep's two directions run in one launch (grid y = 2), so they proceed
concurrently: the recurrence is sequential in time, and both directions together fill
the GPU twice as well as one. Arrays stay in natural time order; the reversed direction
is a flag of the kernel.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

from numpy import int32

from ...backend import get_array_module
from . import contiguous, device_properties, empty, kernel

MAX_GROUP = 8                   # LSTM_MAX_GROUP in cuda/lstm.cu
MAX_THREADS = 512
FORWARD_WORDS, BACKWARD_WORDS = 1, 5   # shared-memory values per sequence and hidden unit


class Limits(NamedTuple):
    """What a launch of one LSTM kernel may use on one device."""
    processors: int       # multiprocessors
    max_threads: int      # threads per block the kernel can launch with (its registers decide)
    shared_bytes: int     # dynamic shared memory per block without opting in
    shared_optin: int     # the most a block may opt in to


def launch_shape(batch, hidden, itemsize, directions, words, limits):
    """(grid, block, group, shared-memory bytes) of an LSTM kernel that keeps ``words`` values
    per sequence and hidden unit in shared memory (``FORWARD_WORDS`` or ``BACKWARD_WORDS``)."""
    per_sequence = words * hidden * itemsize
    if per_sequence > limits.shared_optin:
        raise ValueError(f"lstm: hidden size {hidden} needs {per_sequence} bytes of shared memory per "
                         f"sequence on the GPU; a block of this device can have at most {limits.shared_optin}")
    fits = max(1, limits.shared_bytes // per_sequence)    # past the default: one sequence, opted in
    group = min(MAX_GROUP, fits, batch, max(1, -(-batch * directions // limits.processors)))
    threads = min(MAX_THREADS, limits.max_threads // 32 * 32, 32 * -(-hidden // 32))
    return (-(-batch // group), directions), (threads,), group, group * per_sequence


def threads_for_registers(registers, registers_per_block):
    """The most threads (whole warps) a block can have when each uses ``registers``: the
    hardware allocates a warp's registers in units of 256."""
    per_warp = -(-registers * 32 // 256) * 256
    return registers_per_block // per_warp * 32


def limits(xp, kern):
    props = device_properties(xp)
    return Limits(multiprocessors(xp), _max_threads(kern, props["regsPerBlock"]), props["sharedMemPerBlock"],
                  props["sharedMemPerBlockOptin"])


def multiprocessors(xp):
    return device_properties(xp)["multiProcessorCount"]


@functools.lru_cache(maxsize=None)
def _max_threads(kern, registers_per_block):
    attributes = kern.attributes
    return min(attributes["max_threads_per_block"],
               threads_for_registers(attributes["num_regs"], registers_per_block))


_OPTED_IN = {}   # kernel -> the dynamic shared memory it may use, once raised past the default


def _launch(kern, grid, block, args, shared, default):
    if shared > max(default, _OPTED_IN.get(kern, 0)):
        kern.max_dynamic_shared_size_bytes = shared
        _OPTED_IN[kern] = shared
    kern(grid, block, args, shared_mem=shared)


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
    _sweep(xp, "lstm_forward", FORWARD_WORDS, (z_input, w_hh_t, gates, cells, tanh_cells, hs),
           steps, batch, hidden, directions, dtype, reverse)
    return gates, cells, tanh_cells, hs


def sweep_backward(gh, w_hh, gates, cells, tanh_cells, reverse):
    """gh (D, T, B, H): gradients of the hidden states -> gz = dL/dz (D, T, B, 4H)."""
    xp = get_array_module(gh)
    directions, steps, batch, hidden = gh.shape
    dtype = gates.dtype
    gh = contiguous(gh, dtype)
    w_hh = contiguous(w_hh, dtype)
    gz = empty(gh, (directions, steps, batch, 4 * hidden))
    _sweep(xp, "lstm_backward", BACKWARD_WORDS, (gh, w_hh, gates, cells, tanh_cells, gz),
           steps, batch, hidden, directions, dtype, reverse)
    return gz


def _sweep(xp, name, words, arrays, steps, batch, hidden, directions, dtype, reverse):
    """Launch one of the two sweep kernels over all steps (nothing to do for empty sizes)."""
    if steps * batch * hidden == 0:
        return
    kern = kernel("lstm.cu", name, dtype)
    device = limits(xp, kern)
    grid, block, group, shared = launch_shape(batch, hidden, dtype.itemsize, directions, words, device)
    _launch(kern, grid, block, (*arrays, int32(steps), int32(batch), int32(hidden), int32(group),
                                _flags(reverse)), shared, device.shared_bytes)
