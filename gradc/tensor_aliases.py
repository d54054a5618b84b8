"""PyTorch's remaining spellings, as composites of what is below them: dtype queries
(result_type, promote_types, can_cast), the other names of comparisons and clamps, conjugate
transposes of real tensors, the *_scatter functions, and small numeric helpers (copysign,
aminmax, diagflat, histogram, trapezoid)."""
import builtins
import functools
import math
import operator

import numpy as np

from . import dtypes as D
from .composite import assign, clone
from .creation import as_tensor, linspace, tensor
from .errors import DTypeError, ShapeError
from .ops.frontend import export, promote_tensors, where
from .shapes import normalize_axis, strided
from .tensor import Tensor
from .return_types import return_type


# ---------------------------------------------------------------------- dtype queries
@export("result_type", method=False)
def result_type(tensor, other):
    """The dtype an arithmetic op of the two gives (Python numbers are weak, as in PyTorch)."""
    if isinstance(tensor, Tensor) and isinstance(other, Tensor):
        return promote_tensors(tensor, other)
    if isinstance(tensor, Tensor) or isinstance(other, Tensor):
        t, s = (tensor, other) if isinstance(tensor, Tensor) else (other, tensor)
        return D.promote_weak(t.dtype, s)
    return D.promote(D.scalar_dtype(tensor), D.scalar_dtype(other))


export("promote_types", method=False)(lambda type1, type2: D.promote(D.get_dtype(type1), D.get_dtype(type2)))
# casting never lowers the kind: bool < integer < floating
export("can_cast", method=False)(lambda from_, to: D.get_dtype(from_).category <= D.get_dtype(to).category)

# ---------------------------------------------------------------------- other names
for _name, _op in (("not_equal", "ne"), ("greater", "gt"), ("greater_equal", "ge"), ("less", "lt"),
                   ("less_equal", "le")):
    export(_name)(lambda input, other, _op=_op: getattr(input, _op)(other))
