"""The three CPU paths of conv2d, each on its own: the direct 3x3 kernel (cpu/direct.py), one
GEMM per kernel row (cpu/row_gemm.py) and im2col + GEMM band by band in a reused workspace
(cpu/im2col.py's band kernels). Gradient checks in float64 on hypothesis-drawn shapes,
paddings and strides, PyTorch parity in float32 and float64, the paths against each other,
and the kernels' edge cases (odd channel counts, padding 0 and 2, one-pixel rows, one-row
bands, bands that cut through the rows a window reads, non-square kernels, row windows
over budget)."""
import numba
import numpy as np
import pytest
from hypothesis import assume, given, strategies as st

import tinyseg as ts
import tinyseg.functional as F
from tinyseg.ops import conv
from tinyseg.ops.conv import Conv2d
from tinyseg.ops.cpu import direct, row_gemm, workspace
from tinyseg.ops.cpu.im2col import col2im_band_add, im2col, im2col_band
from torch_parity import (EXAMPLES, SETTINGS, TF, assert_close, assert_grads, backward_both, conv_inputs,
                          needs_torch, seeds, t64, torch)


@st.composite
def direct_cases(draw):
    """3x3, stride 1, padding 0-2: the direct kernel's domain; odd and even channel counts."""
    padding = draw(st.integers(0, 2))
    low = max(1, 3 - 2 * padding)
    return dict(n=draw(st.integers(1, 2)), c_in=draw(st.integers(1, 5)), c_out=draw(st.integers(1, 6)),
                h=draw(st.integers(low, 7)), w=draw(st.integers(low, 7)), padding=padding,
                bias=draw(st.booleans()), relu=draw(st.booleans()), grouped=draw(st.booleans()),
                seed=draw(st.integers(0, 2 ** 31)))


@st.composite
def band_cases(draw):
    k = draw(st.integers(1, 4))
    stride, padding = draw(st.integers(1, 3)), draw(st.integers(0, k))
    low = max(1, k - 2 * padding)
    return dict(n=draw(st.integers(1, 2)), c_in=draw(st.integers(1, 3)), c_out=draw(st.integers(1, 3)),
                h=draw(st.integers(low, 9)), w=draw(st.integers(low, 6)), k=k, stride=stride, padding=padding,
                bias=draw(st.booleans()), relu=draw(st.booleans()), seed=draw(st.integers(0, 2 ** 31)))


def conv_fn(stride, padding, relu):
    return lambda x, w, b=None: F.conv2d(x, w, b, stride=stride, padding=padding, relu=relu)  # noqa: E731


@SETTINGS
@given(direct_cases())
def test_direct_kernel_gradcheck(case):
    rng = np.random.default_rng(case["seed"])
    x = t64(rng, case["n"], case["c_in"], case["h"], case["w"])
    w = t64(rng, case["c_out"], case["c_in"], 3, 3)
    assert Conv2d(1, case["padding"]).direct_cpu(x.data, w.data)
    inputs = [x, w] + ([t64(rng, case["c_out"])] if case["bias"] else [])
    with pytest.MonkeyPatch.context() as patch:
        if case["grouped"]:      # no band of 10**9 positions fits: output channels in groups of four
            patch.setattr(direct, "MIN_BAND_LENGTH", 10 ** 9)
        assert ts.gradcheck(conv_fn(1, case["padding"], case["relu"]), inputs)


def test_channel_groups_give_the_same_bits_as_one_group(monkeypatch):
    # each output value is summed over the same inputs in the same order in either case
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 6, 9, 20)).astype(np.float32)
    w = rng.standard_normal((14, 6, 3, 3)).astype(np.float32)
    bias = rng.standard_normal(14).astype(np.float32)
    ys = []
    for group in (14, 4, 8):            # one group; 4+4+4+2; 8+6 (a last group with a remainder)
        monkeypatch.setattr(direct, "channel_group", lambda c_out, wp, itemsize: group)
        ys.append(direct.conv3x3(x, w, bias, 1, relu=True))
    np.testing.assert_array_equal(ys[0], ys[1])
    np.testing.assert_array_equal(ys[0], ys[2])


