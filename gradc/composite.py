"""Composite ops: what users call that is not a primitive, written with primitives' frontends, so
autodiff, fusion and every backend cover them for free. Each is published by `export`."""
import builtins
import functools

import numpy as np

from . import dispatch
from . import dtypes as D
from .creation import arange, full, tensor
from .device import CPU, device as _device, require as _require_device
from .errors import AutogradError, CastError, DTypeError, ShapeError, ValueRangeError
from .symint import SymInt
from .grad_mode import is_grad_enabled
from .indexing import getitem
from .ops import OPS
from .ops.frontend import axes_arg, cast, export, floating, where
from .ops.movement import strided_slice
from .shapes import normalize_axis, preserve_format, prod
from .tensor import Tensor
from .return_types import return_type

max_result = return_type("max", ["values", "indices"])
min_result = return_type("min", ["values", "indices"])


# ---------------------------------------------------------------------- devices and dtypes
@export("to", function=False)
def to(self, *args, dtype=None, device=None, copy=False, non_blocking=False, memory_format=None):
    # non_blocking (as PyTorch's, a hint): a copy is ordered on the device's stream either way
    for a in args:
        if isinstance(a, (D.DType, D.UnsupportedDType, type)) or (isinstance(a, str) and a in D.ALL):
            dtype = a
        elif isinstance(a, Tensor):
            dtype, device = a.dtype, a.device
        else:
            device = a
    out = self
    if device is not None:
        dev = _require_device(_device(device))
        if dev != out.device:
            out = dispatch.interpreter().to_device(out, dev)
    if dtype is not None:
        out = cast(out, D.get_dtype(dtype))
    if copy and out is self:
        out = clone(self)
    if memory_format is not None and memory_format is not preserve_format:
        out = out.contiguous(memory_format=memory_format)
    return out


@export("cuda", function=False)
def cuda(self, device=None, non_blocking=False):
    return to(self, "cuda" if device is None else f"cuda:{int(device)}")


export("cpu", function=False)(lambda self: to(self, "cpu"))
export("float", function=False)(lambda self: to(self, D.float32))
export("half", function=False)(lambda self: to(self, D.float16))
export("double", function=False)(lambda self: to(self, D.float64))
export("long", function=False)(lambda self: to(self, D.int64))
export("bool", function=False)(lambda self: to(self, D.bool_))
export("type_as", function=False)(lambda self, other: to(self, other.dtype))


export("detach", method=False)(lambda input: input.detach())
export("numel", method=False)(lambda input: input.numel())


@export("clone")
def clone(input):
    """A copy with its own storage; autograd sees it as identity."""
    out = OPS["reshape"].bind(input, shape=tuple(input.shape))   # (a plain tuple attribute, as every op's)
    if out._data is not None:
        out._data, out._version = out._data.copy(), [0]
        out._view_of = None   # its own storage: no write into the input can reach it
    elif dispatch.tracer() is not None:
        dispatch.tracer().own_memory(out)  # traced: a copy, so writing into it is no write into a view
    return out


def own_result(out, args):
    """`out` of a function that copies in PyTorch, cloned where an identity case (cat([x]),
    x.repeat(1, 1), pad(x, (0, 0)), roll(x, 0)) made it one of the tensor arguments or a view of
    one: writing into the result must never reach an argument."""
    tracer = dispatch.tracer()
    for a in args:
        if isinstance(a, (list, tuple)):
            if own_result(out, a) is not out:
                return clone(out)
        elif isinstance(a, Tensor) and (out is a or (tracer.is_view(out) if tracer is not None else _same_memory(out, a))):
            return clone(out)
    return out


def _same_memory(a, b):
    x, y = a._data, b._data
    return x is y or (x.base is not None and (x.base is y or x.base is y.base))


def copying(fn):
    """Decorates a function that copies in PyTorch: see own_result."""
    @functools.wraps(fn)
    def call(*args, **kwargs):
        out = fn(*args, **kwargs)
        return own_result(out, args) if isinstance(out, Tensor) else out
    return call


# ---------------------------------------------------------------------- elementwise
export("rsqrt")(lambda input: 1.0 / input.sqrt())
export("relu")(lambda input: where(input <= 0, 0, input))   # NaN stays NaN (gradient 1), as in PyTorch
export("square")(lambda input: (input.long() if input.dtype is D.bool_ else input) ** 2)   # bool: int64


