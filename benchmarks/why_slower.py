"""Why a tinyseg row is slower than PyTorch's, for the results file.

benchmarks/run.py writes one line for every row whose ratio is above 1, taken
from here by the row's op name and device. The text describes the current
implementation; when an op's code changes, its line here changes with it. A
row with no entry is reported as unexplained, which is itself a finding.
"""

_GEMM = ("im2col + GEMM band by band, the bands side by side on tinyseg's threads with the BLAS on one "
         "thread each; the GEMMs run in numpy's OpenBLAS with the kernels named above the table (where those "
         "are the AVX2 \"Haswell\" ones: 8 float32 lanes, against the 16 of oneDNN's AVX-512 convolutions), "
         "so the table's floor, the FLOPs at the measured GEMM rate, is close to or above PyTorch's whole "
         "time")
_DIRECT = ("the direct 3x3 kernel (cpu/direct.py), about 230-260 GFLOP/s forward on the two cores, the "
           "rate of numpy's GEMM: four output channels per pass share each input load over long flat bands "
           "(wide layers in groups of channels), but each pass still loads and stores its four rows of sums "
           "and reads every input value nine times at shifted, unaligned addresses, where oneDNN keeps a "
           "block of outputs in registers across all input channels in a channel-blocked layout; its "
           "backward passes take about twice the forward")


def conv_path(op, shape):
    """"direct" or "gemm": the CPU path a layer row's 3x3 convolution takes (Conv2d.direct_cpu),
    from its name ("layer small conv3_2 32->32") and input shape ("4x32x64x64"); None if unreadable."""
    from types import SimpleNamespace
    from tinyseg.ops.conv import Conv2d
    try:
        c_in, c_out = (int(c) for c in op.split()[-1].split("->"))
        n, _, h, w = (int(d) for d in shape.split("x"))
    except ValueError:
        return None
    x, weight = SimpleNamespace(shape=(n, c_in, h, w)), SimpleNamespace(shape=(c_out, c_in, 3, 3))
    return "direct" if Conv2d(1, 1).direct_cpu(x, weight) else "gemm"


CPU = {
    "conv3x3": "it runs on " + _DIRECT + ".",
    "layer": "it runs on " + _DIRECT + ".",
    "conv_transpose": "a GEMM then col2im, whose overlap-add is bound by memory traffic.",
    "max_pool": "a Numba pass per direction; the 2x2, stride-2 pool runs kernels vectorised along the "
                "output row, other windows a scalar scan; backward runs one thread per row of windows "
                "when windows do not overlap, else one per (image, channel) plane so that they never race.",
    "batch_norm": "two Numba passes each way (statistics, then normalisation; per-channel sums, then "
                  "the input gradient); x_hat is recomputed in backward rather than stored.",
    "cross_entropy": "one fused Numba pass each way, its exp and log1p vectorised (written out as "
                     "polynomials), but the sum of exponentials and the log run in float64 (8 lanes) "
                     "to keep a confident pixel's digits, each block takes four passes (max, exp, log, "
                     "normalisation), and the op adds a target-range check, the loss sums and the "
                     "gradient accumulation around the kernels.",
    "renet": "one Numba kernel per direction runs all the steps (a small BLAS GEMM per step, then the "
             "fused gate math with a vectorised exp), the two directions side by side; the input "
             "projections are single-threaded GEMMs per direction.",
    "model forward+backward+SGD": "every 3x3 layer runs on the direct kernel (see the layer rows); the 7x7 conv6 "
                                  "runs as one OpenBLAS GEMM per kernel row (cpu/row_gemm.py), forward and "
                                  "backward about 6.5 ms of the 256x256 step against PyTorch's 2.5 ms, the "
                                  "1x1 layers as one GEMM each; the LSTM sweeps add one small GEMM per step.",
    "epoch": "as the training step, 44 times.",
    "model forward": "the convolutions dominate (see the layer rows).",
    "inference": "as the forward row.",
}

GPU = {}

# Why the whole-model rows' peak memory is higher, when it is.
_CPU_MEMORY = ("the GEMM path's column bands (one set per thread, at most conv.COLUMN_BUDGET_BYTES of columns "
               "each), conv6's row windows and the direct kernel's flat output gradients live in workspace "
               "buffers kept from call to call; batch norm keeps its input for backward; freed memory is kept "
               "for reuse (cpu_runtime).")


def memory(device):
    """Why the model rows' peak memory is above PyTorch's on ``device``."""
    if device == "cpu":
        return _CPU_MEMORY
    return "no analysis recorded yet on this device; profile it before guessing."


def explain(device, op, shape=None):
    """The line for a row of ``op`` on ``device`` (the first prefix that matches); a layer row on
    the CPU gets the line of the path its convolution takes."""
    if device == "cpu" and op.startswith("layer") and shape:
        path = conv_path(op, shape)
        if path is not None:
            return ("it runs on " + (_DIRECT if path == "direct" else _GEMM)) + "."
    table = CPU if device == "cpu" else GPU
    for prefix, text in table.items():
        if op.startswith(prefix):
            return text
    return "no analysis recorded yet for this op on this device; profile it before guessing."
