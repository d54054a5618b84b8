"""Elementwise math functions made of primitives (composites): digamma, erfinv, logit,
logaddexp/logaddexp2, sinc, frac, heaviside, sgn, deg2rad/rad2deg, float_power, logical_xor and
ldexp. Autodiff, fusion and every backend cover them through their primitives; where PyTorch's
gradient is a rule (logit's clamp, sinc at 0) the formula gives that rule. Names, signatures,
dtypes and NaN/inf/-0.0 results are PyTorch's."""
import math

from .. import dtypes as D
from ..dispatch import Value
from ..errors import DTypeError
from . import frontend as F

export = F.export


def _float(x):
    """x itself when floating, else x as the default float (PyTorch's int-to-float promotion)."""
    return x if x.dtype.is_floating_point else F.cast(x, D.default_float)


def _computed_wide(fn):
    """fn evaluated in float32 for float16/bfloat16 input and rounded back (its polynomials and
    sums lose too much in half precision), in the input's own dtype otherwise."""
    def wrapped(input):
        x = _float(input)
        if x.dtype.itemsize >= 4:
            return fn(x)
        return F.cast(fn(F.cast(x, D.float32)), x.dtype)
    wrapped.__name__, wrapped.__doc__ = fn.__name__, fn.__doc__
    return wrapped


def _require_float(name, *xs):
    for x in xs:
        if isinstance(x, Value) and not x.dtype.is_floating_point:
            raise DTypeError(f"{name} is defined for floating-point tensors, got {x.dtype!r}; convert with .float()")


def _pair(name, input, other):
    """Two operands as tensors of their promoted floating dtype (integers become the default float)."""
    ti, to = isinstance(input, Value), isinstance(other, Value)
    if not (ti or to):
        raise DTypeError(f"{name}: expected at least one tensor operand")
    t = input if ti else other
    dtype = F.promote_tensors(input, other) if ti and to else D.promote_weak(t.dtype, other if ti else input)
    dtype = dtype if dtype.is_floating_point else D.default_float
    return F.as_operand(input, dtype, t), F.as_operand(other, dtype, t)


# ---------------------------------------------------------------------- special functions
# digamma: psi(x) = psi(x + n) - sum_k 1 / (x + k), the asymptotic series at x + n >= 6.5 (terms to
# y^-14: |error| < 1e-13 in float64), and the reflection psi(x) = psi(1 - x) - pi / tan(pi x) below
# 1/2, with tan's argument reduced to the fractional part so large negative x keeps its accuracy.
_SHIFT = 6
_PSI_SERIES = (1 / 12, 1 / 120, 1 / 252, 1 / 240, 1 / 132, 691 / 32760, 1 / 12)


@export("digamma")
@_computed_wide
def digamma(x):
    reflect = x < 0.5
    z = F.where(reflect, 1.0 - x, x)
    total = 1.0 / z
    for k in range(1, _SHIFT):
        total = total + 1.0 / (z + float(k))
    y = z + float(_SHIFT)
    r = 1.0 / (y * y)
    poly = _PSI_SERIES[-1] * r
    for c in reversed(_PSI_SERIES[:-1]):
        poly = (c - poly) * r
    psi = y.log() - 0.5 / y - poly - total
    # the sign of a zero decides the pole's side: digamma(0.0) = -inf, digamma(-0.0) = +inf
    whole = x == x.trunc()
    frac = F.where(whole, x, x - x.trunc())
    psi = F.where(reflect, psi - math.pi / (frac * math.pi).tan(), psi)
    return F.where((x < 0) & whole, math.nan, psi)   # the poles at -1, -2, ... (and -inf): NaN


# erfinv: a single-precision approximation (a polynomial in w = -log(1 - x^2), two branches), then
# in float64 Newton steps (_erfinv_refined).
_ERFINV_CENTRAL = (2.81022636e-08, 3.43273939e-07, -3.5233877e-06, -4.39150654e-06, 0.00021858087,
                   -0.00125372503, -0.00417768164, 0.246640727, 1.50140941)
_ERFINV_TAIL = (-0.000200214257, 0.000100950558, 0.00134934322, -0.00367342844, 0.00573950773,
                -0.0076224613, 0.00943887047, 1.00167406, 2.83297682)


def _horner(coefs, w):
    p = w * coefs[0] + coefs[1]
    for c in coefs[2:]:
        p = p * w + c
    return p


