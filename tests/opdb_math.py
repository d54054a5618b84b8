"""Op-database rows for elementwise math primitives (trigonometric, hyperbolic, special functions, binary math): registered into opdb.ROWS, so gradcheck, eager vs compiled, PyTorch
parity and the CUDA host check iterate them like every other row. Two samples a row: a non-scalar
one first (the compiler and CUDA tests lower the first), then an integer one where PyTorch
promotes integers to float, else a 0-d or broadcast one."""
import math

import numpy as np

import gradc
from opdb import S, _torch, away0, bools, distinct, ints, op, positive, randn


def _t(name):
    return lambda *a, **k: getattr(_torch(), name)(*a, **k)


def _vec(fn):
    return np.vectorize(fn, otypes=[np.float64])


def _uniform(lo, hi):
    return lambda rng, shape: rng.uniform(lo, hi, shape)


def _lgamma(v):
    try:
        return math.lgamma(v)
    except ValueError:
        return math.inf


def _erfinv(x):
    """Bisection on math.erf (independent of gradc's Newton iteration): 80 halvings of [-6, 6]."""
    x = np.asarray(x, dtype=np.float64)
    lo, hi = np.full(x.shape, -6.0), np.full(x.shape, 6.0)
    erf = _vec(math.erf)
    for _ in range(80):
        mid = (lo + hi) / 2
        below = erf(mid) < x
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    return (lo + hi) / 2


def _ints_in(lo, hi):
    return lambda rng, shape: rng.integers(lo, hi + 1, shape).astype(np.int64)


def _unary(name, fn, gen, ref, int_sample=(-3, 3), **kw):
    """Samples in the op's domain; `int_sample`: the range of the integer sample (None: a 0-d one)."""
    def samples(rng):
        out = [S(gen(rng, (2, 3, 4)))]
        out.append(S(_ints_in(*int_sample)(rng, (2, 3))) if int_sample else S(gen(rng, ())))
        return out
    kw.setdefault("torch_fn", _t(name))
    op(name, fn, samples, ref=ref, **kw)


_unary("tan", gradc.tan, _uniform(-1.2, 1.2), np.tan)
_unary("asin", gradc.asin, _uniform(-0.9, 0.9), np.arcsin, int_sample=(-1, 1))
_unary("acos", gradc.acos, _uniform(-0.9, 0.9), np.arccos, int_sample=(-1, 1))
_unary("atan", gradc.atan, randn, np.arctan)
_unary("sinh", gradc.sinh, randn, np.sinh)
_unary("cosh", gradc.cosh, randn, np.cosh)
_unary("asinh", gradc.asinh, randn, np.arcsinh)
_unary("acosh", gradc.acosh, _uniform(1.2, 3.0), np.arccosh, int_sample=(1, 4))
_unary("atanh", gradc.atanh, _uniform(-0.9, 0.9), np.arctanh, int_sample=None)
_unary("erfc", gradc.erfc, randn, _vec(math.erfc), tol={"float32": (1e-5, 1e-6), "float64": (1e-12, 1e-14)})
_unary("exp2", gradc.exp2, randn, np.exp2)
_unary("lgamma", gradc.lgamma, lambda rng, s: rng.uniform(0.3, 4.0, s) * rng.choice([1.0, -1.0], s) + 0.05,
       _vec(_lgamma), torch_tol={"float32": (1e-5, 1e-5), "float64": (1e-10, 1e-11)}, int_sample=(1, 5))
_unary("digamma", gradc.digamma, lambda rng, s: rng.uniform(0.3, 6.0, s) * rng.choice([1.0, -1.0], s) + 0.05,
       None, tol={"float32": (1e-5, 3e-5), "float64": (1e-10, 1e-11)}, int_sample=(1, 5))
_unary("erfinv", gradc.erfinv, _uniform(-0.97, 0.97), _erfinv, int_sample=None,
       tol={"float32": (3e-6, 1e-6), "float64": (1e-12, 1e-14)})
_unary("sinc", gradc.sinc, lambda rng, s: np.where(rng.random(s) < 0.2, 0.0, randn(rng, s) * 2), np.sinc)
_unary("deg2rad", gradc.deg2rad, randn, np.deg2rad)
_unary("rad2deg", gradc.rad2deg, randn, np.rad2deg)
_unary("frac", gradc.frac, lambda rng, s: rng.integers(-3, 4, s) + rng.uniform(0.2, 0.8, s) * rng.choice([1, -1], s),
       lambda x: x - np.trunc(x), int_sample=None)
# PyTorch's sgn gradient is a ZeroTensor, which cannot be read back: the float64 gradcheck covers it
op("sgn", gradc.sgn, lambda rng: [S(away0(rng, (2, 3, 4)), _torch_grad=False), S(away0(rng, ()), _torch_grad=False)],
   ref=np.sign, torch_fn=_t("sgn"))
op("logit", lambda x, **k: gradc.logit(x, **k),
   lambda rng: [S(rng.uniform(0.1, 0.9, (3, 4))), S(rng.uniform(0.02, 0.98, (5,)), eps=0.15),
                S(np.array([0, 1]))],
   ref=lambda x, eps=None: np.log(np.clip(x, eps, 1 - eps) / (1 - np.clip(x, eps, 1 - eps))) if eps else
   np.log(x / (1 - x)), torch_fn=lambda x, **k: _torch().logit(x, **k))
