"""Tensor methods that third-party PyTorch scripts reach for, as composites of the ops below
them: narrowing a dimension, and the other everyday spellings real training scripts use."""
import math
import warnings

import numpy as np

from . import dispatch
from . import dtypes as D
from .composite import assign, cat, clone, copying
from .creation import arange, full, legacy, tensor
from .errors import DTypeError, ShapeError, TraceError
from .grad_mode import is_grad_enabled
from .indexing import getitem
from .ops.frontend import export, where
from .shapes import normalize_axis
from .tensor import Tensor


def _index(x, name, what):
    """A Python int from an int or a one-element integer tensor (PyTorch accepts both)."""
    if isinstance(x, Tensor):
        if x.numel() != 1 or x.dtype.is_floating_point:
            raise ShapeError(f"{name}: {what} must be an int or a one-element integer tensor, got shape {tuple(x.shape)}")
        x = x.item()
    return int(x)


@export("narrow")
def narrow(input, dim, start, length):
    """input's elements start .. start + length - 1 along dim (a view; start may be negative)."""
    d = normalize_axis("narrow", dim, input.ndim)
    size = input.shape[d]
    start, length = _index(start, "narrow", "start"), _index(length, "narrow", "length")
    if not -size <= start <= size:
        raise ShapeError(f"narrow: start {start} is out of range for dim {d} of size {size} (shape {tuple(input.shape)})")
    start = start + size if start < 0 else start
    if length < 0 or start + length > size:
        raise ShapeError(f"narrow: start {start} + length {length} exceeds dim {d} of size {size} "
                         f"(shape {tuple(input.shape)}); pass a length of at most {size - start}")
    return getitem(input, (slice(None),) * d + (slice(start, start + length),))


# ---------------------------------------------------------------------- in place
def _operand(self):
    """`self` as the operand of its own in-place op: a copy while autograd records eagerly, so the
    VJP's saved operand is not the tensor that the result then overwrites."""
    if is_grad_enabled() and dispatch.tracer() is None and self.requires_grad:
        return clone(self)
    return self


def _in_place(name):
    def op(self, *args, **kwargs):
        return assign(self, getattr(_operand(self), name)(*args, **kwargs), name + "_")
    op.__name__ = name + "_"
    op.__doc__ = f"In-place {name}: self holds self.{name}(...) afterwards; returns self."
    return op


for _name in ("relu", "exp", "log", "sqrt", "rsqrt", "neg", "abs", "sigmoid", "tanh", "pow", "floor", "ceil",
              "round", "sin", "cos", "sign", "trunc", "reciprocal", "square", "erf", "clamp_min", "clamp_max",
              "lerp", "log1p", "expm1", "logical_not", "logical_and", "logical_or", "logical_xor",
              "tan", "asin", "acos", "atan", "sinh", "cosh", "asinh", "acosh", "atanh", "arcsin", "arccos", "arctan",
              "arcsinh", "arccosh", "arctanh", "erfc", "erfinv", "exp2", "lgamma", "digamma", "atan2", "arctan2",
              "hypot", "xlogy", "logit", "frac", "sgn", "deg2rad", "rad2deg", "heaviside", "ldexp", "nextafter",
              "fix", "negative", "absolute", "bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_not"):
    export(_name + "_", function=False)(_in_place(_name))

