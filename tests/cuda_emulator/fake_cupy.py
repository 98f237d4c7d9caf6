"""A stand-in for the parts of CuPy that tinyseg uses, on the CPU.

Device arrays are ``ndarray``, a NumPy subclass, so tinyseg's ``get_array_module``
tells them from host arrays and sends them down its GPU code paths; kernels come from
``RawModule``, which compiles the CUDA source with g++ (``build.py``). Like CuPy, and
unlike plain NumPy, an operation that mixes a device array with a host array (other than
a scalar or a 0-d array) raises TypeError, and ``asarray`` of a host array copies it.
``cublas.gemm`` is CuPy's cuBLAS wrapper with its argument rules, computed by NumPy, and
``cuda.runtime.getDeviceProperties`` gives the limits in ``build.DEVICE``; kernels have
RawKernel's attributes (``build.Kernel``).

What it cannot show: speed, races between threads of a block (threads run one at a
time), and float32 rounding of the GPU's own math library and of cuBLAS. Reads and
writes past the end of an array show up when the kernels are built with AddressSanitizer
(``build.asan_environment``).
"""
from __future__ import annotations

import os
import types

import numpy

from .build import DEVICE, Kernel, compile_source


class ndarray(numpy.ndarray):
    """A device array: host memory that only device code and device-array ops may mix with."""

    def get(self):
        return numpy.array(self.view(numpy.ndarray))

    @property
    def data(self):
        """As in CuPy, a pointer to device memory, not an array: code must not read it as one."""
        return MemoryPointer(self.__array_interface__["data"][0])

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        _refuse_host_arrays(ufunc.__name__, inputs, kwargs.get("out", ()))
        if "out" in kwargs:
            kwargs["out"] = _to_host(kwargs["out"])
        result = getattr(ufunc, method)(*_to_host(inputs), **kwargs)
        return _to_device(result)

    def __array_function__(self, func, types_, args, kwargs):
        _refuse_host_arrays(func.__name__, args, kwargs.values())
        return _to_device(func(*_to_host(args), **_to_host(kwargs)))


class MemoryPointer:
    def __init__(self, ptr):
        self.ptr = ptr


def _host_arrays(values):
    for value in values:
        if isinstance(value, (list, tuple)):
            yield from _host_arrays(value)
        elif type(value) is numpy.ndarray and value.ndim > 0:
            yield value


def _refuse_host_arrays(name, *groups):
    for group in groups:
        if next(_host_arrays(list(group)), None) is not None:
            raise TypeError(f"{name}: a host (NumPy) array mixed with device arrays; "
                            "copy it with cupy.asarray first")


def _to_host(value):
    if isinstance(value, ndarray):
        return value.view(numpy.ndarray)
    if isinstance(value, (list, tuple)):
        return type(value)(_to_host(v) for v in value)
    if isinstance(value, dict):
        return {k: _to_host(v) for k, v in value.items()}
    return value


def _to_device(value):
    if type(value) is numpy.ndarray:
        return value.view(ndarray)
    if isinstance(value, numpy.generic):       # CuPy's reductions give 0-d device arrays
        return numpy.asarray(value).view(ndarray)
    if isinstance(value, (list, tuple)):
        return type(value)(_to_device(v) for v in value)
    return value


def asarray(a, dtype=None, order=None):
    if isinstance(a, ndarray):
        return a if dtype is None or a.dtype == dtype else a.astype(dtype)
    return numpy.array(_to_host(a), dtype=dtype, order=order or "K").view(ndarray)   # a copy


array = asarray


def ascontiguousarray(a, dtype=None):
    if not isinstance(a, ndarray):
        raise TypeError("ascontiguousarray: expected a device array")
    return numpy.ascontiguousarray(a.view(numpy.ndarray), dtype=dtype).view(ndarray)


def asnumpy(a):
    return numpy.array(_to_host(a))