def test_weight_gradient_parts_stay_within_their_budget(monkeypatch):
    # many channels: fewer bands, so fewer parts; the gradient does not depend on the split
    rng = np.random.default_rng(8)
    x = rng.standard_normal((1, 8, 12, 10))
    gz = rng.standard_normal((1, 8, 12, 10))
    expected = direct.weight_grad(x, gz, 1)
    shapes = []
    run = direct.weight_grad_kernel(1)
    monkeypatch.setattr(direct, "weight_grad_kernel", lambda p: lambda *a: (shapes.append(a[-1].shape), run(*a)))
    monkeypatch.setattr(direct, "PARTS_BUDGET_BYTES", 8 * 8 * 9 * 8)          # one part
    np.testing.assert_allclose(direct.weight_grad(x, gz, 1), expected, rtol=1e-12)
    assert shapes[-1][0] == numba.get_num_threads()       # the floor: one unit per thread


def test_channel_groups_keep_the_flat_loops_long():
    wp = 64                                         # the paper preset's conv4 map, 50x62
    group = direct.channel_group(512, wp, 4)
    rows = -(-direct.MIN_BAND_LENGTH // wp)         # the rows of the shortest band allowed
    assert group % 4 == 0 and group < 512 and group * rows * wp * 4 <= direct.BAND_BYTES
    assert direct.channel_group(16, 130, 4) == 16   # few channels: one group, as before
    assert direct.channel_group(64, 502, 4) == 64   # conv1 at 400x500: two rows a band are long enough
    assert direct.channel_group(512, 10 ** 6, 4) == 4


@SETTINGS
@given(band_cases())
def test_gemm_in_bands_gradcheck(case):
    rng = np.random.default_rng(case["seed"])
    x = t64(rng, case["n"], case["c_in"], case["h"], case["w"])
    w = t64(rng, case["c_out"], case["c_in"], case["k"], case["k"])
    inputs = [x, w] + ([t64(rng, case["c_out"])] if case["bias"] else [])
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(conv, "DIRECT_3X3", False)
        patch.setattr(conv, "ROW_GEMM", False)
        patch.setattr(conv, "COLUMN_BUDGET_BYTES", 8 * case["c_in"] * case["k"] ** 2)   # one-row bands
        assert ts.gradcheck(conv_fn(case["stride"], case["padding"], case["relu"]), inputs)


def run_both_paths(x, w, b, padding, relu, gy, monkeypatch):
    """(y, dx, dw, db) of conv2d on the direct path and on the banded GEMM path."""
    results = []
    for force_gemm in (False, True):
        if force_gemm:
            monkeypatch.setattr(conv, "DIRECT_3X3", False)
            monkeypatch.setattr(conv, "ROW_GEMM", False)
            monkeypatch.setattr(conv, "COLUMN_BUDGET_BYTES", 3 * x.shape[1] * 9 * x.shape[3] * x.itemsize)
        tensors = [ts.tensor(a, requires_grad=True) for a in (x, w, b)]
        y = F.conv2d(*tensors, padding=padding, relu=relu)
        y.backward(gy)
        results.append([y.numpy()] + [t.grad for t in tensors])
    return results


@pytest.mark.parametrize("c_in, c_out, padding", [(1, 8, 1), (8, 8, 1), (3, 5, 0), (5, 3, 2), (16, 32, 1)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_direct_and_gemm_paths_agree(c_in, c_out, padding, dtype, monkeypatch):
    rng = np.random.default_rng(c_in * 10 + c_out)
    x = rng.standard_normal((2, c_in, 13, 70)).astype(dtype)        # rows of 70: a direct tier
    w = (rng.standard_normal((c_out, c_in, 3, 3)) / 3).astype(dtype)
    b = rng.standard_normal(c_out).astype(dtype)
    out_h, out_w = 13 + 2 * padding - 2, 70 + 2 * padding - 2
    gy = rng.standard_normal((2, c_out, out_h, out_w)).astype(dtype)
    (y1, *g1), (y2, *g2) = run_both_paths(x, w, b, padding, True, gy, monkeypatch)
    tol = 1e-4 if dtype == np.float32 else 1e-11
    for a, b_ in zip([y1, *g1], [y2, *g2]):
        assert a.dtype == dtype
        np.testing.assert_allclose(a, b_, rtol=tol, atol=tol * np.abs(b_).max())


@needs_torch
@EXAMPLES
@given(data=st.data(), seed=seeds)
def test_direct_kernel_matches_torch(data, seed):
    n, c_in, c_out = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 9)), data.draw(st.integers(1, 9))
    padding = data.draw(st.integers(0, 2))
    h, w = data.draw(st.integers(max(1, 3 - 2 * padding), 12)), data.draw(st.integers(max(1, 3 - 2 * padding), 40))
    relu = data.draw(st.booleans())
    rng = np.random.default_rng(seed)
    arrays, a, b = conv_inputs(rng, (n, c_in, h, w), (c_out, c_in, 3, 3), c_out)
    assert Conv2d(1, padding).direct_cpu(arrays["x"], arrays["weight"])
    y = F.conv2d(a["x"], a["weight"], a["bias"], padding=padding, relu=relu)
    y_ref = TF.conv2d(b["x"], b["weight"], b["bias"], padding=padding)
    y_ref = TF.relu(y_ref) if relu else y_ref
    assert_close(y, y_ref, "direct conv2d forward")
    backward_both(y, y_ref, rng)
    assert_grads({k: (a[k], b[k]) for k in arrays})


@needs_torch
@EXAMPLES
@given(data=st.data(), seed=seeds)
def test_gemm_in_bands_matches_torch(data, seed):
    k, stride = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 3))
    padding = data.draw(st.integers(0, k))
    n, c_in, c_out = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4))
    h = data.draw(st.integers(max(1, k - 2 * padding), 10))
    w = data.draw(st.integers(max(1, k - 2 * padding), 10))
    rows_per_band = data.draw(st.integers(1, 3))
    rng = np.random.default_rng(seed)
    arrays, a, b = conv_inputs(rng, (n, c_in, h, w), (c_out, c_in, k, k), c_out)
    out_w = (w + 2 * padding - k) // stride + 1
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(conv, "DIRECT_3X3", False)
        patch.setattr(conv, "ROW_GEMM", False)
        patch.setattr(conv, "COLUMN_BUDGET_BYTES", rows_per_band * c_in * k * k * out_w * 8)
        y = F.conv2d(a["x"], a["weight"], a["bias"], stride=stride, padding=padding, relu=True)
        y_ref = TF.relu(TF.conv2d(b["x"], b["weight"], b["bias"], stride=stride, padding=padding))
        assert_close(y, y_ref, "banded conv2d forward")
        backward_both(y, y_ref, rng)
    assert_grads({k_: (a[k_], b[k_]) for k_ in arrays})