@export("clamp", "clip")
def clamp(input, min=None, max=None):
    """Values below min become min, above max become max; the gradient is 1 inside [min, max]
    (bounds included) and 0 outside. A NaN input stays NaN with no gradient, a NaN bound makes the
    result NaN, as in PyTorch."""
    if min is None and max is None:
        raise ValueRangeError("clamp: at least one of min and max must be given (not None)")
    out = input
    if min is not None:
        out = where(out >= min, out, min)
    if max is not None:
        out = where(out <= max, out, max)
    if input.dtype.is_floating_point and out is not input:
        out = where(input != input, input.detach(), out)
    return out


@export("__invert__", function=False)
def invert(self):
    if self.dtype.is_floating_point:
        raise DTypeError(f"~ is defined for bool and integer tensors, got {self.dtype!r}")
    return self.logical_not() if self.dtype is D.bool_ else self.bitwise_not()


# ---------------------------------------------------------------------- in place
def assign(self, result, what):
    """Make `self` hold `result` (same shape): the mechanism of every in-place op."""
    if result.shape != self.shape:
        raise ShapeError(f"{what}: the result has shape {tuple(result.shape)}, which cannot be written into "
                         f"a tensor of shape {tuple(self.shape)}")
    if result.dtype is not self.dtype:
        if result.dtype.category > self.dtype.category:
            raise CastError(f"{what}: result type {result.dtype!r} cannot be written into a {self.dtype!r} tensor")
        result = cast(result, self.dtype)
    if is_grad_enabled() and self.is_leaf and self.requires_grad:  # also zero_/fill_/copy_ of a constant
        raise AutogradError(f"{what} on a leaf tensor that requires grad; wrap parameter updates "
                            "in `with gradc.no_grad():`")
    seen = getattr(self, "_view_of", None) if is_grad_enabled() and dispatch.tracer() is None else None
    if seen is not None and seen[0] is self._grad_fn and (
            seen[2]._grad_fn is not None or result.requires_grad and not seen[2].requires_grad):
        return _assign_through_view(self, result, what, seen[2], seen[3])
    return dispatch.interpreter().assign(self, result, what)


def _assign_through_view(view, result, what, base, ops):
    """An in-place op with history on a view (y[:2].mul_(3) of y = x * 2, buf[:, 0].copy_(h) of a
    zeros buffer), as PyTorch does it: the base takes the new values at the view's positions, with
    their history, and the view becomes that view of the new base. The positions come from replaying
    the view ops on indices. (A view of a leaf that requires grad is refused by the interpreter.)"""
    index = arange(base.numel(), device=base.device).reshape(base.shape)
    for prim, attrs in ops:
        index = prim.bind(index, **attrs)
    dispatch.interpreter().assign(base, put(base, index.reshape(-1), result.reshape(-1)), what)
    fresh = base
    for prim, attrs in ops:
        fresh = prim.bind(fresh, **attrs)
    xp = np if base.device is CPU else base.device.xp
    if not xp.shares_memory(view._data, base._data):   # a view op that had to copy
        view._data[...] = fresh._data
    view._grad_fn, view.requires_grad, view._view_of = fresh._grad_fn, fresh.requires_grad, fresh._view_of
    return view


def _old_value(self, *others):
    """`self` as an operand of its own in-place op. mul's VJP reads its operands after the write,
    so when autograd records the op it gets a copy of the old value (torch saves original_self)."""
    if is_grad_enabled() and dispatch.tracer() is None and (
            self.requires_grad or any(isinstance(o, Tensor) and o.requires_grad for o in others)):
        return clone(self)
    return self


export("add_", function=False)(lambda self, other, alpha=1: assign(self, self + (other * alpha if alpha != 1 else other), "add_"))
export("sub_", function=False)(lambda self, other, alpha=1: assign(self, self - (other * alpha if alpha != 1 else other), "sub_"))
export("mul_", function=False)(lambda self, other: assign(self, _old_value(self, other) * other, "mul_"))
export("div_", function=False)(lambda self, other, *, rounding_mode=None: assign(
    self, self / other if rounding_mode is None else self.div(other, rounding_mode=rounding_mode), "div_"))
export("addcmul_", function=False)(lambda self, a, b, value=1: assign(self, self + a * b * value, "addcmul_"))
export("addcdiv_", function=False)(lambda self, a, b, value=1: assign(self, self + a / b * value, "addcdiv_"))
export("clamp_", function=False)(lambda self, min=None, max=None: assign(self, clamp(self, min, max), "clamp_"))
export("zero_", function=False)(lambda self: fill_(self, 0))


@export("fill_", function=False)
def fill_(self, value):
    if isinstance(value, Tensor):
        return copy_(self, value.reshape(()).expand(self.shape))
    return assign(self, full(self.shape, value, dtype=self.dtype, device=self.device), "fill_")


