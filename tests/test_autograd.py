"""Autograd behaviour of eager tensors: leaves and history, backward's contract, accumulation,
freed graphs, grad modes, broadcasting, non-float tensors, in-place ops and version counters.
References are hand-derived gradients or NumPy formulas written next to each check."""
import gc
import threading
import tracemalloc
import weakref

import numpy as np
import pytest

import gradc
from gradc import AutogradError, DTypeError, GradcError, ShapeError


def leaf(values, dtype=None):
    return gradc.tensor(np.asarray(values, dtype=np.float64 if dtype is None else dtype), requires_grad=True)


def grad_of(t):
    assert t.grad is not None, "expected a gradient"
    return t.grad.numpy()


# ---------------------------------------------------------------------- leaves and history
def test_requires_grad_and_is_leaf():
    x = gradc.tensor([1.0, 2.0], requires_grad=True)
    c = gradc.tensor([3.0, 4.0])
    assert x.requires_grad and x.is_leaf and x.grad_fn is None
    assert not c.requires_grad and c.is_leaf
    y = x * c
    assert y.requires_grad and not y.is_leaf and y.grad_fn is not None
    z = c * 2.0  # nothing requires grad: a plain leaf without history
    assert not z.requires_grad and z.is_leaf and z.grad_fn is None


def test_requires_grad_underscore():
    x = gradc.tensor([1.0, 2.0])
    assert x.requires_grad_() is x and x.requires_grad
    y = x * 2.0
    with pytest.raises(AutogradError, match="leaf"):
        y.requires_grad_(False)
    d = y.detach().requires_grad_()
    assert d.is_leaf and d.requires_grad


def test_grad_fn_records_history():
    x = leaf([1.0, 2.0])
    w = leaf([3.0, 4.0])
    m = x * w
    s = m.sum()
    assert s.grad_fn.name() == "SumBackward0"
    assert m.grad_fn.name() == "MulBackward0"
    assert s.grad_fn.next_functions[0][0] is m.grad_fn
    # leaves are reached directly, not through a node
    assert m.grad_fn.next_functions == ((None, 0), (None, 0))
    assert m.grad_fn.parents[0] is x and m.grad_fn.parents[1] is w
    assert "grad_fn=<MulBackward0>" in repr(m)


def test_backward_scalar_matches_hand_derivative():
    # f(x) = sum(x^3 + 2x) ; df/dx = 3x^2 + 2
    xv = np.array([-1.5, 0.0, 2.0])
    x = leaf(xv)
    (x * x * x + x * 2.0).sum().backward()
    np.testing.assert_allclose(grad_of(x), 3 * xv ** 2 + 2)


def test_backward_needs_gradient_for_non_scalar():
    x = leaf([1.0, 2.0, 3.0])
    y = x * 2.0
    with pytest.raises(AutogradError) as e:
        y.backward()
    msg = str(e.value)
    assert "scalar" in msg and "(3,)" in msg and "gradient" in msg
    # with an explicit gradient it is a vector-Jacobian product: dy/dx = 2, so grad = 2 * v
    y.backward(gradc.tensor([1.0, 10.0, 100.0], dtype=gradc.float64))
    np.testing.assert_allclose(grad_of(x), [2.0, 20.0, 200.0])


def test_backward_gradient_shape_is_checked():
    x = leaf([1.0, 2.0, 3.0])
    with pytest.raises(ShapeError, match=r"\(2,\).*\(3,\)"):
        (x * 2.0).backward(gradc.tensor([1.0, 1.0]))


def test_backward_on_tensor_without_history_is_an_error():
    with pytest.raises(AutogradError, match="requires_grad"):
        gradc.tensor([1.0, 2.0]).sum().backward()


def test_backward_of_a_leaf_itself():
    x = leaf([1.0, 2.0])
    x.backward(gradc.tensor([5.0, 6.0], dtype=gradc.float64))
    np.testing.assert_allclose(grad_of(x), [5.0, 6.0])


def test_gradients_accumulate_across_calls():
    xv = np.array([1.0, -2.0, 0.5])
    x = leaf(xv)
    (x * x).sum().backward()       # 2x
    (x * 3.0).sum().backward()     # + 3
    np.testing.assert_allclose(grad_of(x), 2 * xv + 3)
    x.grad = None
    (x * 3.0).sum().backward()
    np.testing.assert_allclose(grad_of(x), [3.0, 3.0, 3.0])