def _creation(function):
    def create(*args, **kwargs):
        return function(*args, **kwargs).view(ndarray)
    create.__name__ = function.__name__
    return create


empty, zeros, ones, full, arange = (_creation(f) for f in (numpy.empty, numpy.zeros, numpy.ones,
                                                           numpy.full, numpy.arange))


def get_array_module(*arrays):
    return _module if any(isinstance(a, ndarray) for a in arrays) else numpy


def __getattr__(name):   # everything else: NumPy's (dispatch to ndarray above keeps results on the device)
    return getattr(numpy, name)


class RawModule:
    def __init__(self, code, options=()):
        self.code, self.options, self._kernels = code, tuple(options), None

    def compile(self):
        if self._kernels is None:
            try:
                self._kernels = compile_source(self.code, self.options, _source_name(self.code))
            except RuntimeError as err:
                raise cuda.compiler.CompileException(str(err)) from err

    def get_function(self, name):
        self.compile()
        if name not in self._kernels:
            raise AttributeError(f"no kernel named {name!r}")
        library, parameters, barriers, launch_bound = self._kernels[name]
        return Kernel(library, name, parameters, barriers, ndarray, launch_bound)


def _source_name(code):
    """The cuda/ file whose text ``code`` is (tinyseg hands RawModule the text alone)."""
    from tinyseg.backend import CUDA_SOURCE_DIR
    for name in sorted(os.listdir(CUDA_SOURCE_DIR)):
        with open(os.path.join(CUDA_SOURCE_DIR, name), encoding="utf-8") as f:
            if f.read() == code:
                return os.path.join("cuda", name)
    return "kernel.cu"


class _CompileException(Exception):
    pass


class _Cublas:
    """``cupy.cublas``: the one wrapper tinyseg calls, ``gemm``, with CuPy's argument rules.

    As CuPy does, an operand that is neither C- nor F-contiguous is copied first (cuBLAS
    needs a leading dimension), and so is an ``out`` that is neither; ``operand_copies``
    counts those copies, so tests can show that the GEMMs tinyseg makes need none. With
    beta = 0 ``out`` is not read (cuBLAS ignores what it held, NaN included)."""

    operand_copies = 0

    def gemm(self, transa, transb, a, b, out=None, alpha=1.0, beta=0.0):
        assert a.ndim == b.ndim == 2
        assert a.dtype == b.dtype
        if a.dtype.char not in "fdFD":
            raise TypeError("invalid dtype")
        op_a, op_b = (m.T if _transposed(t) else m for m, t in ((a, transa), (b, transb)))
        (m, k), n = op_a.shape, op_b.shape[1]
        assert op_b.shape[0] == k
        if out is None:
            out = numpy.empty((m, n), dtype=a.dtype, order="F").view(ndarray)
            beta = 0.0
        else:
            assert out.ndim == 2 and out.shape == (m, n) and out.dtype == a.dtype
        for array in (a, b, out):
            if not (array.flags.c_contiguous or array.flags.f_contiguous):
                _Cublas.operand_copies += 1
        product = numpy.matmul(_to_host(op_a), _to_host(op_b))
        if alpha != 1.0:
            product *= alpha
        host = _to_host(out)
        if beta == 0.0:
            host[...] = product
        else:
            host *= beta
            host += product
        return out


def _transposed(trans):
    if trans not in ("N", "T", "H"):
        raise TypeError(f"invalid trans (actual: {trans})")
    return trans != "N"


cublas = _Cublas()


class _Device:
    id = 0

    def __init__(self, device_id=0):
        self.id = device_id

    def synchronize(self):
        pass


cuda = types.SimpleNamespace(
    runtime=types.SimpleNamespace(
        getDeviceCount=lambda: 1,
        getDeviceProperties=lambda device_id: dict(DEVICE),
    ),
    compiler=types.SimpleNamespace(CompileException=_CompileException),
    Device=_Device,
)

import sys as _sys  # noqa: E402

_module = _sys.modules[__name__]
