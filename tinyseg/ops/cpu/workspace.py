"""Scratch buffers the CPU kernels reuse from call to call.

A fresh NumPy buffer of several MB costs a page fault per 4 KiB page the first time it
is written, every call. The convolution's column bands instead go into a buffer kept
per name, dtype and thread, allocated once at the size the caller asks for and grown
only if a later caller asks for more.
"""
from __future__ import annotations

import threading

import numpy as np

_local = threading.local()


def get(name, nbytes, dtype):
    """A 1-D buffer of at least ``nbytes`` bytes of ``dtype``, the same one on every call with
    this name and dtype from this thread (its contents are whatever the last user left)."""
    dtype = np.dtype(dtype)
    buffers = getattr(_local, "buffers", None)
    if buffers is None:
        buffers = _local.buffers = {}
    size = -(-nbytes // dtype.itemsize)
    buffer = buffers.get((name, dtype))
    if buffer is None or buffer.size < size:
        buffer = buffers[(name, dtype)] = np.empty(size, dtype=dtype)
    return buffer