def test_gradient_of_a_reused_intermediate_is_complete():
    # z = x - log(sum(exp(x))) reaches x twice, once through a longer path. The node for the
    # short path must wait for the long one: dz_i/dx_j = delta_ij - softmax_j.
    xv = np.array([[1.0, 0.0, -1.0], [0.0, 1.0, 3.0]])
    gv = np.array([[0.0, 0.0, -0.5], [0.0, -0.5, 0.0]])
    x = leaf(xv)
    z = x - x.amax(1, keepdim=True).detach()
    out = z - z.exp().sum(1, keepdim=True).log()
    out.backward(gradc.tensor(gv))
    sm = np.exp(xv) / np.exp(xv).sum(1, keepdims=True)
    np.testing.assert_allclose(grad_of(x), gv - sm * gv.sum(1, keepdims=True), rtol=1e-10, atol=1e-12)


def test_diamond_graph_sums_both_paths():
    # a = 2x ; b = a*a ; c = a + b ; dc/dx = 2 + 2*a*2 = 2 + 8x
    xv = np.array([0.5, -1.0])
    x = leaf(xv)
    a = x * 2.0
    b = a * a
    c = (b + a).sum()
    c.backward()
    np.testing.assert_allclose(grad_of(x), 2 + 8 * xv)


def test_grads_of_different_leaves_do_not_alias():
    a, b = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    (a + b).sum().backward()  # add passes one gradient array to both operands
    with gradc.no_grad():
        a.grad.mul_(10.0)
    np.testing.assert_allclose(grad_of(a), [10.0, 10.0])
    np.testing.assert_allclose(grad_of(b), [1.0, 1.0])
    g = gradc.tensor([1.0, 1.0], dtype=gradc.float64)
    x = leaf([1.0, 2.0])
    (x * 1.0).backward(g)
    with gradc.no_grad():
        g.mul_(7.0)  # the caller's gradient tensor is not x.grad
    np.testing.assert_allclose(grad_of(x), [1.0, 1.0])


def test_second_backward_through_freed_graph_is_an_error():
    x = leaf([1.0, 2.0])
    y = (x * x).sum()
    y.backward()
    with pytest.raises(AutogradError) as e:
        y.backward()
    assert "second time" in str(e.value) and "retain_graph=True" in str(e.value)
    np.testing.assert_allclose(grad_of(x), [2.0, 4.0])  # the failed call added nothing


def test_retain_graph_allows_a_second_backward():
    xv = np.array([1.0, 2.0])
    x = leaf(xv)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(grad_of(x), 2 * (2 * xv))
    with pytest.raises(AutogradError):
        y.backward()  # the second call did not retain it


def test_backward_frees_saved_tensors():
    x = leaf(np.ones(4))
    h = x * 3.0
    y = h.log()  # log saves its input h
    ref = weakref.ref(h)
    del h
    gc.collect()
    assert ref() is not None  # kept alive by y's history
    y.sum().backward()
    gc.collect()
    assert ref() is None      # released once the graph is freed


def test_detach():
    x = leaf([1.0, 2.0])
    y = x * 2.0
    d = y.detach()
    assert not d.requires_grad and d.grad_fn is None and d.is_leaf
    np.testing.assert_array_equal(d.numpy(), [2.0, 4.0])
    with gradc.no_grad():
        d.add_(1.0)  # shares storage with y, as torch's detach does
    np.testing.assert_array_equal(y.detach().numpy(), [3.0, 5.0])
    # a detached branch contributes no gradient
    x.grad = None
    (x * y.detach()).sum().backward()
    np.testing.assert_allclose(grad_of(x), [3.0, 5.0])


# ---------------------------------------------------------------------- grad modes
def test_no_grad_records_nothing():
    x = leaf([1.0, 2.0])
    with gradc.no_grad():
        assert not gradc.is_grad_enabled()
        y = x * 2.0
    assert gradc.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None and y.is_leaf
    with pytest.raises(AutogradError):
        y.sum().backward()


def test_enable_grad_inside_no_grad_and_restore_after_exception():
    x = leaf([1.0])
    with gradc.no_grad():
        with gradc.enable_grad():
            assert gradc.is_grad_enabled()
            assert (x * 2.0).requires_grad
        assert not gradc.is_grad_enabled()
    with pytest.raises(ZeroDivisionError):
        with gradc.no_grad():
            1 / 0
    assert gradc.is_grad_enabled()