@export("copy_", function=False)
def copy_(self, src):
    if not isinstance(src, Tensor):
        src = tensor(src, dtype=self.dtype, device=self.device)
    if src.device != self.device:
        src = to(src, self.device)
    if src.shape != self.shape:
        src = src.expand(self.shape)
    if src.dtype is not self.dtype:   # copy_ converts any dtype (floats to an integer tensor truncate), as in PyTorch
        src = src.to(self.dtype)
    return assign(self, src, "copy_")


# ---------------------------------------------------------------------- reductions
def _count(x, axes):
    return prod(x.shape[a] for a in axes)


def accumulate_in_float32(fn):
    """Outside autocast, float16 operands are computed in float32 and the result rounded back once,
    as PyTorch does for reductions and normalisations (a float16 sum of 1000 values of 100.0
    overflows); inside autocast the policy table decides, as before."""
    def wrapper(input, *args, **kwargs):
        if input.dtype is not D.float16 or dispatch.low_precision() is not None:  # autocast's policy rules
            return fn(input, *args, **kwargs)
        return cast(fn(cast(input, D.float32), *args, **kwargs), D.float16)
    wrapper.__name__, wrapper.__doc__, wrapper.__wrapped__ = fn.__name__, fn.__doc__, fn   # (help() shows fn's signature)
    return wrapper


@export("mean")
@accumulate_in_float32
def mean(input, dim=None, keepdim=False, *, dtype=None):
    if dtype is not None:
        input = cast(input, D.get_dtype(dtype))
    if not input.dtype.is_floating_point:
        raise DTypeError(f"mean() needs a floating-point tensor, got {input.dtype!r}; call .float() first")
    axes = axes_arg(input, dim, "mean")
    return input.sum(axes, keepdim) / _count(input, axes)


@export("var")
@accumulate_in_float32
def var(input, dim=None, unbiased=True, keepdim=False, *, correction=None):
    """As torch.var, positional order included: var(dim, unbiased, keepdim), and var(unbiased)."""
    if isinstance(dim, bool):   # torch.var(input, unbiased): over every dim
        dim, unbiased = None, dim
    axes = axes_arg(input, dim, "var")
    ddof = (1 if unbiased else 0) if correction is None else correction
    centered = input - mean(input, axes, keepdim=True)
    return (centered * centered).sum(axes, keepdim) / builtins.max(_count(input, axes) - ddof, 0)


def safe_sqrt(s):
    """sqrt whose gradient is 0 where s is 0, PyTorch's for std, norms and distances (sqrt's own would
    be inf there, and nan after the chain rule's * 0)."""
    pos = s > 0
    return where(pos, where(pos, s, 1.0).sqrt(), where(s == s, 0.0, s))   # (NaN stays NaN: std of one element)


@export("std")
def std(input, dim=None, unbiased=True, keepdim=False, *, correction=None):
    return safe_sqrt(var(input, dim, unbiased, keepdim, correction=correction))


@export("amin")
def amin(input, dim=None, keepdim=False):
    if input.dtype is D.bool_:  # bool has no negation
        return input.logical_not().amax(dim, keepdim).logical_not()
    return -((-input).amax(dim, keepdim))


@export("max")
def max(input, dim=None, keepdim=False):
    """Without dim: the largest element. With dim: (values, indices), as in PyTorch."""
    if isinstance(dim, Tensor):
        return input.maximum(dim)
    if dim is None:
        return input.amax()
    if input.dtype is D.bool_:   # (bools have no argmax: their values as integers, given back as bools)
        values, indices = max(input.long(), dim, keepdim)
        return max_result(values.bool(), indices)
    if input.ndim == 0:
        return max_result(input.amax(dim, keepdim), input.argmax(dim, keepdim))
    return _at_index(input, input.argmax(dim, keepdim=True), dim, keepdim)


@export("min")
def min(input, dim=None, keepdim=False):
    if isinstance(dim, Tensor):
        return input.minimum(dim)
    if dim is None:
        return amin(input)
    if input.dtype is D.bool_:
        values, indices = min(input.long(), dim, keepdim)
        return min_result(values.bool(), indices)
    if input.ndim == 0:
        return min_result(amin(input, dim, keepdim), (-input).argmax(dim, keepdim))
    return _at_index(input, (-input).argmax(dim, keepdim=True), dim, keepdim, min_result)


def linear_index(index, dim, shape):
    """Flat positions into a tensor of `shape` for `index` along `dim` (PyTorch's gather/scatter
    layout: every other coordinate is the index's own)."""
    strides = [prod(shape[i + 1:]) for i in range(len(shape))]
    lin = index * strides[dim]
    for d in range(index.ndim):
        if d != dim:
            coord = arange(index.shape[d], device=index.device).reshape(
                (1,) * d + (index.shape[d],) + (1,) * (index.ndim - d - 1))
            lin = lin + coord * strides[d]
    return lin