# Python's augmented assignment (p -= lr * p.grad, out += identity) writes into the tensor, as in PyTorch
export("__iadd__", function=False)(lambda self, other: self.add_(other))
export("__isub__", function=False)(lambda self, other: self.sub_(other))
export("__imul__", function=False)(lambda self, other: self.mul_(other))
export("__itruediv__", function=False)(lambda self, other: self.div_(other))
export("__ipow__", function=False)(lambda self, other: self.pow_(other))
export("__ifloordiv__", function=False)(lambda self, other: assign(self, self // other, "__ifloordiv__"))
export("__imod__", function=False)(lambda self, other: assign(self, self % other, "__imod__"))
export("__iand__", function=False)(lambda self, other: assign(self, self & other, "__iand__"))
export("__ior__", function=False)(lambda self, other: assign(self, self | other, "__ior__"))
export("__ixor__", function=False)(lambda self, other: assign(self, self ^ other, "__ixor__"))
export("__abs__", function=False)(lambda self: self.abs())
export("__pos__", function=False)(lambda self: self)   # as torch: +x is x itself


# ---------------------------------------------------------------------- missing spellings
@export("clamp_min")
def clamp_min(input, min):
    return input.clamp(min=min)


@export("clamp_max")
def clamp_max(input, max):
    return input.clamp(max=max)


@export("reciprocal")
def reciprocal(input):
    return 1.0 / input


@export("lerp")
def lerp(input, end, weight):
    """input + weight * (end - input) (an exponential moving average's p_ema.lerp_(p, 1 - decay))."""
    return input + weight * (end - input)


# ---------------------------------------------------------------------- legacy typed constructors
class _LegacyType(type):
    def __instancecheck__(cls, obj):
        return isinstance(obj, Tensor) and obj.dtype is cls.dtype and obj.device.type == "cpu"


def _legacy(name, dtype):
    def __new__(cls, *args, device=None):
        return legacy(name, dtype, args, device)
    __new__.__doc__ = legacy.__doc__.format(name=name, dtype=dtype)
    return _LegacyType(name, (), {"__new__": __new__, "dtype": dtype, "__doc__": __new__.__doc__})


for _name, _dtype in (("FloatTensor", D.float32), ("DoubleTensor", D.float64), ("HalfTensor", D.float16),
                      ("LongTensor", D.int64), ("IntTensor", D.int32), ("BoolTensor", D.bool_)):
    export(_name, method=False)(_legacy(_name, _dtype))


# ---------------------------------------------------------------------- dtype facts
class finfo:
    """Facts about a floating dtype (bits, eps, max, min, tiny, smallest_normal, resolution), as
    torch.finfo; `gradc.finfo()` describes the default float dtype."""

    def __init__(self, type=None):
        type = D.default_float if type is None else type
        if type is D.bfloat16:   # facts of a dtype gradc names but has no tensors of (a mask's finfo(dtype).min)
            self.dtype, self.bits, self.eps, self.max, self.min = "bfloat16", 16, 2.0 ** -7, 3.3895313892515355e38, \
                -3.3895313892515355e38
            self.tiny = self.smallest_normal = 1.1754943508222875e-38
            self.resolution = 0.01
            return
        if not getattr(type, "is_floating_point", False):
            raise DTypeError(f"finfo: {type!r} is not a floating-point dtype; use gradc.iinfo for integers")
        info = np.finfo(type.np)
        self.dtype, self.bits = type.name, info.bits
        self.eps, self.max, self.min = float(info.eps), float(info.max), float(info.min)
        self.tiny = self.smallest_normal = float(info.tiny)
        self.resolution = 10.0 ** -info.precision  # a Python float, as in PyTorch (not rounded to the dtype)

    def __repr__(self):
        return (f"finfo(resolution={self.resolution}, min={self.min:g}, max={self.max:g}, eps={self.eps:g}, "
                f"smallest_normal={self.smallest_normal:g}, tiny={self.tiny:g}, dtype={self.dtype})")


class iinfo:
    """Facts about an integer dtype (bits, min, max), as torch.iinfo."""

    def __init__(self, type):
        name = type.name   # (int8, uint8, int16: facts of a dtype gradc names but has no tensors of)
        if name not in ("int8", "uint8", "int16", "int32", "int64"):
            raise DTypeError(f"iinfo: {type!r} is not an integer dtype; use gradc.finfo for floating dtypes")
        info = np.iinfo(name)
        self.dtype, self.bits, self.min, self.max = name, info.bits, int(info.min), int(info.max)

    def __repr__(self):   # (PyTorch prints the bounds with %g)
        return f"iinfo(min={float(self.min):g}, max={float(self.max):g}, dtype={self.dtype})"


export("finfo", method=False)(finfo)
export("iinfo", method=False)(iinfo)
export("get_default_dtype", method=False)(lambda: D.default_float)


# ---------------------------------------------------------------------- more of the everyday surface
export("int", function=False)(lambda self: self.to(D.int32))
export("element_size", function=False)(lambda self: self.dtype.itemsize)
export("ndimension", function=False)(lambda self: self.ndim)
export("nelement", function=False)(lambda self: self.numel())


@export("select")
def select(input, dim, index):
    """input[..., index, ...] at dim (the dim is removed)."""
    d = normalize_axis("select", dim, input.ndim)
    size = input.shape[d]
    index = _index(index, "select", "index")
    if not -size <= index < size:
        raise ShapeError(f"select: index {index} is out of range for dim {d} of size {size} (shape {tuple(input.shape)})")
    return getitem(input, (slice(None),) * d + (index,))


@export("unbind")
def unbind(input, dim=0):
    d = normalize_axis("unbind", dim, input.ndim)
    return tuple(select(input, d, i) for i in range(input.shape[d]))


@export("addmm")
def addmm(input, mat1, mat2, beta=1, alpha=1):
    """beta * input + alpha * (mat1 @ mat2) (GPT-2's Conv1D layer)."""
    return _scaled_sum(input, mat1.mm(mat2), beta, alpha)


@export("baddbmm")
def baddbmm(input, batch1, batch2, beta=1, alpha=1):
    return _scaled_sum(input, batch1.bmm(batch2), beta, alpha)


@export("addmv")
def addmv(input, mat, vec, beta=1, alpha=1):
    return _scaled_sum(input, mat.matmul(vec), beta, alpha)


def _scaled_sum(input, product, beta, alpha):
    product = product if alpha == 1 else product * alpha
    if beta == 0:  # PyTorch ignores input then (nan and inf in it do not propagate)
        return product
    return (input if beta == 1 else input * beta) + product


@export("repeat_interleave")
@copying
def repeat_interleave(input, repeats=None, dim=None, output_size=None):
    """Each element (or slice along dim) repeated `repeats` times in place: an int, or one count per
    element (a tensor; the result's length is their sum, read eagerly, or output_size when given,
    which also lets a compiled call trace it). repeat_interleave(counts) repeats 0, 1, 2, ...."""
    if repeats is None:   # torch.repeat_interleave(repeats): the indices, each repeated
        return repeat_interleave(arange(input.shape[0], device=input.device), input, 0, output_size)
    if isinstance(repeats, Tensor) and repeats.ndim == 0:
        repeats = _index(repeats, "repeat_interleave", "repeats")
    x = input.reshape(-1) if dim is None else input
    d = 0 if dim is None else normalize_axis("repeat_interleave", dim, x.ndim)
    shape = list(x.shape)
    if isinstance(repeats, Tensor):
        return _repeat_each(x, repeats, d, output_size)
    if repeats < 0:
        raise ShapeError(f"repeat_interleave: repeats must be non-negative, got {repeats}")
    expanded = x.unsqueeze(d + 1).expand(shape[:d + 1] + [repeats] + shape[d + 1:])
    return expanded.reshape(shape[:d] + [shape[d] * repeats] + shape[d + 1:])


def _repeat_each(x, repeats, d, output_size):
    """x repeated along d by per-slice counts: slice j fills the positions from the counts' running
    sum before it, found for every output position by a binary search of that sum."""
    from .tensor_index import searchsorted
    if repeats.ndim != 1 or repeats.shape[0] not in (x.shape[d], 1):
        raise ShapeError(f"repeat_interleave: repeats must be one count per element of dim {d} ({x.shape[d]}), got "
                         f"shape {tuple(repeats.shape)}")
    repeats = repeats.long().expand(x.shape[d])
    if output_size is None:
        if dispatch.tracer() is not None:
            raise TraceError("repeat_interleave with a tensor of counts: the result's length depends on their "
                             "values; pass output_size= to compile it")
        if bool((repeats < 0).any()):
            raise ShapeError("repeat_interleave: repeats must be non-negative")
        output_size = int(repeats.sum().item())
    ends = repeats.cumsum(0)
    which = searchsorted(ends, arange(output_size, device=x.device), right=True)
    return x.index_select(d, which)


@export("tile")
@copying
def tile(input, *dims):
    dims = tuple(dims[0]) if len(dims) == 1 and isinstance(dims[0], (tuple, list)) else dims
    x = input.reshape((1,) * (len(dims) - input.ndim) + tuple(input.shape)) if len(dims) > input.ndim else input
    return x.repeat(*((1,) * (x.ndim - len(dims)) + dims))


@export("diag")
def diag(input, diagonal=0):
    """A 1-D input becomes the k-th diagonal of a square matrix; a 2-D input gives its k-th diagonal."""
    if input.ndim == 1:
        n = input.shape[0] + abs(diagonal)
        rows, cols = arange(n).reshape(n, 1), arange(n).reshape(1, n)
        # entry (i, i + k) is input[i] (or input[j] for (j - k, j) below the diagonal)
        pos = (rows if diagonal >= 0 else cols).expand(n, n).clamp(max=input.shape[0] - 1)
        vals = getitem(input, pos)
        return where(cols - rows == diagonal, vals, 0)
    if input.ndim != 2:
        raise ShapeError(f"diag: expected a 1-D or 2-D input, got shape {tuple(input.shape)}")
    n, m = input.shape
    start_r, start_c = max(-diagonal, 0), max(diagonal, 0)
    length = max(min(n - start_r, m - start_c), 0)
    idx = arange(length)
    return getitem(input, (idx + start_r, idx + start_c))


@export("count_nonzero")
def count_nonzero(input, dim=None):
    return (input != 0).sum(dim) if dim is not None else (input != 0).sum()


@export("meshgrid", method=False)
def meshgrid(*tensors, indexing=None):
    """Coordinate grids from 1-D tensors; indexing 'ij' (PyTorch's default, with its warning when
    not given) or 'xy' (the first two dims swapped)."""
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    if indexing is None:
        warnings.warn("torch.meshgrid: in an upcoming release, it will be required to pass the indexing argument.",
                      stacklevel=2)
        indexing = "ij"
    if indexing not in ("ij", "xy"):
        raise ValueError(f"meshgrid: indexing must be 'ij' or 'xy', got {indexing!r}")
    if any(t.ndim > 1 for t in tensors):
        raise ShapeError(f"meshgrid: expected 0-D or 1-D tensors, got shapes {[t.shape for t in tensors]}")
    ts = [t.reshape(-1) for t in tensors]
    shape = [t.shape[0] for t in ts]
    grids = [t.reshape([-1 if i == j else 1 for j in range(len(ts))]).expand(shape) for i, t in enumerate(ts)]
    if indexing == "xy" and len(ts) >= 2:  # the 'ij' grids with their first two dims swapped
        grids = [g.transpose(0, 1) for g in grids]
    return tuple(grids)


@export("fmod")
def fmod(input, other):
    """The remainder with the sign of the dividend (C's fmod), unlike % (the divisor's sign): |a| % |b|
    signed as a, exact where a - b would round away a small a (fmod(-1, 1e8) is -1; fmod(x, inf) is x)."""
    size = other.abs() if isinstance(other, Tensor) else abs(other)
    return where(input < 0, -((-input) % size), input % size)   # (each branch has gradient 1 in input, as fmod)


@export("cumprod")
@copying
def cumprod(input, dim, dtype=None):
    """Running products along dim (a diffusion schedule's alphas_cumprod): a log-depth scan of
    products, so zeros and negative values are exact and autodiff covers the gradient."""
    x = input.to(dtype) if dtype is not None else (input.long() if input.dtype.category < 2 else input)
    d = normalize_axis("cumprod", dim, x.ndim) if x.ndim else 0
    if x.ndim == 0:
        return x
    n, k = x.shape[d], 1
    while k < n:
        shape = list(x.shape)
        shape[d] = k
        x = x * cat([full(shape, 1, dtype=x.dtype, device=x.device), narrow(x, d, 0, n - k)], d)
        k *= 2
    return x


export("log2")(lambda input: input.log() * (1.0 / math.log(2.0)))
export("log10")(lambda input: input.log() * (1.0 / math.log(10.0)))


# ---------------------------------------------------------------------- data-dependent shapes (eager only)
def _values(x, what):
    data = x._concrete(f"{what} (its result's shape depends on the tensor's values)")
    return data if isinstance(data, np.ndarray) else data.get()


@export("nonzero")
def nonzero(input, as_tuple=False):
    values = _values(input, "nonzero")
    if values.ndim == 0:   # a scalar: one (empty) index row if it is nonzero, as torch's
        n = int(values != 0)
        if as_tuple:
            return (tensor(np.zeros(n, np.int64), device=input.device),)
        return tensor(np.zeros((n, 0), np.int64), device=input.device)
    idx = np.nonzero(values)
    if as_tuple:
        return tuple(tensor(i.astype(np.int64), device=input.device) for i in idx)
    return tensor(np.stack(idx, 1).astype(np.int64).reshape(-1, input.ndim), device=input.device)


export("argwhere")(lambda input: nonzero(input))


@export("bincount")
def bincount(input, weights=None, minlength=0):
    if input.ndim != 1 or input.dtype.is_floating_point or input.dtype is D.bool_:
        raise DTypeError(f"bincount: expected a 1-D integer tensor, got {input.dtype!r} of shape {tuple(input.shape)}")
    vals = _values(input, "bincount")
    if (vals < 0).any():
        raise ShapeError("bincount: the input must not contain negative values")
    w = None if weights is None else _values(weights, "bincount")
    out = np.bincount(vals, weights=w, minlength=minlength)
    dtype = D.int64 if weights is None else (weights.dtype if weights.dtype.is_floating_point else D.float64)
    return tensor(out.astype(dtype.np), dtype=dtype, device=input.device)


def _unique_out(input, vals, inverse, counts, return_inverse, return_counts, inverse_shape):
    out = [tensor(vals, dtype=input.dtype, device=input.device)]
    if return_inverse:
        out.append(tensor(inverse.reshape(inverse_shape).astype(np.int64), device=input.device))
    if return_counts:
        out.append(tensor(counts.astype(np.int64), device=input.device))
    return out[0] if len(out) == 1 else tuple(out)


@export("unique")
def unique(input, sorted=True, return_inverse=False, return_counts=False, dim=None):
    """The distinct values, sorted (each NaN is distinct, as in PyTorch); with dim, the distinct
    slices along dim, in lexicographic order."""
    data = _values(input, "unique")
    if dim is None:
        vals, inverse, counts = np.unique(data, return_inverse=True, return_counts=True, equal_nan=False)
        return _unique_out(input, vals, inverse, counts, return_inverse, return_counts, input.shape)
    d = normalize_axis("unique", dim, input.ndim)
    vals, inverse, counts = np.unique(data, return_inverse=True, return_counts=True, axis=d)
    return _unique_out(input, vals, inverse, counts, return_inverse, return_counts, (input.shape[d],))


@export("unique_consecutive")
def unique_consecutive(input, return_inverse=False, return_counts=False, dim=None):
    """The first of each run of equal consecutive values (slices along dim, when given)."""
    data = _values(input, "unique_consecutive")
    d = None if dim is None else normalize_axis("unique_consecutive", dim, input.ndim)
    rows = data.reshape(-1, 1) if d is None else np.moveaxis(data, d, 0).reshape(data.shape[d], -1)
    if len(rows) == 0:
        starts = np.zeros(0, np.int64)
    else:
        starts = np.concatenate([[0], np.flatnonzero((rows[1:] != rows[:-1]).any(axis=1)) + 1])
    counts = np.diff(np.append(starts, len(rows)))
    inverse = np.repeat(np.arange(len(starts)), counts)
    vals = data.reshape(-1)[starts] if d is None else np.take(data, starts, axis=d)
    return _unique_out(input, vals, inverse, counts, return_inverse, return_counts,
                       input.shape if d is None else (input.shape[d],))


def _shift(input, other, name):
    """(input, 2 ** other): bools count as int64, as PyTorch promotes them."""
    input = input.long() if input.dtype is D.bool_ else input
    other = other.long() if isinstance(other, Tensor) and other.dtype is D.bool_ else other
    if input.dtype.category != 1 or (isinstance(other, Tensor) and other.dtype.category != 1):
        raise DTypeError(f"{name}: bit shifts need integer operands, got {input.dtype!r}")
    return input, (1 << other if isinstance(other, int) else 2 ** other)


@export("bitwise_left_shift", "__lshift__")
def bitwise_left_shift(input, other):
    """input * 2 ** other (for an integer tensor), as << on two's-complement integers."""
    input, amount = _shift(input, other, "bitwise_left_shift")
    return input * amount


@export("bitwise_right_shift", "__rshift__")
def bitwise_right_shift(input, other):
    """The arithmetic shift right: floor(input / 2 ** other), as >> on two's-complement integers."""
    input, amount = _shift(input, other, "bitwise_right_shift")
    return input // amount


export("__rlshift__", function=False)(lambda self, other: bitwise_left_shift(tensor(other, device=self.device), self))
export("__rrshift__", function=False)(lambda self, other: bitwise_right_shift(tensor(other, device=self.device), self))