export("positive")(lambda input: input)
export("clip_", function=False)(lambda self, min=None, max=None: self.clamp_(min, max))
export("floor_divide_", function=False)(lambda self, other: assign(self, self // other, "floor_divide_"))
export("nan_to_num_", function=False)(
    lambda self, nan=0.0, posinf=None, neginf=None: assign(self, self.nan_to_num(nan, posinf, neginf), "nan_to_num_"))
export("isreal")(lambda input: input == input if input.dtype.is_floating_point else input.bool() | True)
export("split_with_sizes", function=False)(lambda self, split_sizes, dim=0: self.split(list(split_sizes), dim))
export("narrow_copy")(lambda input, dim, start, length: input.narrow(dim, start, length).clone())
export("expand_copy")(lambda input, size: input.expand(size).clone())
export("chain_matmul", method=False)(lambda *matrices: functools.reduce(operator.matmul, matrices))
export("adjoint")(lambda input: input.transpose(-2, -1))   # real tensors: the conjugate is the tensor
for _name in ("resolve_conj", "resolve_neg", "conj_physical"):
    export(_name)(lambda input: input)
export("real", function=False)(property(lambda self: self, doc="The real part: a real tensor itself."))
export("layout", function=False)(property(lambda self: strided, doc="torch.strided: every tensor is dense."))
export("is_cpu", function=False)(property(lambda self: self.device.type == "cpu"))
export("is_signed")(lambda input: input.dtype is not D.bool_)   # (gradc has no unsigned dtypes)
export("rsub")(lambda input, other, alpha=1: other - input * alpha if alpha != 1 else other - input)
# function spellings of in-place methods (torch.relu_(x), torch.sigmoid_(x), ...)
for _name in ("sigmoid_", "tanh_", "exp_", "clamp_", "clip_", "sqrt_", "abs_", "neg_", "log_", "floor_", "ceil_",
              "round_", "zero_", "fill_"):
    export(_name, method=False)(lambda input, *args, _name=_name, **kwargs: getattr(input, _name)(*args, **kwargs))
# in-place spellings PyTorch also has: the result written back in the tensor's dtype
for _name, _op in (("divide_", "div"), ("true_divide_", "div"), ("multiply_", "mul"), ("subtract_", "sub"),
                   ("remainder_", "remainder"), ("fmod_", "fmod"), ("eq_", "eq"), ("ne_", "ne"), ("lt_", "lt"),
                   ("le_", "le"), ("gt_", "gt"), ("ge_", "ge"), ("cumsum_", "cumsum"), ("cumprod_", "cumprod")):
    export(_name, function=False)(lambda self, *args, _op=_op, _name=_name, **kwargs: assign(
        self, _in_dtype(getattr(self, _op)(*args, **kwargs), self.dtype), _name))


def _in_dtype(result, dtype):
    """A comparison's bools (or a scan's wider sum) written into the tensor's own dtype, as torch's
    in-place spellings do; a float into an integer tensor stays refused by assign."""
    return result if result.dtype is dtype or result.dtype.category > dtype.category else result.to(dtype)


@export("scalar_tensor", method=False)
def scalar_tensor(s, dtype=None, device=None, requires_grad=False):
    return tensor(s, dtype=dtype or D.default_float, device=device, requires_grad=requires_grad)


@export("asarray", method=False)
def asarray(obj, *, dtype=None, device=None, copy=None, requires_grad=False):
    """torch.asarray: shares memory with a tensor or NumPy array when it can (copy=None), copies with
    copy=True."""
    out = as_tensor(obj, dtype=dtype, device=device)
    if copy:
        out = clone(out.detach())
    return out.requires_grad_() if requires_grad else out


@export("unravel_index", method=False)
def unravel_index(indices, shape):
    """The coordinates of flat `indices` in a tensor of `shape`: a tuple of int64 tensors."""
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    flat = indices if isinstance(indices, Tensor) else tensor(indices)
    if flat.dtype.is_floating_point or flat.dtype is D.bool_:
        raise DTypeError(f"unravel_index: indices must be integers, got {flat.dtype!r}")
    total = math.prod(shape)
    if ((flat < -total) | (flat >= total)).any():
        raise ShapeError(f"unravel_index: an index is out of range for shape {shape}")
    flat = flat.long() % builtins.max(total, 1)
    out = []
    for n in reversed(shape):
        out.append(flat % n)
        flat = flat // n
    return tuple(reversed(out))
Tensor.H = property(lambda self: self.t() if self.ndim == 2 else _matrix_only(self, "H"))
Tensor.mH = property(lambda self: self.mT)


def _matrix_only(x, name):
    raise ShapeError(f"tensor.{name} is only supported on matrices (2-D tensors), got {x.ndim}-D; use .mH for a batch")


# ---------------------------------------------------------------------- numeric helpers
@export("copysign")
def copysign(input, other):
    """|input| with the sign of other (-0.0 counts as negative, as in PyTorch)."""
    dtype = D.promote(input.dtype, other.dtype) if isinstance(other, Tensor) else input.dtype
    input = input.to(dtype if dtype.is_floating_point else D.default_float)
    if isinstance(other, Tensor):
        return where(other.signbit(), -input.abs(), input.abs())
    return -input.abs() if math.copysign(1.0, other) < 0 else input.abs()


_AMINMAX = return_type("aminmax", ["min", "max"])
_HISTOGRAM = return_type("histogram", ["hist", "bin_edges"])


@export("aminmax")
def aminmax(input, *, dim=None, keepdim=False):
    dims = () if dim is None else dim   # (every dim)
    return _AMINMAX(input.amin(dims, keepdim), input.amax(dims, keepdim))


@export("diagflat")
def diagflat(input, offset=0):
    return input.reshape(-1).diag(offset)


@export("histogram", method=True)
def histogram(input, bins=100, *, range=None, weight=None, density=False):
    """(hist, bin_edges) of a 1-D view of input over `bins` equal bins of range (the data's by
    default); weights and density as in PyTorch."""
    if not isinstance(bins, int):
        raise DTypeError("histogram: bins must be an int here (explicit bin edges are not supported); "
                         "use gradc.bucketize with your edges")
    x = input.reshape(-1).detach()
    lo, hi = (float(x.min()), float(x.max())) if range is None and x.numel() else (range or (0.0, 0.0))
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5   # (numpy's and PyTorch's rule for a constant input)
    edges = linspace(lo, hi, bins + 1, dtype=input.dtype)
    inside = (x >= lo) & (x <= hi)
    idx = ((x - lo) * (bins / (hi - lo))).floor().long().clamp(0, bins - 1)
    w = weight.reshape(-1).to(input.dtype) if weight is not None else x.new_ones(x.shape)
    hist = x.new_zeros(bins).index_add(0, idx, where(inside, w, 0.0))
    if density:
        hist = hist / (hist.sum() * (hi - lo) / bins)
    return _HISTOGRAM(hist, edges)


def _areas(y, x, dx, d):
    """The trapezoids between neighbouring points of y along d: (y[i] + y[i+1]) * width / 2, the
    width dx (1 by default) or the spacing of x (1-D along d, or y's shape)."""
    m = builtins.max(y.shape[d] - 1, 0)
    pair = y.narrow(d, 1, m) + y.narrow(d, 0, m)
    if x is None:
        return pair * ((1.0 if dx is None else dx) / 2)
    gaps = x.diff(dim=-1 if x.ndim == 1 else d)
    if x.ndim == 1:
        gaps = gaps.reshape([-1 if i == d else 1 for i in builtins.range(y.ndim)])
    return pair * gaps / 2


@export("trapezoid", "trapz")
def trapezoid(y, x=None, *, dx=None, dim=-1):
    d = normalize_axis("trapezoid", dim, y.ndim)
    return y.sum(d) if y.shape[d] == 0 else _areas(y, x, dx, d).sum(d)


@export("cumulative_trapezoid")
def cumulative_trapezoid(y, x=None, *, dx=None, dim=-1):
    return _areas(y, x, dx, normalize_axis("cumulative_trapezoid", dim, y.ndim)).cumsum(dim)


# ---------------------------------------------------------------------- *_scatter
def _scatter_into(input, src, key):
    out = clone(input)
    out[key] = src
    return out


export("select_scatter")(lambda input, src, dim, index: _scatter_into(
    input, src, (slice(None),) * normalize_axis("select_scatter", dim, input.ndim) + (index,)))
export("slice_scatter")(lambda input, src, dim=0, start=None, end=None, step=1: _scatter_into(
    input, src, (slice(None),) * normalize_axis("slice_scatter", dim, input.ndim) + (slice(start, end, step),)))


@export("diagonal_scatter")
def diagonal_scatter(input, src, offset=0, dim1=0, dim2=1):
    """input with its diagonal (offset, dim1, dim2) replaced by src."""
    a, b = normalize_axis("diagonal_scatter", dim1, input.ndim), normalize_axis("diagonal_scatter", dim2, input.ndim)
    n = input.diagonal(offset, a, b).shape[-1]
    rows = [i - builtins.min(offset, 0) for i in builtins.range(n)]
    x = input.movedim((a, b), (-2, -1)).clone()
    x[..., rows, [r + offset for r in rows]] = src
    return x.movedim((-2, -1), (a, b))


@export("__contains__", function=False)
def _contains(self, element):
    """`v in t`: whether any element equals v (a number or a tensor that broadcasts), as PyTorch's."""
    if not isinstance(element, (Tensor, int, float, bool)):
        raise DTypeError(f"Tensor.__contains__ only supports a tensor or a number, got {type(element).__name__}")
    return bool((self == element).any())


# ---------------------------------------------------------------------- signal windows
def _window(name, symmetric):
    """torch's *_window(N, periodic=True): the symmetric window of N + 1 points without its last
    (periodic, for spectral analysis), or of N points (periodic=False)."""
    def make(window_length, periodic=True, *args, dtype=None, device=None, requires_grad=False, **kw):
        n = int(window_length)
        values = symmetric(n + 1, *args, **kw)[:n] if periodic and n > 1 else symmetric(n, *args, **kw)
        return tensor(np.asarray(values, np.float64), dtype=dtype or D.default_float, device=device,
                      requires_grad=requires_grad)
    make.__name__ = name
    return export(name, method=False)(make)


def _cosine_sum(m, alpha, beta):
    return np.ones(m) if m == 1 else alpha - beta * np.cos(2 * np.pi * np.arange(m) / (m - 1))


hann_window = _window("hann_window", np.hanning)
hamming_window = _window("hamming_window", lambda m, alpha=0.54, beta=0.46: _cosine_sum(m, alpha, beta))
blackman_window = _window("blackman_window", np.blackman)
bartlett_window = _window("bartlett_window", np.bartlett)
kaiser_window = _window("kaiser_window", lambda m, beta=12.0: np.kaiser(m, beta))
