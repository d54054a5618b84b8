"""Elementwise primitives: unary, binary, comparisons, where and cast. Binary operands share a
dtype (the frontend inserts casts) and broadcast NumPy-style; autograd sums gradients back to
each operand's shape."""
import math

import numpy as np

from .. import dtypes as D
from ..dispatch import Value
from ..errors import DTypeError, ValueRangeError
from . import frontend as F
from .index import check_values
from .primitive import primitive
from .rules import elementwise_shape, floating, same_dtype


def _unary(name, kernel, saves=(), amp="follow", float_only=True):
    dtype = floating(name) if float_only else same_dtype(name)
    return primitive(name, "unary", 1, elementwise_shape(name), dtype, kernel, saves=saves, amp=amp)


def _sigmoid(xp, x):
    # 1 / (1 + exp(-x)) keeps its relative precision in the negative tail, where 0.5 * (1 + tanh(x / 2))
    # cancels to 0 (log(sigmoid(-20)) must be -20); exp's overflow gives the 0 it should. float16
    # is computed in float32, as PyTorch does.
    h = x.astype(xp.float32) if x.dtype == xp.float16 else x
    one = h.dtype.type(1)
    return (one / (one + xp.exp(-h))).astype(x.dtype, copy=False)


# On NumPy: a rational approximation of erf (|error| < 1e-7 on float32) for float16/float32, and
# the correctly rounded libm erf for float64 so that float64 gradient checks are exact.
_ERF_P = (-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06, -5.69250639462346e-05,
          -7.34990630326855e-04, -2.95459980854025e-03, -1.60960333262415e-02)
_ERF_Q = (-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03, -7.37332916720468e-03,
          -1.42647390514189e-02)
_erf64 = np.vectorize(math.erf, otypes=[np.float64])


def _erf(xp, x):
    if xp is not np:
        # On CuPy, CUDA's erf (cupyx.scipy.special.erf): the device function the generated CUDA
        # kernels call, so eager and compiled agree; one kernel, no copy to the host and back.
        # float16 is computed in float32 as those kernels do (CuPy's float16 loop gives float64).
        from cupyx.scipy import special
        return special.erf(x.astype(np.float32)).astype(np.float16) if x.dtype == np.float16 else special.erf(x)
    if x.dtype == np.float64:
        return _erf64(x)
    xc = xp.clip(x, -4.0, 4.0, dtype=np.float32)
    x2 = xc * xc
    p = x2 * np.float32(_ERF_P[0]) + np.float32(_ERF_P[1])
    for c in _ERF_P[2:]:  # Horner steps in place: no temporary per step
        p *= x2
        p += np.float32(c)
    q = x2 * np.float32(_ERF_Q[0]) + np.float32(_ERF_Q[1])
    for c in _ERF_Q[2:]:
        q *= x2
        q += np.float32(c)
    p *= xc
    p /= q
    return p.astype(x.dtype, copy=False)


neg_p = _unary("neg", lambda xp, x: xp.negative(x), float_only=False)
exp_p = _unary("exp", lambda xp, x: xp.exp(x), saves=("out",), amp="fp32")
log_p = _unary("log", lambda xp, x: xp.log(x), saves=(0,), amp="fp32")
sqrt_p = _unary("sqrt", lambda xp, x: xp.sqrt(x), saves=("out",))
tanh_p = _unary("tanh", lambda xp, x: xp.tanh(x), saves=("out",))
sigmoid_p = _unary("sigmoid", _sigmoid, saves=("out",))
abs_p = _unary("abs", lambda xp, x: xp.abs(x), saves=(0,), float_only=False)
def _sign(xp, x):
    # PyTorch's sign(nan) is 0 (NumPy's is nan): (x > 0) - (x < 0) gives that for every dtype.
    if x.dtype.kind == "b":
        return x.copy()
    return (x > 0).astype(x.dtype) - (x < 0).astype(x.dtype)


sign_p = _unary("sign", _sign, float_only=False)
erf_p = _unary("erf", _erf, saves=(0,))
sin_p = _unary("sin", lambda xp, x: xp.sin(x), saves=(0,))
cos_p = _unary("cos", lambda xp, x: xp.cos(x), saves=(0,))