def _erfinv_refined(x, y):
    """Newton steps from the approximation y: on erf(y) = x where |x| < 1/2, and in the tails on
    log(erfc(|y|)) = log(1 - |x|) (1 - |x| is exact there and erfc keeps its relative precision
    where erf rounds to 1; the log makes the function nearly quadratic, so steps converge fast)."""
    two_over_sqrt_pi = 2.0 / math.sqrt(math.pi)
    central = y
    for _ in range(2):
        central = central - (central.erf() - x) / ((-central * central).exp() * two_over_sqrt_pi)
    a = x.abs()
    tail_target = (1.0 - F.where(a < 0.5, 0.5, a)).log()
    u = y.abs()
    for _ in range(4):
        e = u.erfc()
        u = u + (e.log() - tail_target) * e / ((-u * u).exp() * two_over_sqrt_pi)
    return F.where(a < 0.5, central, x.detach().sign() * u)


@export("erfinv")
@_computed_wide
def erfinv(x):
    w = -((1.0 - x) * (1.0 + x)).log()
    central = w < 5.0
    wc = F.where(central, w, 5.0) - 2.5
    wt = F.where(central, 5.0, w).sqrt() - 3.0
    y = F.where(central, _horner(_ERFINV_CENTRAL, wc), _horner(_ERFINV_TAIL, wt)) * x
    if x.dtype is D.float64:
        y = _erfinv_refined(x, y)
    edge = x.abs() == 1.0
    return F.where(edge, x.detach() * math.inf, y)   # +-1: +-inf (no gradient path through the constant)


@export("logit")
def logit(input, eps=None):
    x = _float(input)
    if eps is not None:
        x = x.clamp(eps, 1.0 - eps)
    return (x / (1.0 - x)).log()


def _logaddexp(name, input, other, log1p_of_exp, scale):
    _require_float(name, input, other)
    a, b = _pair(name, input, other)
    out = F.binary("maximum", a, b) + log1p_of_exp(-(a - b).abs()) * scale
    return F.where(a.isinf() & (a == b), a, out)   # equal infinities: inf - inf would be NaN


export("logaddexp")(lambda input, other: _logaddexp("logaddexp", input, other, lambda d: d.exp().log1p(), 1.0))
export("logaddexp2")(lambda input, other: _logaddexp("logaddexp2", input, other, lambda d: d.exp2().log1p(),
                                                     1.0 / math.log(2.0)))


@export("sinc")
def sinc(input):
    """sin(pi x) / (pi x), 1 at 0. Where |pi x| < 0.01 the Taylor polynomial 1 - t/6 + t^2/120
    (t = (pi x)^2, truncation below 3e-16) replaces the quotient: every derivative is right at 0
    (the quotient's would be 0/0) and the quotient never sees 0."""
    x = _float(input)
    px = x * math.pi
    small = px.abs() < 0.01
    t = px * px
    safe = F.where(small, 1.0, px)
    return F.where(small, 1.0 - t * (1.0 / 6.0) * (1.0 - t * (1.0 / 20.0)), safe.sin() / safe)


@export("frac")
def frac(input):
    _require_float("frac", input)
    return input - input.trunc()


@export("heaviside")
def heaviside(input, values):
    """0 where input < 0 (and NaN), values where input == 0, 1 where input > 0. No gradient, as in
    PyTorch (whose backward refuses it)."""
    if not isinstance(values, Value):
        raise DTypeError(f"heaviside: values must be a tensor, got {type(values).__name__}; "
                         f"use gradc.tensor({values!r})")
    if values.dtype is not input.dtype:
        raise DTypeError(f"heaviside: input is {input.dtype!r} and values {values.dtype!r}; they must have one "
                         f"dtype, e.g. values.to(input.dtype)")
    x = input.detach()
    return F.where(x == 0, values.detach(), F.cast(x > 0, x.dtype))


export("sgn")(lambda input: input.sign())   # real tensors: sign (sgn(-0.0) is 0.0, sgn(NaN) 0)
export("deg2rad")(lambda input: _float(input) * (math.pi / 180.0))
export("rad2deg")(lambda input: _float(input) * (180.0 / math.pi))


@export("float_power")
def float_power(input, exponent):
    """input ** exponent computed in float64 (the result is float64 whatever the inputs)."""
    def wide(v):
        return F.cast(v, D.float64) if isinstance(v, Value) else float(v)
    base = wide(input)
    if not isinstance(base, Value):
        return F.binary("pow", base, wide(exponent))
    return base ** wide(exponent)


@export("logical_xor")
def logical_xor(input, other):
    def truth(v):
        if isinstance(v, Value):
            return v if v.dtype is D.bool_ else v != 0
        return bool(v)
    return F.binary("ne", truth(input), truth(other))


@export("ldexp")
def ldexp(input, other):
    """input * 2 ** other; an integer exponent takes the float dtype of input (float16 stays float16)."""
    if isinstance(other, Value) and not other.dtype.is_floating_point:
        dtype = input.dtype if input.dtype.is_floating_point else D.default_float
        return F.cast(input, dtype) * (2.0 ** F.cast(other, dtype))
    return input * (2.0 ** other)
