"""Every GPU op against the CPU reference: outputs and gradients, float32 to 1e-4 relative
and float64 to 1e-10 (with an absolute floor of that fraction of the largest reference
value), on hypothesis-drawn shapes and values. Gradients are those of sum(R * y) for a
fixed random R.

TF32 is disallowed: conftest.py sets CUPY_TF32=0 and NVIDIA_TF32_OVERRIDE=0 and pins
cuBLAS's float32 compute type to CUBLAS_COMPUTE_32F_PEDANTIC, so every float32 GEMM
keeps float32's 24-bit mantissa. Every buffer a kernel fills is poisoned with NaN
(integers: -1) first (``tinyseg.ops.gpu.POISON``), so an element a kernel skips fails.
"""
from unittest import mock

import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

cupy = pytest.importorskip("cupy")
import tinyseg as ts  # noqa: E402

if not ts.cuda_available():
    pytest.skip("no CUDA device", allow_module_level=True)

import tinyseg.functional as F  # noqa: E402
from parity import check  # noqa: E402
from tinyseg.ops.gpu import lstm as gpu_lstm  # noqa: E402
from tinyseg.ops.gpu import norm as gpu_norm  # noqa: E402

EXAMPLES = settings(max_examples=25, deadline=None)
dtypes = st.sampled_from([np.float32, np.float64])
seeds = st.integers(0, 2 ** 31)


def randn(rng, dtype, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(dtype)


@st.composite
def conv_cases(draw):
    k = draw(st.integers(1, 5))
    stride = draw(st.integers(1, 4))
    padding = draw(st.integers(0, k - 1))
    h = draw(st.integers(max(1, k - 2 * padding), 11))
    w = draw(st.integers(max(1, k - 2 * padding), 11))
    return dict(n=draw(st.integers(1, 3)), c_in=draw(st.integers(1, 4)), c_out=draw(st.integers(1, 4)),
                h=h, w=w, k=k, stride=stride, padding=padding, bias=draw(st.booleans()),
                relu=draw(st.booleans()), dtype=draw(dtypes), seed=draw(seeds))


@EXAMPLES
@given(conv_cases())
def test_conv2d(case):
    rng = np.random.default_rng(case["seed"])
    dt = case["dtype"]
    arrays = [randn(rng, dt, case["n"], case["c_in"], case["h"], case["w"]),
              randn(rng, dt, case["c_out"], case["c_in"], case["k"], case["k"])]
    if case["bias"]:
        arrays.append(randn(rng, dt, case["c_out"]))
    check(lambda x, w, b=None: F.conv2d(x, w, b, stride=case["stride"], padding=case["padding"],
                                        relu=case["relu"]), arrays)


@EXAMPLES
@given(conv_cases())
def test_conv_transpose2d(case):
    s, p, k = case["stride"], case["padding"], case["k"]
    assume((case["h"] - 1) * s - 2 * p + k >= 1 and (case["w"] - 1) * s - 2 * p + k >= 1)
    rng = np.random.default_rng(case["seed"])
    dt = case["dtype"]
    arrays = [randn(rng, dt, case["n"], case["c_in"], case["h"], case["w"]),
              randn(rng, dt, case["c_in"], case["c_out"], k, k)]
    if case["bias"]:
        arrays.append(randn(rng, dt, case["c_out"]))
    check(lambda x, w, b=None: F.conv_transpose2d(x, w, b, stride=s, padding=p), arrays)


def test_conv_on_non_contiguous_input_and_upsampling_shape():
    rng = np.random.default_rng(3)
    x, w = randn(rng, np.float32, 2, 3, 9, 7), randn(rng, np.float32, 4, 3, 3, 3)
    check(lambda x, w: F.conv2d(x.transpose(0, 1, 3, 2), w, padding=1), [x, w])
    # HReNet's upsampler: kernel 64, stride 32, padding 16
    xt, wt = randn(rng, np.float32, 1, 3, 2, 3), randn(rng, np.float32, 3, 3, 64, 64, scale=0.05)
    check(lambda x, w: F.conv_transpose2d(x, w, stride=32, padding=16), [xt, wt])


@EXAMPLES
@given(st.integers(1, 4), st.integers(1, 4), st.integers(1, 2), st.integers(1, 3), st.integers(1, 12),
       st.integers(1, 12), st.booleans(), dtypes, seeds)
def test_max_pool2d(k, stride, n, c, h, w, ties, dt, seed):
    assume(h >= k and w >= k)
    rng = np.random.default_rng(seed)
    # ties: small integers, so windows hold equal maxima (the first one wins on both devices)
    x = rng.integers(0, 3, (n, c, h, w)).astype(dt) if ties else randn(rng, dt, n, c, h, w)
    check(lambda x: F.max_pool2d(x, k, stride), [x])


@EXAMPLES
@given(st.integers(1, 3), st.integers(1, 5), st.integers(1, 7), st.integers(1, 7), st.booleans(),
       st.booleans(), dtypes, seeds)
def test_batch_norm(n, c, h, w, training, affine, dt, seed):
    # With two or three values per channel the training-mode input gradient is the
    # difference of nearly equal terms, zero up to rounding on both devices: too few to compare.
    assume(not training or n * h * w > 3)
    rng = np.random.default_rng(seed)
    arrays = [randn(rng, dt, n, c, h, w, scale=3.0) + 1.5,
              randn(rng, dt, c, scale=0.1), rng.uniform(0.5, 2.0, c).astype(dt)]
    if affine:
        arrays += [randn(rng, dt, c), randn(rng, dt, c)]
    differentiable = [True, not training, not training] + [True] * (2 if affine else 0)
    check(lambda x, m, v, *wb: F.batch_norm(x, m, v, *wb, training=training), arrays, differentiable)


def test_batch_norm_splits_few_channels_over_several_blocks():
    assert gpu_norm.reduction_parts(4096, 16 * 775, 132) == 1            # many channels: one block each
    assert gpu_norm.reduction_parts(64, 16 * 200 * 250, 132) == 9        # few: 4 blocks per multiprocessor
    assert gpu_norm.reduction_parts(8, 3000, 132) == 1                   # too few values to share out
    assert gpu_norm.reduction_parts(8, 40 * 2048, 132) == 40


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 3), st.integers(1, 4), st.integers(1, 9), st.integers(1, 9), st.sampled_from([2, 3, 7, 50]),
       st.booleans(), dtypes, seeds)
