"""Recompile reasons a person can read: the argument by its Python name and the part that changed."""
import warnings

import numpy as np

import gradc
from gradc import nn

GAIN = 1.0


def _x(*shape):
    return gradc.tensor(np.random.default_rng(0).standard_normal(shape).astype(np.float32))


def test_changed_shape_names_the_argument_and_dimension():
    cf = gradc.compile(lambda x, w: x @ w)
    cf(_x(8, 8), _x(8, 4))
    cf(_x(32, 8), _x(8, 4))
    assert cf.recompile_reasons == ["x.shape[0]: 8 -> 32; from now on dynamic: x.shape[0]"]
    cf(_x(32, 8).double(), _x(8, 4).double())
    assert cf.recompile_reasons[-1] == "x.dtype: float32 -> float64; w.dtype: float32 -> float64"


def test_changed_python_argument():
    def f(x, mode="sum", scale=2):
        return (x * scale).sum() if mode == "sum" else (x * scale).mean()
    cf = gradc.compile(f)
    x = _x(3)
    cf(x, "sum", 2)
    cf(x, "mean", 2)
    assert cf.recompile_reasons == ["mode: 'sum' -> 'mean'"]
    cf(x, "mean", scale=3)
    assert cf.recompile_reasons[-1].startswith("scale")


def gained(x):
    return x * GAIN


def test_changed_global():
    global GAIN
    cf = gradc.compile(gained)
    cf(_x(3))
    GAIN = 0.25
    try:
        cf(_x(3))
    finally:
        GAIN = 1.0
    assert cf.recompile_reasons == ["global GAIN: 1.0 -> 0.25"]


model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.1))


def forward(x):
    return model(x)


def test_train_eval_switch():
    cf = gradc.compile(forward)
    x = _x(2, 4)
    cf(x)
    model.eval()
    try:
        cf(x)
    finally:
        model.train()
    assert cf.recompile_reasons == ["model.training: True -> False"]


def test_cache_limit_warning_lists_the_last_reasons():
    cf = gradc.compile(lambda x: x + 1.0, cache_limit=3, dynamic=False)   # (each size traces)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        for n in range(2, 7):
            cf(_x(n))
    msg = str(next(m.message for m in w if "the limit" in str(m.message)))
    assert "x.shape[0]: 2 -> 3" in msg and "x.shape[0]: 4 -> 5" in msg and "cache_limit=3" in msg
