"""Numba kernels for the CPU ops whose NumPy form makes several passes over memory.

Each module holds plain loops compiled with ``numba.njit(parallel=True,
cache=True)`` and the array-in, array-out functions around them, which the ops in
``tinyseg.ops`` call from their ``forward_cpu`` / ``backward_cpu`` (``lstm.py`` is
plain NumPy: one GEMM per step). A kernel's comment says how the work is split
across threads and which backward formula it implements.
"""
import os

# Idle OpenMP threads sleep instead of spinning, so that they leave the cores to the
# BLAS threads of the GEMM that follows a parallel loop (docs/03-convolution.md has the
# measurement). The OpenMP runtime reads this once, when it starts: importing tinyseg
# before another library that starts one (torch) makes it apply. A value the user set wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
