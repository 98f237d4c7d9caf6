"""Every op on the CPU and on the GPU (or its emulation): both devices build the same graph,
every function in it saves the same names with the same shapes, and outputs and gradients
agree (float64, to 1e-10 relative)."""
import numpy as np
import pytest

cupy = pytest.importorskip("cupy")
import tinyseg as ts  # noqa: E402

if not ts.cuda_available():
    pytest.skip("no CUDA device", allow_module_level=True)

import tinyseg.functional as F  # noqa: E402
from parity import RTOL, assert_close  # noqa: E402
from tinyseg.autograd import _topological_order  # noqa: E402
from tinyseg.backend import as_numpy  # noqa: E402
from tinyseg.ops.lstm import bidirectional_lstm  # noqa: E402

RNG = np.random.default_rng(7)


def randn(*shape):
    return RNG.standard_normal(shape)


def lstm_weights(n_in, hidden):
    return [0.5 * randn(*shape) for shape in ((4 * hidden, n_in), (4 * hidden, hidden), (4 * hidden,), (4 * hidden,))]


def renet_case():
    names = ("h_fwd", "h_bwd", "v_fwd", "v_bwd")
    arrays = [randn(2, 2, 4, 6)]
    for name in names:
        arrays += lstm_weights(8 if name[0] == "h" else 6, 3)
    return (lambda x, *w: F.renet(x, {name: w[4 * k:4 * k + 4] for k, name in enumerate(names)})), arrays


# name -> (function of tensors, input arrays, which inputs are differentiable or None for all float ones)
CASES = {
    "add": (lambda a, b: a + b, [randn(2, 3), randn(3)], None),
    "sub": (lambda a, b: a - b, [randn(2, 1, 3), randn(4, 1)], None),
    "mul": (lambda a, b: a * b, [randn(2, 3), randn(2, 3)], None),
    "div": (lambda a, b: a / b, [randn(2, 3), np.abs(randn(1, 3)) + 1], None),
    "neg_pow": (lambda a: (-a) ** 3, [randn(4)], None),
    "exp_log": (lambda a: (a.exp() + 1).log(), [randn(3, 2)], None),
    "tanh_sigmoid": (lambda a: a.tanh() * a.sigmoid(), [randn(5)], None),
    "relu": (F.relu, [randn(3, 4)], None),
    "matmul": (lambda a, b: a @ b, [randn(2, 3, 4), randn(4, 5)], None),
    "reductions": (lambda a: a.sum(axis=1) * a.mean(axis=(0, 2), keepdims=True).sum(), [randn(2, 3, 4)], None),
    "shapes": (lambda a: F.pad(a.reshape(3, 4).T[1:, ::2], ((1, 0), (0, 2))), [randn(2, 6)], None),
    "getitem_concat": (lambda a, b: F.concat([a[[0, 0, 1]], b], axis=0), [randn(2, 3), randn(1, 3)], None),
    "conv2d": (lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1), [randn(2, 3, 7, 6), randn(4, 3, 3, 3),
                                                                          randn(4)], None),
    "conv2d_relu": (lambda x, w, b: F.conv2d(x, w, b, padding=1, relu=True), [randn(2, 3, 5, 5),
                                                                              randn(4, 3, 3, 3), randn(4)], None),
    "conv2d_no_bias": (lambda x, w: F.conv2d(x, w), [randn(1, 2, 4, 5), randn(3, 2, 2, 2)], None),
    "conv_transpose2d": (lambda x, w, b: F.conv_transpose2d(x, w, b, stride=2, padding=1),
                         [randn(2, 3, 4, 3), randn(3, 2, 4, 4), randn(2)], None),
    "max_pool2d": (lambda x: F.max_pool2d(x, 3, 2), [randn(2, 3, 7, 8)], None),
    "batch_norm_train": (lambda x, m, v, w, b: F.batch_norm(x, m, v, w, b, training=True),
                         [randn(3, 4, 3, 5), randn(4), np.abs(randn(4)) + 0.5, randn(4), randn(4)],
                         [True, False, False, True, True]),
    "batch_norm_eval": (lambda x, m, v, w, b: F.batch_norm(x, m, v, w, b, training=False),
                        [randn(2, 4, 3, 3), randn(4), np.abs(randn(4)) + 0.5, randn(4), randn(4)], None),
    "batch_norm_plain": (lambda x, m, v: F.batch_norm(x, m, v, training=True),
                         [randn(2, 3, 4, 4), np.zeros(3), np.ones(3)], [True, False, False]),
    "cross_entropy": (lambda z, t: F.cross_entropy(z, t), [4 * randn(2, 3, 4, 5), RNG.integers(0, 3, (2, 4, 5))],
                      [True, False]),
    "cross_entropy_weighted": (lambda z, t, w: F.cross_entropy(z, t, w),
                               [4 * randn(3, 4), RNG.integers(0, 4, 3), np.abs(randn(4)) + 0.1],
                               [True, False, False]),
    "lstm": (lambda x, *w: F.lstm(x, *w), [randn(4, 3, 2)] + lstm_weights(2, 5), None),
    "lstm_reverse": (lambda x, *w: F.lstm(x, *w, reverse=True), [randn(4, 3, 2)] + lstm_weights(2, 5), None),
    "bidirectional_lstm": (lambda x, *w: bidirectional_lstm(x, w[:4], w[4:]),
                           [randn(5, 2, 3)] + lstm_weights(3, 4) + lstm_weights(3, 4), None),
    "renet": renet_case() + (None,),
}


