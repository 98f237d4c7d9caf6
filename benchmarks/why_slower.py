"""Why a tinyseg row is slower than PyTorch's, for the results file.

benchmarks/run.py writes one line for every row whose ratio is above 1, taken
from here by the row's op name and device. The text describes the current
implementation; when an op's code changes, its line here changes with it. A
row with no entry is reported as unexplained, which is itself a finding.
"""

_GEMM_FLOOR = ("its GEMMs run in numpy's OpenBLAS, whose float32 kernel on this CPU is the AVX2 one "
               "(8 lanes) while oneDNN's convolution uses AVX-512 (16 lanes): the table's floor, the FLOPs "
               "at the measured GEMM rate, is then close to or above PyTorch's whole time")
_DIRECT = ("the direct 3x3 kernel (cpu/direct.py), which reaches about 80 GFLOP/s per core: LLVM vectorises "
           "the loop along a row, but the output row is loaded and stored once per two input channels "
           "and the weights are re-read per output channel, where oneDNN keeps a block of outputs in "
           "registers across all input channels")

CPU = {
    "conv3x3": "with many channels on the GEMM path, im2col copies every input value nine times (in bands "
               "that stay in a reused workspace) and backward rebuilds the columns and sends their gradient "
               "through col2im; " + _GEMM_FLOOR + ".",
    "layer": "few channels or long rows go to " + _DIRECT + "; short rows of many channels go to im2col + "
             "GEMM, where " + _GEMM_FLOOR + ".",
    "conv_transpose": "a GEMM then col2im, whose overlap-add is bound by memory traffic.",
    "max_pool": "a Numba pass per direction; the 2x2, stride-2 pool runs kernels vectorised along the "
                "output row, other windows a scalar scan; backward runs one thread per row of windows "
                "when windows do not overlap, else one per (image, channel) plane so that they never race.",
    "batch_norm": "two Numba passes each way (statistics, then normalisation; per-channel sums, then "
                  "the input gradient); x_hat is recomputed in backward rather than stored.",
    "cross_entropy": "one fused Numba pass, but its exp and log are scalar calls that Numba does not "
                     "vectorise here; PyTorch's log-softmax uses vectorised (SIMD) exp and log.",
    "renet": "one Numba kernel per direction runs all the steps (a small BLAS GEMM per step, then the "
             "fused gate math with a vectorised exp), the two directions side by side; the input "
             "projections are single-threaded GEMMs per direction.",
    "model forward+backward+SGD": "the convolutions dominate (see the layer rows): the full-resolution "
                                  "layers run on the direct kernel, the deeper ones on OpenBLAS's AVX2 "
                                  "GEMM; the LSTM sweeps add one small GEMM per step.",
    "epoch": "as the training step, 44 times.",
    "model forward": "the convolutions dominate (see the layer rows).",
    "inference": "as the forward row.",
}

GPU = {}

# Why the whole-model rows' peak memory is higher, when it is.
MEMORY = ("the GEMM path's column bands and the direct kernel's padded copies live in workspace "
          "buffers kept from call to call (at most conv.COLUMN_BUDGET_BYTES of columns each); batch norm "
          "keeps its input for backward.")


def explain(device, op):
    """The line for a row of ``op`` on ``device`` (the first prefix that matches)."""
    table = CPU if device == "cpu" else GPU
    for prefix, text in table.items():
        if op.startswith(prefix):
            return text
    return "no analysis recorded yet for this op on this device; profile it before guessing."
