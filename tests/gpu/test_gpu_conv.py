"""The GPU convolutions' GEMM forms and memory budget: one GEMM per product for the whole
batch, the weight read through cuBLAS's transpose flag rather than copied, and column
matrices built a chunk at a time within ``GPU_COLUMN_BUDGET_BYTES``, with the same results
however small the budget."""
import numpy as np
import pytest

cupy = pytest.importorskip("cupy")
import tinyseg as ts  # noqa: E402

if not ts.cuda_available():
    pytest.skip("no CUDA device", allow_module_level=True)

import tinyseg.functional as F  # noqa: E402
import tinyseg.ops.conv as conv_op  # noqa: E402
from parity import check  # noqa: E402
from tinyseg.backend import as_numpy  # noqa: E402
from tinyseg.ops.gpu import conv as gpu_conv  # noqa: E402


def test_chunks_cover_every_position_within_the_budget():
    # 3 images of 4 rows of 5 windows, 6 rows of 8-byte values: one image is 960 bytes
    for budget, step in [(10 ** 6, 60), (2000, 40), (960, 20), (500, 10), (200, 4), (10, 1)]:
        spans = gpu_conv.chunks(60, 6, 20, 5, 8, budget)
        assert spans[0] == (0, step)
        assert [first for first, _ in spans] == list(range(0, 60, step)) and spans[-1][1] == 60
        assert all((last - first) * 6 * 8 <= max(budget, 48) for first, last in spans)
    assert gpu_conv.chunks(0, 6, 20, 5, 8, 100) == []


# (input shape, weight shape, stride, padding): 3x3 with padding, stride 2, a kernel wider
# than the stride (overlapping windows), and 1x1 (the columns are the image itself)
GEOMETRIES = [((3, 2, 7, 6), (4, 2, 3, 3), 1, 1), ((2, 3, 9, 8), (2, 3, 3, 3), 2, 1),
              ((2, 2, 6, 7), (3, 2, 4, 2), 3, 2), ((3, 4, 5, 5), (3, 4, 1, 1), 1, 0)]
# budgets in bytes: everything at once, one image, a few rows of windows, single positions
BUDGETS = [1 << 30, 2000, 300, 1]


def conv_inputs(x_shape, w_shape, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(x_shape), rng.standard_normal(w_shape), rng.standard_normal(w_shape[0])]


def run_on_gpu(fn, arrays):
    inputs = [ts.tensor(a, requires_grad=True, device="cuda") for a in arrays]
    y = fn(*inputs)
    y.backward(np.random.default_rng(1).standard_normal(y.shape))
    return [y.numpy()] + [as_numpy(t.grad) for t in inputs]


def assert_same_for_every_budget(fn, arrays, monkeypatch):
    """The GPU results (outputs and gradients) agree whatever the column budget, and with
    the CPU's when the budget is smallest (1 byte: the most chunks)."""
    results = []
    for budget in BUDGETS:
        monkeypatch.setattr(conv_op, "GPU_COLUMN_BUDGET_BYTES", budget)
        results.append(run_on_gpu(fn, arrays))
    for other in results[1:]:
        for a, b in zip(other, results[0]):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    check(fn, arrays)


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=str)
@pytest.mark.parametrize("relu", [False, True])
def test_conv2d_gives_the_same_results_for_any_budget(geometry, relu, monkeypatch):
    x_shape, w_shape, s, p = geometry
    arrays = conv_inputs(x_shape, w_shape)

    def fn(x, w, b):
        return F.conv2d(x, w, b, stride=s, padding=p, relu=relu)
    assert_same_for_every_budget(fn, arrays, monkeypatch)


@pytest.mark.parametrize("geometry", [((2, 3, 3, 4), (3, 2, 4, 4), 2, 1), ((3, 2, 2, 3), (2, 3, 3, 3), 1, 0),
                                      ((2, 4, 3, 3), (4, 3, 1, 1), 1, 0)], ids=str)
