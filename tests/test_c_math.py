"""The C backend's own float exp (gradc_expf in templates/c/program.c.j2): its error against the
exact (float64) value over the whole float range that does not round to 0 or inf, and its special
values, through a compiled program."""
import numpy as np
import pytest

import gradc
from gradc.runtime import native

pytestmark = pytest.mark.skipif(not native.available(), reason=f"backend c: {native.c_status()}")


def _exp_c(values):
    prog = gradc.compile(lambda x: x.exp(), backend="c").lower(gradc.from_numpy(values))
    assert "gradc_expf(" in prog.source["program.c"]
    return prog(gradc.from_numpy(values)).numpy()


def _ulps(got, exact):
    """|got - exact| in units of the float32 spacing at exact (the subnormal spacing below it)."""
    spacing = np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64)
    return np.abs(got.astype(np.float64) - exact) / spacing


def test_exp_is_within_1_2_ulp_of_the_exact_value():
    x = np.concatenate([np.linspace(-104.5, 89.0, 1 << 20, dtype=np.float32),
                        np.random.default_rng(0).normal(0, 3, 1 << 16).astype(np.float32)])
    got, exact = _exp_c(x), np.exp(x.astype(np.float64))
    finite = exact < np.finfo(np.float32).max
    normal = finite & (exact >= np.finfo(np.float32).tiny)
    assert _ulps(got[normal], exact[normal]).max() <= 1.2
    # subnormal results are rounded once: within one subnormal step of the exact value
    tiny = finite & ~normal
    assert np.abs(got[tiny].astype(np.float64) - exact[tiny]).max() <= 2.0 ** -149
    assert np.isinf(got[~finite]).all()


def test_exp_special_values_are_exps():
    x = np.array([-np.inf, np.inf, np.nan, -np.nan, 0.0, -0.0, 88.72283, 88.7229, -87.33654, -103.97208,
                  -103.9721, -1e30, 1e30, 1e-30, -1e-30], dtype=np.float32)
    got = _exp_c(x)
    with np.errstate(over="ignore"):
        want = np.exp(x.astype(np.float64)).astype(np.float32)
    np.testing.assert_array_equal(got, want)


def test_masked_softmax_matches_eager():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 64, 64)).astype(np.float32)
    mask = np.triu(np.full((64, 64), -np.inf, dtype=np.float32), 1)

    def f(x, m):
        return (x + m).softmax(-1)
    args = gradc.from_numpy(x), gradc.from_numpy(mask)
    np.testing.assert_allclose(gradc.compile(f, backend="c")(*args).numpy(), f(*args).numpy(), rtol=1e-6, atol=1e-30)
