"""conv2d and conv_transpose2d: gradient checks, PyTorch parity, the CPU im2col / col2im
kernels against their definition, and edge cases of the padding arithmetic (padding
larger than kernel - 1, strides larger than the kernel, 1x1 kernels, non-contiguous
inputs, float32, empty batches, the fused ReLU)."""
import numpy as np
import pytest
from hypothesis import assume, given, strategies as st

import tinyseg as ts
import tinyseg.functional as F
from tinyseg.ops.conv import output_size
from tinyseg.ops.cpu.im2col import col2im, im2col
from torch_parity import (EXAMPLES, SETTINGS, TF, assert_close, assert_grads, backward_both, conv_inputs,
                          needs_torch, seeds, t64, torch)


@st.composite
def conv_cases(draw):
    k = draw(st.integers(1, 4))
    stride = draw(st.integers(1, 5))           # includes stride larger than kernel
    padding = draw(st.integers(0, k - 1))
    h = draw(st.integers(max(1, k - 2 * padding), 8))
    w = draw(st.integers(max(1, k - 2 * padding), 8))
    return dict(n=draw(st.integers(1, 2)), c_in=draw(st.integers(1, 3)), c_out=draw(st.integers(1, 3)),
                h=h, w=w, k=k, stride=stride, padding=padding, bias=draw(st.booleans()),
                relu=draw(st.booleans()), seed=draw(st.integers(0, 2 ** 31)))


@SETTINGS
@given(conv_cases())
def test_conv2d_gradcheck(case):
    rng = np.random.default_rng(case["seed"])
    x = t64(rng, case["n"], case["c_in"], case["h"], case["w"])
    w = t64(rng, case["c_out"], case["c_in"], case["k"], case["k"])
    inputs = [x, w] + ([t64(rng, case["c_out"])] if case["bias"] else [])
    fn = lambda x, w, b=None: F.conv2d(x, w, b, stride=case["stride"], padding=case["padding"],  # noqa: E731
                                       relu=case["relu"])
    y = fn(*inputs)
    if case["relu"]:   # the fused ReLU is the ReLU of the plain convolution
        plain = F.relu(F.conv2d(*inputs[:2], *inputs[2:], stride=case["stride"], padding=case["padding"]))
        np.testing.assert_array_equal(y.numpy(), plain.numpy())
    assert y.shape == (case["n"], case["c_out"],
                       (case["h"] + 2 * case["padding"] - case["k"]) // case["stride"] + 1,
                       (case["w"] + 2 * case["padding"] - case["k"]) // case["stride"] + 1)
    assert ts.gradcheck(fn, inputs)


@SETTINGS
@given(conv_cases())
def test_conv_transpose2d_gradcheck(case):
    rng = np.random.default_rng(case["seed"])
    out_h = (case["h"] - 1) * case["stride"] - 2 * case["padding"] + case["k"]
    out_w = (case["w"] - 1) * case["stride"] - 2 * case["padding"] + case["k"]
    assume(out_h >= 1 and out_w >= 1)
    x = t64(rng, case["n"], case["c_in"], case["h"], case["w"])
    w = t64(rng, case["c_in"], case["c_out"], case["k"], case["k"])
    inputs = [x, w] + ([t64(rng, case["c_out"])] if case["bias"] else [])
    fn = lambda x, w, b=None: F.conv_transpose2d(x, w, b, stride=case["stride"], padding=case["padding"])  # noqa: E731
    assert fn(*inputs).shape == (case["n"], case["c_out"], out_h, out_w)
    assert ts.gradcheck(fn, inputs)


def test_conv_transpose_is_the_adjoint_of_conv():
    # <conv(x), y> == <x, conv_transpose(y)> for the same weights
    rng = np.random.default_rng(1)
    # 9x7 with k=3, s=2, p=1 gives 5x4, and the transpose of 5x4 is exactly 9x7 again
    x, w = rng.standard_normal((2, 3, 9, 7)), rng.standard_normal((4, 3, 3, 3))
    y = F.conv2d(ts.tensor(x), ts.tensor(w), stride=2, padding=1).numpy()
    r = rng.standard_normal(y.shape)
    back = F.conv_transpose2d(ts.tensor(r), ts.tensor(w), stride=2, padding=1).numpy()
    assert back.shape == x.shape
    np.testing.assert_allclose((y * r).sum(), (x * back).sum(), rtol=1e-10)


@pytest.mark.parametrize("kernel, padding", [(1, 0), (3, 1)])
def test_conv_on_an_empty_batch(kernel, padding):
    x = ts.tensor(np.zeros((0, 2, 5, 4)), requires_grad=True)
    w = ts.tensor(np.ones((3, 2, kernel, kernel)), requires_grad=True)
    y = F.conv2d(x, w, padding=padding)
    assert y.shape == (0, 3, 5, 4)
    y.sum().backward()
    assert x.grad.shape == x.shape
    np.testing.assert_array_equal(w.grad, 0)


def draw_geometry(data):
    """Batch size, channels, kernel, stride (up to 5: also larger than the kernel) and padding."""
    n, c_in, c_out = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    kh, kw = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4))
    stride = data.draw(st.integers(1, 5))
    padding = data.draw(st.integers(0, max(kh, kw) - 1))
    return n, c_in, c_out, kh, kw, stride, padding


