"""The op database: one row (`OpInfo`) per public op, in the pattern of PyTorch's OpInfo.

Each row names an op, gives `fn(*tensors, **kwargs)` applying it through the public gradc API,
deterministic sample inputs, which arguments are differentiable, a NumPy reference and (where
PyTorch has the op) the torch equivalent. Test files iterate the rows: forward values against
NumPy (test_ops), float64 gradient checks (test_gradcheck), parity with PyTorch
(test_torch_parity), and the compiler's eager-vs-compiled tests. A new op is tested by adding
its row.

Conventions a consumer can rely on:
- `Sample.args` are NumPy arrays. Floating arrays are generated in float64 and take the dtype
  under test (`Sample.arrays(dtype)` / `Sample.tensors(dtype)`); int64 and bool arrays keep
  their dtype. Everything else a sample needs (dims, shapes, Python scalars, index keys) is in
  `Sample.kwargs`, fixed per sample, so `fn` is a pure function of its tensor arguments.
- Values sit in safe domains: log/sqrt of positives, pow with positive bases, denominators
  away from 0, no ties for max/min/maximum/clamp/relu except in samples marked `grad=False`.
- `ref(*float64_arrays, **kwargs)` returns an array or a tuple of arrays. The expected gradc
  dtype of each output is `OpInfo.expected_dtype(sample, dtype, ref_output)`.
- `torch_fn(*torch_tensors, **kwargs)` takes the same kwargs. torch is imported lazily.
"""
import dataclasses
import math
import operator
import zlib
from typing import Callable, Optional

import numpy as np

import gradc
import gradc.nn.functional as F

FLOAT_DTYPES = ("float32", "float64")


def _torch():
    import torch
    return torch


def _tF():
    import torch.nn.functional as tF
    return tF


# ---------------------------------------------------------------------------- the row types
@dataclasses.dataclass
class Sample:
    args: tuple
    kwargs: dict = dataclasses.field(default_factory=dict)
    desc: str = ""
    grad: bool = True           # run the finite-difference gradcheck (False: ties, kinks)
    torch_grad: bool = True     # compare gradients with PyTorch (False: a documented difference)
    gradcheck_kw: dict = dataclasses.field(default_factory=dict)   # eps/atol/rtol overrides
    out_dtype: Optional[str] = None   # expected output dtype when the default rule does not apply

    def has_float(self):
        return any(a.dtype.kind == "f" for a in self.args)

    def arrays(self, dtype="float64"):
        """The arguments as NumPy arrays, floating ones cast to `dtype`."""
        return tuple(a.astype(dtype) if a.dtype.kind == "f" else a.copy() for a in self.args)

    def tensors(self, dtype="float64", requires_grad=(), device=None):
        """The arguments as gradc tensors; the arg indices in `requires_grad` require grad."""
        return tuple(gradc.tensor(a, device=device, requires_grad=i in requires_grad)
                     for i, a in enumerate(self.arrays(dtype)))

    def ref_arrays(self, dtype="float64"):
        """The arguments as the reference sees them: cast to `dtype`, then floats widened to float64."""
        return tuple(a.astype(np.float64) if a.dtype.kind == "f" else a for a in self.arrays(dtype))

    def torch_tensors(self, dtype="float64", requires_grad=()):
        torch = _torch()
        return tuple(torch.tensor(a, requires_grad=i in requires_grad)
                     for i, a in enumerate(self.arrays(dtype)))

    def label(self):
        parts = [" ".join(_fmt(a) for a in self.args)]
        parts += [f"{k}={_fmt(v)}" for k, v in self.kwargs.items()] + [self.desc]
        return " ".join(p for p in parts if p)


@dataclasses.dataclass
class OpInfo:
    name: str
    fn: Callable
    sample_fn: Callable                      # sample_fn(rng) -> list[Sample]
    ref: Optional[Callable] = None           # NumPy reference
    torch_fn: Optional[Callable] = None      # PyTorch equivalent (same args and kwargs)
    grad_args: Optional[tuple] = None        # differentiable arg indices; None: every floating arg
    differentiable: bool = True
    dtypes: tuple = FLOAT_DTYPES
    tol: dict = dataclasses.field(default_factory=dict)    # {"float32": (rtol, atol), ...}
    torch_tol: dict = dataclasses.field(default_factory=dict)
    notes: str = ""

    def samples(self):
        rng = np.random.default_rng(zlib.crc32(self.name.encode()))
        return self.sample_fn(rng)

    def diff_args(self, sample):
        """Arg indices of `sample` that take a gradient."""
        if not self.differentiable:
            return ()
        idx = range(len(sample.args)) if self.grad_args is None else self.grad_args
        return tuple(i for i in idx if i < len(sample.args) and sample.args[i].dtype.kind == "f")

    def tolerance(self, dtype, torch=False):
        table = self.torch_tol if torch and self.torch_tol else self.tol
        return table.get(dtype, _DEFAULT_TOL[dtype])

    @staticmethod
    def expected_dtype(sample, dtype, ref_out):
        """The gradc dtype an output should have: float64 reference results mean "the floating
        dtype of the inputs" (the dtype under test, or float32 for integer inputs); any other
        reference dtype is expected exactly."""
        if sample.out_dtype is not None:
            return sample.out_dtype
        ref_out = np.asarray(ref_out)
        if ref_out.dtype == np.float64:
            return dtype if sample.has_float() else "float32"
        return ref_out.dtype.name


_DEFAULT_TOL = {"float32": (1e-5, 1e-5), "float64": (1e-10, 1e-12)}


def _fmt(v):
    if isinstance(v, np.ndarray):
        kind = {"i": "i", "b": "b"}.get(v.dtype.kind, "f")
        if v.dtype.kind in "ib" and v.size <= 4 and v.ndim <= 1:
            return kind + "{" + ",".join(str(int(x)) for x in v.ravel()) + "}"
        return kind + "[" + "x".join(map(str, v.shape)) + "]"
    if isinstance(v, slice):
        return ":".join("" if p is None else str(p) for p in (v.start, v.stop, v.step)).rstrip(":") or ":"
    if v is Ellipsis:
        return "..."
    if isinstance(v, tuple):
        return "(" + ",".join(_fmt(x) for x in v) + ")"
    if isinstance(v, list):
        return "[" + ",".join(_fmt(x) for x in v) + "]"
    return str(v)


# ---------------------------------------------------------------------------- value generators
def randn(rng, shape):
    return rng.standard_normal(shape)


def positive(rng, shape, lo=0.5, hi=2.0):
    return rng.uniform(lo, hi, shape)


def away0(rng, shape, lo=0.2, hi=2.0):
    """Values with |x| in [lo, hi]: no kinks of abs/sign/relu within finite-difference reach."""
    return rng.uniform(lo, hi, shape) * rng.choice([-1.0, 1.0], shape)


def distinct(rng, shape):
    """Pairwise distinct values at least 0.2 apart, so max/argmax are unique and stable."""
    n = int(np.prod(shape, dtype=np.int64))
    return ((rng.permutation(n) - n / 2) * 0.25 + rng.uniform(0, 0.05, n)).reshape(shape)


def ints(rng, shape, lo=-5, hi=6):
    return rng.integers(lo, hi, shape).astype(np.int64)


def bools(rng, shape):
    return rng.random(shape) < 0.5


def S(*args, **kwargs):
    """A sample; keyword arguments starting with `_` set Sample fields (e.g. _grad=False)."""
    fields = {k[1:]: kwargs.pop(k) for k in list(kwargs) if k.startswith("_")}
    return Sample(tuple(np.asarray(a) for a in args), kwargs, **fields)


def _axes(dim, ndim):
    """NumPy axis for a gradc/torch dim argument (None: all; 0-d tensors accept dim 0/-1)."""
    if dim is None or ndim == 0:
        return None
    dims = dim if isinstance(dim, (tuple, list)) else (dim,)
    return tuple(d % ndim for d in dims)


def _erf(x):
    return np.vectorize(math.erf, otypes=[np.float64])(x)


ROWS = []


def op(name, fn, sample_fn, **kw):
    row = OpInfo(name, fn, sample_fn, **kw)
    assert all(r.name != name for r in ROWS), name
    ROWS.append(row)
    return row


# ---------------------------------------------------------------------------- unary
# A non-scalar shape first: the CUDA and compiler tests lower each row's first sample, and only
# values with dims become generated kernels.
UNARY_SHAPES = ((2, 3, 4), (), (1,), (5,))


