"""Every eager kernel of the op table runs on CuPy's API: the op-database rows run eagerly (forward
and backward, float16/32/64) while each primitive call is also run on a stand-in for CuPy
(strict_cupy: NumPy underneath, CuPy's signatures enforced) and must give NumPy's result.

The stand-in's signature tables are compared with CuPy itself wherever CuPy is importable (it
imports without a GPU), so the tables cannot drift from the library they describe."""
import inspect
import re
import sys

import numpy as np
import pytest

import gradc
from gradc import dispatch
from gradc.ops import OPS

import strict_cupy as sc
from opdb import ROWS

# gradc's own primitives (a test module may register its own). all_reduce's kernel hands its array
# to the process group (NCCL on GPUs): the distributed tests run it.
CHECKED = sorted(name for name, prim in OPS.items()
                 if prim.kind != "collective" and getattr(prim.eager, "__module__", "").startswith("gradc."))


class OnCupy(dispatch.Mode):
    """A transform on the dispatch stack: every primitive that eager mode runs is run again, on
    copies of its operands, with the stand-in as `xp`, and must match eager's NumPy result."""
    order = 0

    def __init__(self, where):
        self.where, self.ran, self.failures = where, {}, {}

    def low_dtype(self):
        return None

    def bind(self, prim, args, attrs):
        out = self.below.bind(prim, args, attrs)
        if prim.name in CHECKED and isinstance(out, gradc.Tensor):
            problem = self.check(prim, args, attrs, out)
            self.ran[prim.name] = self.ran.get(prim.name, 0) + 1
            if problem:
                self.failures.setdefault(prim.name, []).append(f"{self.where[0]}: {problem}")
        return out

    @staticmethod
    def check(prim, args, attrs, out):
        arrays = []
        for a in args:  # the operands' own layouts (transposed, broadcast), read-only: kernels must not write them
            view = a._data.view()
            view.flags.writeable = False
            arrays.append(sc.StrictArray(view))
        try:
            res = prim.eager(sc.MODULE, *arrays, **attrs)
        except Exception as e:  # what CuPy would raise (CupyMismatch, AttributeError) or a kernel bug
            return f"{type(e).__name__}: {e}"
        if not isinstance(res, sc.StrictArray):
            return f"returned {type(res).__name__}, not a device array (CuPy kernels must return cupy.ndarray)"
        want = out._data
        if res.shape != want.shape or res.dtype != want.dtype:
            return f"result {res.dtype}{list(res.shape)}, eager NumPy gives {want.dtype}{list(want.shape)}"
        got = res._a
        if want.dtype.kind == "f":
            # erf on CuPy is CUDA's erf (cupyx.scipy.special), NumPy eager a rational approximation
            # (float16/32) or libm: equal to a few units in the last place.
            tol = {np.float16: 1e-3, np.float32: 1e-6, np.float64: 1e-13}[want.dtype.type]
            if not np.allclose(got, want, rtol=tol, atol=tol, equal_nan=True):
                return f"values differ from eager NumPy by up to {np.nanmax(np.abs(got - want)):.3g}"
        elif not np.array_equal(got, want):
            return "values differ from eager NumPy"
        return None


def _as_tuple(x):
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


@pytest.fixture(scope="module")
def on_cupy():
    """Run every row's samples (forward, then backward where differentiable) under OnCupy."""
    where = [""]
    mode = OnCupy(where)
    dispatch.push(mode)
    try:
        with pytest.MonkeyPatch.context() as mp:
            for name, module in sc.MODULES.items():  # `import cupyx...` inside kernels finds the stand-in's
                mp.setitem(sys.modules, name, module)
            for row in ROWS:
                for k, s in enumerate(row.samples()):
                    for dtype in ("float32", "float64", "float16"):
                        where[0] = f"row {row.name!r} sample {k} ({s.label()}) {dtype}"
                        diff = row.diff_args(s) if dtype != "float16" else ()
                        try:
                            outs = [o for o in _as_tuple(row.fn(*s.tensors(dtype, requires_grad=diff), **s.kwargs))
                                    if isinstance(o, gradc.Tensor) and o.requires_grad]
                            if outs:
                                sum(o.sum() for o in outs).backward()
                        except Exception as e:
                            if not (dtype == "float16" and isinstance(e, gradc.GradcError)):  # float16 is optional
                                raise AssertionError(f"{where[0]}: the row itself fails eagerly: {e!r}") from e
    finally:
        dispatch.pop(mode)
    return mode


@pytest.mark.parametrize("name", CHECKED)
def test_eager_kernel_runs_on_cupy(on_cupy, name):
    assert on_cupy.ran.get(name), f"no op-database row runs primitive {name!r}; add a row that does"
    failures = on_cupy.failures.get(name, [])
    assert not failures, (f"the eager kernel of {name!r} would fail on CuPy ({len(failures)} calls), e.g.\n  "
                          + "\n  ".join(failures[:5]))