def describe(value):
    """What must match across devices: an array's shape, any other saved value itself."""
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return ("array", tuple(value.shape))
    if isinstance(value, (list, tuple)):
        return type(value)(describe(v) for v in value)
    return value


def run(fn, arrays, differentiable, device):
    inputs = [ts.tensor(np.array(a), requires_grad=bool(d), device=device) for a, d in zip(arrays, differentiable)]
    y = fn(*inputs)
    graph = [(type(f).__name__, tuple(f.saves), {k: describe(v) for k, v in f.saved().items()})
             for f in _topological_order(y)]
    y.backward(np.random.default_rng(1).standard_normal(y.shape))
    return graph, y.numpy(), [None if t.grad is None else as_numpy(t.grad) for t in inputs]


@pytest.mark.parametrize("name", sorted(CASES))
def test_both_devices_save_the_same_and_agree(name):
    fn, arrays, differentiable = CASES[name]
    differentiable = differentiable or [np.asarray(a).dtype.kind == "f" for a in arrays]
    graph_cpu, y_cpu, g_cpu = run(fn, arrays, differentiable, "cpu")
    graph_gpu, y_gpu, g_gpu = run(fn, arrays, differentiable, "cuda")
    assert graph_gpu == graph_cpu
    rtol = RTOL[np.dtype(np.float64)]
    assert_close(y_gpu, y_cpu, rtol, "output")
    for k, (a, b) in enumerate(zip(g_gpu, g_cpu)):
        if differentiable[k]:
            assert_close(a, b, rtol, f"gradient of input {k}")


def test_every_op_class_is_covered():
    from tinyseg.autograd import Function
    from tinyseg.ops import conv, elementwise, loss, lstm, norm, pool
    ops = {cls.__name__ for module in (conv, elementwise, loss, lstm, norm, pool) for cls in vars(module).values()
           if isinstance(cls, type) and issubclass(cls, Function) and cls.__module__ == module.__name__
           and not cls.__name__.startswith("_")}
    seen = set()
    for fn, arrays, differentiable in CASES.values():
        differentiable = differentiable or [np.asarray(a).dtype.kind == "f" for a in arrays]
        seen |= {name for name, _, _ in run(fn, arrays, differentiable, "cpu")[0]}
    assert ops <= seen, f"ops without a device contract case: {sorted(ops - seen)}"