def put(x, lin, values, unique=False):
    """x with the flat positions `lin` (1-D int64) set to `values` (1-D, same length, x's dtype);
    unique=True says no position repeats (slices). A position written more than once takes its last
    write, as PyTorch's loops do: a stable sort by position ends each run of equal positions with
    its last write, and only those writes are kept (the others add -0.0, False or 0, which changes
    no value)."""
    n, m = x.numel(), int(lin.shape[0])
    hit = OPS["scatter_add"].bind(full(lin.shape, 1, dtype=D.int64, device=x.device), lin, axis=0, size=n) > 0
    if m > 1 and not unique:
        order = OPS["argsort"].bind(lin, axis=0, descending=False)
        ranked = OPS["gather"].bind(lin, order, axis=0)
        ends = cat([ranked[1:] != ranked[:-1], full((1,), True, dtype=D.bool_, device=x.device)])
        last = OPS["scatter_add"].bind(cast(ends, D.int64), order, axis=0, size=m) > 0
        none = -0.0 if values.dtype.is_floating_point else (False if values.dtype is D.bool_ else 0)
        values = where(last, values, none)
    new = OPS["scatter_add"].bind(values, lin, axis=0, size=n)
    return where(hit, new, x.reshape(-1)).reshape(x.shape)


def gather_along(input, dim, index):
    """gather(input, dim, index) for indices valid by construction (argmax's, argsort's, clamped
    positions): the library's own reads, without the range check that a user's index gets."""
    return OPS["gather"].bind(input.reshape(-1), linear_index(index, dim, input.shape), axis=0)


def _at_index(input, index, dim, keepdim, result=max_result):
    """(values, indices) of max/min over dim: the values are read at the index, so the gradient goes
    to that one element, as in PyTorch (amax/amin split it among ties)."""
    d = normalize_axis("max", dim, input.ndim)
    values = gather_along(input, d, index)
    if not keepdim:
        values, index = values.squeeze(d), index.squeeze(d)
    return result(values, index)


export("argmin")(lambda input, dim=None, keepdim=False: (-input).argmax(dim, keepdim))
export("all")(lambda input, dim=None, keepdim=False: input.bool().logical_not().sum(dim, keepdim=keepdim) == 0)
export("any")(lambda input, dim=None, keepdim=False: input.bool().sum(dim, keepdim=keepdim) > 0)


def _empty_dim(input, dim):
    """Whether dim is empty: the softmax over it is empty too (as in PyTorch), and has no max."""
    return bool(input.ndim) and input.shape[normalize_axis("softmax", dim, input.ndim)] == 0


@accumulate_in_float32
def _softmax(input, dim):
    if _empty_dim(input, dim):
        return input * 1
    e = (input - input.amax(dim, keepdim=True).detach()).exp()
    return e / e.sum(dim, keepdim=True)


@accumulate_in_float32
def _log_softmax(input, dim):
    if _empty_dim(input, dim):
        return input * 1
    z = input - input.amax(dim, keepdim=True).detach()
    return z - z.exp().sum(dim, keepdim=True).log()


@export("softmax")
def softmax(input, dim, dtype=None):
    return _softmax(floating(input, "softmax") if dtype is None else cast(input, D.get_dtype(dtype)), dim)   # cast first, as PyTorch


@export("log_softmax")
def log_softmax(input, dim, dtype=None):
    return _log_softmax(floating(input, "log_softmax") if dtype is None else cast(input, D.get_dtype(dtype)), dim)


# ---------------------------------------------------------------------- movement
export("view_as", "reshape_as", function=False)(lambda self, other: self.reshape(other.shape))
export("expand_as", function=False)(lambda self, other: self.expand(other.shape))
export("__getitem__", function=False)(getitem)


@export("flatten")
def flatten(input, start_dim=0, end_dim=-1):
    if input.ndim == 0:
        return input.reshape(1)
    s = normalize_axis("flatten", start_dim, input.ndim)
    e = normalize_axis("flatten", end_dim, input.ndim)   # (the size, not -1: an empty batch flattens too)
    return input.reshape(input.shape[:s] + (prod(input.shape[s:e + 1]),) + input.shape[e + 1:])


@export("transpose")
def transpose(input, dim0, dim1):
    perm = list(range(input.ndim))
    a = normalize_axis("transpose", dim0, input.ndim)
    b = normalize_axis("transpose", dim1, input.ndim)
    if input.ndim == 0:
        return input
    perm[a], perm[b] = perm[b], perm[a]
    return input.permute(perm)


