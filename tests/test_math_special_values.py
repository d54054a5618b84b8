"""NaN, inf and signed zero through the elementwise math functions, against PyTorch: each op on a
vector of special values (and, for binary ops, every pair of them), eagerly and compiled on the
numpy and c backends (one program holds every op, so the file compiles a handful of programs).
A zero must have PyTorch's sign, a NaN must be NaN, an infinity the same infinity; other values
agree within float rounding. Also: names that are aliases are the same function, dtype promotion
of integer inputs, and the errors PyTorch raises for the dtypes an op refuses."""
import math

import numpy as np
import pytest

import gradc

torch = pytest.importorskip("torch")

SPECIAL = [math.nan, math.inf, -math.inf, 0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 2.0, -3.0, 1e-30, 100.0, -2.5]
PAIR = [math.nan, math.inf, -math.inf, 0.0, -0.0, 1.0, -2.5]

UNARY = ("tan asin acos atan sinh cosh asinh acosh atanh erfc exp2 lgamma digamma erfinv sinc deg2rad rad2deg "
         "frac sgn logit signbit negative absolute fix").split()
BINARY = "atan2 hypot fmax fmin logaddexp logaddexp2 xlogy float_power nextafter heaviside logical_xor".split()


def _unary_all(x):
    return tuple(getattr(gradc, name)(x) for name in UNARY)


def _binary_all(a, b):
    return tuple(getattr(gradc, name)(a, b) for name in BINARY) + (gradc.ldexp(a, b.long().clamp(-5, 5)),)


def _torch_binary(a, b):
    return tuple(getattr(torch, name)(a, b) for name in BINARY) + (torch.ldexp(a, b.long().clamp(-5, 5)),)


def _pairs(dtype):
    a, b = np.meshgrid(np.array(PAIR), np.array(PAIR))
    return a.ravel().astype(dtype), b.ravel().astype(dtype)


def _same(name, got, want, rtol, unsigned_zeros=None):
    """got equals PyTorch's want: NaN where it is NaN, the same infinities, zeros of the same sign
    (except where `unsigned_zeros` is true), other values within rtol."""
    got, want = np.asarray(got), want.numpy()
    assert got.dtype == want.dtype, f"{name}: dtype {got.dtype}, PyTorch {want.dtype}"
    if got.dtype == np.bool_:
        np.testing.assert_array_equal(got, want, err_msg=name)
        return
    g, w = got.astype(np.float64), want.astype(np.float64)
    assert np.array_equal(np.isnan(g), np.isnan(w)), f"{name}: NaN at {np.isnan(g).nonzero()}, PyTorch at " \
                                                     f"{np.isnan(w).nonzero()} ({g} vs {w})"
    special = np.isinf(w) | (w == 0)
    assert np.array_equal(g[special], w[special]), f"{name}: {g[special]} vs PyTorch {w[special]}"
    zero = (w == 0) & (True if unsigned_zeros is None else ~unsigned_zeros)
    assert np.array_equal(np.signbit(g[zero]), np.signbit(w[zero])), f"{name}: signed zeros {g[zero]} vs {w[zero]}"
    finite = np.isfinite(w) & ~zero
    np.testing.assert_allclose(g[finite], w[finite], rtol=rtol, atol=0, err_msg=name)


RTOL = {"float32": 2e-6, "float64": 1e-13}
# digamma near its zeros (digamma(-0.5) = 0.0365) is a difference of terms near 2: a few ulps of
# those are a larger part of the result, in PyTorch's formula as in gradc's
OP_RTOL = {("digamma", "float32"): 2e-5, ("digamma", "float64"): 1e-12}


def _run(backend, fn, *args):
    return fn(*args) if backend == "eager" else gradc.compile(fn, backend=backend)(*args)


