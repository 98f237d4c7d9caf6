"""GPU launchers of the ops: CuPy arrays in, CuPy arrays out, around the kernels in ``cuda/``.

An op class in ``tinyseg/ops`` writes its GPU path in ``forward_gpu`` / ``backward_gpu``
next to its CPU path, calling the launchers here::

    y, argmax = gpu.pool.max_pool_forward(x, (out_h, out_w), self.kernel, self.stride)

A launcher never sees the op: what backward needs, the op saves itself. Ops without a
kernel run their NumPy code unchanged on CuPy arrays.

``POISON``: when True (or with ``TINYSEG_GPU_POISON=1`` in the environment) every
buffer a kernel is to fill starts out as NaN (integers: -1), so the GPU tests
prove that each kernel writes every element of its outputs.
"""
from __future__ import annotations

import functools
import os

import numpy

from ...autograd import on_gpu
from ...backend import CUDA_SOURCE_DIR, get_array_module, load_module

POISON = os.environ.get("TINYSEG_GPU_POISON", "") == "1"
THREADS = 256   # block size of every one-thread-per-element launch

_SUFFIXES = {numpy.dtype(numpy.float32): "f32", numpy.dtype(numpy.float64): "f64"}


def kernel(filename, name, dtype):
    """``<name>_f32`` or ``<name>_f64`` from ``cuda/<filename>``, for arrays of ``dtype``."""
    suffix = _SUFFIXES.get(numpy.dtype(dtype))
    if suffix is None:
        raise TypeError(f"{name}: the GPU kernels take float32 or float64 arrays, got {dtype}")
    return _function(filename, f"{name}_{suffix}")


INCLUDE = ("-I" + CUDA_SOURCE_DIR,)   # the sources include cuda/common.cuh


@functools.lru_cache(maxsize=None)
def _function(filename, name):   # looked up once: launches then cost no driver call
    return load_module(filename, INCLUDE).get_function(name)


def device_properties(xp):
    """CUDA's properties of the current device (multiProcessorCount, sharedMemPerBlock, ...)."""
    return _properties(xp, xp.cuda.Device().id)


@functools.lru_cache(maxsize=None)
def _properties(xp, device_id):
    return xp.cuda.runtime.getDeviceProperties(device_id)


def empty(like, shape, dtype=None):
    """A new device buffer that a kernel will fill (NaN- or -1-filled under POISON)."""
    cupy = get_array_module(like)
    dtype = numpy.dtype(dtype or like.dtype)
    if not POISON:
        return cupy.empty(shape, dtype=dtype)
    return cupy.full(shape, numpy.nan if dtype.kind == "f" else -1, dtype=dtype)


def contiguous(array, dtype=None):
    """``array`` as a C-contiguous device array of ``dtype``: what a raw kernel reads."""
    return get_array_module(array).ascontiguousarray(array, dtype=dtype)


def blocks(total, threads=THREADS):
    return (total + threads - 1) // threads


def launch_per_element(kern, total, *args):
    """One thread per element: grid ceil(total / THREADS) x block THREADS."""
    if total > 0:
        kern((blocks(total),), (THREADS,), args)


def gemm(a, b, out, transa=False, transb=False, accumulate=False):
    """out = op(a) @ op(b), or out += op(a) @ op(b) with ``accumulate``, one cuBLAS GEMM;
    op(a) is a.T when ``transa``, likewise for b. a, b and out are C-contiguous 2-D device
    arrays: cuBLAS reads a transposed operand in place through its transpose flag, so no
    transposed copy is ever made, and writes out in place."""
    for name, array in (("a", a), ("b", b), ("out", out)):
        if array.ndim != 2 or not array.flags.c_contiguous:
            raise ValueError(f"gemm: {name} must be a C-contiguous matrix, got shape {array.shape} "
                             f"and strides {array.strides}")
    if out.size == 0:
        return out
    if (a.shape[0] if transa else a.shape[1]) == 0:      # an empty sum: cuBLAS need not write out
        if not accumulate:
            out.fill(0)
        return out
    from cupy import cublas   # CuPy's cuBLAS wrappers: gemm with transpose flags and beta
    cublas.gemm("T" if transa else "N", "T" if transb else "N", a, b, out=out, alpha=1.0,
                beta=1.0 if accumulate else 0.0)
    return out


from . import conv, elementwise, loss, lstm, norm, pool  # noqa: E402  (they use the helpers above)

__all__ = ["POISON", "THREADS", "blocks", "contiguous", "conv", "device_properties", "elementwise", "empty", "gemm", "kernel",
           "launch_per_element", "loss", "lstm", "norm", "on_gpu", "pool"]
