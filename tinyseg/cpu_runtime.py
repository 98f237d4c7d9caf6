"""How tinyseg shares the CPU: its threads, the BLAS's threads and freed memory.

A training step on the CPU alternates Numba kernels (convolutions, pooling, the
loss) with matrix products in numpy's BLAS. Three process-wide facts decide how
fast they run on two to a few dozen cores, and this module is where tinyseg deals
with each of them, once.

1. **Numba's threading layer.** A training step starts a few hundred parallel
   loops, so what a loop's start costs matters. ``use_fork_safe_layer`` asks Numba,
   at import and only when the user chose no layer (``NUMBA_THREADING_LAYER`` or
   ``numba.config.THREADING_LAYER``), for its "forksafe" choice: the TBB layer where
   Intel's TBB (the ``tbb`` package, a dependency on Linux x86-64) loads, else the
   "workqueue" layer. Never the OpenMP layer on Linux: GNU OpenMP is not fork-safe
   (Numba stops a forked child that starts a parallel loop), and PyTorch runs on
   it. Measured on 2 cores, the small preset's training step: 42 ms at 4x1x256x256
   on TBB against 53 ms on the workqueue, whose start (70-90 microseconds) wakes
   sleeping threads each time; TBB's workers wait briefly before they sleep, and
   with two processes sharing the cores (as ``mpiexec -n 2`` runs) its step at
   8x1x128x160 was 48 ms against the workqueue's 51 ms. pip puts TBB's library in
   ``<prefix>/lib``, where the dynamic loader does not look, so ``load_tbb`` loads
   it by path first. The workqueue layer runs one parallel loop at a time: on it,
   call tinyseg's CPU ops from one Python thread at a time.

2. **BLAS worker threads spin.** After a multi-threaded product, OpenBLAS keeps
   its workers busy-waiting for the next one (for about 2^28 cycles, a tenth of a
   second), and Intel's OpenMP runtime under MKL does the same. On a machine whose
   cores the Numba kernels use too, a spinning worker takes a core from a Numba
   thread, and the parallel loop then waits for that thread's share: the training
   step of the small H-ReNet ran 20-35% slower so. tinyseg therefore runs every op
   with the BLAS on one thread (``blas_on_one_thread``, entered by the autograd
   engine around each forward and backward; numpy's setting is restored after the
   op, so the user's own products keep their threads), and where an op has several
   independent products it runs them side by side itself (``run_parallel``) on a
   pool of Python threads that sleep when idle. numpy's products release the GIL,
   so the products of a pool really run at the same time.

3. **Freed memory goes back to the system.** glibc's malloc returns a freed block
   of more than 128 KiB (its adaptive threshold grows to at most 32 MiB) to the
   operating system, and the next array of that size faults in fresh zeroed pages:
   a training step of the small model took about 7000 page faults, some milliseconds
   each time. ``keep_freed_memory`` asks glibc, at import, to keep freed blocks of up
   to 32 MiB and the top of its heap for reuse; the process's resident memory then
   stays near its peak instead of shrinking between steps. Other C libraries are
   left as they are.

Opting out: ``TINYSEG_CPU_DEFAULTS=0`` in the environment (before importing tinyseg)
skips 2 and 3; 1 is skipped by choosing a threading layer.
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import ctypes.util
import os
import sys
import threading

# glibc's mallopt parameters (malloc.h) and the largest mmap threshold it accepts on 64-bit.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
LARGEST_MMAP_THRESHOLD = 32 * 2 ** 20
TRIM_THRESHOLD = 2 ** 30


def enabled() -> bool:
    """False when the user opted out with TINYSEG_CPU_DEFAULTS=0."""
    return os.environ.get("TINYSEG_CPU_DEFAULTS", "1") != "0"


def use_fork_safe_layer():
    """Numba's "forksafe" threading layer choice (TBB, else workqueue; see 1.), unless the
    user chose a layer."""
    import numba
    if "NUMBA_THREADING_LAYER" not in os.environ and numba.config.THREADING_LAYER == "default":
        load_tbb()
        numba.config.THREADING_LAYER = "forksafe"


TBB_LIBRARY = "libtbb.so.12"      # the name Numba's TBB layer loads TBB by (Linux)


def load_tbb() -> bool:
    """Load Intel TBB's library from ``<prefix>/lib`` (or the user base's ``lib`` for
    ``pip install --user``), where pip's ``tbb`` package installs it, so that Numba's own
    lookup by name finds it; False where it is not there or does not load (Numba then falls
    back to its workqueue layer)."""
    import site
    if not sys.platform.startswith("linux"):
        return False
    for base in (sys.prefix, site.getuserbase()):
        path = os.path.join(base, "lib", TBB_LIBRARY)
        if os.path.exists(path):
            try:
                ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
                return True
            except OSError:
                pass
    return False


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed blocks up to 32 MiB, and its heap top, for reuse (see 3.);
    False where the C library is not glibc or refused."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, LARGEST_MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD,
                                                                                   TRIM_THRESHOLD))


# ---------------------------------------------------------------- the BLAS on one thread

class _Blas:
    """The BLAS libraries loaded in the process, found by threadpoolctl and looked up again
    whenever Python modules were imported since (an import may load another BLAS, scipy's
    say), and how many threads each had before tinyseg's outermost op set them to one."""

    def __init__(self):
        self.libraries, self.modules_seen = [], -1
        self.depth = 0
        self.saved = ()
        self.lock = threading.Lock()

    def find(self):
        if self.modules_seen != len(sys.modules):
            from threadpoolctl import ThreadpoolController
            self.libraries = list(ThreadpoolController().select(user_api="blas").lib_controllers)
            self.modules_seen = len(sys.modules)
        return self.libraries