def _unary_samples(gen, int_gen=None):
    def samples(rng):
        out = [S(gen(rng, s)) for s in UNARY_SHAPES]
        if int_gen is not None:
            out.append(S(int_gen(rng, (2, 3))))
        return out
    return samples


def _pos_ints(rng, shape):
    return rng.integers(1, 6, shape).astype(np.int64)


def _small_ints(rng, shape):
    return rng.integers(-3, 4, shape).astype(np.int64)


def _unary(name, fn, gen, ref, torch_fn, int_gen=None, **kw):
    op(name, fn, _unary_samples(gen, int_gen), ref=ref, torch_fn=torch_fn, **kw)


_unary("neg", gradc.neg, randn, np.negative, lambda x: -x, ints)
_unary("exp", gradc.exp, randn, np.exp, lambda x: x.exp(), _small_ints)
_unary("log", gradc.log, positive, np.log, lambda x: x.log(), _pos_ints)
_unary("sqrt", gradc.sqrt, positive, np.sqrt, lambda x: x.sqrt(), _pos_ints)
_unary("rsqrt", gradc.rsqrt, positive, lambda x: 1.0 / np.sqrt(x), lambda x: x.rsqrt())
_unary("tanh", gradc.tanh, randn, np.tanh, lambda x: x.tanh())
_unary("sigmoid", gradc.sigmoid, randn, lambda x: 1.0 / (1.0 + np.exp(-x)), lambda x: x.sigmoid(), _small_ints)
_unary("abs", gradc.abs, away0, np.abs, lambda x: x.abs(), ints)
_unary("sign", gradc.sign, away0, np.sign, lambda x: x.sign(), ints)
_unary("erf", gradc.erf, randn, _erf, lambda x: x.erf(), tol={"float32": (1e-5, 2e-6), "float64": (1e-12, 1e-14)})
_unary("sin", gradc.sin, randn, np.sin, lambda x: x.sin(), _small_ints)
_unary("cos", gradc.cos, randn, np.cos, lambda x: x.cos())
_unary("square", gradc.square, randn, np.square, lambda x: x.square(), ints)
_unary("relu", gradc.relu, away0, lambda x: np.maximum(x, 0), lambda x: x.relu(), ints)
_unary("F.relu", F.relu, away0, lambda x: np.maximum(x, 0), lambda x: _tF().relu(x))
_unary("F.sigmoid", F.sigmoid, randn, lambda x: 1.0 / (1.0 + np.exp(-x)), lambda x: x.sigmoid())
_unary("F.tanh", F.tanh, randn, np.tanh, lambda x: x.tanh())
op("sigmoid_extreme", gradc.sigmoid, lambda rng: [S(np.array([-200.0, -30.0, 0.0, 30.0, 200.0]))],
   ref=lambda x: 1.0 / (1.0 + np.exp(-x)), torch_fn=lambda x: x.sigmoid(),
   notes="sigmoid must not overflow for large |x|")
op("logical_not", gradc.logical_not, lambda rng: [S(bools(rng, (3, 4))), S(np.array(True)), S(ints(rng, (5,)))],
   ref=np.logical_not, torch_fn=lambda x: x.logical_not(), differentiable=False)
op("invert", lambda x: ~x, lambda rng: [S(bools(rng, (3, 4))), S(bools(rng, ()))],
   ref=np.logical_not, torch_fn=lambda x: ~x, differentiable=False)
op("clamp", lambda x, **kw: gradc.clamp(x, **kw),
   lambda rng: [S(away0(rng, (3, 4)), min=-0.1, max=0.1), S(away0(rng, (5,)), min=0.1),
                S(away0(rng, (2, 3)), max=-0.1), S(away0(rng, ()), min=-0.1, max=0.1),
                S(ints(rng, (6,)), min=-2, max=2), S(ints(rng, (6,)), min=0.5)],
   ref=lambda x, min=None, max=None: np.clip(x, min, max), torch_fn=lambda x, **kw: x.clamp(**kw))
op("clip", lambda x, lo, hi: x.clip(lo, hi), lambda rng: [S(away0(rng, (4, 3)), lo=-0.1, hi=0.1)],
   ref=lambda x, lo, hi: np.clip(x, lo, hi), torch_fn=lambda x, lo, hi: x.clip(lo, hi))
op("dropout_eval", lambda x, p: F.dropout(x, p=p, training=False),
   lambda rng: [S(randn(rng, (3, 4)), p=0.5), S(randn(rng, ()), p=0.9)],
   ref=lambda x, p: x, torch_fn=lambda x, p: _tF().dropout(x, p=p, training=False))
op("gelu", lambda x, approximate="none": F.gelu(x, approximate=approximate),
   lambda rng: [S(randn(rng, s) * 2, approximate=a) for s in ((2, 3, 4), (), (5,)) for a in ("none", "tanh")],
   ref=lambda x, approximate="none": (
       0.5 * x * (1 + _erf(x / math.sqrt(2))) if approximate == "none"
       else 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))),
   torch_fn=lambda x, approximate="none": _tF().gelu(x, approximate=approximate),
   tol={"float32": (1e-5, 3e-6), "float64": (1e-10, 1e-12)})
op("cast", lambda x, dtype: x.to(getattr(gradc, dtype)),
   lambda rng: [
       S(randn(rng, (3, 4)), dtype="float64", _out_dtype="float64"),
       S(randn(rng, (3, 4)), dtype="float32", _out_dtype="float32",
         _gradcheck_kw=dict(eps=1e-2, atol=1e-4, rtol=1e-3)),   # float32 rounding needs a wide step
       S(away0(rng, (2, 5)) * 3, dtype="int64", _grad=False),    # truncation toward zero
       S(np.array([-1.5, 0.0, 0.25, 2.0]), dtype="bool", _grad=False),
       S(ints(rng, (4,)), dtype="float32"), S(ints(rng, (4,)), dtype="float64", _out_dtype="float64"),
       S(bools(rng, (2, 3)), dtype="float32"), S(ints(rng, (5,)), dtype="bool"),
       S(bools(rng, (4,)), dtype="int64")],
   ref=lambda x, dtype: x.astype(dtype), torch_fn=lambda x, dtype: x.to(getattr(_torch(), dtype)))
op("detach", lambda x: x.detach(), lambda rng: [S(randn(rng, (3,)))], ref=lambda x: x,
   torch_fn=lambda x: x.detach(), differentiable=False)
op("clone", lambda x: x.clone(), lambda rng: [S(randn(rng, (3, 2))), S(randn(rng, ()))], ref=lambda x: x.copy(),
   torch_fn=lambda x: x.clone())


# ---------------------------------------------------------------------------- binary
def _binop(f):
    """fn(a, b) on two tensors, or fn(a, scalar=s[, reverse=True]) with a Python scalar."""
    def fn(a, b=None, *, scalar=None, reverse=False):
        other = b if b is not None else scalar
        return f(other, a) if reverse else f(a, other)
    return fn


BINARY_SHAPES = (((3, 4), (3, 4)), ((3, 1), (1, 4)), ((2, 3, 4), (4,)), ((), (3,)), ((1,), (2, 3)), ((), ()),
                 ((2, 1, 3), (4, 1)))


def _binary_samples(gen_a, gen_b, scalars=(), int_pairs=True, rgen_a=None, rscalars=None):
    def samples(rng):
        out = [S(gen_a(rng, sa), gen_b(rng, sb)) for sa, sb in BINARY_SHAPES]
        out += [S(gen_a(rng, (3, 2)), scalar=s) for s in scalars]
        out += [S((rgen_a or gen_a)(rng, (3, 2)), scalar=s, reverse=True)
                for s in (scalars if rscalars is None else rscalars)]
        if int_pairs:
            out.append(S(_pos_ints(rng, (2, 3)), _pos_ints(rng, (3,))))
            out.append(S(ints(rng, (2, 3)), scalar=3))
            out.append(S(ints(rng, (4,)), scalar=2.5))
        return out
    return samples


def _binary(name, f, gen_a, gen_b, scalars=(2.5, 3), **kw):
    fn = _binop(f)
    kw.setdefault("ref", fn)
    kw.setdefault("torch_fn", fn)
    op(name, fn, _binary_samples(gen_a, gen_b, scalars, kw.pop("int_pairs", True), kw.pop("rgen_a", None),
                                 kw.pop("rscalars", None)), **kw)


