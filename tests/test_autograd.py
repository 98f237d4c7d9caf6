"""Tensors and the reverse-mode engine: graph order, accumulation, no_grad, freeing."""
import numpy as np
import pytest

import tinyseg as ts
import tinyseg.functional as F


def t64(array):
    return ts.tensor(np.asarray(array, dtype=np.float64), requires_grad=True)


def test_tensor_dtypes():
    assert ts.tensor([1.0, 2.0]).dtype == np.float32
    assert ts.tensor(np.zeros(2)).dtype == np.float64
    assert ts.tensor(np.zeros(2, dtype=np.int64)).dtype == np.int64
    with pytest.raises(TypeError, match="floating"):
        ts.tensor(np.zeros(2, dtype=np.int64), requires_grad=True)
    with pytest.raises(ValueError, match="unknown device"):
        ts.tensor([1.0], device="tpu")


def test_scalar_example_by_hand():
    # f(a, b) = (a*b + a)^2 at a=2, b=3: f = 64, df/da = 2(ab+a)(b+1) = 64, df/db = 2(ab+a)a = 32
    a, b = t64(2.0), t64(3.0)
    f = (a * b + a) ** 2
    f.backward()
    assert f.item() == 64.0
    assert a.grad == 64.0 and b.grad == 32.0


def test_python_scalars_keep_dtype():
    x = ts.tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    for y in (x * 2.0, 2.0 * x, x + 1, 1 - x, x / 3.0, 3.0 / x, x ** 2):
        assert y.dtype == np.float32


def test_gradient_accumulates_when_a_tensor_is_used_twice():
    x = t64([1.0, -2.0, 3.0])
    y = (x * x + x).sum()   # dy/dx = 2x + 1
    y.backward()
    np.testing.assert_allclose(x.grad, 2 * x.data + 1)
    z = (x * 3.0).sum()     # a second backward adds to .grad
    z.backward()
    np.testing.assert_allclose(x.grad, 2 * x.data + 1 + 3)


def test_diamond_graph_gets_full_gradient_before_propagating():
    x = t64(1.5)
    a = x * 2.0
    b = a.exp()
    c = a * a
    (b + c).backward()      # d/dx = 2 e^(2x) + 8x
    np.testing.assert_allclose(x.grad, 2 * np.exp(3.0) + 12.0)


def test_deep_graph_has_no_recursion_limit():
    x = t64(1.0)
    y = x
    for _ in range(20000):
        y = y * 1.0 + 0.0
    y.backward()
    assert x.grad == 1.0


def test_no_grad_records_nothing():
    x = t64([1.0, 2.0])
    with ts.no_grad():
        y = (x * x).sum()
    assert y.creator is None and not y.requires_grad
    z = (x * x).sum()
    assert z.creator is not None


def test_graph_is_freed_after_backward():
    x = t64([1.0, 2.0])
    h = x * x
    y = h.sum()
    fn = h.creator
    y.backward()
    assert h.creator is fn and fn.freed        # the output still knows its maker, now spent
    assert not any(hasattr(fn, name) for name in ("inputs",) + fn.saves)   # edges and arrays released


def test_retain_graph_allows_second_backward():
    x = t64([1.0, 2.0])
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad, 4 * x.data)


def test_backward_needs_scalar_or_gradient():
    x = t64([1.0, 2.0])
    y = x * 2.0
    with pytest.raises(RuntimeError, match="scalar"):
        y.backward()
    with pytest.raises(ValueError, match="shape"):
        y.backward(np.ones(3))
    y.backward(np.array([1.0, 10.0]))
    np.testing.assert_allclose(x.grad, [2.0, 20.0])


def test_gradcheck_reports_the_worst_element():
    class WrongSquare(ts.autograd.Function):
        def forward(self, x):
            self.x = x
            return x * x

        def backward(self, gy):
            return gy * self.x  # should be 2 x

    x = t64([1.0, 2.0, 3.0])
    with pytest.raises(ts.GradcheckError, match=r"input 0 .* index \(2,\)"):
        ts.gradcheck(lambda x: WrongSquare()(x), [x])
    with pytest.raises(TypeError, match="float64"):
        ts.gradcheck(lambda x: x * 2, [ts.tensor([1.0], requires_grad=True)])


