"""Chapter 10, exercise 1: where a convolution's training step spends its time.

    python docs/solutions/ch10_conv_breakdown.py

The parts, in the order the im2col + GEMM path of Conv2d.forward_cpu / backward_cpu runs
them (this layer, 64 -> 64 channels on 62-pixel rows, takes that path; its columns fit one
band): im2col, the forward GEMM straight into the output, bias and ReLU in place; backward:
the ReLU's mask and the bias sums, im2col again, the dW GEMM, the dcols GEMM, col2im. On two
cores the three GEMMs usually take most of the time and the copies (two im2col, col2im) the
rest. The exact split depends on
the machine: run it and read your own numbers. On a machine shared with other work, the
minimum of several runs estimates the uncontended cost better than the median, which a
busy neighbour can shift by ten times for a millisecond-long GEMM.
"""
import time

import numpy as np

import tinyseg as ts
import tinyseg.functional as F
from tinyseg.ops.conv import grad_weight
from tinyseg.ops.cpu import epilogue
from tinyseg.ops.cpu import im2col as cpu_im2col

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


buffer = np.empty(k * L, np.float32)
cols = cpu_im2col.im2col_band(x, 0, 0, H, 3, 3, 1, 1, H, W, buffer).copy()
y = np.empty((1, C, L), np.float32)
np.matmul(w.reshape(C, -1), cols, out=y[0])
epilogue.bias_relu(y, b, True)
gz, _ = epilogue.mask_and_sum(gy.reshape(1, C, L), y)
gz = gz[0].copy()
gcols = w.reshape(C, -1).T @ gz
gx = np.zeros_like(x)
parts = {
    "im2col": lambda: cpu_im2col.im2col_band(x, 0, 0, H, 3, 3, 1, 1, H, W, buffer),
    "forward GEMM": lambda: np.matmul(w.reshape(C, -1), cols, out=y[0]),
    "bias and ReLU": lambda: epilogue.bias_relu(y, b, True),
    "mask and bias sums": lambda: epilogue.mask_and_sum(gy.reshape(1, C, L), y),
    "im2col again": lambda: cpu_im2col.im2col_band(x, 0, 0, H, 3, 3, 1, 1, H, W, buffer),
    "dW GEMM": lambda: grad_weight(gz, cols),
    "dcols GEMM": lambda: w.reshape(C, -1).T @ gz,
    "col2im": lambda: cpu_im2col.col2im_band_add(gcols, gx, 0, 0, H, 3, 3, 1, 1, W),
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
