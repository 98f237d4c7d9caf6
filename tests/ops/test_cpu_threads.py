"""How tinyseg shares the CPU (tinyseg/cpu_runtime.py): Numba's fork-safe threading layer (TBB
where it is installed, else workqueue) unless the user chose a layer, OpenMP (PyTorch's runtime)
left alone, the BLAS on one thread inside every op and restored after it, tinyseg's own pool for
side-by-side products, and freed memory kept for reuse."""
import os
import subprocess
import sys

CODE = """
import os, numpy as np, numba, tinyseg as ts, tinyseg.functional as F
F.conv2d(ts.tensor(np.ones((1, 8, 128, 128))), ts.tensor(np.ones((8, 8, 3, 3))), padding=1)   # large: parallel
print(numba.threading_layer(), os.environ.get("OMP_WAIT_POLICY"), os.environ.get("OPENBLAS_THREAD_TIMEOUT"))
"""


def run(env_changes):
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_WAIT_POLICY", "OPENBLAS_THREAD_TIMEOUT", "NUMBA_THREADING_LAYER")}
    env.update(env_changes)
    return subprocess.run([sys.executable, "-c", CODE], env=env, capture_output=True, text=True,
                          check=True).stdout.split()


def test_kernels_run_on_a_fork_safe_layer_and_no_environment_variable_is_set():
    # TBB where pip's tbb package is installed (Linux x86-64: a dependency), else the workqueue
    from tinyseg import cpu_runtime
    assert run({}) == ["tbb" if cpu_runtime.load_tbb() else "workqueue", "None", "None"]


FORKED = """
import multiprocessing, numpy as np, numba, tinyseg as ts, tinyseg.functional as F
def conv(_):
    return float(F.conv2d(ts.tensor(np.ones((1, 8, 128, 128))), ts.tensor(np.ones((8, 8, 3, 3))),
                          padding=1).numpy()[0, 0, 5, 5])
print(conv(0), numba.threading_layer())          # the parent starts the layer first
with multiprocessing.get_context("fork").Pool(2) as pool:
    print(*pool.map(conv, range(2)))
"""


def test_forked_children_run_parallel_kernels():
    # GNU OpenMP would stop these children; the layers tinyseg picks are fork-safe
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_THREADING_LAYER"}
    out = subprocess.run([sys.executable, "-c", FORKED], env=env, capture_output=True, text=True,
                         check=True, timeout=120).stdout.split()
    assert out[0] == "72.0" and out[2:] == ["72.0", "72.0"]


def test_load_tbb_is_a_no_op_without_the_library(monkeypatch, tmp_path):
    import site
    from tinyseg import cpu_runtime
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    monkeypatch.setattr(site, "getuserbase", lambda: str(tmp_path / "user"))
    assert cpu_runtime.load_tbb() is False


def test_a_threading_layer_the_user_chose_wins():
    assert run({"NUMBA_THREADING_LAYER": "omp"})[0] == "omp"


# ---------------------------------------------------------------- cpu_runtime: BLAS threads, tinyseg's pool, memory

import threading  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from threadpoolctl import threadpool_info  # noqa: E402

import tinyseg as ts  # noqa: E402
from tinyseg import cpu_runtime  # noqa: E402
from tinyseg.autograd import Function  # noqa: E402