@pytest.fixture(autouse=True, scope="module")
def _cache_dir(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRADC_CACHE_DIR", str(tmp_path_factory.mktemp("gradc_cache")))
        yield


@pytest.mark.parametrize("backend", ["eager", "numpy", "c"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_unary_special_values_match_torch(backend, dtype):
    x = np.array(SPECIAL, dtype=dtype)
    got = _run(backend, _unary_all, gradc.tensor(x))
    for name, g in zip(UNARY, got):
        _same(name, g.numpy(), getattr(torch, name)(torch.tensor(x)), OP_RTOL.get((name, dtype), RTOL[dtype]))


@pytest.mark.parametrize("backend", ["eager", "numpy", "c"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_binary_special_values_match_torch(backend, dtype):
    a, b = _pairs(dtype)
    got = _run(backend, _binary_all, gradc.tensor(a), gradc.tensor(b))
    want = _torch_binary(torch.tensor(a), torch.tensor(b))
    # fmax/fmin of +0 and -0: gradc keeps the first operand (NumPy's rule); PyTorch's vectorised
    # and scalar loops pick differently, so the sign of a zero tie is not compared
    zero_tie = (a == 0) & (b == 0)
    for name, g, w in zip(BINARY + ["ldexp"], got, want):
        _same(name, g.numpy(), w, RTOL[dtype], zero_tie if name in ("fmax", "fmin") else None)


def test_logit_eps_and_defaults_match_torch():
    x = np.array([-0.5, 0.0, 0.05, 0.5, 0.95, 1.0, 1.5, math.nan], dtype=np.float32)
    for eps in (None, 0.1, 0.0):
        _same(f"logit eps={eps}", gradc.logit(gradc.tensor(x), eps=eps).numpy(), torch.logit(torch.tensor(x), eps=eps),
              1e-6)
    _same("logit positional eps", gradc.logit(gradc.tensor(x), 0.1).numpy(), torch.logit(torch.tensor(x), 0.1), 1e-6)


def test_integer_inputs_promote_as_in_torch():
    i = np.array([-3, -1, 0, 1, 2, 5])
    for name in ("tan", "atan", "sinh", "asinh", "erfc", "exp2", "lgamma", "digamma", "sinc", "deg2rad", "rad2deg",
                 "logit", "erfinv", "acosh"):
        _same(name, getattr(gradc, name)(gradc.tensor(i)).numpy(), getattr(torch, name)(torch.tensor(i)), 2e-6)
    for name in ("atan2", "xlogy", "float_power", "fmax", "fmin", "ldexp", "heaviside"):
        got = getattr(gradc, name)(gradc.tensor(i), gradc.tensor(i[::-1].copy()))
        _same(name, got.numpy(), getattr(torch, name)(torch.tensor(i), torch.tensor(i[::-1].copy())), 2e-6)
    for name in ("signbit", "sgn", "negative", "absolute", "fix", "bitwise_not"):
        _same(name, getattr(gradc, name)(gradc.tensor(i)).numpy(), getattr(torch, name)(torch.tensor(i)), 0)
    assert gradc.float_power(gradc.tensor([2.0]), 2).dtype is gradc.float64
    assert gradc.float_power(2, gradc.tensor([0.5])).dtype is gradc.float64


def test_bitwise_operators_follow_torch():
    a, b = np.array([5, -3, 12, 0]), np.array([3, 6, -1, 7])
    ga, gb, ta, tb = gradc.tensor(a), gradc.tensor(b), torch.tensor(a), torch.tensor(b)
    for got, want in ((ga & gb, ta & tb), (ga | gb, ta | tb), (ga ^ gb, ta ^ tb), (ga & 6, ta & 6), (6 | ga, 6 | ta),
                      (gradc.bitwise_not(ga), ~ta), (gradc.bitwise_xor(ga, 9), torch.bitwise_xor(ta, 9))):
        _same("bitwise", got.numpy(), want, 0)
    m, n = gradc.tensor([True, False, True]), gradc.tensor([True, True, False])
    assert (m ^ n).tolist() == [False, True, True] and (m & n).tolist() == [True, False, False]
    assert (m & True).dtype is gradc.bool and gradc.bitwise_not(m).tolist() == [False, True, False]
    for bad in (lambda: gradc.tensor([1.0]) & gradc.tensor([1.0]), lambda: gradc.bitwise_not(gradc.tensor([1.5])),
                lambda: gradc.tensor([1]) | 2.5):
        with pytest.raises(gradc.DTypeError, match="integer and bool"):
            bad()


def test_aliases_are_the_same_functions():
    for alias, name in (("arcsin", "asin"), ("arccos", "acos"), ("arctan", "atan"), ("arctan2", "atan2"),
                        ("arcsinh", "asinh"), ("arccosh", "acosh"), ("arctanh", "atanh"), ("negative", "neg"),
                        ("absolute", "abs"), ("fix", "trunc")):
        assert getattr(gradc, alias) is getattr(gradc, name), alias
        assert getattr(gradc.Tensor, alias) is getattr(gradc.Tensor, name), alias


def test_refused_dtypes_say_what_to_do():
    i = gradc.tensor([1, 2])
    with pytest.raises(gradc.DTypeError, match="hypot needs a floating-point tensor"):
        gradc.hypot(i, i)
    for fn in (gradc.logaddexp, gradc.logaddexp2):
        with pytest.raises(gradc.DTypeError, match="floating-point"):
            fn(i, i)
    with pytest.raises(gradc.DTypeError, match="frac"):
        gradc.frac(i)
    with pytest.raises(gradc.DTypeError, match="one dtype"):
        gradc.heaviside(gradc.tensor([1.0]), gradc.tensor([1.0], dtype=gradc.float64))
    with pytest.raises(gradc.DTypeError, match="values must be a tensor"):
        gradc.heaviside(gradc.tensor([1.0]), 0.5)


def test_gradients_at_the_edges_follow_torch():
    """Where PyTorch's gradient is a rule rather than the formula's limit: sinc at 0, xlogy at
    x == 0, fmax/fmin ties and NaN operands, logit outside [eps, 1 - eps]."""
    def grads(lib, fn, *vals):
        ts = [lib.tensor(np.array(v, dtype=np.float64), requires_grad=True) for v in vals]
        fn(lib, *ts).sum().backward()
        return [t.grad.numpy() for t in ts]

    cases = [
        (lambda lib, x: lib.sinc(x), [[0.0, -0.0, 0.5]]),
        (lambda lib, x, y: lib.xlogy(x, y), [[0.0, 0.0, 2.0, 1.5], [2.0, 0.0, 3.0, 0.5]]),
        (lambda lib, a, b: lib.fmax(a, b), [[1.0, math.nan, 2.0, math.nan], [1.0, 3.0, math.nan, math.nan]]),
        (lambda lib, a, b: lib.fmin(a, b), [[1.0, math.nan, 2.0, -1.0], [1.0, 3.0, math.nan, 4.0]]),
        (lambda lib, x: lib.logit(x, eps=0.2), [[0.1, 0.2, 0.5, 0.8, 0.9]]),
        (lambda lib, a, b: lib.logaddexp(a, b), [[1.0, -2.0], [1.0, 3.0]]),
    ]
    for fn, vals in cases:
        for g, w in zip(grads(gradc, fn, *vals), grads(torch, fn, *vals)):
            np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-15)


def _c_works():
    try:
        gradc.compile(lambda x: x * 2.0, backend="c")(gradc.ones(2, 2))
        return True
    except gradc.GradcError:
        return False


NEW_C_OPS = frozenset(("tan asin acos atan sinh cosh asinh acosh atanh erfc exp2 lgamma signbit bitwise_not atan2 hypot "
                       "xlogy fmax fmin nextafter bitwise_and bitwise_or bitwise_xor").split())


@pytest.mark.skipif(not _c_works(), reason="no working C compiler for backend='c'")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_c_table_expressions_match_torch(dtype, monkeypatch, tmp_path):
    """The new primitives' C expressions (templates/c/ops.j2) inside fused C kernels: the C
    backend is let fuse them (as it does once gradc.kernels.ir.C_OPS names them) and its results
    must be PyTorch's special values, with the C math functions really called."""
    from gradc.codegen import c_backend
    from gradc.kernels import ir
    ops = ir.C_OPS | NEW_C_OPS
    monkeypatch.setattr(ir, "C_OPS", ops)
    monkeypatch.setattr(c_backend, "C_OPS", ops)
    monkeypatch.setenv("GRADC_CACHE_DIR", str(tmp_path))
    x = gradc.tensor(np.array(SPECIAL, dtype=dtype))
    unary = gradc.compile(_unary_all, backend="c")
    source = "\n".join(unary.lower(x).source.values())
    suffix = "f" if dtype == "float32" else ""
    assert all(f"{fn}{suffix}(" in source for fn in ("tan", "lgamma", "erfc", "copysign", "asinh")), "not fused into C"
    for name, g in zip(UNARY, unary(x)):
        _same(name, g.numpy(), getattr(torch, name)(torch.tensor(np.array(SPECIAL, dtype=dtype))),
              OP_RTOL.get((name, dtype), RTOL[dtype]))
    a, b = _pairs(dtype)
    binary = gradc.compile(_binary_all, backend="c")
    source = "\n".join(binary.lower(gradc.tensor(a), gradc.tensor(b)).source.values())
    assert all(f"{fn}{suffix}(" in source for fn in ("atan2", "hypot", "nextafter")), "not fused into C"
    want = _torch_binary(torch.tensor(a), torch.tensor(b))
    for name, g, w in zip(BINARY + ["ldexp"], binary(gradc.tensor(a), gradc.tensor(b)), want):
        _same(name, g.numpy(), w, RTOL[dtype], ((a == 0) & (b == 0)) if name in ("fmax", "fmin") else None)
    m, n = gradc.tensor([True, False, True, False]), gradc.tensor([True, True, False, False])
    logic = gradc.compile(lambda m, n: (gradc.bitwise_and(m, n), gradc.bitwise_or(m, n), gradc.bitwise_xor(m, n),
                                        gradc.bitwise_not(m)), backend="c")
    assert [t.tolist() for t in logic(m, n)] == [[True, False, False, False], [True, True, True, False],
                                                 [False, True, True, False], [False, True, False, True]]


@pytest.mark.parametrize("backend", ["eager", "numpy"])
def test_erfinv_tails_match_torch(backend):
    """Near +-1 erf rounds to 1: the float64 refinement works on erfc there (and float32 needs none)."""
    x = np.array([1 - 1e-15, -(1 - 2.0 ** -52), 1 - 1e-12, -(1 - 1e-9), 0.999999, 0.5, 0.4999999, 1e-300])
    _same("erfinv", _run(backend, gradc.erfinv, gradc.tensor(x)).numpy(), torch.erfinv(torch.tensor(x)), 1e-14)
    x32 = np.array([0.99999994, -0.9999999, 0.999, 1e-38, 0.5], dtype=np.float32)
    _same("erfinv", _run(backend, gradc.erfinv, gradc.tensor(x32)).numpy(), torch.erfinv(torch.tensor(x32)), 2e-7)