_binary("add", operator.add, randn, randn)
_binary("sub", operator.sub, randn, randn)
_binary("mul", operator.mul, randn, randn)
_binary("div", operator.truediv, randn, away0, rgen_a=away0)
_binary("pow", operator.pow, positive, randn, scalars=(3, 0.5, -1.5, 2, 1.0), rscalars=(2.0, 0.5, 3), int_pairs=False,
        notes="tensor ** scalar, scalar ** tensor (reverse=True) and tensor ** tensor with positive bases")
op("pow_int", _binop(operator.pow), lambda rng: [S(_pos_ints(rng, (2, 3)), _pos_ints(rng, (3,))),
                                                  S(ints(rng, (4,)), scalar=2), S(ints(rng, (4,)), scalar=3),
                                                  S(ints(rng, (4,)), scalar=2.0),
                                                  S(bools(rng, (4,)), scalar=2, _out_dtype="int64"),
                                                  S(_pos_ints(rng, (3,)), scalar=2, reverse=True)],
   ref=_binop(operator.pow), torch_fn=_binop(operator.pow), differentiable=False,
   notes="int ** 2.0 is float32 and bool ** 2 is int64, as in PyTorch")
op("pow_zero", _binop(operator.pow),
   lambda rng: [S(np.array([0.0, 1.5, 0.0]), scalar=0), S(np.array([0.0, 2.0]), scalar=0.0),
                S(np.array([0.0, 0.0, 2.0]), scalar=2), S(np.array([0.0, 0.0, 2.0]), scalar=3),
                S(np.array([0.0, 0.0, 2.0, 0.5]), np.array([0.0, 2.0, 0.0, 0.0]), _grad=False,
                  _desc="d/db at a=0 is masked to 0")],
   ref=_binop(operator.pow), torch_fn=_binop(operator.pow),
   notes="zero bases: the gradient of a**0 is 0 (not 0 * inf), as in PyTorch")
op("add_method", lambda a, b: a.add(b), lambda rng: [S(randn(rng, (2, 3)), randn(rng, (3,)))],
   ref=np.add, torch_fn=lambda a, b: a.add(b))
op("sub_method", lambda a, b: gradc.sub(a, b), lambda rng: [S(randn(rng, (2, 3)), randn(rng, (3,)))],
   ref=np.subtract, torch_fn=lambda a, b: a.sub(b))
op("mul_method", lambda a, b: gradc.mul(a, b), lambda rng: [S(randn(rng, (2, 3)), randn(rng, (3,)))],
   ref=np.multiply, torch_fn=lambda a, b: a.mul(b))
op("div_method", lambda a, b: gradc.div(a, b), lambda rng: [S(randn(rng, (2, 3)), away0(rng, (3,)))],
   ref=np.divide, torch_fn=lambda a, b: a.div(b))


def _no_tie_pair(rng, shape_a, shape_b):
    # a - b is an integer plus 0.25: never 0, so no ties.
    return (rng.integers(-3, 3, shape_a) + 0.25, rng.integers(-3, 3, shape_b) - 0.0)


def _minmax_samples(rng):
    out = [S(*_no_tie_pair(rng, sa, sb)) for sa, sb in BINARY_SHAPES]
    tie = np.array([1.0, 2.0, -0.5, 3.0])
    out.append(S(tie, np.array([1.0, 1.5, -0.5, 3.5]), _grad=False, _desc="ties"))
    out.append(S(ints(rng, (2, 3)), ints(rng, (3,))))
    out.append(S(rng.integers(-3, 3, (3, 2)) + 0.25, scalar=0.5))
    return out


for _name, _np in (("maximum", np.maximum), ("minimum", np.minimum)):
    op(_name, _binop(getattr(gradc, _name)), _minmax_samples, ref=_binop(_np),
       torch_fn=_binop(lambda a, b, _n=_name: getattr(_torch(), _n)(
           a, b if isinstance(b, _torch().Tensor) else _torch().tensor(b, dtype=a.dtype))),
       notes="ties split the gradient evenly between the operands, as PyTorch does")


def _compare_samples(rng):
    def grid(rng, shape):  # values on a 0.5 grid: many exact ties
        return rng.integers(-2, 3, shape) * 0.5
    out = [S(grid(rng, sa), grid(rng, sb)) for sa, sb in BINARY_SHAPES]
    out += [S(grid(rng, (3, 4)), scalar=0.5), S(grid(rng, (3, 4)), scalar=0, reverse=True),
            S(ints(rng, (2, 3)), ints(rng, (3,))), S(ints(rng, (4,)), scalar=1),
            S(ints(rng, (4,)), scalar=0.5), S(ints(rng, (2, 3)), grid(rng, (2, 3)))]
    return out


for _name, _f in (("lt", operator.lt), ("le", operator.le), ("gt", operator.gt), ("ge", operator.ge),
                  ("eq", operator.eq), ("ne", operator.ne)):
    op(_name, _binop(_f), _compare_samples, ref=_binop(_f), torch_fn=_binop(_f), differentiable=False)
op("eq_method", lambda a, b: gradc.eq(a, b), lambda rng: [S(ints(rng, (3, 4)), ints(rng, (4,)))],
   ref=np.equal, torch_fn=lambda a, b: a.eq(b), differentiable=False)


def _logical_samples(rng):
    return [S(bools(rng, (3, 4)), bools(rng, (3, 4))), S(bools(rng, (3, 1)), bools(rng, (4,))),
            S(bools(rng, ()), bools(rng, (2, 2)))]


op("logical_and", lambda a, b: a & b, _logical_samples, ref=np.logical_and, torch_fn=lambda a, b: a & b,
   differentiable=False)
op("logical_or", lambda a, b: a | b, _logical_samples, ref=np.logical_or, torch_fn=lambda a, b: a | b,
   differentiable=False)


def _where_samples(rng):
    return [S(bools(rng, (3, 4)), randn(rng, (3, 4)), randn(rng, (3, 4))),
            S(bools(rng, (3, 1)), randn(rng, (1, 4)), randn(rng, ())),
            S(bools(rng, (2, 3, 4)), randn(rng, (4,)), randn(rng, (3, 1))),
            S(bools(rng, ()), randn(rng, (2,)), randn(rng, (2,))),
            S(bools(rng, (2, 3)), ints(rng, (2, 3)), ints(rng, (3,)))]


op("where", gradc.where, _where_samples, ref=np.where, torch_fn=lambda c, a, b: _torch().where(c, a, b),
   grad_args=(1, 2))
op("where_scalar", lambda c, x, other, swap=False: gradc.where(c, other, x) if swap else gradc.where(c, x, other),
   lambda rng: [S(bools(rng, (3, 4)), randn(rng, (3, 4)), other=0.0),
                S(bools(rng, (3, 1)), randn(rng, (4,)), other=1.5, swap=True),
                S(bools(rng, (4,)), ints(rng, (4,)), other=0),
                S(bools(rng, (4,)), ints(rng, (4,)), other=0.5)],
   ref=lambda c, x, other, swap=False: np.where(c, other, x) if swap else np.where(c, x, other),
   torch_fn=lambda c, x, other, swap=False: (_torch().where(c, other, x) if swap
                                             else _torch().where(c, x, other)),
   grad_args=(1,))


# ---------------------------------------------------------------------------- reductions
def _reduce_samples(gen, with_ints=False):
    def samples(rng):
        out = [S(gen(rng, (3, 4))), S(gen(rng, (3, 4)), dim=0), S(gen(rng, (3, 4)), dim=-1, keepdim=True),
               S(gen(rng, (2, 3, 4)), dim=(0, 2)), S(gen(rng, (2, 3, 4)), dim=(-1, -3), keepdim=True),
               S(gen(rng, (2, 3, 4)), dim=(0, 1, 2)), S(gen(rng, (2, 3, 4)), keepdim=True),
               S(gen(rng, ())), S(gen(rng, ()), dim=0), S(gen(rng, (1,)), dim=0), S(gen(rng, (5,)), dim=-1)]
        if with_ints:
            out += [S(ints(rng, (3, 4)), dim=1), S(bools(rng, (3, 4))), S(bools(rng, (3, 4)), dim=0, keepdim=True)]
        return out
    return samples


def _red(np_fn):
    return lambda x, dim=None, keepdim=False: np_fn(x, axis=_axes(dim, x.ndim), keepdims=keepdim)


