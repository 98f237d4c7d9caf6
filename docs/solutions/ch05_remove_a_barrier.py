"""Chapter 5, exercise 1: a block-wide sum, and what the CUDA emulator shows without its barriers.

    python docs/solutions/ch05_remove_a_barrier.py        # requires: g++

A GPU runs a block's threads in warps of 32, interleaved as the scheduler likes: a
missing barrier gives a wrong sum only when some warp happens to read a partial sum
before another warp has written it, so the bug comes and goes. The emulator runs the
threads of a block one after another (and, with barriers, each as a coroutine that
waits at __syncthreads()), so a read that the barrier should have delayed always sees
memory not yet written: the bug shows on every run.
"""
import os
import shutil
import sys

import numpy as np

if shutil.which("g++") is None:
    print("skipped: the CUDA emulator needs g++")
    raise SystemExit(0)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests"))
from cuda_emulator import fake_cupy as cp  # noqa: E402  (the emulator's stand-in for CuPy)

SOURCE = r"""
#define THREADS 256
// One block sums THREADS values: each thread stores one, then a tree of halving
// strides adds pairs; thread 0 writes the total.
extern "C" __global__ void block_sum(const float* x, float* out)
{
    __shared__ float partial[THREADS];
    partial[threadIdx.x] = x[threadIdx.x];
    __syncthreads();                                   // (A) every value is stored
    for (int half = THREADS / 2; half > 0; half /= 2) {
        if (threadIdx.x < half) partial[threadIdx.x] += partial[threadIdx.x + half];
        __syncthreads();                               // (B) this level is complete
    }
    if (threadIdx.x == 0) out[0] = partial[0];
}
"""
BARRIER_A = "    __syncthreads();                                   // (A) every value is stored\n"
BARRIER_B = "        __syncthreads();                               // (B) this level is complete\n"
DIVERGENT = SOURCE.replace(
    "        if (threadIdx.x < half) partial[threadIdx.x] += partial[threadIdx.x + half];\n" + BARRIER_B,
    "        if (threadIdx.x < half) {\n"
    "            partial[threadIdx.x] += partial[threadIdx.x + half];\n"
    "            __syncthreads();                           // reached by some threads only\n"
    "        }\n")
assert BARRIER_A in SOURCE and BARRIER_B in SOURCE and DIVERGENT != SOURCE

x = np.random.default_rng(0).uniform(1, 2, 256).astype(np.float32)


def block_sum(source):
    out = cp.full(1, np.nan, dtype=np.float32)
    cp.RawModule(code=source).get_function("block_sum")((1,), (256,), (cp.asarray(x), out))
    return float(cp.asnumpy(out)[0])


exact = float(x.astype(np.float64).sum())
assert abs(block_sum(SOURCE) - exact) < 1e-3 * exact
for name, source in (("(A)", SOURCE.replace(BARRIER_A, "")), ("(B)", SOURCE.replace(BARRIER_B, ""))):
    wrong = block_sum(source)
    assert not abs(wrong - exact) < 1e-3 * exact, f"without barrier {name} the sum came out right"
    print(f"without barrier {name}: {wrong:.3f} instead of {exact:.3f}")

# A barrier that only some threads reach (inside `if (threadIdx.x < half)`) is undefined
# behaviour on a GPU, often a hang; the emulator reports it.
try:
    block_sum(DIVERGENT)
    raise AssertionError("a divergent barrier passed")
except RuntimeError as err:
    assert "barrier divergence" in str(err)
    print("barrier inside the if:", err)
