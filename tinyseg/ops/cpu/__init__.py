"""Numba kernels for the CPU ops whose NumPy form makes several passes over memory.

Each module holds plain loops compiled with ``launch.kernel`` (as ``numba.njit(parallel=True,
cache=True)``, plus a serial twin for calls with little work) and the array-in, array-out
functions around them, which the ops in
``tinyseg.ops`` call from their ``forward_cpu`` / ``backward_cpu``. A kernel's comment
says how the work is split across threads and which backward formula it implements;
the few kernels compiled without ``parallel=True`` (``nogil=True`` instead) run side by
side on tinyseg's own threads (``tinyseg.cpu_runtime.run_parallel``).
"""
from ... import cpu_runtime

# The process-wide choices made at import (cpu_runtime's docstring says why): Numba's
# fork-safe threading layer (TBB, else workqueue) unless the user picked one, and glibc
# keeping freed memory for reuse unless TINYSEG_CPU_DEFAULTS=0.
cpu_runtime.use_fork_safe_layer()
if cpu_runtime.enabled():
    cpu_runtime.keep_freed_memory()