neg_p.def_vjp(lambda ctx, g: (-g,))
exp_p.def_vjp(lambda ctx, g: (g * ctx.out,))
log_p.def_vjp(lambda ctx, g: (g / ctx.inputs[0],))
sqrt_p.def_vjp(lambda ctx, g: (g / (ctx.out * 2.0),))
tanh_p.def_vjp(lambda ctx, g: (g * (1.0 - ctx.out * ctx.out),))
sigmoid_p.def_vjp(lambda ctx, g: (g * (ctx.out * (1.0 - ctx.out)),))
abs_p.def_vjp(lambda ctx, g: (g * ctx.inputs[0].sign(),))
sign_p.def_vjp(lambda ctx, g: (F.zeros_like(g),))
erf_p.def_vjp(lambda ctx, g: (g * ((-ctx.inputs[0] * ctx.inputs[0]).exp() * (2.0 / math.sqrt(math.pi))),))
sin_p.def_vjp(lambda ctx, g: (g * ctx.inputs[0].cos(),))
cos_p.def_vjp(lambda ctx, g: (-(g * ctx.inputs[0].sin()),))

def _integral(name, fn):
    # integers are already whole: floor, ceil, round and trunc leave them (and their dtype) as they are
    return _unary(name, lambda xp, x: x.copy() if x.dtype.kind in "iub" else fn(xp, x), float_only=False)


floor_p = _integral("floor", lambda xp, x: xp.floor(x))
ceil_p = _integral("ceil", lambda xp, x: xp.ceil(x))
round_p = _integral("round", lambda xp, x: xp.rint(x))  # half to even, as torch.round
trunc_p = _integral("trunc", lambda xp, x: xp.trunc(x))
for _p in (floor_p, ceil_p, round_p, trunc_p):
    _p.def_vjp(lambda ctx, g: (F.zeros_like(g),))  # piecewise constant: zero gradient, as in PyTorch



def _binary(name, kernel, saves=(), amp="follow"):
    return primitive(name, "binary", 2, elementwise_shape(name), same_dtype(name), kernel, saves=saves, amp=amp)


add_p = _binary("add", lambda xp, a, b: xp.add(a, b))
# sub runs in float32 under autocast: a difference of close float16 values cancels (mse_loss's
# input - target, a normalisation's x - mean); PyTorch's autocast lists rsub and mse_loss as float32.
sub_p = _binary("sub", lambda xp, a, b: xp.subtract(a, b), amp="fp32")
mul_p = _binary("mul", lambda xp, a, b: xp.multiply(a, b), saves=(0, 1))
div_p = _binary("div", lambda xp, a, b: xp.divide(a, b), saves=(0, 1))


def _power(xp, a, b):
    """a ** b; an integer to a negative integer power is PyTorch's: 1 ** n is 1, (-1) ** n is +-1,
    anything else 0 (NumPy raises instead)."""
    a, b = xp.asarray(a), xp.asarray(b)
    if b.dtype.kind not in "biu" or a.dtype.kind not in "biu":
        return xp.power(a, b)
    negative = b < 0
    if not negative.any():
        return xp.power(a, b)
    r = xp.power(a, xp.where(negative, 0, b))
    odd = (b % 2).astype(r.dtype)
    return xp.where(negative, xp.where(a == 1, 1, xp.where(a == -1, 1 - 2 * odd, 0)).astype(r.dtype), r)


pow_p = _binary("pow", _power, saves=(0, 1, "out"), amp="fp32")
floor_divide_p = _binary("floor_divide", lambda xp, a, b: xp.floor_divide(a, b))
remainder_p = _binary("remainder", lambda xp, a, b: xp.remainder(a, b), saves=(0, 1))  # the sign of b, as Python's %
maximum_p = _binary("maximum", lambda xp, a, b: xp.maximum(a, b), saves=(0, 1))
minimum_p = _binary("minimum", lambda xp, a, b: xp.minimum(a, b), saves=(0, 1))

