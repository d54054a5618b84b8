"""Tensor methods that third-party PyTorch scripts reach for, as composites of the ops below
them: narrowing a dimension, and the other everyday spellings real training scripts use."""
from . import dispatch
from .composite import assign, clone
from .errors import ShapeError
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
