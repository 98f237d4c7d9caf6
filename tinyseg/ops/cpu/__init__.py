"""Numba kernels for the CPU ops whose NumPy form makes several passes over memory.

Each module holds plain loops compiled with ``numba.njit(parallel=True,
cache=True)`` and the array-in, array-out functions around them, which the ops in
``tinyseg.ops`` call from their ``forward_cpu`` / ``backward_cpu`` (``lstm.py`` is
plain NumPy: one GEMM per step). A kernel's comment says how the work is split
across threads and which backward formula it implements.
"""
import os

import numba

# The kernels run on Numba's "workqueue" threading layer: its idle threads sleep on a
# condition variable, so between two parallel loops they leave the cores to the BLAS
# threads of the GEMM that follows, and they never touch the OpenMP runtime that PyTorch
# shares (whose settings stay as PyTorch ships them). This changes one process-wide
# setting, Numba's choice of threading layer, and only when the user made no choice
# (NUMBA_THREADING_LAYER or numba.config.THREADING_LAYER) and no parallel Numba code has
# run yet. The workqueue layer runs one parallel loop at a time: call tinyseg's CPU ops
# from one Python thread at a time, or choose another layer.
if "NUMBA_THREADING_LAYER" not in os.environ and numba.config.THREADING_LAYER == "default":
    numba.config.THREADING_LAYER = "workqueue"