add_p.def_vjp(lambda ctx, g: (g, g))
sub_p.def_vjp(lambda ctx, g: (g, -g if ctx.needs[1] else None))
# Each operand's gradient reads the other operand: keep only what a wanted gradient needs (so
# y[k] = y[k] * 3 does not hold the old y[k] when y needs no gradient through the factor).
mul_p.saves_for = lambda needs: frozenset(i for i, other in ((0, 1), (1, 0)) if needs[other])
mul_p.def_vjp(lambda ctx, g: (g * ctx.inputs[1] if ctx.needs[0] else None,
                              g * ctx.inputs[0] if ctx.needs[1] else None))


# The divisor always, the dividend only for the divisor's gradient; never the result, as PyTorch:
# an in-place edit of a quotient (SimCLR's sim.masked_fill_ on a cosine similarity) is allowed.
div_p.saves_for = lambda needs: frozenset((0, 1) if needs[1] else (1,))


@div_p.def_vjp
def _div_vjp(ctx, g):
    ga = g / ctx.inputs[1]
    return ga, (-(ga * ctx.inputs[0] / ctx.inputs[1]) if ctx.needs[1] else None)


@pow_p.def_vjp
def _pow_vjp(ctx, g):
    a, b = ctx.inputs
    # Where b == 0 the gradient is 0 (PyTorch's rule), also at a = 0, inf or NaN (0 * inf would be NaN)
    ga = F.where(b == 0, 0.0, g * b * a ** F.where(b == 0, 1.0, b - 1.0)) if ctx.needs[0] else None
    # d/db a**b = a**b log a: 0 where a == 0 and b >= 0, NaN for a negative base (PyTorch's rule).
    gb = g * F.where((a == 0) & (b >= 0), 0.0, ctx.out * a.log()) if ctx.needs[1] else None
    return ga, gb


floor_divide_p.def_vjp(lambda ctx, g: (F.zeros_like(g), F.zeros_like(g)))


@remainder_p.def_vjp
def _remainder_vjp(ctx, g):
    a, b = ctx.inputs
    return g, (-(g * floor_divide_p.bind(a, b)) if ctx.needs[1] else None)


def _minmax_vjp(ctx, g, first_wins):
    # Ties split the gradient evenly between the operands, and a NaN comparison (neither wins nor
    # ties) gives each operand the whole gradient, as PyTorch does.
    a, b = ctx.inputs
    a_loses, b_loses = (a < b, a > b) if first_wins else (a > b, a < b)
    tie = a == b

    def share(loses):
        return F.where(loses, 0.0, F.where(tie, 0.5, 1.0)).to(g.dtype)
    return (g * share(a_loses) if ctx.needs[0] else None, g * share(b_loses) if ctx.needs[1] else None)


maximum_p.def_vjp(lambda ctx, g: _minmax_vjp(ctx, g, True))
minimum_p.def_vjp(lambda ctx, g: _minmax_vjp(ctx, g, False))


def _compare(name, kernel):
    rule = same_dtype(name)
    return primitive(name, "compare", 2, elementwise_shape(name),
                     lambda dts, **_: (rule(dts), D.bool_)[1], kernel, diff=False)


lt_p = _compare("lt", lambda xp, a, b: xp.less(a, b))
le_p = _compare("le", lambda xp, a, b: xp.less_equal(a, b))
gt_p = _compare("gt", lambda xp, a, b: xp.greater(a, b))
ge_p = _compare("ge", lambda xp, a, b: xp.greater_equal(a, b))
eq_p = _compare("eq", lambda xp, a, b: xp.equal(a, b))
ne_p = _compare("ne", lambda xp, a, b: xp.not_equal(a, b))
logical_and_p = _compare("logical_and", lambda xp, a, b: xp.logical_and(a, b))
logical_or_p = _compare("logical_or", lambda xp, a, b: xp.logical_or(a, b))
logical_not_p = primitive("logical_not", "unary", 1, elementwise_shape("logical_not"),
                          lambda dts, **_: D.bool_, lambda xp, x: xp.logical_not(x), diff=False)


def _where_dtype(dtypes, **_):
    if dtypes[0] is not D.bool_:
        raise DTypeError(f"where: condition must be bool, got {dtypes[0]!r}; compare first, e.g. x > 0")
    return same_dtype("where")(dtypes[1:])


where_p = primitive("where", "ternary", 3, elementwise_shape("where"), _where_dtype,
                    lambda xp, c, a, b: xp.where(c, a, b), saves=(0,))


