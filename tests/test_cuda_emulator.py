"""The CPU emulation of CUDA (tests/cuda_emulator) and, through it, the GPU test suite.

Machines without a GPU (CI among them) still run every GPU code path: tests/gpu runs in a
subprocess with TINYSEG_CUDA_EMULATOR=1, where tinyseg's CuPy is the emulator's stand-in
and the kernels in cuda/ are compiled by g++. The first tests here show that the emulator
itself catches what it claims to: unsynchronised shared memory, barrier divergence,
argument types a GPU would misread, host arrays mixed into device code, and (built with
AddressSanitizer, as the suite runs where g++ has it) reads past the end of an array.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

import tinyseg as ts
import cuda_emulator
from cuda_emulator import build, fake_cupy as cp

pytestmark = pytest.mark.skipif(not cuda_emulator.available(), reason="the CUDA emulator needs g++")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SOURCE = r"""
#define THREADS 64
// Block-wide sum through shared memory: blockIdx.x picks a row of x (rows, THREADS * 4).
extern "C" __global__ void row_sums(const float* x, float* out, int width, int sync)
{
    __shared__ float partial[THREADS];
    float sum = 0;
    for (int k = threadIdx.x; k < width; k += THREADS) sum += x[blockIdx.x * width + k];
    partial[threadIdx.x] = sum;
    if (sync) __syncthreads();
    for (int half = THREADS / 2; half > 0; half /= 2) {
        if (threadIdx.x < half) partial[threadIdx.x] += partial[threadIdx.x + half];
        if (sync) __syncthreads();
    }
    if (threadIdx.x == 0) out[blockIdx.x] = partial[0];
}

// Thread 0 alone waits at a barrier: divergence.
extern "C" __global__ void diverging(float* out)
{
    if (threadIdx.x == 0) __syncthreads();
    out[threadIdx.x] = 1.0f;
}

// Copies dynamic shared memory without writing it first.
extern "C" __global__ void read_unwritten_shared(double* out)
{
    extern __shared__ double words[];
    out[threadIdx.x] = words[threadIdx.x];
}

// At most 64 threads per block.
extern "C" __global__ void __launch_bounds__(THREADS) bounded(float* out)
{
    out[threadIdx.x] = 1.0f;
}

