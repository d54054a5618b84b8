"""torch.set_default_dtype: new float tensors, creation functions and parameters follow it, a
compiled function retraces (saying why) when it changes, and small integer dtypes are named with
an error that says what to use."""
import numpy as np
import pytest

import gradc


@pytest.fixture
def float64_default():
    gradc.set_default_dtype(gradc.float64)
    yield
    gradc.set_default_dtype(gradc.float32)


def test_new_float_tensors_follow_the_default(float64_default):
    assert gradc.get_default_dtype() is gradc.float64
    assert gradc.tensor(0.1).dtype is gradc.float64 and gradc.tensor([1, 2]).dtype is gradc.int64
    assert gradc.randn(2).dtype is gradc.float64 and gradc.zeros(2).dtype is gradc.float64
    assert gradc.nn.Linear(2, 3).weight.dtype is gradc.float64
    assert (gradc.arange(3) / 2).dtype is gradc.float64


def test_a_compiled_function_retraces_when_the_default_changes():
    f = gradc.compile(lambda x: x + gradc.tensor(0.1))
    x = gradc.ones(2, dtype=gradc.float64)
    assert f(x).numpy()[0] == np.float64(1) + np.float64(np.float32(0.1))
    try:
        gradc.set_default_dtype(gradc.float64)
        assert f(x).numpy()[0] == 1.1
    finally:
        gradc.set_default_dtype(gradc.float32)
    assert f.trace_count == 2 and "default dtype: float32 -> float64" in f.recompile_reasons[-1]


def test_bad_defaults_and_small_integer_types_say_what_to_use():
    with pytest.raises(gradc.DTypeError, match="float32 or float64"):
        gradc.set_default_dtype(gradc.int64)
    for dt in (gradc.uint8, gradc.int8, gradc.int16):
        with pytest.raises(gradc.DTypeError, match="int64"):
            gradc.ones(2).to(dt)