op("sum", lambda x, dim=None, keepdim=False: gradc.sum(x, dim, keepdim), _reduce_samples(randn, True),
   ref=lambda x, dim=None, keepdim=False: np.sum(x, axis=_axes(dim, x.ndim), keepdims=keepdim,
                                                 dtype=np.int64 if x.dtype.kind in "bi" else None),
   torch_fn=lambda x, dim=None, keepdim=False: x.sum(dim, keepdim) if dim is not None else (
       x.sum().reshape((1,) * x.ndim) if keepdim else x.sum()))
op("sum_dtype", lambda x: x.sum(dtype=gradc.float64),
   lambda rng: [S(randn(rng, (3, 2)), _out_dtype="float64"), S(ints(rng, (4,)), _out_dtype="float64")],
   ref=lambda x: np.sum(x.astype(np.float64)), torch_fn=lambda x: x.sum(dtype=_torch().float64),
   notes="sum(dtype=) casts first")
op("mean", lambda x, dim=None, keepdim=False: gradc.mean(x, dim, keepdim), _reduce_samples(randn), ref=_red(np.mean),
   torch_fn=lambda x, dim=None, keepdim=False: x.mean(dim, keepdim) if dim is not None else (
       x.mean().reshape((1,) * x.ndim) if keepdim else x.mean()))


def _var_samples(rng):
    return [S(randn(rng, (3, 4))), S(randn(rng, (3, 4)), dim=0), S(randn(rng, (3, 4)), dim=-1, keepdim=True),
            S(randn(rng, (2, 3, 4)), dim=(0, 2)), S(randn(rng, (5,)), unbiased=False),
            S(randn(rng, (2, 3, 4)), dim=(-1, -2), keepdim=True, unbiased=False),
            S(randn(rng, (3, 4)), dim=1, correction=2), S(randn(rng, (4,)), correction=0),
            S(randn(rng, (1, 3)), dim=1)]


def _var_ref(np_fn):
    def ref(x, dim=None, keepdim=False, unbiased=True, correction=None):
        ddof = (1 if unbiased else 0) if correction is None else correction
        return np_fn(x, axis=_axes(dim, x.ndim), keepdims=keepdim, ddof=ddof)
    return ref


def _var_torch(name):
    def fn(x, dim=None, keepdim=False, unbiased=True, correction=None):
        ddof = (1 if unbiased else 0) if correction is None else correction
        return getattr(x, name)(dim=dim, keepdim=keepdim, correction=ddof)
    return fn


op("var", lambda x, **kw: gradc.var(x, **kw), _var_samples, ref=_var_ref(np.var), torch_fn=_var_torch("var"))
op("std", lambda x, **kw: gradc.std(x, **kw), _var_samples, ref=_var_ref(np.std), torch_fn=_var_torch("std"))


def _max_samples(rng):
    out = _reduce_samples(distinct)(rng)
    out.append(S(np.array([[1.0, 3.0, 3.0], [2.0, 2.0, -1.0]]), dim=1, _grad=False, _desc="ties dim=1"))
    out.append(S(np.array([[1.0, 3.0, 3.0], [3.0, 2.0, -1.0]]), _grad=False, _desc="ties all"))
    out.append(S(ints(rng, (3, 4)), dim=0))
    out.append(S(bools(rng, (3, 4)), dim=1))
    out.append(S(bools(rng, (2, 3))))
    return out


op("amax", lambda x, dim=None, keepdim=False: gradc.amax(x, dim, keepdim), _max_samples, ref=_red(np.max),
   torch_fn=lambda x, dim=None, keepdim=False: x.amax(() if dim is None else dim, keepdim),
   notes="gradient split evenly among tied maxima (as torch.amax)")
op("amin", lambda x, dim=None, keepdim=False: gradc.amin(x, dim, keepdim), _max_samples, ref=_red(np.min),
   torch_fn=lambda x, dim=None, keepdim=False: x.amin(() if dim is None else dim, keepdim))


def _full_max_samples(rng):
    return [S(distinct(rng, (3, 4))), S(distinct(rng, ())), S(distinct(rng, (1,))), S(distinct(rng, (2, 3, 2))),
            S(np.array([[1.0, 3.0], [3.0, 0.0]]), _grad=False, _desc="ties"), S(ints(rng, (5,))),
            S(np.array([True, True])), S(np.array([False, True]))]


op("max", lambda x: gradc.max(x), _full_max_samples, ref=np.max, torch_fn=lambda x: x.max())
op("min", lambda x: gradc.min(x), _full_max_samples, ref=np.min, torch_fn=lambda x: x.min())
op("max_binary", lambda a, b: gradc.max(a, b), lambda rng: [S(*_no_tie_pair(rng, (3, 4), (4,)))],
   ref=np.maximum, torch_fn=lambda a, b: _torch().max(a, b), notes="max(tensor, tensor) is maximum")
op("min_binary", lambda a, b: gradc.min(a, b), lambda rng: [S(*_no_tie_pair(rng, (2, 3), (2, 1)))],
   ref=np.minimum, torch_fn=lambda a, b: _torch().min(a, b))


def _dim_max_samples(rng):
    return [S(distinct(rng, (3, 4)), dim=0), S(distinct(rng, (3, 4)), dim=1, keepdim=True),
            S(distinct(rng, (2, 3, 4)), dim=-2), S(distinct(rng, (5,)), dim=0), S(distinct(rng, ()), dim=0),
            S(ints(rng, (3, 4)), dim=1),
            S(np.array([[1.0, 3.0, 3.0], [2.0, 2.0, -1.0]]), dim=1, _grad=False, _torch_grad=False, _desc="ties")]


def _dim_ref(np_val, np_idx):
    def ref(x, dim, keepdim=False):
        ax = _axes(dim, x.ndim)
        if ax is None:
            return x.copy(), np.array(0, dtype=np.int64)
        idx = np_idx(x, axis=ax[0], keepdims=keepdim).astype(np.int64)
        return np_val(x, axis=ax, keepdims=keepdim), idx
    return ref


op("max_dim", lambda x, dim, keepdim=False: tuple(gradc.max(x, dim, keepdim)), _dim_max_samples,
   ref=_dim_ref(np.max, np.argmax), torch_fn=lambda x, dim, keepdim=False: tuple(x.max(dim, keepdim)),
   notes="values take amax's gradient: ties split it evenly, where torch.max(dim) sends it all to the "
         "returned index (a deliberate difference; the tie sample skips the torch gradient check)")
op("min_dim", lambda x, dim, keepdim=False: tuple(gradc.min(x, dim, keepdim)), _dim_max_samples,
   ref=_dim_ref(np.min, np.argmin), torch_fn=lambda x, dim, keepdim=False: tuple(x.min(dim, keepdim)))


def _arg_samples(rng):
    return [S(distinct(rng, (3, 4))), S(distinct(rng, (3, 4)), dim=0), S(distinct(rng, (3, 4)), dim=-1, keepdim=True),
            S(distinct(rng, (2, 3, 4)), dim=1), S(distinct(rng, (2, 3)), keepdim=True), S(distinct(rng, ())),
            S(ints(rng, (4, 5)), dim=1), S(np.array([1.0, 3.0, 3.0, -1.0]), _desc="ties: first index")]


def _arg_ref(np_fn):
    def ref(x, dim=None, keepdim=False):
        if dim is None:
            out = np.asarray(np_fn(x)).astype(np.int64)
            return out.reshape((1,) * x.ndim) if keepdim else out
        return np_fn(x, axis=dim % x.ndim, keepdims=keepdim).astype(np.int64)
    return ref


op("argmax", lambda x, **kw: gradc.argmax(x, **kw), _arg_samples, ref=_arg_ref(np.argmax),
   torch_fn=lambda x, **kw: x.argmax(**kw), differentiable=False)
op("argmin", lambda x, **kw: gradc.argmin(x, **kw), _arg_samples, ref=_arg_ref(np.argmin),
   torch_fn=lambda x, **kw: x.argmin(**kw), differentiable=False)
op("all", lambda x: gradc.all(x), lambda rng: [S(bools(rng, (3, 4))), S(np.ones((2, 2), bool)), S(ints(rng, (5,)))],
   ref=lambda x: np.all(x), torch_fn=lambda x: x.all(), differentiable=False)
op("any", lambda x: gradc.any(x), lambda rng: [S(bools(rng, (3, 4))), S(np.zeros((2, 2), bool)), S(randn(rng, (3,)))],
   ref=lambda x: np.any(x), torch_fn=lambda x: x.any(), differentiable=False)