def test_batch_norm_split_over_blocks(n, c, h, w, parts, training, dt, seed):
    # slices of every length, across plane boundaries; `parts` past the count gives one value a slice
    assume(not training or n * h * w > 3)
    rng = np.random.default_rng(seed)
    arrays = [randn(rng, dt, n, c, h, w, scale=3.0) + 1.5, randn(rng, dt, c, scale=0.1),
              rng.uniform(0.5, 2.0, c).astype(dt), randn(rng, dt, c), randn(rng, dt, c)]
    with mock.patch.object(gpu_norm, "reduction_parts", lambda *args: parts):
        check(lambda x, m, v, *wb: F.batch_norm(x, m, v, *wb, training=training), arrays,
              [True, not training, not training, True, True])


def test_batch_norm_reductions_launch_with_their_bound():
    import os
    import re
    from tinyseg.backend import CUDA_SOURCE_DIR
    with open(os.path.join(CUDA_SOURCE_DIR, "batchnorm.cu"), encoding="utf-8") as f:
        assert int(re.search(r"#define BN_THREADS (\d+)", f.read()).group(1)) == gpu_norm.REDUCE_THREADS
    for name in ("batch_norm_stats_partial", "batch_norm_backward_partial"):
        assert gpu_norm._reduction(name, np.float32).max_threads_per_block >= gpu_norm.REDUCE_THREADS
    with mock.patch.object(gpu_norm, "REDUCE_THREADS", 2048), pytest.raises(RuntimeError, match="BN_THREADS"):
        gpu_norm._reduction.__wrapped__("batch_norm_stats_partial", np.float64)


@EXAMPLES
@given(st.integers(1, 3), st.integers(1, 6), st.integers(1, 3000), dtypes, seeds)
def test_batch_norm_running_statistics(n, c, plane, dt, seed):
    assume(n * plane > 1)
    rng = np.random.default_rng(seed)
    x = randn(rng, dt, n, c, 1, plane, scale=2.0) + 3.0
    stats = {}
    for device in ("cpu", "cuda"):
        mean, var = ts.tensor(np.zeros(c, dt), device=device), ts.tensor(np.ones(c, dt), device=device)
        F.batch_norm(ts.tensor(x, device=device), mean, var, training=True, momentum=0.3)
        stats[device] = mean.numpy(), var.numpy()
    for cpu, gpu in zip(stats["cpu"], stats["cuda"]):
        np.testing.assert_allclose(gpu, cpu, rtol=1e-5 if dt == np.float32 else 1e-12)


@EXAMPLES
@given(st.integers(1, 3), st.integers(1, 5), st.integers(1, 6), st.integers(1, 6), st.booleans(),
       st.booleans(), dtypes, seeds)
def test_cross_entropy(n, classes, h, w, weighted, flat, dt, seed):
    rng = np.random.default_rng(seed)
    shape = (n, classes) if flat else (n, classes, h, w)
    logits = randn(rng, dt, *shape, scale=4.0)
    target = rng.integers(0, classes, shape[:1] + shape[2:])
    arrays = [logits, target] + ([rng.uniform(0.1, 2.0, classes).astype(dt)] if weighted else [])
    check(lambda z, t, wt=None: F.cross_entropy(z, t, wt), arrays, [True, False, False])


