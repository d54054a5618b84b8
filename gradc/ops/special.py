"""More elementwise math primitives: tan and the inverse and hyperbolic trigonometric functions,
erfc, exp2, log1p, expm1, lgamma, atan2, hypot, xlogy, fmax/fmin, nextafter, signbit and the bitwise operations.

Each is one entry (shape and dtype rule, eager kernel, VJP written with tensor ops) with one macro
per backend table, so it fuses like exp or mul. Integer and bool inputs of the transcendental ones
become the default float first, as in PyTorch; the autocast policy is PyTorch's (tan, asin, acos,
sinh and cosh run in float32; the rest follow their inputs)."""
import math

import numpy as np

from .. import dtypes as D
from ..dispatch import Value
from ..errors import DTypeError
from . import frontend as F
from .elementwise import float_unary
from .primitive import primitive
from .rules import elementwise_shape, floating, same_dtype


def _unary(name, kernel, saves=(), amp="follow"):
    return primitive(name, "unary", 1, elementwise_shape(name), floating(name), kernel, saves=saves, amp=amp)


def _libm(fn, xp):
    """An elementwise function NumPy lacks, from Python's math module: computed in float64 and
    rounded once to the operand's dtype (CuPy: the cupyx.scipy.special function named `xp`)."""
    f64 = np.vectorize(fn, otypes=[np.float64])

    def kernel(np_or_cp, x):
        if np_or_cp is not np:
            from cupyx.scipy import special
            f = getattr(special, xp)
            return f(x.astype(np.float32)).astype(np.float16) if x.dtype == np.float16 else f(x)
        if x.size == 0:
            return np.empty(x.shape, x.dtype)
        return f64(x).astype(x.dtype, copy=False)
    return kernel


def _lgamma(v):
    try:
        return math.lgamma(v)
    except (ValueError, OverflowError):  # the poles 0, -1, -2, ... and |x| > 2.5e305: +inf, as PyTorch's
        return math.inf


# erfc of float32/float16 on NumPy: erfc(|x|) = t exp(P(t) - x^2), t = 1 / (1 + |x|/2), with P the
# degree-9 least-squares Chebyshev fit of log(erfc(x) / t) + x^2 over 0 <= x <= 11 (relative error
# < 6e-8, under one float32 ulp), evaluated in float64; erfc(-x) = 2 - erfc(x). float64 takes
# Python's correctly rounded math.erfc.
_ERFC_P = (0.15217128280879266, -0.7201575497651949, 1.2489850345422209, -0.8185365953365402,
           0.020350494009289483, -0.05186151916676663, 0.05253270071166266, 0.3829245534987559,
           0.9990604092096786, -1.2654687578478925)
_erfc_exact = _libm(math.erfc, "erfc")


def _erfc(xp, x):
    if xp is not np or x.dtype == np.float64:
        return _erfc_exact(xp, x)
    a = np.abs(x, dtype=np.float64)
    t = 1.0 / (1.0 + 0.5 * a)
    p = np.full_like(t, _ERFC_P[0])
    for c in _ERFC_P[1:]:
        p *= t
        p += c
    p -= a * a
    r = t * np.exp(p, out=p)
    return np.where(x < 0, 2.0 - r, r).astype(x.dtype, copy=False)


# lgamma of float32/float16 on NumPy, in float64: Stirling's series at y = z + 8 for z < 8 (terms
# to y^-13: error < 4e-16), less log(z (z+1) ... (z+7)); below 1/2 the reflection lgamma(x) =
# log(pi / |sin(pi x)|) - lgamma(1 - x), sin's argument reduced by the nearest integer. float64
# takes Python's math.lgamma.
_STIRLING = (1 / 156, -691 / 360360, 1 / 1188, -1 / 1680, 1 / 1260, -1 / 360, 1 / 12)
_lgamma_exact = _libm(_lgamma, "gammaln")