def test_set_grad_enabled_function_context_and_decorator():
    x = leaf([1.0])
    try:
        gradc.set_grad_enabled(False)  # a plain call switches the mode, as in torch
        assert not gradc.is_grad_enabled()
    finally:
        gradc.set_grad_enabled(True)
    with gradc.set_grad_enabled(False):
        assert not (x * 2.0).requires_grad
    assert gradc.is_grad_enabled()

    @gradc.set_grad_enabled(False)
    def f(t):
        return t * 2.0

    assert gradc.is_grad_enabled()  # decorating does not switch the mode
    assert not f(x).requires_grad
    assert gradc.is_grad_enabled()


def test_grad_mode_decorators():
    x = leaf([1.0])

    @gradc.no_grad()
    def f(t):
        assert not gradc.is_grad_enabled()
        return t * 2.0

    @gradc.no_grad
    def g(t):
        return t * 2.0

    @gradc.enable_grad()
    def h(t):
        return t * 2.0

    assert f.__name__ == "f"
    assert not f(x).requires_grad and not g(x).requires_grad
    assert gradc.is_grad_enabled()
    with gradc.no_grad():
        assert h(x).requires_grad
        assert not gradc.is_grad_enabled()


def test_grad_mode_is_per_thread():
    seen = []
    with gradc.no_grad():
        t = threading.Thread(target=lambda: seen.append(gradc.is_grad_enabled()))
        t.start()
        t.join()
    assert seen == [True]


def test_no_grad_keeps_no_intermediates_alive_weakref():
    x = leaf(np.ones(8))
    refs = {}
    for mode in ("grad", "no_grad"):
        ctx = gradc.enable_grad() if mode == "grad" else gradc.no_grad()
        with ctx:
            h = x * 3.0
            out = h.log()  # log's VJP needs h
        refs[mode] = weakref.ref(h)
        del h
        gc.collect()
        if mode == "grad":
            assert refs[mode]() is not None
        else:
            assert refs[mode]() is None
        del out


def test_no_grad_keeps_no_intermediates_alive_tracemalloc():
    n = 250_000  # 2 MB per float64 intermediate
    x = gradc.tensor(np.linspace(0.5, 1.0, n), requires_grad=True)

    def chain(t):
        for _ in range(10):
            t = (t * 1.01).exp().log()  # exp saves its output, log its input
        return t

    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        with gradc.no_grad():
            y = chain(x)
        held_no_grad = tracemalloc.get_traced_memory()[0] - base
        del y
        gc.collect()
        base = tracemalloc.get_traced_memory()[0]
        y = chain(x)
        held_grad = tracemalloc.get_traced_memory()[0] - base
        del y
    finally:
        tracemalloc.stop()
    one = n * 8
    assert held_no_grad < 2 * one          # only the result survives
    # The recorded history keeps ~1 array per step: exp's output (which log saves as its input).
    # t * 1.01 saves nothing: a product keeps an operand only when the other one needs a gradient.
    assert held_grad > 9 * one


# ---------------------------------------------------------------------- broadcasting
def test_gradients_reduce_over_broadcast_dims():
    rng = np.random.default_rng(0)
    av, bv, cv = rng.standard_normal((3, 1)), rng.standard_normal((1, 4)), rng.standard_normal((2, 3, 4))
    a, b, c = leaf(av), leaf(bv), leaf(cv)
    s = leaf(2.0)  # 0-d
    v = leaf(rng.standard_normal(4))
    out = ((a + b) * c * s + v).sum()
    out.backward()
    # d/da = sum over the broadcast dims of c*s ; d/db likewise ; d/ds = sum((a+b)*c)
    np.testing.assert_allclose(grad_of(a), (cv * 2.0).sum(axis=(0, 2)).reshape(3, 1))
    np.testing.assert_allclose(grad_of(b), (cv * 2.0).sum(axis=(0, 1)).reshape(1, 4))
    np.testing.assert_allclose(grad_of(c), np.broadcast_to((av + bv) * 2.0, (2, 3, 4)))
    np.testing.assert_allclose(grad_of(s), ((av + bv) * cv).sum())
    np.testing.assert_allclose(grad_of(v), np.full(4, 6.0))
    assert a.grad.shape == (3, 1) and b.grad.shape == (1, 4) and s.grad.shape == () and v.grad.shape == (4,)


def test_gradient_dtype_follows_the_leaf():
    x = gradc.tensor([1.0, 2.0], dtype=gradc.float32, requires_grad=True)
    (x.double() * 3.0).sum().backward()
    assert x.grad.dtype is gradc.float32
    np.testing.assert_allclose(grad_of(x), [3.0, 3.0])