@needs_torch
@pytest.mark.parametrize("c_in, c_out, h, w", [(1, 8, 64, 64), (8, 16, 32, 48), (64, 64, 9, 70), (32, 64, 8, 8)])
def test_float32_layer_shapes_match_torch(c_in, c_out, h, w):
    """The shapes of the small preset (scaled down), whichever path the dispatch picks, in float32."""
    rng = np.random.default_rng(c_in + c_out)
    x = rng.standard_normal((2, c_in, h, w)).astype(np.float32)
    wt = (rng.standard_normal((c_out, c_in, 3, 3)) * (2 / (9 * c_in)) ** 0.5).astype(np.float32)
    b = rng.standard_normal(c_out).astype(np.float32)
    gy = rng.standard_normal((2, c_out, h, w)).astype(np.float32)
    ours_ = [ts.tensor(a, requires_grad=True) for a in (x, wt, b)]
    theirs_ = [torch.tensor(a, requires_grad=True) for a in (x, wt, b)]
    y = F.conv2d(*ours_, padding=1, relu=True)
    y_ref = TF.relu(TF.conv2d(*theirs_, padding=1))
    y.backward(gy)
    y_ref.backward(torch.from_numpy(gy))
    for a, b_ in [(y.numpy(), y_ref.detach().numpy())] + [(t.grad, u.grad.numpy()) for t, u in zip(ours_, theirs_)]:
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b_, rtol=1e-4, atol=1e-4 * np.abs(b_).max())


