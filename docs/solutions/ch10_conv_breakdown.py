"""Chapter 10, exercise 1: where a convolution's training step spends its time.

    python docs/solutions/ch10_conv_breakdown.py

The parts, in the order Conv2d.forward_cpu / backward_cpu run them: im2col, the forward
GEMM, the layout pass (bias, ReLU, (C, N, L) -> (N, C, L)); backward: the layout pass back
(mask, bias sums), im2col again, the dW GEMM, the dcols GEMM, col2im. On two cores the three
GEMMs usually take most of the time and the copies (two im2col, col2im, two layout passes)
the rest, the share "why_slower" attributes to im2col's design. The exact split depends on
the machine: run it and read your own numbers. On a machine shared with other work, the
minimum of several runs estimates the uncontended cost better than the median, which a
busy neighbour can shift by ten times for a millisecond-long GEMM.
"""
import time

import numpy as np

import tinyseg as ts
import tinyseg.functional as F
from tinyseg.ops.conv import grad_weight
from tinyseg.ops.cpu import im2col as cpu_im2col
from tinyseg.ops.cpu import layout

C, H, W = 64, 50, 62                      # the benchmark's conv3x3 row at a quarter of its area
rng = np.random.default_rng(0)
x = rng.standard_normal((1, C, H, W)).astype(np.float32)
w = (rng.standard_normal((C, C, 3, 3)) * 0.05).astype(np.float32)
b = np.zeros(C, np.float32)
gy = rng.standard_normal((1, C, H, W)).astype(np.float32)
k, L = C * 9, H * W


def fastest_s(fn, repeats=7):
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


cols = cpu_im2col.im2col(x, 3, 3, 1, 1, H, W).reshape(k, L)
z = (w.reshape(C, -1) @ cols).reshape(C, 1, L)
y = layout.to_batch_major(z, b, True)
gz, _ = layout.to_channel_major(gy.reshape(1, C, L), y)
gz = gz.reshape(C, L)
gcols = w.reshape(C, -1).T @ gz
parts = {
    "im2col": lambda: cpu_im2col.im2col(x, 3, 3, 1, 1, H, W),
    "forward GEMM": lambda: w.reshape(C, -1) @ cols,
    "layout (bias, ReLU)": lambda: layout.to_batch_major(z, b, True),
    "layout back (mask, db)": lambda: layout.to_channel_major(gy.reshape(1, C, L), y),
    "im2col again": lambda: cpu_im2col.im2col(x, 3, 3, 1, 1, H, W),
    "dW GEMM": lambda: grad_weight(gz, cols),
    "dcols GEMM": lambda: w.reshape(C, -1).T @ gz,
    "col2im": lambda: cpu_im2col.col2im(gcols.reshape(k, 1, L), x.shape, 3, 3, 1, 1, H, W),
}
times = {name: fastest_s(fn) for name, fn in parts.items()}

xt, wt, bt = (ts.tensor(a, requires_grad=True) for a in (x, w, b))
whole = fastest_s(lambda: F.conv2d(xt, wt, bt, padding=1, relu=True).backward(gy))
total = sum(times.values())
for name, t in times.items():
    print(f"{name:24s} {1000 * t:7.2f} ms  {t / total:5.1%}")
gemms = times["forward GEMM"] + times["dW GEMM"] + times["dcols GEMM"]
print(f"sum of parts {1000 * total:.2f} ms, the op itself {1000 * whole:.2f} ms; GEMMs {gemms / total:.0%}")
# On a quiet machine the parts add up to the op within a few percent; under load, a GEMM's
# two BLAS threads wait for each other's cores and single timings swing tenfold.
assert 0.1 * whole < total < 10 * whole
