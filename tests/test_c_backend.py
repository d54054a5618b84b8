"""The C backend: every op-database row compiled with backend="c" equals eager (values and
gradients), random graphs through C at tiny blocks with 1 and 2 threads (reductions bit-identical
across thread counts), NaN, inf and -0.0 through every elementwise op and reduction, a missing
compiler named in the error, and a tampered cached shared object rebuilt, never loaded."""
import gc
import shutil

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

import gradc
from gradc.runtime import cache, native
from gradc.testing import assert_close

import test_compile_hypothesis as H
from opdb import case_id, cases

pytestmark = pytest.mark.skipif(not native.available(), reason=f"backend c: {native.c_status()}")
DTYPE = "float32"


@pytest.fixture(autouse=True, scope="module")
def _cache_dir(tmp_path_factory):
    gc.collect()
    gc.freeze()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRADC_CACHE_DIR", str(tmp_path_factory.mktemp("gradc_cache")))
        yield
    gc.unfreeze()


def _tuple(x):
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def _traceable(c):
    key = c[2].kwargs.get("key")
    keys = key if isinstance(key, tuple) else (key,)
    return not any(isinstance(k, np.ndarray) and k.dtype == np.bool_ for k in keys)


ALL = [c for c in cases(dtypes=(DTYPE,)) if _traceable(c)]


@pytest.mark.parametrize("case", ALL, ids=case_id)
def test_op_database_through_c(case):
    row, _, sample, dtype = case
    fn = lambda *xs: row.fn(*xs, **sample.kwargs)   # noqa: E731
    rtol, atol = row.tolerance(DTYPE)
    eager = _tuple(fn(*sample.tensors(dtype)))
    got = _tuple(gradc.compile(fn, backend="c", fullgraph=True)(*sample.tensors(dtype)))
    assert len(got) == len(eager)
    for g, e in zip(got, eager):
        assert g.dtype is e.dtype and g.shape == e.shape
        assert_close(g, e, rtol=rtol, atol=atol, msg=row.name)
    diff = row.diff_args(sample)
    if not diff:
        return
    rng = np.random.default_rng(5)
    ws = [gradc.tensor(rng.uniform(-1, 1, o.shape).astype(o.dtype.np)) if o.dtype.is_floating_point else None
          for o in eager]

    def step(*xs):
        outs = _tuple(row.fn(*xs, **sample.kwargs))
        loss = None
        for o, w in zip(outs, ws):
            if w is not None and o.requires_grad:
                loss = (o * w).sum() if loss is None else loss + (o * w).sum()
        if loss is not None:
            loss.backward()
        return [xs[i].grad for i in diff]

    xs = sample.tensors(dtype, requires_grad=diff)
    want = step(*xs)
    got = gradc.compile(step, backend="c", fullgraph=True)(*sample.tensors(dtype, requires_grad=diff))
    for k, (g, w) in enumerate(zip(got, want)):
        if w is None:
            continue
        assert_close(g, w, rtol=rtol, atol=atol, msg=f"{row.name} grad {k}")


def test_fused_groups_become_c_kernels():
    x = gradc.randn(64, 256)
    w = gradc.randn(256)
    f = lambda x, w: gradc.nn.functional.layer_norm(gradc.nn.functional.gelu(x * w) + x, (256,)).sum(0)  # noqa
    prog = gradc.compile(f, backend="c").lower(x, w)
    assert prog.stats["c_kernels"] and not prog.stats["numpy_groups"], prog.stats
    k = next(iter(prog.stats["c_kernels"].values()))
    assert k["bytes_read"] >= x.numel() * 4 and k["bytes_written"] >= 256 * 4
    assert "test_c_backend.py" in prog.source["program.c"]   # kernels say which model line they run
    assert_close(prog(x, w), f(x, w), rtol=1e-4, atol=1e-4)