# ---------------------------------------------------------------------------- rounding, //, %, sorting
def _off_integers(rng, shape):
    """Values a safe distance from the integers and the half-integers (no jumps within reach of
    finite differences)."""
    return rng.integers(-4, 4, shape) + rng.choice([0.2, 0.35, 0.65, 0.8], shape)


for _name, _np in (("floor", np.floor), ("ceil", np.ceil), ("round", np.round), ("trunc", np.trunc)):
    _unary(_name, getattr(gradc, _name), _off_integers, _np, lambda x, _n=_name: getattr(x, _n)(), ints,
           notes="piecewise constant: the gradient is zero, as in PyTorch")


def _divmod_samples(rng):
    """a / b a safe distance from integers (no jumps of // or % within finite-difference reach)."""
    out = []
    for sa, sb in BINARY_SHAPES:
        b = rng.choice([-1.0, 1.0], sb) * rng.uniform(0.5, 2.0, sb)
        q = rng.integers(-4, 4, np.broadcast_shapes(sa, sb)) + rng.choice([0.25, 0.5, 0.75], np.broadcast_shapes(sa, sb))
        out.append(S((q * b)[tuple(slice(0, n) for n in sa)] if sa != np.broadcast_shapes(sa, sb) else q * b, b))
    out += [S(ints(rng, (2, 3)), _pos_ints(rng, (3,))), S(ints(rng, (4,)), scalar=3), S(ints(rng, (4,)), scalar=-2)]
    return out


op("floor_divide", _binop(operator.floordiv), _divmod_samples, ref=_binop(operator.floordiv),
   torch_fn=_binop(operator.floordiv), differentiable=False,
   notes="the quotient rounds down; its gradient is zero (PyTorch has none, so no parity of gradients)")
op("remainder", _binop(operator.mod), _divmod_samples, ref=_binop(operator.mod), torch_fn=_binop(operator.mod),
   notes="the remainder takes the divisor's sign, as Python's %")


def _sort_samples(rng):
    return [S(distinct(rng, (3, 5)), dim=1), S(distinct(rng, (4, 3)), dim=0, descending=True),
            S(distinct(rng, (2, 3, 4)), dim=-1), S(ints(rng, (6,)), dim=0)]


op("argsort", lambda x, **kw: gradc.argsort(x, **kw), _sort_samples, differentiable=False,
   ref=lambda x, dim=-1, descending=False: np.argsort(-x if descending else x, axis=dim, kind="stable"),
   torch_fn=lambda x, **kw: x.argsort(stable=True, **kw))
op("sort", lambda x, **kw: tuple(gradc.sort(x, **kw)), _sort_samples,
   ref=lambda x, dim=-1, descending=False: (np.take_along_axis(x, i := np.argsort(-x if descending else x, axis=dim,
                                                                                 kind="stable"), dim), i),
   torch_fn=lambda x, **kw: tuple(x.sort(stable=True, **kw)))
op("topk", lambda x, k, **kw: tuple(gradc.topk(x, k, **kw)),
   lambda rng: [S(distinct(rng, (3, 6)), k=2), S(distinct(rng, (5, 4)), k=3, dim=0, largest=False),
                S(distinct(rng, (7,)), k=7)],
   ref=lambda x, k, dim=-1, largest=True: (np.take_along_axis(x, i := np.take(np.argsort(-x if largest else x, axis=dim,
                                                                                        kind="stable"),
                                                                              np.arange(k), axis=dim), dim), i),
   torch_fn=lambda x, k, **kw: tuple(x.topk(k, **kw)))


def _sdpa_samples(rng):
    q, k, v = (randn(rng, (2, 3, 5, 4)) for _ in range(3))
    return [S(q, k, v), S(q, k, v, is_causal=True), S(q, k[:, :1], v[:, :1], scale=0.3),
            S(q, k, v, rng.random((5, 5)) > 0.3),
            S(q, k, v, randn(rng, (2, 1, 5, 5))),
            S(randn(rng, (6, 4)), randn(rng, (3, 4)), randn(rng, (3, 2)))]


def _sdpa_ref(q, k, v, mask=None, is_causal=False, scale=None):
    s = q @ np.swapaxes(k, -1, -2) * (1.0 / np.sqrt(q.shape[-1]) if scale is None else scale)
    if is_causal:
        s = np.where(np.tril(np.ones(s.shape[-2:], bool)), s, -np.inf)
    if mask is not None:
        s = np.where(mask, s, -np.inf) if mask.dtype == bool else s + mask
    p = np.exp(s - s.max(-1, keepdims=True))
    return (p / p.sum(-1, keepdims=True)) @ v


op("sdpa", lambda q, k, v, *m, **kw: F.scaled_dot_product_attention(q, k, v, *m, **kw), _sdpa_samples,
   ref=_sdpa_ref, torch_fn=lambda q, k, v, *m, **kw: _tF().scaled_dot_product_attention(q, k, v, *m, **kw),
   grad_args=(0, 1, 2), notes="one primitive with its own VJP, computed a block of queries at a time")

def _softmax_samples(rng):
    return [S(randn(rng, (3, 4)), dim=1), S(randn(rng, (3, 4)), dim=0), S(randn(rng, (2, 3, 4)), dim=-1),
            S(randn(rng, (2, 3, 4)), dim=1), S(randn(rng, (5,)), dim=0), S(randn(rng, ()), dim=0),
            S(randn(rng, (2, 5)) * 40, dim=-1, _desc="large logits")]


def _np_log_softmax(x, dim):
    if x.ndim == 0:
        return np.zeros_like(x)
    z = x - x.max(axis=dim, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=dim, keepdims=True))


op("softmax", lambda x, dim: gradc.softmax(x, dim), _softmax_samples,
   ref=lambda x, dim: np.exp(_np_log_softmax(x, dim)), torch_fn=lambda x, dim: x.softmax(dim))
op("log_softmax", lambda x, dim: gradc.log_softmax(x, dim), _softmax_samples, ref=_np_log_softmax,
   torch_fn=lambda x, dim: x.log_softmax(dim))
op("F.softmax", lambda x, dim: F.softmax(x, dim), lambda rng: [S(randn(rng, (3, 4)), dim=-1)],
   ref=lambda x, dim: np.exp(_np_log_softmax(x, dim)), torch_fn=lambda x, dim: _tF().softmax(x, dim))
op("F.log_softmax", lambda x, dim: F.log_softmax(x, dim), lambda rng: [S(randn(rng, (3, 4)), dim=0)],
   ref=_np_log_softmax, torch_fn=lambda x, dim: _tF().log_softmax(x, dim))


# ---------------------------------------------------------------------------- movement
op("reshape", lambda x, shape: x.reshape(shape),
   lambda rng: [S(randn(rng, (2, 3, 4)), shape=(6, 4)), S(randn(rng, (2, 3, 4)), shape=(-1,)),
                S(randn(rng, (2, 3, 4)), shape=(4, -1, 2)), S(randn(rng, ()), shape=(1, 1)),
                S(randn(rng, (1,)), shape=()), S(randn(rng, (3, 4)), shape=(3, 4)),
                S(ints(rng, (6,)), shape=(2, 3))],
   ref=lambda x, shape: x.reshape(shape), torch_fn=lambda x, shape: x.reshape(shape))
op("view", lambda x, a, b: x.view(a, b), lambda rng: [S(randn(rng, (2, 6)), a=3, b=-1)],
   ref=lambda x, a, b: x.reshape(a, b), torch_fn=lambda x, a, b: x.view(a, b))
op("permute", lambda x, dims: gradc.permute(x, dims),
   lambda rng: [S(randn(rng, (2, 3, 4)), dims=(2, 0, 1)), S(randn(rng, (2, 3, 4)), dims=(-1, 0, -2)),
                S(randn(rng, (3, 4)), dims=(1, 0)), S(randn(rng, (3, 4)), dims=(0, 1)),
                S(randn(rng, ()), dims=()), S(ints(rng, (2, 3)), dims=(1, 0))],
   ref=lambda x, dims: np.transpose(x, dims), torch_fn=lambda x, dims: x.permute(dims))
op("transpose", lambda x, d0, d1: gradc.transpose(x, d0, d1),
   lambda rng: [S(randn(rng, (2, 3, 4)), d0=0, d1=-1), S(randn(rng, (3, 4)), d0=1, d1=0),
                S(randn(rng, (2, 3, 4)), d0=1, d1=1)],
   ref=lambda x, d0, d1: np.swapaxes(x, d0, d1), torch_fn=lambda x, d0, d1: x.transpose(d0, d1))
