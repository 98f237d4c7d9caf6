"""Parallel loops that run in the calling thread when their work is small.

Starting a parallel Numba loop on the workqueue threading layer (``cpu_runtime``, where
TBB is not installed) costs about 70-90 microseconds, one thread or many: the sleeping
workers are woken and waited for. That is the time of a few megabytes of memory traffic, more than many of a training
step's loops take on their own (the pools and the batch norms of the deep layers, the
padding of a 32x32 map), and a step starts about a hundred of them.

So each CPU kernel is compiled twice from one loop nest: with ``parallel=True``, and as
a plain loop (``prange`` is then ``range``); a call picks the serial one when its work is
below ``SERIAL_BELOW``. The work of a call is the number of elements of its largest array,
or, for a kernel that does more than a few operations per element (a convolution), an
estimate it gives in the same units.
"""
from __future__ import annotations

import functools
import types

import numpy as np
from numba import njit

# Work (elements, or the equivalent) under which a loop runs in the calling thread: about
# what one core streams through in the time a parallel start costs.
SERIAL_BELOW = 2 ** 17


def largest_array(*args):
    """The default measure of a call's work: the elements of its largest array argument."""
    return max((a.size for a in args if isinstance(a, np.ndarray)), default=0)


class Kernel:
    """A loop nest compiled as a parallel and as a serial kernel (``.parallel``, ``.serial``);
    calling it runs the one that suits the call's work."""

    def __init__(self, fn, work, options):
        self.parallel = njit(parallel=True, cache=True, **options)(fn)
        # The serial twin needs a name of its own: Numba's on-disk cache is keyed by it.
        twin = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "_serial", fn.__defaults__,
                                  fn.__closure__)
        twin.__qualname__ = fn.__qualname__ + "_serial"
        self.serial = njit(cache=True, **options)(twin)
        self.work = work
        functools.update_wrapper(self, fn)

    def __call__(self, *args):
        return (self.serial if self.work(*args) < SERIAL_BELOW else self.parallel)(*args)


def kernel(work=largest_array, **options):
    """Decorator: ``@kernel(fastmath=...)`` in place of ``@njit(parallel=True, cache=True, ...)``."""
    return lambda fn: Kernel(fn, work, options)