@pytest.mark.parametrize("n, c, h, w, k, stride, padding", [
    (1, 2, 7, 5, 3, 1, 1), (2, 1, 9, 4, 3, 2, 1), (1, 2, 6, 6, 2, 3, 0), (1, 1, 5, 5, 4, 1, 4), (1, 3, 1, 1, 3, 1, 1)])
def test_band_kernels_are_adjoint_and_tile_the_full_columns(n, c, h, w, k, stride, padding):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c, h, w))
    out_h, out_w = (h + 2 * padding - k) // stride + 1, (w + 2 * padding - k) // stride + 1
    full = im2col(x, k, k, stride, padding, out_h, out_w)
    buffer = np.empty(c * k * k * out_h * out_w)
    image = np.zeros_like(x)
    for b in range(n):
        for row0 in range(out_h):
            for rows in range(1, out_h - row0 + 1):
                cols = im2col_band(x, b, row0, rows, k, k, stride, padding, out_h, out_w, buffer)
                np.testing.assert_array_equal(cols, full[:, b, row0 * out_w:(row0 + rows) * out_w])
        # the adjoint, band by band of two rows: <im2col_band(a), g> = <a, col2im_band_add(g)>
        for row0 in range(0, out_h, 2):
            rows = min(2, out_h - row0)
            g = rng.standard_normal((c * k * k, rows * out_w))
            cols = im2col_band(x, b, row0, rows, k, k, stride, padding, out_h, out_w, buffer)
            before = image.copy()
            col2im_band_add(g, image, b, row0, rows, k, k, stride, padding, out_w)
            np.testing.assert_allclose((cols * g).sum(), (x * (image - before)).sum(), rtol=1e-12)


def test_direct_kernel_on_one_pixel_rows_and_padding_wider_than_the_image():
    rng = np.random.default_rng(3)
    for shape, padding in (((1, 3, 1, 1), 1), ((2, 2, 4, 1), 2), ((1, 1, 1, 5), 2), ((1, 4, 3, 3), 0)):
        x = rng.standard_normal(shape)
        w = rng.standard_normal((3, shape[1], 3, 3))
        y = direct.conv3x3(x, w, None, padding, relu=False)
        xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
        ref = np.einsum("nchwij,ocij->nohw", np.lib.stride_tricks.sliding_window_view(xp, (3, 3), axis=(2, 3)), w)
        np.testing.assert_allclose(y, ref, rtol=1e-12, atol=1e-12)


def test_workspace_is_reused_and_grows():
    a = workspace.get("test", 100, np.float32)
    assert workspace.get("test", 80, np.float32) is a
    b = workspace.get("test", 1000, np.float32)
    assert b.size >= 250 and workspace.get("test", 1000, np.float32) is b
    assert workspace.get("test", 100, np.float64) is not b


def test_bands_respect_the_column_budget(monkeypatch):
    monkeypatch.setattr(conv, "COLUMN_BUDGET_BYTES", 4 * 9 * 2 * 10 * 3)     # three rows of 2 channels, 10 wide
    x, w = np.zeros((2, 2, 11, 10), np.float32), np.zeros((4, 2, 3, 3), np.float32)
    bands, nbytes = Conv2d.bands(x, w, 11, 10, np.float32)
    assert [rows for _, _, rows in bands] == [3, 3, 3, 2] * 2 and nbytes == conv.COLUMN_BUDGET_BYTES
    monkeypatch.setattr(conv, "COLUMN_BUDGET_BYTES", 8)                      # below one row: one row a band
    bands, nbytes = Conv2d.bands(x, w, 11, 10, np.float32)
    assert len(bands) == 22 and nbytes == 4 * 9 * 2 * 10