def test_matmul_kernel_writes_a_planned_buffer_on_cupy():
    """The CUDA backend's host code calls K_matmul(cp, a, b, out=buffer) (templates/cuda/host_ops.j2)."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((5, 4))
    buf = sc.MODULE.empty((3, 5), dtype=np.float64)
    res = OPS["matmul"].eager(sc.MODULE, sc.StrictArray(a), sc.StrictArray(b).T, out=buf)
    assert res is buf
    np.testing.assert_allclose(buf._a, a @ b.T, rtol=1e-12)


def test_erf_on_cupy_is_one_device_call_per_dtype(monkeypatch):
    """On CuPy erf runs as cupyx.scipy.special.erf (CUDA's erf, as the generated kernels): float64
    close to libm, float16 computed in float32 and rounded once, no host round trip."""
    import math
    for name, module in sc.MODULES.items():
        monkeypatch.setitem(sys.modules, name, module)
    x = np.linspace(-5, 5, 41)
    for dtype in (np.float16, np.float32, np.float64):
        res = OPS["erf"].eager(sc.MODULE, sc.StrictArray(x.astype(dtype)))
        assert isinstance(res, sc.StrictArray) and res.dtype == dtype
        want = np.array([math.erf(v) for v in x.astype(dtype).astype(np.float64)]).astype(dtype)
        np.testing.assert_allclose(res._a, want, rtol={np.float16: 1e-3, np.float32: 1e-6, np.float64: 0}[dtype],
                                   atol=0)


# ---------------------------------------------------------------------------------------- the stand-in
@pytest.mark.parametrize("call, message", [
    (lambda xp, a: xp.clip(a, -4.0, 4.0, dtype=np.float32), "unexpected keyword argument 'dtype'"),
    (lambda xp, a: np.vectorize(abs)(a), "Implicit conversion"),
    (lambda xp, a: np.asarray(a), "Implicit conversion"),
    (lambda xp, a: xp.add(a, a, where=a > 0), "out=, casting= and dtype= only"),
    (lambda xp, a: xp.exp(a, order="C"), "out=, casting= and dtype= only"),
    (lambda xp, a: np.add.at(a, [0], 1.0), "numpy.add.at"),
    (lambda xp, a: xp.multiply.at(a, [0], 2.0), "not supported by CuPy"),
    (lambda xp, a: xp.add(a, np.ones(3)), "NumPy array"),
    (lambda xp, a: np.sum(a), "xp.sum"),
    (lambda xp, a: xp.sum(a, initial=0.0), "unexpected keyword argument 'initial'"),
    (lambda xp, a: a.astype(np.float32, casting="same_kind"), "casting="),
    (lambda xp, a: a.flags.writeable, "writeable"),
    (lambda xp, a: a @ a.T.__imatmul__(a), "__imatmul__"),
    (lambda xp, a: a.__index__(), "__index__"),
])
def test_stand_in_refuses_what_cupy_refuses(call, message):
    a = sc.StrictArray(np.arange(6.0).reshape(2, 3))
    with pytest.raises((TypeError, AttributeError, ValueError), match=re.escape(message)):
        call(sc.MODULE, a)
    with pytest.raises(AttributeError, match="vectorize"):
        sc.MODULE.vectorize


def test_stand_in_returns_device_arrays_where_numpy_returns_scalars():
    xp = sc.MODULE
    a = sc.StrictArray(np.arange(6.0).reshape(2, 3))
    for r in (xp.sum(a), xp.max(a), a.sum(), a[0, 1], xp.argmax(a), np.float32(2) * a[0, 0]):
        assert isinstance(r, sc.StrictArray) and r.ndim == 0
    assert int(xp.max(a)) == 5 and float(a.sum()) == 15.0
    with pytest.raises(TypeError):
        int(a)
    p = a * 1.0
    p *= a                       # in-place operators are CuPy's
    np.testing.assert_array_equal(p._a, np.arange(6.0).reshape(2, 3) ** 2)
    assert isinstance(xp.asnumpy(a), np.ndarray) and not isinstance(xp.asnumpy(a), sc.StrictArray)


# ---------------------------------------------------------------------------------------- against CuPy
def _cupy():
    return pytest.importorskip("cupy", reason="CuPy is not installed: the stand-in's tables are checked where it is")


def _params(sig):
    return [(p.name, p.kind, p.default) for p in sig.parameters.values()]


def test_function_signatures_match_cupy():
    cupy = _cupy()
    wrong = {}
    for name in list(sc.SIGNATURES) + ["matmul"]:
        real = getattr(cupy, name, None)
        if real is None:
            wrong[name] = "missing from CuPy"
            continue
        ours = getattr(sc.MODULE, name).__signature__
        theirs = inspect.signature(real)
        if _params(ours) != _params(theirs):
            wrong[name] = f"CuPy has {theirs}, the stand-in {ours}"
    assert not wrong, wrong


def _ufunc_accepts(fn, kw):
    value = {"out": None, "dtype": None, "casting": "same_kind", "where": True, "order": "K", "subok": True,
             "signature": None, "axis": None}[kw]
    try:
        fn(*([1.0] * fn.nin), **{kw: value})
    except TypeError as e:
        if "Wrong arguments" in str(e):
            return False
    except Exception:  # anything else (no GPU, a domain error) means the arguments were accepted
        pass
    return True


def test_ufuncs_match_cupy():
    cupy = _cupy()
    wrong = {}
    for name, nin in sc.UFUNCS.items():
        real = getattr(cupy, name, None)
        if not isinstance(real, cupy.ufunc) or real.nin != nin:
            wrong[name] = f"CuPy has {real!r} (nin {getattr(real, 'nin', None)}), the stand-in a ufunc of {nin}"
            continue
        accepted = {kw for kw in ("out", "dtype", "casting", "where", "order", "subok", "signature", "axis")
                    if _ufunc_accepts(real, kw)}
        if accepted != set(sc.UFUNC_KWARGS):
            wrong[name] = f"CuPy accepts {sorted(accepted)}, the stand-in {sorted(sc.UFUNC_KWARGS)}"
    assert not wrong, wrong


def _doc_signature(method):
    """A Cython method's parameters from its docstring's first line ("X.astype(self, dtype, ...) -> ...")."""
    line = method.__doc__.strip().splitlines()[0]
    inner = line[line.index("(") + 1:line.rindex(")")]
    params = []
    for p in [p.strip() for p in inner.split(",")][1:]:  # drop self
        head, eq, default = p.partition("=")
        params.append(head.split()[-1] + eq + default)   # Cython may name a type first: "Py_ssize_t axis1"
    return sc.signature(", ".join(params))


def test_ndarray_methods_match_cupy():
    cupy = _cupy()
    wrong = {}
    for name in sc.METHODS:
        real = getattr(cupy.ndarray, name, None)
        if real is None:
            wrong[name] = "missing from cupy.ndarray"
            continue
        ours = inspect.signature(getattr(sc.StrictArray, name))
        theirs = _doc_signature(real)
        if _params(ours) != _params(theirs):
            wrong[name] = f"CuPy has {theirs}, the stand-in {ours}"
    dunders = {n for n in dir(sc.StrictArray) if n.startswith("__i") and n.endswith("__")} - {"__init__", "__iter__"}
    missing = sorted(n for n in dunders if not hasattr(cupy.ndarray, n))
    assert not missing, f"in-place operators CuPy lacks: {missing}"
    assert not wrong, wrong


def test_cupyx_functions_match_cupy():
    _cupy()
    import cupyx
    import cupyx.scipy.special
    assert _params(inspect.signature(cupyx.scatter_add)) == _params(sc.cupyx.scatter_add.__signature__)
    assert list(cupyx.scipy.special.erf.types) == list(sc.cupyx.scipy.special.erf.types)
    assert cupyx.scipy.special.erf.nin == 1


@pytest.mark.skipif(not gradc.cuda.is_available(), reason="needs a CUDA GPU with CuPy to call ufunc.at")
def test_ufunc_at_support_matches_cupy():
    import cupy
    for name in ("add", "subtract", "maximum", "minimum", "multiply", "divide", "power"):
        a = cupy.zeros(3)
        try:
            getattr(cupy, name).at(a, cupy.asarray([0, 1]), 1.0)
            supported = True
        except NotImplementedError:
            supported = False
        assert supported == (name in sc.UFUNC_AT), name


# ---------------------------------------------------------------------------------------- packaging
def test_cuda_extras_each_install_one_cupy():
    """`cuda12` and `cuda13` each bring one CuPy wheel (they cannot be installed together: both
    provide the `cupy` module), `cuda` is `cuda13`, and no other extra pulls CuPy in."""
    import os
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")
    with open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "pyproject.toml"), "rb") as f:
        extras = tomllib.load(f)["project"]["optional-dependencies"]

    def cupys(extra):
        return [re.match(r"[A-Za-z0-9_.-]+", r).group(0) for r in extras[extra] if r.lower().startswith("cupy")]
    assert cupys("cuda12") == ["cupy-cuda12x"] and cupys("cuda13") == ["cupy-cuda13x"]
    assert extras["cuda"] == extras["cuda13"]
    assert all(not cupys(name) for name in extras if name not in ("cuda", "cuda12", "cuda13"))
    # CuPy 14 is the API the stand-in models and test_*_match_cupy checks
    for name in ("cuda12", "cuda13"):
        (req,) = extras[name]
        assert re.search(r">=\s*14\b", req), req