def _lgamma_kernel(xp, x):
    if xp is not np:   # CuPy: cupyx's gammaln, whose gammaln(-inf) is -inf (PyTorch's is +inf)
        return xp.where(x == -np.inf, x.dtype.type(math.inf), _lgamma_exact(xp, x))
    if x.dtype == np.float64:
        return _lgamma_exact(xp, x)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        x64 = x.astype(np.float64)
        reflect = x64 < 0.5
        z = np.where(reflect, 1.0 - x64, x64)
        small = z < 8.0
        y = z + 8.0 * small
        prod = z + 7.0
        for k in range(7):
            prod *= z + k
        r = 1.0 / (y * y)
        series = np.full_like(y, _STIRLING[0])
        for c in _STIRLING[1:]:
            series *= r
            series += c
        out = (y - 0.5) * np.log(y) - y + 0.5 * math.log(2 * math.pi) + series / y - np.log(np.where(small, prod, 1.0))
        sin = np.abs(np.sin(math.pi * (x64 - np.round(x64))))
        out = np.where(reflect, math.log(math.pi) - np.log(sin) - out, out)
        out = np.where((x64 == 1.0) | (x64 == 2.0), 0.0, out)   # exact zeros, not the series' rounding
        return np.where(np.isinf(x64), math.inf, out).astype(x.dtype)


tan_p = _unary("tan", lambda xp, x: xp.tan(x), saves=("out",), amp="fp32")
asin_p = _unary("asin", lambda xp, x: xp.arcsin(x), saves=(0,), amp="fp32")
acos_p = _unary("acos", lambda xp, x: xp.arccos(x), saves=(0,), amp="fp32")
atan_p = _unary("atan", lambda xp, x: xp.arctan(x), saves=(0,))
sinh_p = _unary("sinh", lambda xp, x: xp.sinh(x), saves=(0,), amp="fp32")
cosh_p = _unary("cosh", lambda xp, x: xp.cosh(x), saves=(0,), amp="fp32")
asinh_p = _unary("asinh", lambda xp, x: xp.arcsinh(x), saves=(0,))
acosh_p = _unary("acosh", lambda xp, x: xp.arccosh(x), saves=(0,))
atanh_p = _unary("atanh", lambda xp, x: xp.arctanh(x), saves=(0,))
erfc_p = _unary("erfc", _erfc, saves=(0,))
exp2_p = _unary("exp2", lambda xp, x: xp.exp2(x), saves=("out",))
log1p_p = _unary("log1p", lambda xp, x: xp.log1p(x), saves=(0,))
expm1_p = _unary("expm1", lambda xp, x: xp.expm1(x), saves=("out",))
lgamma_p = _unary("lgamma", _lgamma_kernel, saves=(0,))

tan_p.def_vjp(lambda ctx, g: (g * (ctx.out * ctx.out + 1.0),))
asin_p.def_vjp(lambda ctx, g: (g / (1.0 - ctx.inputs[0] * ctx.inputs[0]).sqrt(),))
acos_p.def_vjp(lambda ctx, g: (-(g / (1.0 - ctx.inputs[0] * ctx.inputs[0]).sqrt()),))
atan_p.def_vjp(lambda ctx, g: (g / (ctx.inputs[0] * ctx.inputs[0] + 1.0),))
sinh_p.def_vjp(lambda ctx, g: (g * ctx.inputs[0].cosh(),))
cosh_p.def_vjp(lambda ctx, g: (g * ctx.inputs[0].sinh(),))
asinh_p.def_vjp(lambda ctx, g: (g / (ctx.inputs[0] * ctx.inputs[0] + 1.0).sqrt(),))
acosh_p.def_vjp(lambda ctx, g: (g / ((ctx.inputs[0] - 1.0) * (ctx.inputs[0] + 1.0)).sqrt(),))
atanh_p.def_vjp(lambda ctx, g: (g / (1.0 - ctx.inputs[0] * ctx.inputs[0]),))
erfc_p.def_vjp(lambda ctx, g: (g * ((-ctx.inputs[0] * ctx.inputs[0]).exp() * (-2.0 / math.sqrt(math.pi))),))
exp2_p.def_vjp(lambda ctx, g: (g * ctx.out * math.log(2.0),))
log1p_p.def_vjp(lambda ctx, g: (g / (ctx.inputs[0] + 1.0),))
expm1_p.def_vjp(lambda ctx, g: (g * (ctx.out + 1.0),))
lgamma_p.def_vjp(lambda ctx, g: (g * ctx.inputs[0].digamma(),))