def test_conv_transpose2d_gives_the_same_results_for_any_budget(geometry, monkeypatch):
    x_shape, w_shape, s, p = geometry
    rng = np.random.default_rng(2)
    arrays = [rng.standard_normal(x_shape), rng.standard_normal(w_shape), rng.standard_normal(w_shape[1])]

    def fn(x, w, b):
        return F.conv_transpose2d(x, w, b, stride=s, padding=p)
    assert_same_for_every_budget(fn, arrays, monkeypatch)


@pytest.mark.parametrize("transposed", [False, True])
def test_column_buffers_stay_within_the_budget(transposed, monkeypatch):
    sizes = []
    allocate = gpu_conv.column_buffer

    def watched(like, size):
        sizes.append(size * like.dtype.itemsize)
        return allocate(like, size)
    monkeypatch.setattr(gpu_conv, "column_buffer", watched)
    rng = np.random.default_rng(3)
    x = ts.tensor(rng.standard_normal((4, 3, 12, 10)).astype(np.float32), requires_grad=True, device="cuda")
    budget = 3 * 3 * 3 * 4 * 10 * 3      # three rows of windows of a 3x3 convolution over 3 channels
    monkeypatch.setattr(conv_op, "GPU_COLUMN_BUDGET_BYTES", budget)
    if transposed:
        w = ts.tensor(rng.standard_normal((3, 3, 3, 3)).astype(np.float32), requires_grad=True, device="cuda")
        y = F.conv_transpose2d(x, w, stride=1, padding=1)
    else:
        w = ts.tensor(rng.standard_normal((3, 3, 3, 3)).astype(np.float32), requires_grad=True, device="cuda")
        y = F.conv2d(x, w, padding=1)
    y.backward(cupy.ones(y.shape, dtype=y.dtype))
    assert sizes and max(sizes) <= budget
    assert x.numpy().nbytes * 9 > 4 * budget   # without chunks the columns would take 9 times the input


def test_gemms_read_the_weight_in_place(monkeypatch):
    """Forward is one GEMM, backward two (dW and dcols), each over the whole batch; every
    operand is C-contiguous (so cuBLAS copies nothing), and the weight is the parameter's
    own memory, read transposed through the GEMM's flag in backward."""
    calls = []
    run_gemm = gpu_conv.gemm

    def watched(a, b, out, transa=False, transb=False, accumulate=False):
        calls.append((a, b, out, transa, transb))
        return run_gemm(a, b, out, transa, transb, accumulate)
    monkeypatch.setattr(gpu_conv, "gemm", watched)
    copies = getattr(getattr(cupy, "cublas", None), "operand_copies", None)   # the emulator counts them
    rng = np.random.default_rng(4)
    x = ts.tensor(rng.standard_normal((3, 4, 6, 5)).astype(np.float32), requires_grad=True, device="cuda")
    w = ts.tensor(rng.standard_normal((5, 4, 3, 3)).astype(np.float32), requires_grad=True, device="cuda")
    y = F.conv2d(x, w, padding=1, relu=True)
    assert len(calls) == 1 and calls[0][1].shape == (4 * 9, 3 * 30)
    y.backward(cupy.ones(y.shape, dtype=y.dtype))
    assert len(calls) == 3
    (gz, cols, gw, _, flag_b), (weight, gz2, gcols, flag_a, _) = calls[1], calls[2]
    assert flag_b and flag_a and gz.shape == (5, 90) and gw.shape == (5, 36) and gcols.shape == (36, 90)
    for a, b, out, _, _ in calls:
        assert a.flags.c_contiguous and b.flags.c_contiguous and out.flags.c_contiguous
    assert cupy.shares_memory(weight, w.data) and cupy.shares_memory(calls[0][0], w.data)
    if copies is not None:
        assert cupy.cublas.operand_copies == copies