def test_cross_entropy_takes_labels_from_the_host():
    rng = np.random.default_rng(4)
    logits, target = randn(rng, np.float32, 2, 3, 5, 4), rng.integers(0, 3, (2, 5, 4))
    z = ts.tensor(logits, device="cuda")
    on_device = F.cross_entropy(z, ts.tensor(target, device="cuda")).item()
    assert F.cross_entropy(z, ts.tensor(target)).item() == on_device
    assert F.cross_entropy(z, ts.tensor(target), ts.tensor(np.ones(3, np.float32))).item() == pytest.approx(on_device)


@pytest.mark.parametrize("bad", [-1, 3, 7])
def test_cross_entropy_refuses_targets_out_of_range_as_the_cpu_does(bad):
    rng = np.random.default_rng(6)
    logits, target = randn(rng, np.float32, 2, 3, 4, 5), rng.integers(0, 3, (2, 4, 5))
    target[1, 2, 3] = bad
    messages = []
    for device in ("cpu", "cuda"):
        with pytest.raises(ValueError, match="target values must lie in") as error:
            F.cross_entropy(ts.tensor(logits, device=device), ts.tensor(target, device=device))
        messages.append(str(error.value))
    assert messages[0] == messages[1]


def test_cross_entropy_checks_targets_on_the_device(monkeypatch):
    # valid targets: no host-side reduction of the targets (only the kernel's flag is read)
    import tinyseg.ops.loss as loss_op

    def host_check(*args):
        raise AssertionError("targets were checked on the host")
    monkeypatch.setattr(loss_op, "check_target_range", host_check)
    rng = np.random.default_rng(7)
    z = ts.tensor(randn(rng, np.float32, 2, 3, 4, 5), device="cuda")
    assert np.isfinite(F.cross_entropy(z, ts.tensor(rng.integers(0, 3, (2, 4, 5)), device="cuda")).item())


@EXAMPLES
@given(st.integers(1, 3), st.integers(1, 40), dtypes, seeds)
def test_relu(n, m, dt, seed):
    x = randn(np.random.default_rng(seed), dt, n, m)
    x[0, 0] = 0.0
    check(F.relu, [x])


def sequences_per_block(packed):
    """The LSTM kernels put one sequence per block while the GPU has multiprocessors to spare;
    pretending it has a single one makes them pack up to 8 per block."""
    return mock.patch.object(gpu_lstm, "multiprocessors", lambda xp: 1 if packed else 10 ** 6)


@st.composite
def lstm_cases(draw):
    return dict(steps=draw(st.integers(1, 6)), batch=draw(st.integers(1, 19)), n_in=draw(st.integers(1, 6)),
                hidden=draw(st.sampled_from([1, 3, 8, 33, 70])), reverse=draw(st.booleans()),
                packed=draw(st.booleans()), dtype=draw(dtypes), seed=draw(seeds))


@settings(max_examples=20, deadline=None)
@given(lstm_cases())
def test_lstm(case):
    rng = np.random.default_rng(case["seed"])
    dt, h = case["dtype"], case["hidden"]
    arrays = [randn(rng, dt, case["steps"], case["batch"], case["n_in"])]
    arrays += [randn(rng, dt, *shape, scale=0.5) for shape in ((4 * h, case["n_in"]), (4 * h, h), (4 * h,), (4 * h,))]
    with sequences_per_block(case["packed"]):
        check(lambda x, *w: F.lstm(x, *w, reverse=case["reverse"]), arrays)


@pytest.mark.parametrize("reverse", [False, True])
def test_lstm_with_more_hidden_units_than_threads(reverse):
    # 260 units on 256 threads: threads 0-3 own two units each
    rng = np.random.default_rng(5)
    h, n_in = 260, 3
    arrays = [randn(rng, np.float32, 3, 10, n_in)]
    arrays += [randn(rng, np.float32, *shape, scale=0.1) for shape in ((4 * h, n_in), (4 * h, h), (4 * h,), (4 * h,))]
    with sequences_per_block(packed=True):
        check(lambda x, *w: F.lstm(x, *w, reverse=reverse), arrays)


H100 = gpu_lstm.Limits(processors=132, max_threads=1024, shared_bytes=48 * 1024, shared_optin=227 * 1024)