for _p, _aliases in ((tan_p, ()), (asin_p, ("arcsin",)), (acos_p, ("arccos",)), (atan_p, ("arctan",)),
                     (sinh_p, ()), (cosh_p, ()), (asinh_p, ("arcsinh",)), (acosh_p, ("arccosh",)),
                     (atanh_p, ("arctanh",)), (erfc_p, ()), (exp2_p, ()), (log1p_p, ()), (expm1_p, ()),
                     (lgamma_p, ())):
    _p.def_frontend(_p.name, *_aliases)(float_unary(_p))


def _signbit_dtype(dtypes, **_):
    return D.bool_


# signbit reads the sign bit itself: True for -0.0 and for a NaN whose sign is set, as PyTorch.
signbit_p = primitive("signbit", "unary", 1, elementwise_shape("signbit"), _signbit_dtype,
                      lambda xp, x: xp.signbit(x) if x.dtype.kind == "f" else x < 0, diff=False)
signbit_p.def_frontend("signbit")(lambda input: signbit_p.bind(input))


# ---------------------------------------------------------------------- binary
def _binary(name, kernel, dtype=None, saves=(), diff=True):
    return primitive(name, "binary", 2, elementwise_shape(name), dtype or same_dtype(name), kernel,
                     saves=saves, diff=diff)


def _floating(x):
    return x.dtype.is_floating_point if isinstance(x, Value) else isinstance(x, (float, np.floating))


def float_binary(name, input, other):
    """`name` of two operands promoted as PyTorch's binary float ops do: integer and bool operands
    (with no floating one beside them) become the default float first."""
    if not (_floating(input) or _floating(other)):
        input, other = (F.cast(v, D.default_float) if isinstance(v, Value) else float(v) for v in (input, other))
    return F.binary(name, input, other)


atan2_p = _binary("atan2", lambda xp, a, b: xp.arctan2(a, b), floating("atan2"), saves=(0, 1))
hypot_p = _binary("hypot", lambda xp, a, b: xp.hypot(a, b), floating("hypot"), saves=(0, 1, "out"))
# fmax/fmin ignore a NaN operand (the other wins; NaN only where both are), unlike maximum/minimum
fmax_p = _binary("fmax", lambda xp, a, b: xp.fmax(a, b), saves=(0, 1))
fmin_p = _binary("fmin", lambda xp, a, b: xp.fmin(a, b), saves=(0, 1))
xlogy_p = _binary("xlogy", lambda xp, a, b: _xlogy(xp, a, b), floating("xlogy"), saves=(0, 1))
nextafter_p = _binary("nextafter", lambda xp, a, b: xp.nextafter(a, b), floating("nextafter"), diff=False)


def _xlogy(xp, a, b):
    # 0 (a positive zero) where a == 0 unless b is NaN, as PyTorch; log never sees b < 0 there
    zero = (a == 0) & (b == b)
    return xp.where(zero, a.dtype.type(0), a * xp.log(xp.where(zero, a.dtype.type(1), b)))


@xlogy_p.def_vjp
def _xlogy_vjp(ctx, g):
    # PyTorch's rule: d/da is log(b), 0 where a == 0 and b <= 0; d/db is a / b
    a, b = ctx.inputs
    ga = gb = None
    if ctx.needs[0]:
        skip = (a == 0) & (b <= 0)
        ga = g * F.where(skip, 0.0, F.where(skip, 1.0, b).log())
    if ctx.needs[1]:
        gb = g * a / b
    return ga, gb


@atan2_p.def_vjp
def _atan2_vjp(ctx, g):
    a, b = ctx.inputs
    sq = a * a + b * b
    zero = F.scalar(0, sq.dtype, sq.device)
    # at the origin PyTorch's gradient is 0 (not 0/0): the quotient is taken where sq != 0 only
    r = F.where(sq == zero, zero, g / F.where(sq == zero, F.scalar(1, sq.dtype, sq.device), sq))
    return (r * b if ctx.needs[0] else None, -(r * a) if ctx.needs[1] else None)