@needs_torch
@EXAMPLES
@given(data=st.data(), seed=seeds)
def test_conv2d_matches_torch(data, seed):
    n, c_in, c_out, kh, kw, stride, padding = draw_geometry(data)
    h = data.draw(st.integers(max(1, kh - 2 * padding), 8))
    w = data.draw(st.integers(max(1, kw - 2 * padding), 8))
    bias, relu = data.draw(st.booleans()), data.draw(st.booleans())
    rng = np.random.default_rng(seed)
    arrays, a, b = conv_inputs(rng, (n, c_in, h, w), (c_out, c_in, kh, kw), c_out if bias else 0)
    y = F.conv2d(a["x"], a["weight"], a.get("bias"), stride=stride, padding=padding, relu=relu)
    y_ref = TF.conv2d(b["x"], b["weight"], b.get("bias"), stride=stride, padding=padding)
    if relu:
        y_ref = TF.relu(y_ref)
    assert_close(y, y_ref, "conv2d forward")
    backward_both(y, y_ref, rng)
    assert_grads({k: (a[k], b[k]) for k in arrays})


@needs_torch
@EXAMPLES
@given(data=st.data(), seed=seeds)
def test_conv_transpose2d_matches_torch(data, seed):
    n, c_in, c_out, kh, kw, stride, padding = draw_geometry(data)
    h, w = data.draw(st.integers(1, 5)), data.draw(st.integers(1, 5))
    assume((h - 1) * stride + kh - 2 * padding >= 1 and (w - 1) * stride + kw - 2 * padding >= 1)
    bias = data.draw(st.booleans())
    rng = np.random.default_rng(seed)
    # weight layout (C_in, C_out, kH, kW), the same as torch's
    arrays, a, b = conv_inputs(rng, (n, c_in, h, w), (c_in, c_out, kh, kw), c_out if bias else 0)
    y = F.conv_transpose2d(a["x"], a["weight"], a.get("bias"), stride=stride, padding=padding)
    y_ref = TF.conv_transpose2d(b["x"], b["weight"], b.get("bias"), stride=stride, padding=padding)
    assert_close(y, y_ref, "conv_transpose2d forward")
    backward_both(y, y_ref, rng)
    assert_grads({k: (a[k], b[k]) for k in arrays})


# (N, C, H, W, kh, kw, stride, padding)
EDGE_CASES = [
    (1, 1, 5, 6, 3, 3, 1, 1),
    (2, 3, 7, 5, 3, 3, 2, 1),
    (1, 2, 4, 4, 2, 3, 1, 3),      # padding > kernel - 1: rows and columns of pure padding
    (2, 2, 3, 5, 1, 1, 1, 2),      # 1x1 kernel with padding
    (2, 3, 6, 7, 1, 1, 1, 0),      # 1x1 kernel, plain
    (1, 2, 9, 8, 2, 2, 5, 0),      # stride > kernel: some pixels are never read
    (2, 1, 8, 9, 3, 2, 4, 2),      # stride > kernel with padding
    (1, 1, 1, 1, 3, 3, 1, 1),      # a single pixel in the middle of a padded window
    (1, 2, 3, 3, 3, 3, 1, 4),      # padding wider than the image
]


