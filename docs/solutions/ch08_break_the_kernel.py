"""Chapter 8, exercise 2: a kernel that skips its last element, caught by poisoned outputs.

    python docs/solutions/ch08_break_the_kernel.py        # requires: g++

The broken guard `index >= total - 1` idles the thread of the last element, which lives
in the last block (index total - 1, block (total - 1) // 256). On a real GPU the output
buffer comes from cupy.empty: whatever a previous kernel left in that memory, often a
plausible number or a zero that a loose test would accept. Poisoned, it is NaN, and any
comparison fails.
"""
import os
import shutil
import sys

import numpy as np

if shutil.which("g++") is None:
    print("skipped: the CUDA emulator needs g++")
    raise SystemExit(0)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests"))
from cuda_emulator import fake_cupy as cp  # noqa: E402

from tinyseg.ops import gpu  # noqa: E402

with open(os.path.join(HERE, "leaky_relu.cu"), encoding="utf-8") as f:
    source = f.read()
guard = "    if (index >= total) return;                 // the last block's tail\n"
assert source.count(guard) == 1
broken = source.replace(guard, "    if (index >= total - 1) return;\n")

total = 600                                           # 3 blocks of 256 threads
x = np.random.default_rng(0).standard_normal(total).astype(np.float32)
for code, name in ((source, "correct"), (broken, "broken")):
    forward = cp.RawModule(code=code, options=gpu.INCLUDE).get_function("leaky_relu_forward_f32")
    y = cp.full(total, np.nan, dtype=np.float32)      # poisoned, as gpu.empty does under POISON
    forward((gpu.blocks(total),), (gpu.THREADS,), (cp.asarray(x), y, np.float32(0.1), np.int64(total)))
    unwritten = np.flatnonzero(np.isnan(cp.asnumpy(y)))
    print(f"{name}: unwritten elements {unwritten.tolist()}")
    if name == "correct":
        assert unwritten.size == 0
    else:
        assert unwritten.tolist() == [total - 1] and (total - 1) // gpu.THREADS == 2   # in the third block