@hypot_p.def_vjp
def _hypot_vjp(ctx, g):
    a, b = ctx.inputs
    r = g / ctx.out
    return (r * a if ctx.needs[0] else None, r * b if ctx.needs[1] else None)


def _fminmax_vjp(ctx, g, first_wins):
    # PyTorch's rule: the first operand takes the whole gradient where it is the result (ties
    # included, and where the second is NaN), the second operand everywhere else.
    a, b = ctx.inputs
    first = ((a >= b) if first_wins else (a <= b)) | (b != b)
    zero = F.scalar(0, g.dtype, g.device)
    return (F.where(first, g, zero) if ctx.needs[0] else None, F.where(first, zero, g) if ctx.needs[1] else None)


fmax_p.def_vjp(lambda ctx, g: _fminmax_vjp(ctx, g, True))
fmin_p.def_vjp(lambda ctx, g: _fminmax_vjp(ctx, g, False))
atan2_p.def_frontend("atan2", "arctan2")(lambda input, other: float_binary("atan2", input, other))
hypot_p.def_frontend("hypot")(lambda input, other: F.binary("hypot", input, other))
fmax_p.def_frontend("fmax")(lambda input, other: F.binary("fmax", input, other))
fmin_p.def_frontend("fmin")(lambda input, other: F.binary("fmin", input, other))
xlogy_p.def_frontend("xlogy")(lambda input, other: float_binary("xlogy", input, other))
nextafter_p.def_frontend("nextafter")(lambda input, other: F.binary("nextafter", input, other))


# ---------------------------------------------------------------------- bitwise
def _integral(name):
    def rule(dtypes, **_):
        d = same_dtype(name)(dtypes)
        if d.is_floating_point:
            raise DTypeError(f"{name} is defined for integer and bool tensors, got {d!r}; for a mask compare "
                             f"first (x > 0), or convert with .long()")
        return d
    return rule


bitwise_and_p = _binary("bitwise_and", lambda xp, a, b: xp.bitwise_and(a, b), _integral("bitwise_and"), diff=False)
bitwise_or_p = _binary("bitwise_or", lambda xp, a, b: xp.bitwise_or(a, b), _integral("bitwise_or"), diff=False)
bitwise_xor_p = _binary("bitwise_xor", lambda xp, a, b: xp.bitwise_xor(a, b), _integral("bitwise_xor"), diff=False)
bitwise_not_p = primitive("bitwise_not", "unary", 1, elementwise_shape("bitwise_not"), _integral("bitwise_not"),
                          lambda xp, x: xp.invert(x), diff=False)
for _p in (bitwise_and_p, bitwise_or_p, bitwise_xor_p):
    _p.def_frontend(_p.name)(lambda input, other, _p=_p: F.binary(_p.name, input, other))
bitwise_not_p.def_frontend("bitwise_not")(lambda input: bitwise_not_p.bind(input))


def _is_bool(x):
    return x.dtype is D.bool_ if isinstance(x, Value) else isinstance(x, (bool, np.bool_))


def _operator(logical, bitwise):
    """&, | and ^: on two bools the logical primitive (the same values, and the op every backend
    fuses for masks); on integers the bitwise one; floats are refused, as in PyTorch."""
    def op(input, other):
        if not all(isinstance(v, (Value, int, float, bool, np.number, np.bool_)) for v in (input, other)):
            return NotImplemented
        return F.binary(logical if _is_bool(input) and _is_bool(other) else bitwise, input, other)
    return op


for _prim, _logical, _dunder in ((bitwise_and_p, "logical_and", "and"), (bitwise_or_p, "logical_or", "or"),
                                 (bitwise_xor_p, "ne", "xor")):
    _fn = _operator(_logical, _prim.name)
    _prim.def_frontend(f"__{_dunder}__", function=False)(_fn)
    _prim.def_frontend(f"__r{_dunder}__", function=False)(lambda input, other, _fn=_fn: _fn(other, input))