def blas_threads():
    return [info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"]


def test_the_blas_runs_on_one_thread_inside_the_block_and_gets_its_threads_back():
    before = blas_threads()
    with cpu_runtime.blas_on_one_thread():
        assert blas_threads() and set(blas_threads()) == {1}
        with cpu_runtime.blas_on_one_thread():        # blocks nest
            assert set(blas_threads()) == {1}
        assert set(blas_threads()) == {1}
    assert blas_threads() == before


class RecordBlasThreads(Function):
    seen = []

    def forward(self, x):
        RecordBlasThreads.seen.append(("forward", blas_threads()))
        return x * 2

    def backward(self, g):
        RecordBlasThreads.seen.append(("backward", blas_threads()))
        return g * 2


def test_every_op_runs_forward_and_backward_with_the_blas_on_one_thread():
    before = blas_threads()
    RecordBlasThreads.seen.clear()
    x = ts.tensor(np.ones(3), requires_grad=True)
    RecordBlasThreads()(x).sum().backward()
    assert [(step, set(threads)) for step, threads in RecordBlasThreads.seen] == [("forward", {1}),
                                                                                 ("backward", {1})]
    assert blas_threads() == before                   # the user's numpy keeps its threads


def test_run_parallel_returns_results_in_order_and_raises_a_tasks_error():
    assert cpu_runtime.run_parallel(lambda i=i: i * i for i in range(7)) == [i * i for i in range(7)]

    def fails():
        raise ValueError("task failed")
    with pytest.raises(ValueError, match="task failed"):
        cpu_runtime.run_parallel([lambda: 1, fails])


@pytest.mark.skipif(cpu_runtime.threads() < 2, reason="needs two threads")
def test_run_parallel_runs_tasks_at_the_same_time():
    # Each task waits for the other at a barrier: run one after the other, they would time out.
    barrier = threading.Barrier(2, timeout=10)
    assert cpu_runtime.run_parallel([barrier.wait, barrier.wait]) is not None


def test_split_covers_every_item_once_in_order():
    for n in range(0, 12):
        for parts in range(1, 5):
            shares = cpu_runtime.split(range(n), parts)
            assert [i for share in shares for i in share] == list(range(n))
            assert len(shares) == max(1, min(parts, n)) and (n == 0 or all(shares))


FAULTS = """
import resource, numpy as np, tinyseg
def step():      # arrays of 4, 8, 12 and 16 MiB alive together, then all freed, as in a training step
    arrays = [np.ones(2 ** 20 * k, np.float32) for k in (1, 2, 3, 4)]
    del arrays
for _ in range(3):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_memory_is_kept_for_reuse_unless_the_user_opts_out():
    def faults(env_changes):
        env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
        env.update(env_changes)
        return int(subprocess.run([sys.executable, "-c", FAULTS], env=env, capture_output=True, text=True,
                                  check=True).stdout)
    # 10 steps of 40 MiB fault in up to 10 * 10240 pages where freed blocks go back to the system
    assert faults({}) < 500
    assert faults({"TINYSEG_CPU_DEFAULTS": "0"}) > 5000


def test_small_calls_run_serially_and_large_ones_in_parallel(monkeypatch):
    from tinyseg.ops.cpu import launch, pool
    calls = []
    kernel = pool.max_pool_forward_2x2
    monkeypatch.setattr(kernel, "serial", lambda *a: calls.append("serial"))
    monkeypatch.setattr(kernel, "parallel", lambda *a: calls.append("parallel"))
    for planes in (1, 64):           # 1x64x64 input elements, then 64x64x64 (above SERIAL_BELOW)
        x = np.zeros((planes, 64, 64))
        kernel(x, np.zeros((planes, 32, 32)), np.zeros((planes, 32, 32), np.int32))
    assert calls == ["serial", "parallel"] and 64 * 64 < launch.SERIAL_BELOW <= 64 ** 3


@pytest.mark.parametrize("shape", [(1, 2, 6, 8), (8, 16, 64, 64)])
def test_the_serial_and_parallel_kernels_agree_bit_for_bit(shape):
    from tinyseg.ops.cpu import direct
    rng = np.random.default_rng(2)
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal((5, shape[1], 3, 3)).astype(np.float32)
    ys = [np.empty((shape[0], 5) + shape[2:], np.float32) for _ in range(2)]
    band = direct.band_rows(5, shape[2], shape[3] + 2, 4)
    direct.conv3x3_kernel(1).serial(x, w, np.zeros(0, np.float32), True, band, ys[0])
    direct.conv3x3_kernel(1).parallel(x, w, np.zeros(0, np.float32), True, band, ys[1])
    np.testing.assert_array_equal(ys[0], ys[1])