// One thread per element of a (rows, cols) grid in 2-D blocks.
extern "C" __global__ void index_grid(long long* out, int rows, int cols)
{
    const int r = blockIdx.y * blockDim.y + threadIdx.y;
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (r < rows && c < cols) out[(long long)r * cols + c] = (long long)r * 1000 + c;
}
"""


@pytest.fixture(scope="module")
def module():
    m = cp.RawModule(code=SOURCE)
    m.compile()
    return m


def test_block_reduction_with_barriers_is_exact(module):
    x = np.random.default_rng(0).standard_normal((5, 256)).astype(np.float32)
    out = cp.full(5, np.nan, dtype=np.float32)
    module.get_function("row_sums")((5,), (64,), (cp.asarray(x), out, np.int32(256), np.int32(1)))
    np.testing.assert_allclose(cp.asnumpy(out), x.sum(axis=1), rtol=1e-5)


def test_a_reduction_without_barriers_reads_stale_shared_memory(module):
    # Threads run one after another, so without __syncthreads thread 0 folds partial
    # sums that later threads have not written yet: the result must come out wrong.
    x = np.ones((1, 256), dtype=np.float32)
    out = cp.full(1, np.nan, dtype=np.float32)
    module.get_function("row_sums")((1,), (64,), (cp.asarray(x), out, np.int32(256), np.int32(0)))
    assert float(out[0]) != 256.0


def test_barrier_divergence_is_reported(module):
    with pytest.raises(RuntimeError, match="barrier divergence"):
        module.get_function("diverging")((1,), (32,), (cp.zeros(32, dtype=np.float32),))


def test_dynamic_shared_memory_starts_as_nan(module):
    out = cp.zeros(8, dtype=np.float64)
    module.get_function("read_unwritten_shared")((1,), (8,), (out,), shared_mem=8 * 8)
    assert np.isnan(cp.asnumpy(out)).all()


def test_two_dimensional_grids_cover_every_element(module):
    out = cp.full((7, 9), -1, dtype=np.int64)
    module.get_function("index_grid")((3, 2), (4, 4), (out, np.int32(7), np.int32(9)))
    rows, cols = np.indices((7, 9))
    np.testing.assert_array_equal(cp.asnumpy(out), rows * 1000 + cols)


def test_launches_a_gpu_would_refuse_are_refused(module):
    bounded = module.get_function("bounded")
    assert bounded.max_threads_per_block == 64 and bounded.attributes["max_threads_per_block"] == 64
    bounded((1,), (64,), (cp.zeros(64, np.float32),))
    with pytest.raises(ValueError, match="threads per block"):
        bounded((1,), (128,), (cp.zeros(128, np.float32),))
    # dynamic shared memory: 48 KiB unless the kernel is opted in to more, up to the device's limit
    reader = cp.RawModule(code=SOURCE).get_function("read_unwritten_shared")
    assert reader.max_dynamic_shared_size_bytes == 48 * 1024
    with pytest.raises(ValueError, match="dynamic shared memory"):
        reader((1,), (8,), (cp.zeros(8, np.float64),), shared_mem=64 * 1024)
    optin = cp.cuda.runtime.getDeviceProperties(0)["sharedMemPerBlockOptin"]
    with pytest.raises(RuntimeError, match="INVALID_VALUE"):
        reader.max_dynamic_shared_size_bytes = optin + 1
    reader.max_dynamic_shared_size_bytes = 64 * 1024
    reader((1,), (8,), (cp.zeros(8, np.float64),), shared_mem=64 * 1024)
    # the setting belongs to the kernel, not to one Python handle of it (as with the driver)
    assert module.get_function("read_unwritten_shared").max_dynamic_shared_size_bytes == 64 * 1024
    assert reader.attributes["num_regs"] > 0


def test_cublas_gemm_follows_cupy():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((5, 4))
    out = cp.full((3, 5), np.nan)                       # beta = 0: what out held is not read
    before = cp.cublas.operand_copies
    cp.cublas.gemm("N", "T", cp.asarray(a), cp.asarray(b), out=out)
    np.testing.assert_allclose(cp.asnumpy(out), a @ b.T)
    cp.cublas.gemm("T", "N", cp.asarray(a.T.copy()), cp.asarray(b.T.copy()), out=out, beta=1.0)
    np.testing.assert_allclose(cp.asnumpy(out), 2 * a @ b.T)
    assert cp.cublas.operand_copies == before           # C- and F-contiguous operands are read in place
    cp.cublas.gemm("N", "N", cp.asarray(rng.standard_normal((3, 8)))[:, ::2], cp.asarray(b.T.copy()), out=out)
    assert cp.cublas.operand_copies == before + 1       # a strided one is copied first, as CuPy does
    assert cp.cublas.gemm("N", "N", cp.asarray(a), cp.asarray(b.T.copy())).flags.f_contiguous
    with pytest.raises(AssertionError):
        cp.cublas.gemm("N", "N", cp.asarray(a), cp.asarray(b))


@pytest.mark.parametrize("args, message", [
    ((np.zeros(4, np.float32), None, np.int32(4), np.int32(1)), "takes a device array"),
    ((cp.zeros(4, np.float64), None, np.int32(4), np.int32(1)), r"is float\*, got an array of float64"),
    ((cp.zeros(4, np.float32), None, 4, np.int32(1)), "pass numpy.int32"),
    ((cp.zeros(4, np.float32), None, np.int64(4), np.int32(1)), "pass numpy.int32"),
    ((cp.zeros(4, np.float32), None, np.int32(4)), "takes 4 arguments"),
    ((cp.zeros(8, np.float32)[::2], None, np.int32(4), np.int32(1)), "non-contiguous"),
])
def test_arguments_a_gpu_would_misread_are_refused(module, args, message):
    args = tuple(cp.zeros(1, np.float32) if a is None else a for a in args)
    with pytest.raises(TypeError, match=message):
        module.get_function("row_sums")((1,), (64,), args)


def test_host_arrays_do_not_mix_with_device_arrays():
    device = cp.ones(3, dtype=np.float32)
    with pytest.raises(TypeError, match="host"):
        device + np.ones(3, dtype=np.float32)
    with pytest.raises(TypeError, match="host"):
        cp.stack([device, np.ones(3, dtype=np.float32)])
    assert isinstance(device * 2 + np.float32(1), cp.ndarray)       # scalars are fine
    assert isinstance(device.sum(), cp.ndarray)                      # reductions stay on the device


def test_asarray_copies_host_data():
    host = np.zeros(3)
    device = cp.asarray(host)
    device[0] = 1
    assert host[0] == 0


def test_compile_errors_name_the_problem():
    with pytest.raises(cp.cuda.compiler.CompileException, match="error"):
        cp.RawModule(code='extern "C" __global__ void broken(float* x) { x[0] = undefined_name; }').compile()


OUT_OF_BOUNDS = """
import sys
sys.path.insert(0, "tests")
import numpy as np
import cuda_emulator
cp = cuda_emulator.install()
shift = cp.RawModule(code='extern "C" __global__ void shift(const float* x, float* y) '
                          '{ y[threadIdx.x] = x[threadIdx.x + 1]; }')
shift.get_function("shift")((1,), (64,), (cp.zeros(64, np.float32), cp.zeros(64, np.float32)))
print("no report")
"""


def run_python(args, env):
    return subprocess.run([sys.executable, *args], cwd=REPO, env=dict(os.environ, **env), capture_output=True,
                          text=True)


@pytest.mark.skipif(build.asan_environment() is None, reason="g++ has no AddressSanitizer runtime")
def test_address_sanitizer_reports_a_read_past_the_end():
    result = run_python(["-c", OUT_OF_BOUNDS], build.asan_environment())
    assert result.returncode != 0 and "heap-buffer-overflow" in result.stderr, result.stdout + result.stderr[-3000:]
    assert "in shift" in result.stderr                     # the report names the kernel


@pytest.mark.skipif(ts.cuda_available(), reason="a real CUDA device runs tests/gpu itself")
def test_gpu_suite_passes_on_the_emulator():
    """tests/gpu with every kernel emulated, under AddressSanitizer where g++ has it. The
    suite's output is not captured by pytest at the file level (--capture=sys), so a
    sanitizer report, which ends the process, reaches the failure message."""
    env = {"TINYSEG_CUDA_EMULATOR": "1", "TINYSEG_GPU_POISON": "1", **(build.asan_environment() or {})}
    result = run_python(["-m", "pytest", "-q", "-p", "no:cacheprovider", "--capture=sys", "-rs",
                         os.path.join("tests", "gpu")], env)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    summary = result.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "skipped" not in summary, summary