# ---------------------------------------------------------------- one GEMM per kernel row


@st.composite
def row_gemm_cases(draw):
    """Stride 1, kernels from 1x2 to 7x7 (square or not), padding 0 to min(kh, kw) - 1."""
    kh, kw = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    assume(kh * kw > 1)
    padding = draw(st.integers(0, min(kh, kw) - 1))
    return dict(n=draw(st.integers(1, 3)), c_in=draw(st.integers(1, 4)), c_out=draw(st.integers(1, 4)),
                h=draw(st.integers(max(1, kh - 2 * padding), 9)), w=draw(st.integers(max(1, kw - 2 * padding), 9)),
                kh=kh, kw=kw, padding=padding, bias=draw(st.booleans()), relu=draw(st.booleans()),
                seed=draw(st.integers(0, 2 ** 31)))


def row_gemm_inputs(case, rng, make):
    x = make(rng, case["n"], case["c_in"], case["h"], case["w"])
    w = make(rng, case["c_out"], case["c_in"], case["kh"], case["kw"])
    return [x, w] + ([make(rng, case["c_out"])] if case["bias"] else [])


def takes_row_gemm(x, w, padding):
    return Conv2d(1, padding).row_gemm_cpu(x, w) and not Conv2d(1, padding).direct_cpu(x, w)


@SETTINGS
@given(row_gemm_cases())
def test_row_gemm_gradcheck(case):
    rng = np.random.default_rng(case["seed"])
    inputs = row_gemm_inputs(case, rng, t64)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(conv, "DIRECT_3X3", False)
        assert Conv2d(1, case["padding"]).row_gemm_cpu(inputs[0].data, inputs[1].data)
        assert ts.gradcheck(conv_fn(1, case["padding"], case["relu"]), inputs)


@needs_torch
@EXAMPLES
@given(case=row_gemm_cases())
def test_row_gemm_matches_torch(case):
    rng = np.random.default_rng(case["seed"])
    shapes = ((case["n"], case["c_in"], case["h"], case["w"]), (case["c_out"], case["c_in"], case["kh"], case["kw"]))
    arrays, a, b = conv_inputs(rng, *shapes, case["c_out"] if case["bias"] else 0)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(conv, "DIRECT_3X3", False)
        assert Conv2d(1, case["padding"]).row_gemm_cpu(arrays["x"], arrays["weight"])
        y = F.conv2d(a["x"], a["weight"], a.get("bias"), padding=case["padding"], relu=case["relu"])
        y_ref = TF.conv2d(b["x"], b["weight"], b.get("bias"), padding=case["padding"])
        y_ref = TF.relu(y_ref) if case["relu"] else y_ref
        assert_close(y, y_ref, "row-GEMM conv2d forward")
        backward_both(y, y_ref, rng)
    assert_grads({k: (a[k], b[k]) for k in arrays})


