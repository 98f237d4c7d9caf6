"""Elementwise arithmetic, matmul, reductions and shape ops: gradient checks with
broadcasting, and the numerically stable sigmoid."""
import numpy as np
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import tinyseg as ts
import tinyseg.functional as F


def leaf64(array):
    return ts.tensor(np.asarray(array, dtype=np.float64), requires_grad=True)


shapes = st.sampled_from([((3, 1), (1, 4)), ((2, 3, 4), (4,)), ((5,), (2, 5)), ((2, 1, 3), (2, 4, 1)),
                          ((3,), ())])


@settings(max_examples=20, deadline=None)
@given(shapes, st.integers(0, 10 ** 6))
def test_broadcasting_binary_ops_gradcheck(shape_pair, seed):
    rng = np.random.default_rng(seed)
    a = leaf64(rng.uniform(0.5, 2.0, shape_pair[0]))
    b = leaf64(rng.uniform(0.5, 2.0, shape_pair[1]))
    assert ts.gradcheck(lambda a, b: a + b, [a, b])
    assert ts.gradcheck(lambda a, b: a - b, [a, b])
    assert ts.gradcheck(lambda a, b: a * b, [a, b])
    assert ts.gradcheck(lambda a, b: a / b, [a, b])


@settings(max_examples=20, deadline=None)
@given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3, max_side=4),
                  elements=st.floats(0.2, 3.0)))
def test_unary_ops_gradcheck(array):
    for fn in (lambda x: -x, lambda x: x ** 3, lambda x: x ** 0.5, lambda x: x.exp(), lambda x: x.log(),
               lambda x: x.tanh(), lambda x: x.sigmoid()):
        assert ts.gradcheck(fn, [leaf64(array)])
    if np.abs(array - 1.1).min() > 1e-4:   # finite differences are meaningless on ReLU's kink
        assert ts.gradcheck(lambda x: (x - 1.1).relu(), [leaf64(array)])


def test_sigmoid_is_stable_for_large_inputs():
    x = ts.tensor(np.array([-1000.0, 0.0, 1000.0]))
    np.testing.assert_allclose(x.sigmoid().numpy(), [0.0, 0.5, 1.0])


@settings(max_examples=15, deadline=None)
@given(st.integers(1, 4), st.integers(1, 4), st.integers(1, 4), st.integers(1, 3), st.integers(0, 10 ** 6))
def test_matmul_gradcheck_with_batch_broadcast(m, k, n, batch, seed):
    rng = np.random.default_rng(seed)
    a = leaf64(rng.standard_normal((batch, m, k)))
    b = leaf64(rng.standard_normal((k, n)))
    assert ts.gradcheck(lambda a, b: a @ b, [a, b])


@settings(max_examples=20, deadline=None)
@given(st.sampled_from([None, 0, 1, -1, (0, 2)]), st.booleans(), st.integers(0, 10 ** 6))
def test_reductions_gradcheck(axis, keepdims, seed):
    x = leaf64(np.random.default_rng(seed).standard_normal((2, 3, 4)))
    assert ts.gradcheck(lambda x: x.sum(axis=axis, keepdims=keepdims), [x])
    assert ts.gradcheck(lambda x: x.mean(axis=axis, keepdims=keepdims), [x])


def test_shape_ops_gradcheck():
    x = leaf64(np.random.default_rng(0).standard_normal((2, 3, 4)))
    assert ts.gradcheck(lambda x: x.reshape(4, 6), [x])
    assert ts.gradcheck(lambda x: x.transpose(2, 0, 1), [x])
    assert ts.gradcheck(lambda x: x.T, [x])
    assert ts.gradcheck(lambda x: x[1, ::2, 1:], [x])
    assert ts.gradcheck(lambda x: x[:, [0, 0, 2]], [x])     # repeated fancy index accumulates
    assert ts.gradcheck(lambda x: F.pad(x, ((0, 0), (1, 2), (3, 0))), [x])


@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(1, 3), min_size=1, max_size=4), st.integers(0, 2), st.integers(0, 10 ** 6))
def test_concat_gradcheck(sizes, axis, seed):
    rng = np.random.default_rng(seed)
    parts = []
    for s in sizes:
        shape = [2, 3, 2]
        shape[axis] = s
        parts.append(leaf64(rng.standard_normal(shape)))
    assert ts.gradcheck(lambda *xs: F.concat(list(xs), axis=axis), parts)