# ---------------------------------------------------------------------- integer and bool tensors
@pytest.mark.parametrize("dtype", [gradc.int64, gradc.bool])
def test_integer_and_bool_tensors_cannot_require_grad(dtype):
    with pytest.raises(DTypeError, match="floating"):
        gradc.tensor([1, 0], dtype=dtype, requires_grad=True)
    with pytest.raises(DTypeError, match="floating"):
        gradc.zeros(2, dtype=dtype, requires_grad=True)
    with pytest.raises(DTypeError, match="floating"):
        gradc.tensor([1, 0], dtype=dtype).requires_grad_()


def test_ops_on_integer_and_bool_tensors_have_no_grad_fn():
    i = gradc.arange(4)
    assert (i * 2 + 1).grad_fn is None and not (i * 2).requires_grad
    x = leaf([0.5, -1.0, 2.0, 3.0])
    for out in (x > 0, (x > 0).sum(), x.argmax(), x.long(), (x > 0) & (x < 3)):
        assert out.grad_fn is None and not out.requires_grad, out
    # mixing an integer tensor with a float tensor that requires grad promotes to float and records
    y = (i + x).sum()
    assert y.grad_fn is not None
    y.backward()
    np.testing.assert_allclose(grad_of(x), np.ones(4))


# ---------------------------------------------------------------------- in-place ops
def test_in_place_values_and_versions():
    t = gradc.tensor([1.0, 2.0, 4.0])
    assert t._version[0] == 0
    steps = [
        (lambda: t.add_(gradc.tensor([1.0, 1.0, 1.0])), [2.0, 3.0, 5.0]),
        (lambda: t.add_(gradc.tensor([1.0, 1.0, 1.0]), alpha=2), [4.0, 5.0, 7.0]),
        (lambda: t.sub_(1.0), [3.0, 4.0, 6.0]),
        (lambda: t.mul_(2.0), [6.0, 8.0, 12.0]),
        (lambda: t.div_(gradc.tensor([2.0, 4.0, 3.0])), [3.0, 2.0, 4.0]),
        (lambda: t.fill_(7.0), [7.0, 7.0, 7.0]),
        (lambda: t.copy_(gradc.tensor([9.0, 8.0, 7.0])), [9.0, 8.0, 7.0]),
        (lambda: t.zero_(), [0.0, 0.0, 0.0]),
    ]
    for version, (op, expected) in enumerate(steps, start=1):
        assert op() is t
        np.testing.assert_array_equal(t.numpy(), expected)
        assert t._version[0] == version


def test_in_place_dtype_and_shape_checks():
    i = gradc.tensor([1, 2])
    with pytest.raises(DTypeError, match="float32.*int64|int64"):
        i.add_(0.5)
    with pytest.raises(ShapeError, match=r"\(2, 2\).*\(2,\)"):
        gradc.zeros(2).add_(gradc.zeros(2, 2))


def _saved_mul(x):
    a = x * 1.0
    return a, a * a  # mul saves both operands


@pytest.mark.parametrize("op", ["add_", "mul_", "sub_", "div_", "zero_", "copy_", "fill_"])
def test_modifying_a_saved_tensor_fails_at_backward(op):
    x = leaf([1.0, 2.0])
    a, c = _saved_mul(x)
    args = {"add_": (1.0,), "mul_": (2.0,), "sub_": (1.0,), "div_": (2.0,), "zero_": (),
            "copy_": (gradc.tensor([5.0, 6.0], dtype=gradc.float64),), "fill_": (3.0,)}[op]
    getattr(a, op)(*args)  # the in-place call itself is allowed
    with pytest.raises(AutogradError) as e:
        c.sum().backward()
    msg = str(e.value)
    assert "modified by an in-place operation" in msg
    assert "mul" in msg and "version 1" in msg and "expected version 0" in msg


def test_modified_output_saved_by_exp_is_detected():
    x = leaf([1.0, 2.0])
    y = x.exp()       # exp's VJP reads its output
    y.mul_(2.0)
    y.add_(1.0)
    with pytest.raises(AutogradError, match=r"output of exp.*version 2, expected version 0"):
        y.sum().backward()


@pytest.mark.parametrize("op", ["add_", "mul_", "sub_", "div_", "zero_", "copy_", "fill_"])
def test_modifying_a_tensor_that_was_not_saved_is_fine(op):
    xv = np.array([1.0, 2.0])
    x = leaf(xv)
    a = x * 2.0
    c = a + 1.0  # add saves nothing
    args = {"add_": (1.0,), "mul_": (2.0,), "sub_": (1.0,), "div_": (2.0,), "zero_": (),
            "copy_": (gradc.tensor([5.0, 6.0], dtype=gradc.float64),), "fill_": (3.0,)}[op]
    getattr(a, op)(*args)
    c.sum().backward()
    np.testing.assert_allclose(grad_of(x), [2.0, 2.0])  # d(2x + 1)/dx, from the history before the change