@pytest.mark.parametrize("n, h, w", [(4, 16, 16), (4, 8, 10), (1, 16, 16), (3, 7, 5)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_row_gemm_and_banded_gemm_agree_on_conv6(n, h, w, dtype, monkeypatch):
    """H-ReNet's conv6 (7x7, padding 3, fused ReLU) at the pool4 sizes of 256x256 and 128x160
    inputs, batch 4 and 1, and a map smaller than the kernel."""
    rng = np.random.default_rng(n * 100 + h)
    x = rng.standard_normal((n, 16, h, w)).astype(dtype)
    wt = (rng.standard_normal((24, 16, 7, 7)) / 28).astype(dtype)
    b = rng.standard_normal(24).astype(dtype)
    gy = rng.standard_normal((n, 24, h, w)).astype(dtype)
    assert takes_row_gemm(x, wt, 3)
    results = []
    for row_gemm_on in (True, False):
        monkeypatch.setattr(conv, "ROW_GEMM", row_gemm_on)
        tensors = [ts.tensor(a, requires_grad=True) for a in (x, wt, b)]
        y = F.conv2d(*tensors, padding=3, relu=True)
        y.backward(gy)
        results.append([y.numpy()] + [t.grad for t in tensors])
    tol = 1e-4 if dtype == np.float32 else 1e-11
    for ours, banded in zip(*results):
        assert ours.dtype == dtype and ours.shape == banded.shape
        np.testing.assert_allclose(ours, banded, rtol=tol, atol=tol * np.abs(banded).max())


def test_row_windows_match_their_definition():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 5, 6))
    for (ph, pw), kw in (((0, 0), 2), ((1, 2), 3), ((2, 1), 4)):
        windows = row_gemm.row_windows(x, (ph, pw), kw)
        xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
        out_w = xp.shape[3] - kw + 1
        # R[r, n * Wo + q, j * C + c] = xp[n, c, r, q + j]
        expected = np.empty((xp.shape[2], 2 * out_w, kw * 3))
        for r in range(xp.shape[2]):
            for b in range(2):
                for q in range(out_w):
                    expected[r, b * out_w + q] = xp[b, :, r, q:q + kw].T.reshape(-1)
        np.testing.assert_array_equal(windows, expected)


def test_row_gemm_leaves_out_exactly_the_padding_rows():
    # 7x7 kernel, padding 3, 8 input rows: output row o's kernel row i reads padded row o + i,
    # an input row when 3 <= o + i < 11
    spans = [row_gemm.live_rows(0, 8, i, 3, 8) for i in range(7)]
    for i, (lo, hi) in enumerate(spans):
        assert [o for o in range(8) if 3 <= o + i < 11] == list(range(lo, hi))
    assert sum(hi - lo for lo, hi in spans) == 44                     # of 56 row products
    assert row_gemm.live_rows(5, 8, 6, 3, 8) == (5, 5)                # a thread's run with none left


def test_row_gemm_leaves_the_rest_to_the_other_paths(monkeypatch):
    x, w7 = np.zeros((4, 64, 16, 16), np.float32), np.zeros((64, 64, 7, 7), np.float32)
    assert takes_row_gemm(x, w7, 3)
    assert not Conv2d(2, 3).row_gemm_cpu(x, w7)                                 # stride 2
    assert not Conv2d(1, 0).row_gemm_cpu(x, np.zeros((64, 64, 1, 1), np.float32))      # 1x1
    assert not Conv2d(1, 7).row_gemm_cpu(x, w7)                                 # padding >= kernel
    assert Conv2d(1, 1).direct_cpu(x, np.zeros((64, 64, 3, 3), np.float32))     # 3x3: the direct kernel
    # over budget (the input's row windows, or the output gradient's for the input gradient)
    windows_bytes = (16 + 6) * 4 * 16 * 7 * 64 * 4
    monkeypatch.setattr(row_gemm, "ROW_WINDOWS_BUDGET_BYTES", windows_bytes)
    assert takes_row_gemm(x, w7, 3)
    monkeypatch.setattr(row_gemm, "ROW_WINDOWS_BUDGET_BYTES", windows_bytes - 1)
    assert not takes_row_gemm(x, w7, 3)
    wide_out = np.zeros((256, 64, 7, 7), np.float32)                            # dZ has 4x the channels
    monkeypatch.setattr(row_gemm, "ROW_WINDOWS_BUDGET_BYTES", 2 * windows_bytes)
    assert row_gemm.fits(x.shape, (7, 7), (3, 3), 4) and not takes_row_gemm(x, wide_out, 3)