def test_lstm_launch_shapes():
    # spread over the multiprocessors first, then pack; shared memory caps the packing
    back, fwd = gpu_lstm.BACKWARD_WORDS, gpu_lstm.FORWARD_WORDS
    assert gpu_lstm.launch_shape(13, 256, 4, 2, back, H100) == ((13, 2), (256,), 1, 5 * 256 * 4)
    assert gpu_lstm.launch_shape(208, 256, 4, 2, back, H100) == ((52, 2), (256,), 4, 4 * 5 * 256 * 4)
    assert gpu_lstm.launch_shape(1000, 256, 8, 1, back, H100)[:3] == ((250, 1), (256,), 4)   # 5*4*256*8 B <= 48 KiB
    assert gpu_lstm.launch_shape(1000, 256, 8, 1, fwd, H100)[:3] == ((125, 1), (256,), 8)    # forward: H values each
    assert gpu_lstm.launch_shape(3, 33, 4, 1, back, H100._replace(processors=1))[:3] == ((1, 1), (64,), 3)


def test_lstm_block_size_follows_the_kernels_registers():
    # the float64 backward kernel's 142 registers allow 448 threads, not the 512 cap
    assert gpu_lstm.threads_for_registers(142, 65536) == 448
    assert gpu_lstm.threads_for_registers(88, 65536) == 736
    few = H100._replace(max_threads=gpu_lstm.threads_for_registers(142, 65536))
    assert gpu_lstm.launch_shape(4, 1000, 8, 1, gpu_lstm.BACKWARD_WORDS, few)[1] == (448,)
    assert gpu_lstm.launch_shape(4, 1000, 4, 1, gpu_lstm.BACKWARD_WORDS, H100)[1] == (512,)
    assert gpu_lstm.launch_shape(4, 100, 4, 1, gpu_lstm.BACKWARD_WORDS, few)[1] == (128,)


def test_lstm_hidden_sizes_past_the_default_shared_memory_opt_in():
    # 2458 float32 units: 5 * 2458 * 4 B = 49160 B per sequence, past 48 KiB: one sequence, opted in
    assert gpu_lstm.launch_shape(6, 2458, 4, 2, gpu_lstm.BACKWARD_WORDS, H100)[2:] == (1, 49160)
    assert gpu_lstm.launch_shape(6, 2457, 4, 2, gpu_lstm.BACKWARD_WORDS, H100)[2:] == (1, 49140)
    assert gpu_lstm.launch_shape(6, 11000, 4, 2, gpu_lstm.BACKWARD_WORDS, H100)[2:] == (1, 220000)
    with pytest.raises(ValueError, match="shared memory"):
        gpu_lstm.launch_shape(4, 12000, 4, 1, gpu_lstm.BACKWARD_WORDS, H100)
    with pytest.raises(ValueError, match="shared memory"):      # a GPU that allows no more than 48 KiB
        gpu_lstm.launch_shape(4, 2458, 4, 1, gpu_lstm.BACKWARD_WORDS, H100._replace(shared_optin=48 * 1024))


def test_lstm_with_more_shared_memory_than_a_block_has_by_default():
    # backward keeps 5 * 2500 float32 values per sequence (50 000 B > 48 KiB): the kernel is opted in
    rng = np.random.default_rng(8)
    h, n_in = 2500, 2
    arrays = [randn(rng, np.float32, 2, 1, n_in)]
    arrays += [randn(rng, np.float32, *shape, scale=0.02) for shape in ((4 * h, n_in), (4 * h, h), (4 * h,),
                                                                          (4 * h,))]
    check(lambda x, *w: F.lstm(x, *w), arrays)


@settings(max_examples=15, deadline=None)
@given(st.integers(1, 2), st.integers(1, 3), st.integers(1, 4), st.integers(1, 4), st.sampled_from([2, 5, 9]),
       st.booleans(), dtypes, seeds)
def test_renet(n, c, hp, wp, d, packed, dt, seed):
    rng = np.random.default_rng(seed)
    names = ("h_fwd", "h_bwd", "v_fwd", "v_bwd")
    shapes = {name: ((4 * d, c * 4 if name[0] == "h" else 2 * d), (4 * d, d), (4 * d,), (4 * d,)) for name in names}
    arrays = [randn(rng, dt, n, c, 2 * hp, 2 * wp)]
    for name in names:
        arrays += [randn(rng, dt, *shape, scale=0.5) for shape in shapes[name]]

    def fn(x, *weights):
        return F.renet(x, {name: weights[4 * k:4 * k + 4] for k, name in enumerate(names)})
    with sequences_per_block(packed):
        check(fn, arrays)


def test_cross_entropy_gradient_of_a_confident_pixel():
    # softmax of the target class 1 - 1.2e-5: its gradient softmax - 1 must not cancel away
    logits = np.array([0.0, 11.35, -3.0, 11.35 + 2.0], dtype=np.float32).reshape(2, 2, 1, 1)
    check(lambda z, t: F.cross_entropy(z, t), [logits, np.array([[[1]], [[1]]])], [True, False])