@export("t")
def t(input):
    if input.ndim > 2:
        raise ShapeError(f"t() expects a tensor with <= 2 dims, got shape {tuple(input.shape)}; use transpose(dim0, dim1)")
    return input.T


@export("unsqueeze")
def unsqueeze(input, dim):
    d = normalize_axis("unsqueeze", dim, input.ndim + 1)
    return input.reshape(input.shape[:d] + (1,) + input.shape[d:])


@export("squeeze")
def squeeze(input, dim=None):
    if dim is None:
        return input.reshape(tuple(s for s in input.shape if s != 1))
    axes = axes_arg(input, dim, "squeeze", empty_is_all=False)
    return input.reshape(tuple(s for i, s in enumerate(input.shape) if not (i in axes and s == 1)))


@export("split")
def split(input, split_size, dim=0):
    d = normalize_axis("split", dim, input.ndim)
    n = input.shape[d]
    if isinstance(split_size, SymInt):
        split_size = int(split_size)   # (how many pieces there are depends on it: a guard holds it)
    if isinstance(split_size, int) and split_size <= 0 and n:
        raise ShapeError(f"split: split_size must be positive, got {split_size}")
    sizes = ([split_size] * (n // split_size) + ([n % split_size] if n % split_size else []) if n else [0]) \
        if isinstance(split_size, int) else list(split_size)
    if not isinstance(split_size, int) and (builtins.sum(sizes) != n or builtins.min(sizes, default=0) < 0):
        raise ShapeError(f"split: split sizes {sizes} must be non-negative and sum exactly to {n}, the size of dim {d} "
                         f"(input shape {tuple(input.shape)})")
    out, start = [], 0
    for s in sizes:
        starts, stops = [0] * input.ndim, list(input.shape)
        starts[d], stops[d] = start, start + s
        out.append(strided_slice(input, starts, stops, [1] * input.ndim))
        start += s
    return tuple(out)


@export("chunk")
def chunk(input, chunks, dim=0):
    d = normalize_axis("chunk", dim, input.ndim)
    if not isinstance(chunks, int) or chunks <= 0:
        raise ValueRangeError(f"chunk: chunks must be a positive int, got {chunks!r}")
    if input.shape[d] == 0:   # nothing to split: `chunks` empty pieces, as in PyTorch
        return tuple(input for _ in range(chunks))
    return split(input, -(-input.shape[d] // chunks), d)


@export("cat", "concat", "concatenate", method=False)
def cat(tensors, dim=0):
    if isinstance(tensors, Tensor):
        raise TypeError("cat: expected a sequence of tensors, got one tensor; pass [x] (or x.unbind(0))")
    tensors = list(tensors)
    if not tensors:
        raise ShapeError("cat: expected a non-empty list of tensors")
    dtype = tensors[0].dtype
    for x in tensors[1:]:
        dtype = D.promote(dtype, x.dtype)
    tensors = [cast(x, dtype) for x in tensors]
    if any(x.ndim != 1 for x in tensors):   # a legacy empty 1-d tensor (torch.tensor([])) is skipped, as in PyTorch
        tensors = [x for x in tensors if x.ndim != 1 or x.shape[0] != 0] or tensors[:1]
    ndim = tensors[0].ndim
    for x in tensors:
        if x.ndim != ndim:
            raise ShapeError(f"cat: all tensors need the same number of dims, got shapes "
                             f"{', '.join(str(x.shape) for x in tensors)}")
    if ndim == 0:
        raise ShapeError("cat: zero-dimensional tensors cannot be concatenated; use stack(), or unsqueeze(0) each first")
    axis = normalize_axis("cat", dim, ndim)
    if len(tensors) == 1:
        return own_result(tensors[0], tensors)
    return OPS["concat"].bind(*tensors, axis=axis)


@export("stack", method=False)
def stack(tensors, dim=0):
    if isinstance(tensors, Tensor):
        raise TypeError("stack: expected a sequence of tensors, got one tensor; pass [x] (or x.unbind(0))")
    tensors = list(tensors)
    if not tensors:
        raise ShapeError("stack: expected a non-empty list of tensors")
    first = tensors[0].shape   # (compared, not put in a set: a symbolic size hashes as a guard on its value)
    if any(len(x.shape) != len(first) or x.shape != first for x in tensors):
        raise ShapeError(f"stack: all tensors need the same shape, got {', '.join(str(x.shape) for x in tensors)}")
    d = normalize_axis("stack", dim, tensors[0].ndim + 1)
    return cat([unsqueeze(x, d) for x in tensors], d)

