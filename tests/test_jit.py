"""gradc.jit: TorchScript's names run the Python they are handed (script) or compile it (trace)."""
import warnings

import numpy as np
import pytest

import gradc
from gradc import nn


def test_script_gives_back_what_it_is_handed_and_the_decorators_mark_nothing():
    m = nn.Linear(3, 2)
    assert gradc.jit.script(m) is m
    assert not gradc.jit.is_scripting() and not gradc.jit.is_tracing()

    @gradc.jit.ignore
    def a():
        return 1

    @gradc.jit.ignore(drop=True)
    def b():
        return 2
    assert (a(), b(), gradc.jit.unused(a)(), gradc.jit.export(b)()) == (1, 2, 1, 2)
    assert gradc.jit.annotate(list, [3]) == [3]


def test_trace_compiles_and_follows_later_calls_control_flow():
    def f(x):
        return x * 2 if x.shape[0] > 2 else x - 1
    x = gradc.randn(4, 3)
    traced = gradc.jit.trace(f, (x,))
    assert isinstance(traced, gradc.CompiledFunction)
    small = gradc.randn(2, 3)
    np.testing.assert_allclose(traced(small).numpy(), small.numpy() - 1)   # not the example's branch
    np.testing.assert_allclose(traced(x).numpy(), x.numpy() * 2)


def test_trace_of_a_module_is_a_module_and_its_check_replays_random_draws():
    gradc.manual_seed(0)
    m = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.5), nn.ReLU())
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # dropout's draws are the same in the compiled and eager runs
        traced = gradc.jit.trace(m, gradc.randn(2, 3), check_inputs=[(gradc.randn(5, 3),)])
    assert isinstance(traced, nn.Module) and traced.training
    traced.eval()
    x = gradc.randn(6, 3)
    np.testing.assert_allclose(traced(x).detach().numpy(), m(x).detach().numpy(), rtol=1e-6)


def test_trace_takes_keyword_example_inputs():
    traced = gradc.jit.trace(lambda x, scale: x.sum(0) * scale, example_kwarg_inputs={"x": gradc.ones(2, 3), "scale": 2.0})
    assert traced(gradc.ones(2, 3), 3.0).tolist() == [6.0, 6.0, 6.0]


def test_trace_warns_when_the_compiled_and_eager_results_differ():
    calls = []

    def f(x):   # a Python side effect runs once, while tracing: eager calls see a new count
        calls.append(1)
        return x * len(calls)
    with pytest.warns(UserWarning, match="output 0 of the traced function does not match"):
        gradc.jit.trace(f, gradc.ones(2))