op("t", lambda x: gradc.t(x), lambda rng: [S(randn(rng, (3, 4))), S(randn(rng, (4,))), S(randn(rng, ()))],
   ref=lambda x: x.T, torch_fn=lambda x: x.t())
op("T", lambda x: x.T, lambda rng: [S(randn(rng, (3, 4))), S(randn(rng, (1, 2)))], ref=lambda x: x.T,
   torch_fn=lambda x: x.T)
op("mT", lambda x: x.mT, lambda rng: [S(randn(rng, (3, 4))), S(randn(rng, (2, 3, 4)))],
   ref=lambda x: np.swapaxes(x, -1, -2), torch_fn=lambda x: x.mT)
op("unsqueeze", lambda x, dim: gradc.unsqueeze(x, dim),
   lambda rng: [S(randn(rng, (3, 4)), dim=0), S(randn(rng, (3, 4)), dim=-1), S(randn(rng, (3, 4)), dim=1),
                S(randn(rng, ()), dim=0), S(randn(rng, (3, 4)), dim=-3)],
   ref=lambda x, dim: np.expand_dims(x, dim), torch_fn=lambda x, dim: x.unsqueeze(dim))
op("squeeze", lambda x, dim=None: gradc.squeeze(x, dim),
   lambda rng: [S(randn(rng, (1, 3, 1, 2))), S(randn(rng, (1, 3, 1, 2)), dim=2),
                S(randn(rng, (1, 3, 1, 2)), dim=1), S(randn(rng, (1, 3, 1, 2)), dim=(0, -2)),
                S(randn(rng, (1,))), S(randn(rng, ())), S(randn(rng, (1, 1)), dim=-1)],
   ref=lambda x, dim=None: np.squeeze(x) if dim is None else np.squeeze(
       x, tuple(d % x.ndim for d in ((dim,) if isinstance(dim, int) else dim) if x.shape[d] == 1)),
   torch_fn=lambda x, dim=None: x.squeeze() if dim is None else x.squeeze(dim))
op("flatten", lambda x, **kw: gradc.flatten(x, **kw),
   lambda rng: [S(randn(rng, (2, 3, 4))), S(randn(rng, (2, 3, 4)), start_dim=1),
                S(randn(rng, (2, 3, 4, 1)), start_dim=1, end_dim=2), S(randn(rng, (2, 3, 4)), start_dim=0, end_dim=-2),
                S(randn(rng, ())), S(randn(rng, (3,)))],
   ref=lambda x, start_dim=0, end_dim=-1: x.reshape(1) if x.ndim == 0 else x.reshape(
       x.shape[:start_dim % x.ndim] + (-1,) + x.shape[end_dim % x.ndim + 1:]),
   torch_fn=lambda x, **kw: x.flatten(**kw))
op("expand", lambda x, shape: gradc.expand(x, shape),
   lambda rng: [S(randn(rng, (3, 1)), shape=(3, 4)), S(randn(rng, (3, 1)), shape=(-1, 4)),
                S(randn(rng, (3, 1)), shape=(2, 3, 4)), S(randn(rng, ()), shape=(2, 3)),
                S(randn(rng, (1,)), shape=(5,)), S(randn(rng, (2, 3)), shape=(2, 3)),
                S(randn(rng, (1, 3, 1)), shape=(2, -1, 2))],
   ref=lambda x, shape: np.broadcast_to(
       x, tuple(x.shape[i - len(shape) + x.ndim] if s == -1 else s for i, s in enumerate(shape))).copy(),
   torch_fn=lambda x, shape: x.expand(shape))
op("broadcast_to", lambda x, shape: gradc.broadcast_to(x, shape), lambda rng: [S(randn(rng, (4,)), shape=(3, 4))],
   ref=lambda x, shape: np.broadcast_to(x, shape).copy(), torch_fn=lambda x, shape: x.broadcast_to(shape))