ELEMENTWISE = {
    "neg": lambda x: -x, "exp": gradc.exp, "log": gradc.log, "sqrt": gradc.sqrt, "tanh": gradc.tanh,
    "sigmoid": gradc.sigmoid, "abs": gradc.abs, "sign": gradc.sign, "sin": gradc.sin, "cos": gradc.cos,
    "floor": gradc.floor, "ceil": gradc.ceil, "round": gradc.round, "trunc": gradc.trunc, "erf": gradc.erf,
    "add": lambda x: x + x.flip(0), "sub": lambda x: x - x.flip(0), "mul": lambda x: x * x.flip(0),
    "div": lambda x: x / x.flip(0), "pow": lambda x: x ** x.flip(0),
    "maximum": lambda x: gradc.maximum(x, x.flip(0)), "minimum": lambda x: gradc.minimum(x, x.flip(0)),
    "lt": lambda x: x < x.flip(0), "eq": lambda x: x == x.flip(0), "ne": lambda x: x != x.flip(0),
    "where": lambda x: gradc.where(x > 0, x, -x), "cast": lambda x: (x > 0).float() * x,
    "sum": lambda x: x.sum(1), "amax": lambda x: x.amax(1), "sum0": lambda x: x.sum(0), "amax0": lambda x: x.amax(0),
    "total": lambda x: x.sum(), "total_max": lambda x: x.amax(),
}
SPECIALS = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, 1.5, -2.5, 0.5, -0.5, 3.0, 1e-30, -7.0],
                    dtype=np.float32)


@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_nan_inf_and_signed_zero_match_eager(name):
    fn = ELEMENTWISE[name]
    x = np.stack([SPECIALS, np.roll(SPECIALS, 3), -SPECIALS, np.roll(SPECIALS, 5)] * 4)  # (16, 12)
    with np.errstate(all="ignore"):
        want = fn(gradc.tensor(x)).numpy()
        # an exp first so the op runs inside a fused C group with a producer
        got = gradc.compile(lambda t: fn(t * 1.0), backend="c")(gradc.tensor(x)).numpy()
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=name)
    fin = np.isfinite(want)
    np.testing.assert_array_equal(got[~fin & ~np.isnan(want)], want[~fin & ~np.isnan(want)], err_msg=name)
    np.testing.assert_allclose(got[fin], want[fin], rtol=2e-6, atol=1e-30, err_msg=name)
    zeros = fin & (want == 0)
    np.testing.assert_array_equal(np.signbit(got[zeros]), np.signbit(want[zeros]), err_msg=f"{name}: signed zero")


_HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture]


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=_HEALTH)
@given(prog=H.programs())
def test_random_programs_through_c_one_and_two_threads(monkeypatch, prog):
    monkeypatch.setenv("GRADC_BLOCK_BYTES", "64")
    dtype, shapes, steps, outputs, seed = prog
    rtol, atol = H.TOL[dtype]
    eager = H.run_program(steps, outputs, H._inputs(shapes, dtype, seed, False))
    fn = gradc.compile(lambda *xs: H.run_program(steps, outputs, xs), backend="c", fullgraph=True)
    runs = []
    for threads in (1, 2):
        gradc.set_num_threads(threads)
        try:
            runs.append([o.numpy().copy() for o in fn(*H._inputs(shapes, dtype, seed, False))])
        finally:
            gradc.set_num_threads(native.get_num_threads())
    for k, (a, b, e) in enumerate(zip(*runs, eager)):
        np.testing.assert_array_equal(a, b, err_msg=f"output {k}: 1 vs 2 threads")
        assert_close(gradc.tensor(a), e, rtol=rtol, atol=atol, msg=f"output {k} of {steps}")


def test_reductions_bit_identical_across_thread_counts():
    x = gradc.tensor(np.random.default_rng(0).standard_normal((3000, 37)).astype(np.float32))
    fn = gradc.compile(lambda x: ((x * 1.1).tanh().sum(0), (x * 0.3).exp().sum(), x.amax(0)), backend="c")
    outs = []
    for threads in (1, 2, 3):
        gradc.set_num_threads(threads)
        outs.append([o.numpy().copy() for o in fn(x)])
    gradc.set_num_threads(2)
    for o in outs[1:]:
        for a, b in zip(outs[0], o):
            np.testing.assert_array_equal(a, b)
    assert_close(gradc.tensor(outs[0][0]), (x * 1.1).tanh().sum(0), rtol=1e-5, atol=1e-4)