def reference_im2col(x, kh, kw, stride, padding, out_h, out_w):
    """The definition, on an explicitly padded copy: cols[(c, i, j), n, (oh, ow)]."""
    n, c = x.shape[:2]
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    cols = np.zeros((c, kh, kw, n, out_h, out_w), x.dtype)
    for i in range(kh):
        for j in range(kw):
            window = xp[:, :, i:i + stride * (out_h - 1) + 1:stride, j:j + stride * (out_w - 1) + 1:stride]
            cols[:, i, j] = window.transpose(1, 0, 2, 3)
    return cols.reshape(c * kh * kw, n, out_h * out_w)


@pytest.mark.parametrize("case", EDGE_CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_im2col_and_col2im_match_the_definition(case, dtype):
    n, c, h, w, kh, kw, s, p = case
    out_h, out_w = output_size(h, kh, s, p), output_size(w, kw, s, p)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    cols = im2col(x, kh, kw, s, p, out_h, out_w)
    assert cols.dtype == dtype
    np.testing.assert_array_equal(cols, reference_im2col(x, kh, kw, s, p, out_h, out_w))
    # col2im is the adjoint: <im2col(x), g> == <x, col2im(g)>, so col2im of a one-hot column
    # matrix is the reference's read pattern, and on random g the inner products agree.
    g = rng.standard_normal(cols.shape).astype(dtype)
    image = col2im(g, x.shape, kh, kw, s, p, out_h, out_w)
    assert image.dtype == dtype and image.shape == x.shape
    x64, g64 = x.astype(np.float64), g.astype(np.float64)
    np.testing.assert_allclose((cols.astype(np.float64) * g64).sum(), (x64 * image).sum(),
                               rtol=1e-5 if dtype == np.float32 else 1e-12)


def test_col2im_leaves_unread_pixels_at_zero():
    # stride 3 > kernel 2: rows and columns 2, 5, ... are read by no window
    cols = np.ones((2 * 2, 1, 3 * 3), np.float32)
    image = col2im(cols, (1, 1, 9, 9), 2, 2, 3, 0, 3, 3)
    expected = np.zeros((9, 9), np.float32)
    for a in (0, 3, 6):
        for b in (0, 3, 6):
            expected[a:a + 2, b:b + 2] = 1
    np.testing.assert_array_equal(image[0, 0], expected)


@pytest.mark.parametrize("case", EDGE_CASES)
def test_conv2d_edge_cases_gradcheck(case):
    n, c, h, w, kh, kw, s, p = case
    rng = np.random.default_rng(1)
    x = ts.tensor(rng.standard_normal((n, c, h, w)), requires_grad=True)
    weight = ts.tensor(rng.standard_normal((2, c, kh, kw)), requires_grad=True)
    bias = ts.tensor(rng.standard_normal(2), requires_grad=True)
    assert ts.gradcheck(lambda x, w, b: F.conv2d(x, w, b, stride=s, padding=p), [x, weight, bias])


@pytest.mark.parametrize("k, s, p", [(3, 2, 1), (2, 3, 0), (1, 1, 0), (3, 1, 2), (4, 2, 1)])
def test_conv_transpose2d_edge_cases_gradcheck(k, s, p):
    rng = np.random.default_rng(2)
    x = ts.tensor(rng.standard_normal((2, 3, 4, 5)), requires_grad=True)
    weight = ts.tensor(rng.standard_normal((3, 2, k, k)), requires_grad=True)
    bias = ts.tensor(rng.standard_normal(2), requires_grad=True)
    assert ts.gradcheck(lambda x, w, b: F.conv_transpose2d(x, w, b, stride=s, padding=p), [x, weight, bias])


@pytest.mark.parametrize("op", ["conv2d", "conv_transpose2d"])
def test_non_contiguous_inputs_give_the_same_results(op):
    rng = np.random.default_rng(3)
    base = rng.standard_normal((5, 3, 8, 7)).transpose(0, 1, 3, 2)[::2]   # (3, 3, 7, 8), strided
    weight = rng.standard_normal((3, 3, 3, 3))[:, :, ::-1]                 # negative strides
    assert not base.flags.c_contiguous and not weight.flags.c_contiguous
    fn = getattr(F, op)
    results = []
    for x_arr, w_arr in ((base, weight), (np.ascontiguousarray(base), np.ascontiguousarray(weight))):
        x, w = ts.tensor(x_arr, requires_grad=True), ts.tensor(w_arr, requires_grad=True)
        y = fn(x, w, stride=2, padding=1)
        y.backward(np.cos(np.arange(y.data.size)).reshape(y.shape))
        results.append((y.data, x.grad, w.grad))
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("op", ["conv2d", "conv_transpose2d"])
def test_float32_stays_float32_and_matches_float64(op):
    rng = np.random.default_rng(4)
    x64, w64 = rng.standard_normal((2, 4, 9, 11)), rng.standard_normal((4, 4, 3, 3))
    b64 = rng.standard_normal(4)
    fn = getattr(F, op)
    out = {}
    for dtype in (np.float32, np.float64):
        x, w, b = (ts.tensor(a.astype(dtype), requires_grad=True) for a in (x64, w64, b64))
        y = fn(x, w, b, stride=2, padding=2)
        y.backward(np.ones(y.shape, dtype))
        out[dtype] = (y.data, x.grad, w.grad, b.grad)
    for a, b in zip(out[np.float32], out[np.float64]):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("op", ["conv2d", "conv_transpose2d"])
def test_backward_keeps_no_arrays_of_its_own(op):
    """Between forward and backward a convolution holds only (views of) its inputs, which the
    graph keeps anyway: not the column matrix (9x the input for a 3x3 kernel), not a copy of x."""
    rng = np.random.default_rng(5)
    x = ts.tensor(rng.standard_normal((2, 4, 10, 12)), requires_grad=True)
    weight = ts.tensor(rng.standard_normal((4, 4, 3, 3)), requires_grad=True)
    bias = ts.tensor(rng.standard_normal(4), requires_grad=True)
    y = getattr(F, op)(x, weight, bias, padding=1)
    saved = [v for v in vars(y.creator).values() if isinstance(v, np.ndarray)]
    assert saved
    for a in saved:
        assert any(np.shares_memory(a, t.data) for t in (x, weight, bias)), a.shape
    y.backward(np.ones(y.shape))     # and backward still works from that state alone
    assert x.grad.shape == x.shape and weight.grad.shape == weight.shape


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_relu_keeps_nan_and_masks_the_gradient(dtype):
    """conv2d(relu=True) equals relu(conv2d), lets NaN through (so a diverged run still shows a
    NaN loss) and passes the gradient only where the output is positive."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 6, 7)).astype(dtype)
    x[1, 0, 2, 3] = np.nan
    weight, bias = rng.standard_normal((4, 3, 3, 3)).astype(dtype), rng.standard_normal(4).astype(dtype)
    w, b = ts.tensor(weight, requires_grad=True), ts.tensor(bias, requires_grad=True)
    fused = F.conv2d(ts.tensor(x), w, b, padding=1, relu=True)
    plain = F.conv2d(ts.tensor(x), ts.tensor(weight), ts.tensor(bias), padding=1).numpy()
    y = fused.numpy()
    assert y.dtype == dtype
    assert np.isnan(y[1, :, 1:4, 2:5]).all() and not np.isnan(y[0]).any()
    finite = ~np.isnan(plain)
    np.testing.assert_array_equal(y[finite], np.maximum(plain[finite], 0))
    gy = rng.standard_normal(y.shape).astype(dtype)[..., ::-1]         # non-contiguous gradient
    fused.backward(gy)
    expected = (gy * (np.nan_to_num(y) > 0)).sum(axis=(0, 2, 3))      # dBias: gy where y > 0
    np.testing.assert_allclose(b.grad, expected, rtol=1e-5 if dtype == np.float32 else 1e-12)