op("signbit", gradc.signbit,
   lambda rng: [S(np.array([[-0.0, 0.0, -1.5], [2.0, -np.inf, np.nan]])), S(ints(rng, (4,))), S(bools(rng, (3,)))],
   ref=np.signbit, torch_fn=_t("signbit"), differentiable=False)
# bool samples first: the CUDA tests lower each row's first sample, and integer bitwise work stays
# on the host until gradc.kernels.ir.INT_OPS lets kernels do it
op("bitwise_not", gradc.bitwise_not, lambda rng: [S(bools(rng, (3, 4))), S(ints(rng, (5,)))],
   ref=np.invert, torch_fn=_t("bitwise_not"), differentiable=False)
for _name, _fn, _ref in (("negative", gradc.negative, np.negative), ("absolute", gradc.absolute, np.abs),
                         ("fix", gradc.fix, np.trunc)):
    op(_name, _fn, lambda rng: [S(away0(rng, (3, 4)) * 3), S(ints(rng, (4,)))], ref=_ref, torch_fn=_t(_name),
       differentiable=_name != "fix")


# ---------------------------------------------------------------------------- binary
def _binary(name, gen_a, gen_b, ref, fn=None, int_pair=True, **kw):
    def samples(rng):
        out = [S(gen_a(rng, (3, 4)), gen_b(rng, (3, 4))), S(gen_a(rng, (2, 1, 3)), gen_b(rng, (4, 1)))]
        if int_pair:
            out.append(S(ints(rng, (2, 3)), ints(rng, (3,)), _grad=False))
        return out
    kw.setdefault("torch_fn", _t(name))
    op(name, fn or getattr(gradc, name), samples, ref=ref, **kw)


def _distinct_pair(seed_shift):
    # two operands with no ties anywhere (maximum-like ops split or route ties)
    def gen(rng, shape):
        return distinct(rng, shape) + seed_shift
    return gen


_binary("atan2", randn, away0, np.arctan2)
_binary("hypot", away0, away0, np.hypot, int_pair=False)
_binary("fmax", _distinct_pair(0.0), _distinct_pair(0.1), np.fmax)
_binary("fmin", _distinct_pair(0.0), _distinct_pair(0.1), np.fmin)
_binary("logaddexp", randn, randn, np.logaddexp, int_pair=False)
_binary("logaddexp2", randn, randn, np.logaddexp2, int_pair=False)
_binary("xlogy", lambda rng, s: np.where(rng.random(s) < 0.3, 0.0, randn(rng, s)), positive,
        lambda x, y: np.where(x == 0, 0.0, x * np.log(np.where(x == 0, 1.0, y))), int_pair=False)
op("xlogy_int", gradc.xlogy, lambda rng: [S(ints(rng, (2, 3)), _ints_in(0, 4)(rng, (3,)))],
   ref=lambda x, y: np.where(x == 0, 0.0, x * np.log(np.where(x == 0, 1.0, y))), torch_fn=_t("xlogy"))
op("float_power", gradc.float_power,
   lambda rng: [S(positive(rng, (3, 4)), randn(rng, (3, 4)), _out_dtype="float64"),
                S(positive(rng, (2, 3)), np.array(2.5), _out_dtype="float64"),
                S(ints(rng, (4,)), ints(rng, (4,)), _out_dtype="float64")],
   ref=np.float_power, torch_fn=_t("float_power"))
# PyTorch's ldexp gradient computes 2 ** other in integers (0 for a negative exponent): the
# gradcheck covers the gradient, PyTorch the values
op("ldexp", gradc.ldexp, lambda rng: [S(randn(rng, (3, 4)), rng.integers(-4, 5, (3, 4)), _torch_grad=False),
                                      S(randn(rng, (2, 1, 3)), rng.integers(0, 5, (4, 1))),
                                      S(ints(rng, (2, 3)), rng.integers(-2, 3, (3,)))],
   ref=lambda x, e: x * np.exp2(e), torch_fn=_t("ldexp"))
op("nextafter", gradc.nextafter, lambda rng: [S(randn(rng, (3, 4)), randn(rng, (3, 4))),
                                              S(np.array([0.0, 1.0, -0.0]), np.array([1.0, 0.0, -1.0]))],
   ref=None, torch_fn=_t("nextafter"), differentiable=False)
op("heaviside", gradc.heaviside, lambda rng: [S(np.array([[-1.5, 0.0, 2.0], [-0.0, np.nan, 3.0]]), np.array([0.5])),
                                              S(ints(rng, (2, 3)), ints(rng, (3,)))],
   ref=lambda x, v: np.where(x == 0, v, x > 0).astype(x.dtype), torch_fn=_t("heaviside"), differentiable=False,
   notes="heaviside(NaN) is 0, as PyTorch (NumPy gives NaN)")
op("logical_xor", gradc.logical_xor, lambda rng: [S(bools(rng, (3, 4)), bools(rng, (4,))),
                                                  S(np.array([np.nan, 0.0, 1.0, -0.0]), np.array([0.0, 0.0, 2.0, 1.0]))],
   ref=np.logical_xor, torch_fn=_t("logical_xor"), differentiable=False)
for _name in ("bitwise_and", "bitwise_or", "bitwise_xor"):
    op(_name, getattr(gradc, _name), lambda rng: [S(bools(rng, (2, 3)), bools(rng, (2, 3))),
                                                   S(ints(rng, (3, 4)), ints(rng, (4,)))],
       ref=getattr(np, _name), torch_fn=_t(_name), differentiable=False)
