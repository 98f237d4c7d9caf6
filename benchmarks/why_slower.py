"""Why a tinyseg row is slower than PyTorch's, for the results file.

benchmarks/run.py writes one line for every row whose ratio is above 1, taken
from here by the row's op name and device. The text describes the current
implementation; when an op's code changes, its line here changes with it. A
row with no entry is reported as unexplained, which is itself a finding.
"""

CPU = {
    "conv3x3": "im2col copies every input value nine times (one Numba pass, both threads, padding "
               "written in place) so that the convolution is a single BLAS GEMM per batch; backward "
               "builds the columns again from the input (keeping them would cost 9x the input's "
               "memory) and sends the input gradient back through col2im. oneDNN convolves directly "
               "from a blocked layout without those copies; the GEMMs run at the GFLOP/s shown.",
    "conv_transpose": "a GEMM then col2im, whose overlap-add is bound by memory traffic.",
    "max_pool": "a Numba pass per direction; the backward scatter runs one thread per (image, channel) "
                "plane so that overlapping windows never race.",
    "batch_norm": "two Numba passes each way (statistics, then normalisation; per-channel sums, then "
                  "the input gradient); x_hat is recomputed in backward rather than stored.",
    "cross_entropy": "one fused Numba pass, but its exp and log are scalar calls that Numba does not "
                     "vectorise here; PyTorch's log-softmax uses vectorised (SIMD) exp and log.",
    "renet": "the recurrent product is a small GEMM per time step; its overhead is per call.",
    "model forward+backward+SGD": "as the forward row, plus a second im2col and a col2im in every "
                                  "convolution's backward.",
    "model forward": "the convolutions dominate (see the conv rows); the small preset's channels are "
                     "thin (8-64), so the im2col/col2im copies weigh more against the GEMMs.",
    "inference": "as the forward row.",
}

GPU = {}

# Why the whole-model rows' peak memory is higher, when it is.
MEMORY = ("each convolution's forward builds its im2col columns (9x its input) for the length of one "
          "GEMM, and backward builds them again (PyTorch's oneDNN convolution needs no columns); "
          "batch norm keeps its input for backward.")


def explain(device, op):
    """The line for a row of ``op`` on ``device`` (the first prefix that matches)."""
    table = CPU if device == "cpu" else GPU
    for prefix, text in table.items():
        if op.startswith(prefix):
            return text
    return "no analysis recorded yet for this op on this device; profile it before guessing."