def test_in_place_result_carries_gradient():
    # a = 2x ; a.mul_(w) ; a.add_(x) => a = 2xw + x ; da/dx = 2w + 1 ; da/dw = 2x
    xv, wv = np.array([1.0, -2.0]), np.array([3.0, 0.5])
    x, w = leaf(xv), leaf(wv)
    a = x * 2.0
    a.mul_(w).add_(x)
    assert a.grad_fn is not None
    a.sum().backward()
    np.testing.assert_allclose(grad_of(x), 2 * wv + 1)
    np.testing.assert_allclose(grad_of(w), 2 * xv)


def test_overwriting_a_non_leaf_cuts_its_history():
    # a = 2x is overwritten by a constant, so it no longer depends on x: d(a + 3x)/dx = 3
    x = leaf([1.0, 2.0])
    a = x * 2.0
    a.zero_()
    (a + x * 3.0).sum().backward()
    np.testing.assert_allclose(grad_of(x), [3.0, 3.0])


@pytest.mark.parametrize("op", ["add_", "mul_", "sub_", "div_", "zero_", "copy_", "fill_"])
def test_in_place_on_a_leaf_requiring_grad_raises(op):
    x = leaf([1.0, 2.0])
    args = {"add_": (1.0,), "mul_": (2.0,), "sub_": (1.0,), "div_": (2.0,), "zero_": (),
            "copy_": (gradc.tensor([5.0, 6.0], dtype=gradc.float64),), "fill_": (3.0,)}[op]
    with pytest.raises(AutogradError, match="leaf tensor that requires grad.*no_grad"):
        getattr(x, op)(*args)
    np.testing.assert_array_equal(x.detach().numpy(), [1.0, 2.0])  # nothing written
    with gradc.no_grad():
        getattr(x, op)(*args)  # allowed for parameter updates
    assert x.is_leaf and x.requires_grad and x._version[0] == 1


def test_views_share_the_version_counter_and_storage():
    x = leaf(np.arange(6.0))
    b = x * 1.0
    views = [b.reshape(2, 3), b[1:4], b.reshape(3, 2).t(), b.detach()]
    for v in views:
        assert v._version is b._version
    with gradc.no_grad():
        views[1].add_(10.0)  # writes through to the base
    assert b._version[0] == 1 and all(v._version[0] == 1 for v in views)
    np.testing.assert_array_equal(b.detach().numpy(), [0.0, 11.0, 12.0, 13.0, 4.0, 5.0])
    c = b.clone()
    assert c._version is not b._version


def test_modifying_a_view_of_a_saved_tensor_fails_at_backward():
    x = leaf([1.0, 2.0, 3.0])
    b = x * 1.0
    c = b * b  # saves b
    with gradc.no_grad():
        b[0:2].mul_(2.0)
    with pytest.raises(AutogradError, match="mul.*version 1, expected version 0"):
        c.sum().backward()
    x2 = leaf([1.0, 2.0, 3.0])
    b2 = x2 * 1.0
    v = b2.reshape(3, 1)
    c2 = v * v  # saves the view
    with gradc.no_grad():
        b2.add_(1.0)  # changing the base changes the view
    with pytest.raises(AutogradError, match="modified by an in-place operation"):
        c2.sum().backward()


def test_in_place_on_a_view_writes_through_to_its_base_with_history():
    # as PyTorch: the base takes the write and its history; hand-computed d/dx sum((2x)[0:2] * 3, (2x)[2])
    x = leaf([1.0, 2.0, 3.0])
    b = x * 2.0
    b[0:2].mul_(3.0)
    assert b.tolist() == [6.0, 12.0, 6.0]
    b.sum().backward()
    np.testing.assert_allclose(grad_of(x), [6.0, 6.0, 2.0])
    with pytest.raises(AutogradError, match="leaf"):   # a view of a leaf that requires grad: refused
        x[0:1].zero_()
    x.grad = None
    # a clone is its own storage and may be written
    c = (x * 2.0)[0:2].clone()
    c.add_(1.0)
    c.sum().backward()
    np.testing.assert_allclose(grad_of(x), [2.0, 2.0, 0.0])


def test_all_autograd_errors_are_gradc_errors():
    assert issubclass(AutogradError, GradcError) and issubclass(AutogradError, RuntimeError)
