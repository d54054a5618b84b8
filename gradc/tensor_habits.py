"""Tensor methods that third-party PyTorch scripts reach for, as composites of the ops below
them: narrowing a dimension, and the other everyday spellings real training scripts use."""
import numpy as np

from . import dispatch
from . import dtypes as D
from .composite import assign, clone
from .creation import empty, tensor
from .errors import DTypeError, ShapeError
from .grad_mode import is_grad_enabled
from .indexing import getitem
from .ops.frontend import export
from .shapes import normalize_axis
from .tensor import Tensor


def _index(x, name, what):
    """A Python int from an int or a one-element integer tensor (PyTorch accepts both)."""
    if isinstance(x, Tensor):
        if x.numel() != 1 or x.dtype.is_floating_point:
            raise ShapeError(f"{name}: {what} must be an int or a one-element integer tensor, got shape {x.shape}")
        x = x.item()
    return int(x)


@export("narrow")
def narrow(input, dim, start, length):
    """input's elements start .. start + length - 1 along dim (a view; start may be negative)."""
    d = normalize_axis("narrow", dim, input.ndim)
    size = input.shape[d]
    start, length = _index(start, "narrow", "start"), _index(length, "narrow", "length")
    if not -size <= start <= size:
        raise ShapeError(f"narrow: start {start} is out of range for dim {d} of size {size} (shape {input.shape})")
    start = start + size if start < 0 else start
    if length < 0 or start + length > size:
        raise ShapeError(f"narrow: start {start} + length {length} exceeds dim {d} of size {size} "
                         f"(shape {input.shape}); pass a length of at most {size - start}")
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
              "lerp", "log1p", "expm1", "logical_not"):
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
export("__abs__", function=False)(lambda self: self.abs())
export("__pos__", function=False)(lambda self: clone(self))


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
        """torch.{name}(data) (a copy as {dtype}), torch.{name}(*sizes) (zero-filled here: gradc
        has no uninitialised memory) or torch.{name}() (empty)."""
        if not args:
            return empty(0, dtype=dtype, device=device)
        if all(isinstance(a, int) and not isinstance(a, bool) for a in args):
            return empty(*args, dtype=dtype, device=device)
        if len(args) > 1:
            raise TypeError(f"{name}(): expected sizes (ints) or one sequence or array of data, got {len(args)} "
                            "arguments that are not all ints")
        data = args[0]
        if isinstance(data, Tensor):
            if data.dtype is not dtype:
                raise DTypeError(f"{name}(tensor): the tensor is {data.dtype!r}, not {dtype!r}; use "
                                 f"tensor.to({dtype!r}) to convert it")
            return data
        return tensor(data, dtype=dtype, device=device)
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
        if not type.is_floating_point:
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
        if type.is_floating_point or type is D.bool_:
            raise DTypeError(f"iinfo: {type!r} is not an integer dtype; use gradc.finfo for floating dtypes")
        info = np.iinfo(type.np)
        self.dtype, self.bits, self.min, self.max = type.name, info.bits, int(info.min), int(info.max)

    def __repr__(self):
        return f"iinfo(min={self.min}, max={self.max}, dtype={self.dtype})"


export("finfo", method=False)(finfo)
export("iinfo", method=False)(iinfo)
export("get_default_dtype", method=False)(lambda: D.default_float)