@where_p.def_vjp
def _where_vjp(ctx, g):
    c = ctx.inputs[0]
    zero = F.scalar(0, g.dtype, g.device)
    return (None, F.where(c, g, zero) if ctx.needs[1] else None, F.where(c, zero, g) if ctx.needs[2] else None)


def _cast_kernel(xp, x, dtype):
    return x.astype(D.ALL[dtype].np, copy=False)


cast_p = primitive("cast", "cast", 1, lambda shapes, dtype: shapes[0],
                   lambda dtypes, dtype: D.ALL[dtype], _cast_kernel)


@cast_p.def_vjp
def _cast_vjp(ctx, g):
    src = ctx.dtypes[0]
    return (g.to(src) if src.is_floating_point else None,)


# ---------------------------------------------------------------------- public names
def float_unary(prim):
    """The frontend of a float primitive: integer and bool inputs become the default float first."""
    def fn(input):
        return prim.bind(input if input.dtype.is_floating_point else F.cast(input, D.default_float))
    fn.__name__ = prim.name
    return fn


for _p in (exp_p, log_p, sqrt_p, tanh_p, sigmoid_p, erf_p, sin_p, cos_p):
    _p.def_frontend(_p.name)(float_unary(_p))
for _p, _aliases in ((abs_p, ("absolute",)), (sign_p, ()), (logical_not_p, ()), (floor_p, ()), (ceil_p, ()),
                     (trunc_p, ("fix",))):
    _p.def_frontend(_p.name, *_aliases)(lambda input, _p=_p: _p.bind(input))


@neg_p.def_frontend("neg", "negative", "__neg__")
def neg(input):
    if input.dtype is D.bool_:
        raise DTypeError("negation of a bool tensor is not defined; use logical_not() or ~")
    return neg_p.bind(input)


def _binary_names(prim, names, reflected=()):
    prim.def_frontend(*names)(lambda input, other: F.binary(prim.name, input, other))
    if reflected:
        prim.def_frontend(*reflected, function=False)(lambda input, other: F.binary(prim.name, other, input))


_binary_names(add_p, ("__add__",), ("__radd__",))
_binary_names(sub_p, ("__sub__",), ("__rsub__",))
_binary_names(mul_p, ("mul", "multiply", "__mul__"), ("__rmul__",))
_binary_names(div_p, ("true_divide", "__truediv__"))


@div_p.def_frontend("__rtruediv__", function=False)
def _rtruediv(input, other):
    """c / x is PyTorch's x.reciprocal() * c (it can differ from a true division in the last bit)."""
    weak = getattr(other, "gradc_weak_scalar", None) is not None   # (a traced float argument)
    if weak or isinstance(other, (int, float)) and not isinstance(other, bool) and other != 1:
        return F.binary("mul", F.binary("div", 1.0, input), other)
    return F.binary("div", other, input)


def _scaled(name, input, other, alpha):
    """other * alpha for add/sub's alpha= (PyTorch refuses a float alpha with integer operands)."""
    if alpha == 1:
        return other
    ints = all(not isinstance(t, float) and getattr(t, "dtype", D.int64).category < 2 for t in (input, other))
    if ints and isinstance(alpha, float):
        raise DTypeError(f"{name}: alpha={alpha} is a float, but the operands are integers; pass an integer alpha "
                         "or cast the operands to float first")
    return F.binary("mul", other, alpha) if isinstance(other, Value) else other * alpha


@add_p.def_frontend("add")
def add(input, other, *, alpha=1):
    return F.binary("add", input, _scaled("add", input, other, alpha))


@sub_p.def_frontend("sub", "subtract")
def sub(input, other, *, alpha=1):
    return F.binary("sub", input, _scaled("sub", input, other, alpha))