_blas = _Blas()


@contextlib.contextmanager
def blas_on_one_thread():
    """Inside the block, every BLAS library of the process runs on one thread; the thread
    counts they had are restored when the outermost block ends (blocks nest)."""
    if not enabled():
        yield
        return
    with _blas.lock:
        if _blas.depth == 0:
            libraries = _blas.find()
            _blas.saved = tuple((lib, lib.get_num_threads()) for lib in libraries)
            for lib, threads in _blas.saved:
                if threads != 1:
                    lib.set_num_threads(1)
        _blas.depth += 1
    try:
        yield
    finally:
        with _blas.lock:
            _blas.depth -= 1
            if _blas.depth == 0:
                for lib, threads in _blas.saved:
                    if threads != 1:
                        lib.set_num_threads(threads)


# ---------------------------------------------------------------- tinyseg's own threads

_pool = None
_pool_size = 0


def threads() -> int:
    """How many threads tinyseg's CPU work uses: Numba's thread count."""
    import numba
    return numba.get_num_threads()


def run_parallel(tasks):
    """Run the callables ``tasks`` side by side on a pool of ``threads()`` Python threads
    (idle ones sleep) and return their results in order; an exception in a task is raised
    here. Tasks must not start parallel Numba loops (the workqueue layer runs one at a
    time): they call serial kernels compiled with ``nogil=True`` and numpy's products,
    which release the GIL. One task, or one thread, runs in the calling thread."""
    global _pool, _pool_size
    tasks = list(tasks)
    if len(tasks) <= 1 or threads() == 1:
        return [task() for task in tasks]
    if _pool is None or _pool_size != threads():
        if _pool is not None:
            _pool.shutdown(wait=True)
        _pool_size = threads()
        _pool = concurrent.futures.ThreadPoolExecutor(max_workers=_pool_size, thread_name_prefix="tinyseg-cpu")
    futures = [_pool.submit(task) for task in tasks]
    return [future.result() for future in futures]


def split(items, parts):
    """``items`` in at most ``parts`` contiguous runs of nearly equal length (none empty)."""
    items = list(items)
    parts = max(1, min(parts, len(items)))
    return [items[i * len(items) // parts:(i + 1) * len(items) // parts] for i in range(parts)]