def test_set_num_threads_is_checked():
    with pytest.raises(gradc.GradcError, match="positive integer"):
        gradc.set_num_threads(0)


def test_missing_compiler_is_named(monkeypatch):
    monkeypatch.setenv("CC", "/nonexistent/gradc-test-cc")
    native.reset()
    try:
        assert "gradc-test-cc" in native.c_status()
        x = gradc.randn(8, 8)
        with pytest.raises(gradc.GradcError, match="gradc-test-cc"):
            gradc.compile(lambda x: x.exp() * 2.0, backend="c")(x)
        monkeypatch.setenv("GRADC_BACKEND", "numpy")
        assert_close(gradc.compile(lambda x: x.exp() * 2.0)(x), x.exp() * 2.0)
    finally:
        monkeypatch.delenv("CC")
        native.reset()


def test_tampered_program_library_is_rebuilt(monkeypatch, tmp_path):
    monkeypatch.setenv("GRADC_CACHE_DIR", str(tmp_path))
    x = gradc.randn(32, 16)
    f = lambda x: (x * 3.0).tanh().sum(1)   # noqa: E731
    assert_close(gradc.compile(f, backend="c")(x), f(x), rtol=1e-5, atol=1e-6)
    sos = list((tmp_path / "c").rglob("*.so"))
    assert sos
    for so in sos:
        so.write_bytes(b"\x7fELF planted")
    monkeypatch.setattr(cache, "_libs", {})
    assert_close(gradc.compile(f, backend="c")(x), f(x), rtol=1e-5, atol=1e-6)
    assert all(so.read_bytes() != b"\x7fELF planted" for so in sos)


@pytest.mark.skipif(shutil.which("cc") is None, reason="no cc")
def test_gradc_info_names_the_compiler():
    assert "flags" in native.c_status() and "-O3" in native.c_status()


def test_every_primitive_has_a_c_lowering_or_the_host_fallback():
    from gradc.codegen import c_backend, numpy_backend
    from gradc.kernels import C_OPS
    from gradc.ops import OPS
    for name, prim in OPS.items():
        if prim.elementwise and name not in ("floor_divide", "remainder", "lgamma", "fmax", "fmin"):
            assert name in C_OPS and c_backend.lowering(name), name
        else:   # runs through NumPy in the C program's host module
            assert numpy_backend.lowering(name), name


def test_ziglang_compiler_builds_and_runs(monkeypatch, tmp_path):
    import importlib.util
    import sys
    if importlib.util.find_spec("ziglang") is None:
        pytest.skip("the optional ziglang package (pip install 'gradc[c]') is not installed")
    monkeypatch.setenv("CC", f"{sys.executable} -m ziglang cc")
    monkeypatch.setenv("GRADC_CACHE_DIR", str(tmp_path))
    native.reset()
    try:
        assert "ziglang" in native.c_status()
        x = gradc.randn(300, 200)
        f = lambda x: (x * 2.0).tanh().sum(1)   # noqa: E731
        assert_close(gradc.compile(f, backend="c")(x), f(x), rtol=1e-5, atol=1e-5)
    finally:
        monkeypatch.delenv("CC")
        native.reset()


def test_state_updated_in_place_through_a_strided_view():
    """The kernel writes a contiguous stand-in for a transposed state, copied back after the call."""
    def run(backend):
        base = gradc.tensor(np.arange(24, dtype=np.float32).reshape(6, 4))
        s = base.t()

        def step(x):
            s.mul_(x.exp() * 0.5 + 1.0)
            return (s * 2.0).sum()
        fn = gradc.compile(step, backend=backend) if backend else step
        x = gradc.ones(4, 6) * 0.1
        return [fn(x).item() for _ in range(3)], base.numpy().copy()
    (eager_out, eager_base), (c_out, c_base) = run(None), run("c")
    np.testing.assert_allclose(c_out, eager_out, rtol=1e-6)
    np.testing.assert_allclose(c_base, eager_base, rtol=1e-6)