@div_p.def_frontend("div", "divide")
def div(input, other, *, rounding_mode=None):
    """True division (a float result, also for integers); rounding_mode 'floor' rounds the quotient
    down (floor_divide) and 'trunc' toward zero, keeping integer operands integer, as in PyTorch."""
    if rounding_mode is None:
        return F.binary("div", input, other)
    if rounding_mode == "floor":
        return _integer_division("floor_divide", input, other)
    if rounding_mode != "trunc":
        raise ValueError(f"div: rounding_mode must be None, 'trunc' or 'floor', got {rounding_mode!r}")
    q = _integer_division("floor_divide", input, other)
    if q.dtype.category >= 2:
        return trunc_p.bind(F.binary("div", input, other))
    # an inexact negative quotient rounds toward zero: one above its floor
    up = F.binary("logical_and", F.binary("ne", F.binary("remainder", input, other), 0), F.binary("lt", q, 0))
    return F.binary("add", q, F.cast(up, q.dtype))
_binary_names(maximum_p, ("maximum",))


def _integer_division(name, a, b):
    """a // b or a % b; integer division by zero raises (ZeroDivisionError in PyTorch), here a
    ValueRangeError, eagerly and when a compiled program runs, instead of a silent 0."""
    out = F.binary(name, a, b)
    if out.dtype.category >= 2:
        return out
    if not isinstance(b, Value):
        if b == 0:
            raise ValueRangeError(f"{name}: integer division by zero; divide as floats (x.float()) for inf/nan")
        return out
    return check_values(F.binary("eq", b, 0), f"{name}: integer division by zero (the divisor holds a 0); "
                        "divide as floats (x.float()) for inf/nan, or mask the zeros first", out)


floor_divide_p.def_frontend("floor_divide", "__floordiv__")(lambda input, other: _integer_division(
    "floor_divide", input, other))
floor_divide_p.def_frontend("__rfloordiv__", function=False)(lambda input, other: _integer_division(
    "floor_divide", other, input))
remainder_p.def_frontend("remainder", "__mod__")(lambda input, other: _integer_division("remainder", input, other))
remainder_p.def_frontend("__rmod__", function=False)(lambda input, other: _integer_division(
    "remainder", other, input))


@round_p.def_frontend("round")
def round(input, decimals=0):
    if decimals == 0:
        return round_p.bind(input)
    scale = 10.0 ** decimals
    return round_p.bind(input * scale) / scale
_binary_names(minimum_p, ("minimum",))
for _p in (lt_p, le_p, gt_p, ge_p):
    _binary_names(_p, (_p.name, f"__{_p.name}__"))
for _p in (eq_p, ne_p):
    _binary_names(_p, (_p.name,))


def _equality(prim):
    def op(input, other):
        # t == None, t != "name": not comparable elementwise, so Python's default applies (identity), as in PyTorch
        if other is None or isinstance(other, (str, bytes, dict, set, type, list, tuple)):
            return NotImplemented
        return F.binary(prim.name, input, other)
    return op


eq_p.def_frontend("__eq__", function=False)(_equality(eq_p))
ne_p.def_frontend("__ne__", function=False)(_equality(ne_p))
_binary_names(logical_and_p, ("logical_and",))   # &, | and ^ are gradc.ops.special's (bool or bitwise)
_binary_names(logical_or_p, ("logical_or",))
_binary_names(pow_p, (), ("__rpow__",))


@pow_p.def_frontend("pow", "__pow__")
def pow(input, exponent):
    if not isinstance(input, Value):   # gradc.pow(2.0, t): a Python number as the base
        return F.binary("pow", input, exponent)
    if (isinstance(exponent, (int, float)) and not isinstance(exponent, bool) and exponent == 2
            and D.promote_weak(input.dtype, exponent) is input.dtype):  # int ** 2.0 is float, bool ** 2 int
        return input * input
    if input.dtype.category < 2 and isinstance(exponent, (int, np.integer)) and exponent < 0:
        raise ValueRangeError("integers to negative integer powers are not allowed; use x.float() ** n")
    return F.binary("pow", input, exponent)


@where_p.def_frontend("where", method=False)
def where(condition, input=None, other=None):
    """input where condition holds, other elsewhere; where(condition) alone is
    condition.nonzero(as_tuple=True), as in PyTorch."""
    if input is None and other is None:
        return condition.nonzero(as_tuple=True)
    if input is None or other is None:
        raise DTypeError("where: give both input and other (or neither, for the indices where condition holds)")
    return F.where(condition, input, other)
# Tensor.where(condition, other) is where(condition, self, other), as in PyTorch.
where_p.def_frontend("where", function=False)(lambda input, condition, other: F.where(condition, input, other))
