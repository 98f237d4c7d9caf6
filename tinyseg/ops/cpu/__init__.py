"""Numba kernels for the CPU ops whose NumPy form makes several passes over memory.

Each module holds plain loops compiled with ``numba.njit(parallel=True,
cache=True)``; the ops in ``tinyseg.ops`` call them for NumPy arrays and keep
their NumPy or CuPy code for the other cases. A kernel's comment says how the
work is split across threads and which backward formula it implements.
"""
