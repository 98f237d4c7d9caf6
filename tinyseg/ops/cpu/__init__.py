"""Numba kernels for the CPU ops whose NumPy form makes several passes over memory.

Each module holds plain loops compiled with ``numba.njit(parallel=True,
cache=True)``; the ops in ``tinyseg.ops`` call them for NumPy arrays and keep
their NumPy or CuPy code for the other cases. A kernel's comment says how the
work is split across threads and which backward formula it implements.
"""
import os

# Numba runs these loops on an OpenMP thread pool and NumPy's BLAS on its own. By
# default OpenMP threads spin after a parallel loop, waiting for the next one, and
# take the cores away from the BLAS threads of the GEMM that follows: a training
# step of the small H-ReNet took 497 ms that way and 222 ms with idle threads
# sleeping. The OpenMP runtime reads this once, when it starts: importing tinyseg
# before another library that starts one (torch) makes it apply. A value the user
# set wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