def test_row_gemm_does_not_depend_on_the_thread_count():
    import numba
    rng = np.random.default_rng(8)
    x, w = rng.standard_normal((2, 5, 9, 8)), rng.standard_normal((6, 5, 5, 5))
    gz = rng.standard_normal((2, 6, 9, 8))
    before = numba.get_num_threads()
    results = []
    try:
        for threads in sorted({1, before}):
            numba.set_num_threads(threads)
            results.append((row_gemm.correlate(x, w, (2, 2)), row_gemm.weight_grad(x, gz, (2, 2)),
                            row_gemm.input_grad(gz, w, (2, 2))))
    finally:
        numba.set_num_threads(before)
    for a, b in zip(results[0], results[-1]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- direct transposed convolution


@st.composite
def transpose_cases(draw):
    k, stride = draw(st.integers(1, 5)), draw(st.integers(1, 4))
    padding = draw(st.integers(0, k))
    h, w = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    assume((h - 1) * stride - 2 * padding + k >= 1 and (w - 1) * stride - 2 * padding + k >= 1)  # some output
    return dict(n=draw(st.integers(1, 2)), c_in=draw(st.integers(1, 3)), c_out=draw(st.integers(1, 3)), h=h, w=w,
                k=k, stride=stride, padding=padding, bias=draw(st.booleans()), seed=draw(st.integers(0, 2 ** 31)))


@SETTINGS
@given(transpose_cases())
def test_direct_transpose_gradcheck(case):
    rng = np.random.default_rng(case["seed"])
    x = t64(rng, case["n"], case["c_in"], case["h"], case["w"])
    w = t64(rng, case["c_in"], case["c_out"], case["k"], case["k"])
    inputs = [x, w] + ([t64(rng, case["c_out"])] if case["bias"] else [])
    fn = lambda x, w, b=None: F.conv_transpose2d(x, w, b, stride=case["stride"], padding=case["padding"])  # noqa: E731
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(conv, "DIRECT_TRANSPOSE_MIN_KERNEL_WIDTH", 1)
        assert ts.gradcheck(fn, inputs)


@needs_torch
@EXAMPLES
@given(case=transpose_cases())
def test_direct_transpose_matches_torch(case):
    rng = np.random.default_rng(case["seed"])
    arrays, a, b = conv_inputs(rng, (case["n"], case["c_in"], case["h"], case["w"]),
                               (case["c_in"], case["c_out"], case["k"], case["k"]), case["c_out"])
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(conv, "DIRECT_TRANSPOSE_MIN_KERNEL_WIDTH", 1)
        y = F.conv_transpose2d(a["x"], a["weight"], a["bias"], stride=case["stride"], padding=case["padding"])
        y_ref = TF.conv_transpose2d(b["x"], b["weight"], b["bias"], stride=case["stride"], padding=case["padding"])
        assert_close(y, y_ref, "direct conv_transpose2d forward")
        backward_both(y, y_ref, rng)
    assert_grads({k: (a[k], b[k]) for k in arrays})


@needs_torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_hrenet_upsampling_matches_torch_and_the_gemm_path(dtype, monkeypatch):
    """The model's transposed convolution (kernel 64, stride 32, padding 16) on the direct kernel."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 3, 3, 4)).astype(dtype)
    w = (rng.standard_normal((3, 3, 64, 64)) / 8).astype(dtype)
    b = rng.standard_normal(3).astype(dtype)
    gy = rng.standard_normal((2, 3, 96, 128)).astype(dtype)
    results = []
    for width in (16, 10 ** 6):                      # the direct kernel, then the GEMM path
        monkeypatch.setattr(conv, "DIRECT_TRANSPOSE_MIN_KERNEL_WIDTH", width)
        tensors = [ts.tensor(a, requires_grad=True) for a in (x, w, b)]
        y = F.conv_transpose2d(*tensors, stride=32, padding=16)
        y.backward(gy)
        results.append([y.numpy()] + [t.grad for t in tensors])
    theirs_ = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
    y_ref = TF.conv_transpose2d(*theirs_, stride=32, padding=16)
    y_ref.backward(torch.from_numpy(gy))
    reference = [y_ref.detach().numpy()] + [t.grad.numpy() for t in theirs_]
    tol = 1e-4 if dtype == np.float32 else 1e-10
    for got in results:
        for a, r in zip(got, reference):
            assert a.dtype == dtype
            np.testing.assert_allclose(a, r, rtol=tol, atol=tol * np.abs(r).max())
