"""Array backend: NumPy on the CPU, CuPy on the GPU.

Everything device-specific in tinyseg goes through this module. An op asks
``get_array_module(array)`` for the module that owns its data (``numpy`` or
``cupy``) and writes its math once against that module, called ``xp``.
"""
from __future__ import annotations

import functools
import os

import numpy as np

try:  # CuPy is optional: tinyseg runs on the CPU without it.
    import cupy as _cupy
except Exception:  # ImportError, or a CUDA runtime that fails to load
    _cupy = None

DEVICES = ("cpu", "cuda")


def _cuda_source_dir() -> str:
    """The kernels' folder: the copy an installed package ships (``tinyseg/cuda``), else the
    repository's ``cuda/`` next to the package (a checkout or an editable install)."""
    package = os.path.dirname(os.path.abspath(__file__))
    shipped = os.path.join(package, "cuda")
    return shipped if os.path.isdir(shipped) else os.path.join(os.path.dirname(package), "cuda")


CUDA_SOURCE_DIR = _cuda_source_dir()


class DeviceUnavailable(RuntimeError):
    """The device asked for cannot be used here (no CuPy, or no CUDA device)."""


def cuda_available() -> bool:
    """True when CuPy imports and sees at least one CUDA device."""
    if _cupy is None:
        return False
    try:
        return _cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def check_device(device: str) -> str:
    """Validate a device name and return it; 'cuda' must actually be usable."""
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; expected one of {DEVICES}")
    if device == "cuda" and not cuda_available():
        raise DeviceUnavailable("device 'cuda' requested but CuPy or a CUDA device is not available; "
                                "use --device cpu, or install CuPy for CUDA 13 (pip install -e \".[gpu]\")")
    return device


def pick_device(device: str = "auto") -> str:
    """``"auto"`` -> ``"cuda"`` when usable, else ``"cpu"``; any other name is checked."""
    if device == "auto":
        return "cuda" if cuda_available() else "cpu"
    return check_device(device)


def get_array_module(array):
    """The module (numpy or cupy) that owns ``array``."""
    if _cupy is not None and isinstance(array, _cupy.ndarray):
        return _cupy
    return np


def device_of(array) -> str:
    return "cuda" if get_array_module(array) is not np else "cpu"


def module_for(device: str):
    return _cupy if check_device(device) == "cuda" else np


def to_device(array, device: str):
    """Copy ``array`` to ``device`` (no copy when it is already there)."""
    check_device(device)
    if device == "cpu":
        return _cupy.asnumpy(array) if device_of(array) == "cuda" else np.asarray(array)
    return _cupy.asarray(array)


def as_numpy(array) -> np.ndarray:
    return to_device(array, "cpu")


@functools.lru_cache(maxsize=None)
def load_module(filename: str, options: tuple = ()):
    """Compile ``cuda/<filename>`` once per process and cache the RawModule.

    A compile error is re-raised naming the file, with NVRTC's log (which
    carries the line numbers).
    """
    if _cupy is None:
        raise RuntimeError("CUDA kernels need CuPy")
    path = os.path.join(CUDA_SOURCE_DIR, filename)
    with open(path, encoding="utf-8") as f:
        source = f.read()
    try:
        module = _cupy.RawModule(code=source, options=("-std=c++14",) + tuple(options))
        module.compile()
    except _cupy.cuda.compiler.CompileException as err:
        raise RuntimeError(f"failed to compile {path}:\n{err}") from err
    return module


def get_kernel(filename: str, name: str):
    """A kernel function ``name`` from ``cuda/<filename>``, compiled once."""
    return load_module(filename).get_function(name)