op("chunk", lambda x, chunks, dim=0: gradc.chunk(x, chunks, dim),
   lambda rng: [S(randn(rng, (6, 4)), chunks=3), S(randn(rng, (5, 2)), chunks=3),
                S(randn(rng, (2, 4)), chunks=3, dim=1),
                S(randn(rng, (2, 3, 4)), chunks=2, dim=-1), S(randn(rng, (3,)), chunks=1)],
   ref=lambda x, chunks, dim=0: tuple(np.split(x, range(-(-x.shape[dim] // chunks), x.shape[dim],
                                                         -(-x.shape[dim] // chunks)), axis=dim)),
   torch_fn=lambda x, chunks, dim=0: x.chunk(chunks, dim))
op("split", lambda x, size, dim=0: gradc.split(x, size, dim),
   lambda rng: [S(randn(rng, (5, 2)), size=2), S(randn(rng, (3, 4)), size=[1, 3], dim=1),
                S(randn(rng, (2, 6)), size=3, dim=-1), S(randn(rng, (4,)), size=[2, 0, 2])],
   ref=lambda x, size, dim=0: tuple(np.split(x, list(range(size, x.shape[dim], size)) if isinstance(size, int)
                                             else np.cumsum(size)[:-1].tolist(), axis=dim)),
   torch_fn=lambda x, size, dim=0: x.split(size, dim))


def _cat_samples(rng):
    return [S(randn(rng, (2, 3)), randn(rng, (4, 3))),
            S(randn(rng, (2, 3)), randn(rng, (2, 1)), randn(rng, (2, 2)), dim=1),
            S(randn(rng, (2, 1, 3)), randn(rng, (2, 2, 3)), dim=-2), S(randn(rng, (3,)), randn(rng, (1,))),
            S(randn(rng, (2, 2)), dim=0), S(ints(rng, (2,)), ints(rng, (3,))),
            S(randn(rng, (2,)), ints(rng, (3,)), _desc="mixed dtypes promote")]


op("cat", lambda *xs, dim=0: gradc.cat(xs, dim), _cat_samples, ref=lambda *xs, dim=0: np.concatenate(xs, axis=dim),
   torch_fn=lambda *xs, dim=0: _torch().cat(xs, dim))
op("concat", lambda *xs, dim=0: gradc.concat(xs, dim=dim),
   lambda rng: [S(randn(rng, (2, 3)), randn(rng, (2, 3)), dim=1)],
   ref=lambda *xs, dim=0: np.concatenate(xs, axis=dim), torch_fn=lambda *xs, dim=0: _torch().concat(xs, dim))
op("stack", lambda *xs, dim=0: gradc.stack(xs, dim),
   lambda rng: [S(randn(rng, (2, 3)), randn(rng, (2, 3))),
                S(randn(rng, (2, 3)), randn(rng, (2, 3)), randn(rng, (2, 3)), dim=-1),
                S(randn(rng, (2, 3)), randn(rng, (2, 3)), dim=1), S(randn(rng, ()), randn(rng, ())),
                S(ints(rng, (3,)), ints(rng, (3,)), dim=1)],
   ref=lambda *xs, dim=0: np.stack(xs, axis=dim), torch_fn=lambda *xs, dim=0: _torch().stack(xs, dim))


# ---------------------------------------------------------------------------- indexing
def _np_getitem(x, key):
    """NumPy indexing with PyTorch's reading of integers next to index arrays: an int is a basic
    index (it selects first), so x[1, :, [0, 2]] has shape (4, 2) for x of shape (3, 4, 5)
    (NumPy would treat the 1 as an index array and give (2, 4))."""
    key = key if isinstance(key, tuple) else (key,)
    arrays = any(isinstance(k, (list, np.ndarray)) for k in key)
    if not arrays or not any(isinstance(k, int) for k in key):
        return x[key]
    first = tuple(slice(None) if isinstance(k, (list, np.ndarray)) else k for k in key)
    second = tuple(k for k in key if not isinstance(k, int))
    second = tuple(slice(None) if k is None else k for k in second)
    return x[first][second]


def _torch_key(key):
    torch = _torch()
    key = key if isinstance(key, tuple) else (key,)
    return tuple(torch.as_tensor(k) if isinstance(k, (list, np.ndarray)) else k for k in key)


_E = Ellipsis
GETITEM_KEYS = (
    1, -1, slice(1, 3), (slice(None, None, 2), 1), (_E, 1), (None, slice(0, 2), _E, None),
    (1, slice(None), -2), (_E, slice(None, None, 3)), (slice(-2, None), slice(1, None, 2), slice(0, 5, 4)),
    (slice(2, 1),), (slice(1, 100), 2, None),
    np.array([2, 0, 2]), [0, 2], np.array([-1, 0, -3]), (slice(None), np.array([[0, 1], [3, 3]])),
    (slice(None), [0, 2, 3], [1, 0, 4]), ([0, 2], slice(None), [1, 4]),
    (np.array([[0], [2]]), np.array([1, 3, 0])), (_E, np.array([-1, 1])), (1, slice(None), [0, 2]),
    (None, [1, 0], slice(1, 3)), ([0, 1], [-1, 2], [3, -5]),
)


def _getitem_samples(rng):
    out = [S(randn(rng, (3, 4, 5)), key=k) for k in GETITEM_KEYS]
    x = randn(rng, (3, 4, 5))
    out.append(S(x, key=x > 0.3))
    out.append(S(randn(rng, (3, 4, 5)), key=np.array([True, False, True])))
    out.append(S(randn(rng, (3, 4, 5)), key=(slice(None), np.array([False, True, True, False]))))
    out.append(S(randn(rng, (3, 4)), key=(np.array([[True, False, True, True]] * 3))))
    out.append(S(randn(rng, ()), key=None))
    out.append(S(randn(rng, ()), key=_E))
    out.append(S(randn(rng, (1,)), key=0))
    out.append(S(ints(rng, (4, 3)), key=(slice(1, 3), [2, 0])))
    return out


op("getitem", lambda x, key: x[key], _getitem_samples, ref=_np_getitem,
   torch_fn=lambda x, key: x[_torch_key(key)],
   notes="basic slicing (steps, None, ...), integer arrays (one, adjacent, non-adjacent, broadcast, negative) "
         "and bool masks; ints beside index arrays are basic indices, as in PyTorch")


def _index_tensor_samples(rng):
    return [S(randn(rng, (4, 3)), np.array([3, 0, 3, 1])), S(randn(rng, (4, 3)), np.array([[0, 2], [-1, 1]]), dim=1),
            S(randn(rng, (2, 3, 4)), np.array(2), dim=2), S(randn(rng, (5,)), np.array([-1, -5, 2]))]


op("index_tensor", lambda x, idx, dim=0: x[(slice(None),) * dim + (idx,)], _index_tensor_samples,
   ref=lambda x, idx, dim=0: x[(slice(None),) * dim + (idx,)],
   torch_fn=lambda x, idx, dim=0: x[(slice(None),) * dim + (idx,)], grad_args=(0,),
   notes="index arrays given as int64 tensors (graph inputs when compiled)")
op("index_tensor2", lambda x, i, j, adjacent=True: x[:, i, j] if adjacent else x[i, :, j],
   lambda rng: [S(randn(rng, (2, 3, 4)), np.array([0, 2, -1]), np.array([3, 3, 0])),
                S(randn(rng, (3, 2, 4)), np.array([[0], [2]]), np.array([1, -1]), adjacent=False)],
   ref=lambda x, i, j, adjacent=True: x[:, i, j] if adjacent else x[i, :, j],
   torch_fn=lambda x, i, j, adjacent=True: x[:, i, j] if adjacent else x[i, :, j], grad_args=(0,))


# ---------------------------------------------------------------------------- linear algebra
MATMUL_SHAPES = (((4,), (4,)), ((4,), (4, 3)), ((3, 4), (4,)), ((2, 4), (4, 3)), ((2, 3, 4), (2, 4, 5)),
                 ((2, 3, 4), (4, 5)), ((3, 4), (2, 4, 5)), ((2, 1, 3, 4), (3, 4, 2)), ((4,), (2, 4, 3)),
                 ((2, 3, 4), (4,)), ((1, 4), (4, 1)))
op("matmul", lambda a, b: a @ b, lambda rng: [S(randn(rng, sa), randn(rng, sb)) for sa, sb in MATMUL_SHAPES]
   + [S(ints(rng, (2, 3)), ints(rng, (3, 2)))],
   ref=np.matmul, torch_fn=lambda a, b: a @ b, tol={"float32": (1e-5, 2e-5), "float64": (1e-10, 1e-12)})
op("matmul_fn", lambda a, b: gradc.matmul(a, b), lambda rng: [S(randn(rng, (3, 4)), randn(rng, (4,)))],
   ref=np.matmul, torch_fn=lambda a, b: _torch().matmul(a, b))
op("mm", lambda a, b: gradc.mm(a, b), lambda rng: [S(randn(rng, (2, 4)), randn(rng, (4, 3))),
                                                   S(randn(rng, (1, 1)), randn(rng, (1, 5)))],
   ref=np.matmul, torch_fn=lambda a, b: a.mm(b))
def well_conditioned(rng, shape):
    """Square matrices (..., n, n) with a dominant diagonal: invertible, condition number near 1."""
    n = shape[-1]
    return rng.standard_normal(shape) * 0.3 + np.eye(n) * rng.choice([-1.0, 1.0], shape[:-1])[..., None] * 2


_LINALG_TOL = {"float32": (1e-4, 1e-5), "float64": (1e-9, 1e-12)}
op("linalg_solve", lambda a, b, left=True: gradc.linalg.solve(a, b, left=left),
   lambda rng: [S(well_conditioned(rng, (3, 3)), randn(rng, (3, 2))),
                S(well_conditioned(rng, (2, 3, 3)), randn(rng, (3,))),
                S(well_conditioned(rng, (2, 3, 3)), randn(rng, (2, 3))),
                S(well_conditioned(rng, (2, 1, 3, 3)), randn(rng, (4, 3, 2))),
                S(well_conditioned(rng, (3, 3)), randn(rng, (2, 3)), left=False)],
   ref=lambda a, b, left=True: (np.linalg.solve(a, b[..., None])[..., 0] if b.ndim == 1 or b.shape == a.shape[:-1]
                                else np.linalg.solve(a, b)) if left else np.swapaxes(np.linalg.solve(
                                    np.swapaxes(a, -1, -2), np.swapaxes(b, -1, -2)), -1, -2),
   torch_fn=lambda a, b, left=True: _torch().linalg.solve(a, b, left=left), tol=_LINALG_TOL)
op("inverse", lambda a: gradc.linalg.inv(a), lambda rng: [S(well_conditioned(rng, (3, 3))),
                                                         S(well_conditioned(rng, (2, 4, 4)))],
   ref=np.linalg.inv, torch_fn=lambda a: _torch().linalg.inv(a), tol=_LINALG_TOL)
op("det", lambda a: gradc.linalg.det(a), lambda rng: [S(well_conditioned(rng, (3, 3))),
                                                     S(well_conditioned(rng, (2, 4, 4)))],
   ref=np.linalg.det, torch_fn=lambda a: _torch().linalg.det(a), tol=_LINALG_TOL)
op("slogdet", lambda a: tuple(gradc.linalg.slogdet(a)), lambda rng: [S(well_conditioned(rng, (3, 3))),
                                                                    S(well_conditioned(rng, (2, 4, 4)))],
   ref=lambda a: tuple(np.linalg.slogdet(a)), torch_fn=lambda a: tuple(_torch().linalg.slogdet(a)), tol=_LINALG_TOL)
op("logdet", lambda a: gradc.logdet(a), lambda rng: [S(np.abs(well_conditioned(rng, (2, 3, 3))))],
   ref=lambda a: np.where(np.linalg.slogdet(a)[0] > 0, np.linalg.slogdet(a)[1], np.nan),
   torch_fn=lambda a: _torch().logdet(a), tol=_LINALG_TOL)
def _projector(q):
    return q @ np.swapaxes(q, -1, -2)


# sign-invariant functions of the factors (a singular vector's or a Q column's sign is LAPACK's choice)
op("svd", lambda a: (lambda u, s, vh: (u @ u.mT, s, vh.mT @ vh))(*gradc.linalg.svd(a, full_matrices=False)),
   lambda rng: [S(randn(rng, (4, 3))), S(randn(rng, (2, 3, 5)))],
   ref=lambda a: (lambda u, s, vh: (_projector(u), s, _projector(np.swapaxes(vh, -1, -2))))(
       *np.linalg.svd(a, full_matrices=False)),
   torch_fn=lambda a: (lambda u, s, vh: (u @ u.mT, s, vh.mT @ vh))(*_torch().linalg.svd(a, full_matrices=False)),
   tol=_LINALG_TOL)
op("eigh", lambda a: (lambda w, v: (w, (v * w.unsqueeze(-2)) @ v.mT))(*gradc.linalg.eigh((a + a.mT) / 2)),
   lambda rng: [S(randn(rng, (3, 3))), S(randn(rng, (2, 4, 4)))],
   ref=lambda a: (lambda w, v: (w, (v * w[..., None, :]) @ np.swapaxes(v, -1, -2)))(
       *np.linalg.eigh((a + np.swapaxes(a, -1, -2)) / 2)),
   torch_fn=lambda a: (lambda w, v: (w, (v * w.unsqueeze(-2)) @ v.mT))(*_torch().linalg.eigh((a + a.mT) / 2)),
   tol=_LINALG_TOL)
op("qr", lambda a: (lambda q, r: (q @ q.mT, r.abs(), q @ r))(*gradc.linalg.qr(a)),
   lambda rng: [S(randn(rng, (4, 3))), S(randn(rng, (2, 3, 3)))],
   ref=lambda a: (lambda q, r: (_projector(q), np.abs(r), q @ r))(*np.linalg.qr(a)),
   torch_fn=lambda a: (lambda q, r: (q @ q.mT, r.abs(), q @ r))(*_torch().linalg.qr(a)), tol=_LINALG_TOL)
op("matrix_power", lambda a, n: gradc.linalg.matrix_power(a, n),
   lambda rng: [S(well_conditioned(rng, (3, 3)), n=3), S(well_conditioned(rng, (2, 3, 3)), n=-2),
                S(well_conditioned(rng, (3, 3)), n=0)],
   ref=lambda a, n: np.linalg.matrix_power(a, n), torch_fn=lambda a, n: _torch().linalg.matrix_power(a, n),
   tol=_LINALG_TOL)
op("linear", lambda x, w, b=None: F.linear(x, w, b),
   lambda rng: [S(randn(rng, (4, 3)), randn(rng, (5, 3)), randn(rng, (5,))), S(randn(rng, (4, 3)), randn(rng, (2, 3))),
                S(randn(rng, (2, 3, 3)), randn(rng, (4, 3)), randn(rng, (4,))),
                S(randn(rng, (3,)), randn(rng, (2, 3)), randn(rng, (2,)))],
   ref=lambda x, w, b=None: x @ w.T + (0 if b is None else b),
   torch_fn=lambda x, w, b=None: _tF().linear(x, w, b), tol={"float32": (1e-5, 2e-5), "float64": (1e-10, 1e-12)})


# ---------------------------------------------------------------------------- nn.functional
def _np_layer_norm(x, w=None, b=None, normalized_shape=None, eps=1e-5):
    ns = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    axes = tuple(range(x.ndim - len(ns), x.ndim))
    mu = x.mean(axis=axes, keepdims=True)
    out = (x - mu) / np.sqrt(x.var(axis=axes, keepdims=True) + eps)
    if w is not None:
        out = out * w
    if b is not None:
        out = out + b
    return out


op("layer_norm",
   lambda x, w=None, b=None, normalized_shape=None, eps=1e-5: F.layer_norm(x, normalized_shape, w, b, eps),
   lambda rng: [S(randn(rng, (3, 4)), randn(rng, (4,)), randn(rng, (4,)), normalized_shape=4),
                S(randn(rng, (2, 3, 4)), randn(rng, (3, 4)), randn(rng, (3, 4)), normalized_shape=(3, 4)),
                S(randn(rng, (3, 5)), normalized_shape=(5,)),
                S(randn(rng, (2, 2, 3)) * 3 + 1, normalized_shape=3, eps=1e-3),
                S(randn(rng, (2, 4)), randn(rng, (4,)), normalized_shape=[4])],
   ref=_np_layer_norm,
   torch_fn=lambda x, w=None, b=None, normalized_shape=None, eps=1e-5: _tF().layer_norm(
       x, (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape), w, b, eps),
   tol={"float32": (1e-4, 1e-5), "float64": (1e-9, 1e-11)})
op("embedding", lambda idx, w: F.embedding(idx, w),
   lambda rng: [S(np.array([1, 3, 1, 0]), randn(rng, (5, 3))), S(np.array([[0, 2, 2], [4, 4, 1]]), randn(rng, (5, 2))),
                S(np.array(3), randn(rng, (4, 3)))],
   ref=lambda idx, w: w[idx], torch_fn=lambda idx, w: _tF().embedding(idx, w), grad_args=(1,),
   notes="repeated indices accumulate the weight gradient")
op("mse_loss", lambda a, b, reduction="mean": F.mse_loss(a, b, reduction=reduction),
   lambda rng: [S(randn(rng, (3, 4)), randn(rng, (3, 4)), reduction=r) for r in ("mean", "sum", "none")]
   + [S(randn(rng, ()), randn(rng, ()))],
   ref=lambda a, b, reduction="mean": {"mean": np.mean, "sum": np.sum, "none": lambda v: v}[reduction]((a - b) ** 2),
   torch_fn=lambda a, b, reduction="mean": _tF().mse_loss(a, b, reduction=reduction))


def _np_nll(logp, target, reduction):
    loss = -logp[np.arange(len(target)), target]
    return {"mean": np.mean, "sum": np.sum, "none": lambda v: v}[reduction](loss)


def _ce_samples(rng):
    return [S(randn(rng, (4, 5)), np.array([1, 0, 4, 1]), reduction=r) for r in ("mean", "sum", "none")] + \
        [S(randn(rng, (1, 3)) * 10, np.array([2])), S(randn(rng, (3, 2)), np.array([1, 1, 0]), reduction="sum")]


op("cross_entropy", lambda x, t, reduction="mean": F.cross_entropy(x, t, reduction=reduction), _ce_samples,
   ref=lambda x, t, reduction="mean": _np_nll(_np_log_softmax(x, 1), t, reduction),
   torch_fn=lambda x, t, reduction="mean": _tF().cross_entropy(x, t, reduction=reduction), grad_args=(0,))
op("nll_loss", lambda x, t, reduction="mean": F.nll_loss(x, t, reduction=reduction), _ce_samples,
   ref=lambda x, t, reduction="mean": _np_nll(x, t, reduction),
   torch_fn=lambda x, t, reduction="mean": _tF().nll_loss(x, t, reduction=reduction), grad_args=(0,))


# ---------------------------------------------------------------------------- what the database must cover
# Every primitive (forward or through its VJP) and every public composite: tests assert both.
REQUIRED_ROWS = frozenset(
    "neg exp log sqrt tanh sigmoid abs sign erf sin cos add sub mul div pow maximum minimum lt le gt ge eq ne "
    "logical_and logical_or logical_not where cast sum max argmax reshape permute expand getitem cat matmul "
    "mean var std amax amin max_dim min_dim relu clamp softmax log_softmax rsqrt square transpose t T mT "
    "unsqueeze squeeze flatten chunk split stack mm linear gelu layer_norm embedding mse_loss cross_entropy "
    "nll_loss dropout_eval floor ceil round trunc floor_divide remainder argsort sort topk sdpa".split())


def rows(predicate=None):
    return [r for r in ROWS if predicate is None or predicate(r)]


def cases(rows_=None, dtypes=FLOAT_DTYPES, predicate=None):
    """(row, sample index, sample, dtype) for each row, sample and floating dtype; samples without
    floating args run once (under the first dtype). `predicate(row, sample)` filters."""
    out = []
    for row in (ROWS if rows_ is None else rows_):
        for i, s in enumerate(row.samples()):
            for dt in dtypes:
                if dt not in row.dtypes or (not s.has_float() and dt != [d for d in dtypes if d in row.dtypes][0]):
                    continue
                if predicate is None or predicate(row, s):
                    out.append((row, i, s, dt))
    return out


def case_id(case):
    row, i, s, dt = case
    return f"{row.name}-{i}-{dt}-{s.label()}"

import opdb_surface  # noqa: E402,F401  (rows for the tensor surface and losses)
import opdb_layers  # noqa: E402,F401  (rows for the sliding-window primitives and vision layers)
import opdb_math  # noqa: E402,F401  (rows for the elementwise math primitives)
import opdb_tensor  # noqa: E402,F401  (rows for structural tensor functions)
import opdb_nn_more  # noqa: E402,F401  (rows for more losses, layers and sampling)
