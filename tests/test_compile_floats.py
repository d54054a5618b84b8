"""Python float arguments of a compiled function are program inputs (gradc.traced_float): a changing
learning rate or loss weight does not trace again, results and dtypes are those of eager with a
Python float, and a float that Python code uses as a number is baked in (and traced again per
value) instead."""
import math

import numpy as np
import pytest

import gradc
from gradc import nn, optim
import gradc.nn.functional as F

DTYPES = [gradc.float16, gradc.float32, gradc.float64, gradc.int64, gradc.bool]


def _same(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
def test_promotion_and_values_match_eager_with_a_python_float(dtype):
    gradc.manual_seed(0)
    t = (gradc.randn(2, 3) * 3).to(dtype)
    s = (gradc.randn(()) * 3).to(dtype)   # a 0-d tensor beside a weak scalar too

    def fn(t, s, w):
        outs = [t * w, w * t, t + w, t / w, s * w, t < w, gradc.maximum(t.float(), w * 1.0)]
        if dtype is not gradc.bool:   # (torch refuses subtraction with bools)
            outs += [t - w, w - t, w / t]
        return outs
    step = gradc.compile(fn, backend="numpy")
    with np.errstate(divide="ignore", invalid="ignore"):
        for w in (0.1, 3.3, -2.0, 1e-3):
            for a, b in zip(fn(t, s, w), step(t, s, w)):
                _same(a, b)
    assert step.trace_count == 1


def test_python_arithmetic_on_floats_stays_one_program():
    x = gradc.randn(4, 3)

    def blend(x, alpha, beta):
        return (1.0 - alpha) * x + alpha * x.sum() - (-beta) * 2 + abs(beta) * x / 4 + (alpha + beta) * x

    step = gradc.compile(blend, backend="numpy")
    for alpha, beta in ((0.25, 0.5), (0.75, -1.5), (0.1, 3.0)):
        np.testing.assert_allclose(step(x, alpha, beta).numpy(), blend(x, alpha, beta).numpy(), rtol=1e-6)
    assert step.trace_count == 1


def test_a_loss_weight_in_a_training_step_never_retraces():
    gradc.manual_seed(0)
    models = [nn.Linear(3, 2) for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    opts = [optim.SGD(m.parameters(), lr=0.1, momentum=0.9) for m in models]
    x, y = gradc.randn(8, 3), gradc.randn(8, 2)

    def make(model, opt):
        def step(x, y, weight):
            opt.zero_grad()
            out = model(x)
            loss = F.mse_loss(out, y) + weight * F.l1_loss(out, y)
            loss.backward()
            opt.step()
            return loss
        return step
    eager, compiled = make(models[0], opts[0]), gradc.compile(make(models[1], opts[1]), backend="numpy")
    for i in range(6):
        weight = 0.5 * math.cos(i / 3)
        np.testing.assert_allclose(compiled(x, y, weight).item(), eager(x, y, weight).item(), rtol=1e-5)
    np.testing.assert_allclose(models[1].weight.detach().numpy(), models[0].weight.detach().numpy(), rtol=1e-5)
    assert compiled.trace_count <= 2   # the first step creates the momentum buffers


def test_a_float_used_in_python_control_flow_is_baked_in_per_value():
    x = gradc.randn(3)

    def clipped(x, limit):
        if limit > 1.0:
            return x * 2
        return x * math.cos(limit)

    step = gradc.compile(clipped, backend="numpy")
    for limit in (0.5, 2.0, 0.5, 0.25):
        np.testing.assert_allclose(step(x, limit).numpy(), clipped(x, limit).numpy(), rtol=1e-6)
    assert step.trace_count == 3   # one program per value seen
    assert "limit: 0.5 -> 2.0" in step.recompile_reasons[0]


def test_a_returned_float_comes_back_as_the_number():
    def fn(x, w):
        return x * w, w
    step = gradc.compile(fn, backend="numpy")
    out, w = step(gradc.ones(2), 0.5)
    assert type(w) is float and w == 0.5
    np.testing.assert_array_equal(out.numpy(), [0.5, 0.5])


def test_ints_and_bools_stay_specialised():
    x = gradc.randn(4)

    def fn(x, n, flag):
        return x.sum() * n if flag else x * n

    step = gradc.compile(fn, backend="numpy")
    for n, flag in ((2, False), (3, False), (3, True)):
        np.testing.assert_allclose(step(x, n, flag).numpy(), fn(x, n, flag).numpy(), rtol=1e-6)
    assert step.trace_count == 3


def test_lower_bakes_the_value_in():
    step = gradc.compile(lambda x, w: x * w, backend="numpy")
    prog = step.lower(gradc.ones(2), 0.5)
    assert all(prog.ir.node(n)["dtype"] != "float64" for n in prog.ir.inputs)
    np.testing.assert_array_equal(prog(gradc.ones(2), 0.5).numpy(), [0.5, 0.5])


def test_a_swallowed_python_use_still_bakes_the_value_in():
    def fn(x, w):
        try:
            scale = 2.0 if w > 1.0 else 1.0
        except BaseException:   # a bare except around Python work on the value
            scale = 1.0
        return x * scale

    step = gradc.compile(fn, backend="numpy")
    for w in (0.5, 2.0):
        np.testing.assert_array_equal(step(gradc.ones(2), w).numpy(), fn(gradc.ones(2), w).numpy())


def test_a_float_before_the_tensors_is_made_on_their_device():
    """A float argument's 0-d input goes where the program's tensors are, even when it comes first."""
    from gradc.runtime.wiring import Binding, resolve

    class Elsewhere:   # a device other than the CPU (the arrays stay NumPy: only the device is checked)
        xp = np
    x = gradc.ones(3)
    x.device = Elsewhere   # an instance attribute standing in for a tensor on that device
    t = resolve([Binding("number", 0), Binding("arg", 1)], [0.5, x])
    assert t[1] is x and t[0].device is Elsewhere and float(t[0]._data) == 0.5