def test_graph_does_not_keep_intermediate_arrays_alive():
    """An intermediate result the user dropped is freed at once when no backward formula
    needs it: ReLU saves a mask, so the product feeding it must not outlive the forward pass."""
    import gc
    import weakref
    x = t64(np.random.default_rng(0).standard_normal(1000))
    product = x * 2.0
    watch = weakref.ref(product.data)
    y = ts.functional.relu(product).sum()
    del product
    gc.collect()
    assert watch() is None
    y.backward()
    np.testing.assert_allclose(x.grad, 2.0 * (x.data > 0))


def test_multi_output_function_gets_one_gradient_per_output():
    """A Function with two outputs: each output's gradient reaches backward in its slot,
    and an output nobody used arrives as zeros of its shape."""
    class Split(ts.autograd.Function):
        def forward(self, a):
            return a[:2] * 1.0, a[2:] * 1.0

        def backward(self, g_head, g_tail):
            return np.concatenate([g_head, g_tail])

    a = t64([1.0, 2.0, 3.0, 4.0, 5.0])
    head, tail = Split()(a)
    (head * 2.0).sum().backward()
    np.testing.assert_allclose(a.grad, [2.0, 2.0, 0.0, 0.0, 0.0])
    a.grad = None
    head, tail = Split()(a)
    (head * 2.0 + tail[:2] * 3.0).sum().backward()
    np.testing.assert_allclose(a.grad, [2.0, 2.0, 3.0, 3.0, 0.0])


def test_save_takes_exactly_the_declared_names():
    from tinyseg.autograd import Function

    class Square(Function):
        saves = ("x",)

        def forward(self, x):
            self.save(x=x)
            return x * x

        def backward(self, gy):
            return 2 * self.x * gy

    x = t64([1.0, -2.0])
    Square()(x).sum().backward()
    assert x.grad.tolist() == [2.0, -4.0]
    with pytest.raises(TypeError, match="takes"):
        Square().save(x=1, y=2)
    with pytest.raises(TypeError, match="takes"):
        Square().save()


def test_computed_inputs_are_edges_and_leaves_are_tensors():
    from tinyseg.autograd import Edge
    x = t64([1.0, 2.0])
    y = x * 2.0
    z = y + x
    assert z.creator.inputs[0] == Edge(y.creator, 0) and z.creator.inputs[1] is x


def test_operators_come_from_the_ops():
    from tinyseg.ops import elementwise
    x = t64([[1.0, 2.0]])
    assert isinstance((x + 1).creator, elementwise.Add) and isinstance((x @ x.T).creator, elementwise.MatMul)
    assert isinstance(x[0].creator, elementwise.GetItem) and x.reshape(2, 1).shape == (2, 1)


# -- a freed graph is never silently reused ---------------------------------------------------
def test_reusing_an_intermediate_after_backward_freed_its_graph_is_an_error():
    a = ts.tensor(np.array([3.0]), requires_grad=True)
    z = a * a
    z.sum().backward()
    assert a.grad[0] == 6.0
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        (3 * z).sum().backward()
    assert a.grad[0] == 6.0                                   # untouched by the refused pass


def test_backward_twice_is_an_error_unless_the_graph_is_retained():
    a = ts.tensor(np.array([2.0]), requires_grad=True)
    y = (a * a).sum()
    y.backward(retain_graph=True)
    y.backward()                                              # retained once: a second pass works
    assert a.grad[0] == 8.0
    with pytest.raises(RuntimeError, match="freed"):
        y.backward()


def test_tensor_refuses_none_and_complex_data():
    with pytest.raises(TypeError, match="None"):
        ts.tensor(None)
    with pytest.raises(TypeError, match="imaginary"):
        ts.tensor(np.array([1 + 2j]))
    with pytest.raises(TypeError):
        ts.tensor(["a", "b"])
