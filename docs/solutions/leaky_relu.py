"""LeakyReLU built end to end the way tinyseg's own ops are, outside the package.

    y = x            where x > 0
    y = slope * x    elsewhere          (slope >= 0; PyTorch's default 0.01)

The pieces, in the order chapter 8 adds them: the Function with its declared ``saves``
and a CPU and a GPU path, the functional wrapper, the Tensor method, the Numba kernels
of the CPU path, and the GPU launchers around the CUDA kernels in ``leaky_relu.cu``.
"""
from __future__ import annotations

import functools
import os

import numpy as np
from numba import njit, prange

from tinyseg.autograd import Function
from tinyseg.backend import get_array_module
from tinyseg.ops import gpu
from tinyseg.tensor import Tensor

HERE = os.path.dirname(os.path.abspath(__file__))


# -- CPU: Numba kernels over flat arrays -----------------------------------------------------

@njit(parallel=True, cache=True)
def forward_kernel(x, slope, y):
    # Threads: prange shares the elements out among the cores; each writes its own y[k].
    for k in prange(x.size):
        v = x[k]
        y[k] = v if v > 0 else slope * v


@njit(parallel=True, cache=True)
def backward_kernel(gy, y, slope, gx):
    # dx = dy where y > 0 (there x > 0), slope * dy elsewhere.
    for k in prange(gy.size):
        gx[k] = gy[k] if y[k] > 0 else slope * gy[k]


# -- GPU: launchers, arrays in and arrays out --------------------------------------------------

@functools.lru_cache(maxsize=None)
def _gpu_function(cupy, name):
    """Kernel ``name`` of leaky_relu.cu, compiled once per process (NVRTC, or the emulator)."""
    with open(os.path.join(HERE, "leaky_relu.cu"), encoding="utf-8") as f:
        source = f.read()
    module = cupy.RawModule(code=source, options=("-std=c++14",) + gpu.INCLUDE)   # finds common.cuh
    return module.get_function(name)


def _kernel(array, name):
    suffix = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}[np.dtype(array.dtype)]
    return _gpu_function(get_array_module(array), f"{name}_{suffix}")


def gpu_forward(x, slope):
    x = gpu.contiguous(x)
    y = gpu.empty(x, x.shape)
    # scalars in the kernel's own C types: a Python float would go as a double, an int as 64 bits
    gpu.launch_per_element(_kernel(x, "leaky_relu_forward"), x.size, x, y, x.dtype.type(slope),
                           np.int64(x.size))
    return y


def gpu_backward(gy, y, slope):
    gy = gpu.contiguous(gy, y.dtype)
    gx = gpu.empty(gy, gy.shape)
    gpu.launch_per_element(_kernel(gy, "leaky_relu_backward"), gy.size, gy, gpu.contiguous(y), gx,
                           gy.dtype.type(slope), np.int64(gy.size))
    return gx


# -- the op ------------------------------------------------------------------------------------

class LeakyReLU(Function):
    """Saves its output: with slope >= 0, y > 0 exactly where x > 0, so y is the mask, and
    the input can be freed as ReLU's is. Backward: dx = dy * (1 where y > 0, else slope)."""

    saves = ("y",)

    def __init__(self, slope=0.01):
        if not slope >= 0:
            raise ValueError(f"leaky_relu: the slope must be >= 0 (the output is the mask), got {slope}")
        self.slope = slope

    def forward_cpu(self, x):
        x = np.ascontiguousarray(x)
        y = np.empty_like(x)
        forward_kernel(x.reshape(-1), x.dtype.type(self.slope), y.reshape(-1))
        self.save(y=y)
        return y

    def forward_gpu(self, x):
        self.save(y=gpu_forward(x, self.slope))
        return self.y

    def backward_cpu(self, gy):
        gy = np.ascontiguousarray(gy, self.y.dtype)
        gx = np.empty_like(gy)
        backward_kernel(gy.reshape(-1), self.y.reshape(-1), gy.dtype.type(self.slope), gx.reshape(-1))
        return gx

    def backward_gpu(self, gy):
        return gpu_backward(gy, self.y, self.slope)


def leaky_relu(x, negative_slope=0.01):
    """The functional wrapper, named as PyTorch's F.leaky_relu."""
    return LeakyReLU(negative_slope)(x)


# The Tensor method, attached the way tinyseg.ops.setup_tensor attaches relu and the others.
Tensor.leaky_relu = leaky_relu
