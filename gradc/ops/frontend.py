"""The functional layer between users and primitives: argument normalisation, dtype promotion,
Python scalars as constants, and the registry of public names.

Every op users call is a function here or in gradc.composite; `install` publishes each one as a
Tensor method and/or a `gradc.*` function, from the entries of the op table (their
`def_frontend`) and from `export` (composites, creation). VJPs call these same functions."""
import functools
import inspect
import warnings

import numpy as np

from .. import dispatch
from ..dispatch import Value
from .. import dtypes as D
from ..errors import AutogradError, CastError, DTypeError, ShapeError
from ..grad_mode import is_grad_enabled
from ..symint import SymInt, is_live
from ..shapes import normalize_axis, prod
from .primitive import OPS

_EXPORTS = []  # (names, function, as method, as gradc.* function), for what is not a primitive


def export(*names, method=True, function=True):
    """Publish a composite (or creation function) under `names`."""
    def register(fn):
        _EXPORTS.append((names, fn, method, function))
        return fn
    return register


def exports():
    """Every public name: each primitive's frontends, then composites."""
    for prim in OPS.values():
        yield from prim.exports
    yield from _EXPORTS


def install(Tensor, namespace):
    """Put every export on `Tensor` (methods) and into `namespace` (gradc's functions). Returns
    the names added to `namespace`."""
    added, with_out = [], {}   # (aliases share one function: gradc.arcsin is gradc.asin)
    for names, fn, method, function in exports():
        fn = _numpy_axis(fn)
        for name in names:
            if method:
                setattr(Tensor, name, fn)
            if function and not name.startswith("__"):
                if fn not in with_out:
                    with_out[fn] = _takes_out(fn, name, Tensor)
                namespace[name] = with_out[fn]
                added.append(name)
    return added


def _takes_out(fn, name, Tensor):
    """gradc.add(a, b, out=c) as PyTorch's functions take it: the result is written into `out`
    (resized when its shape differs, with PyTorch's warning unless it was empty; cast to its dtype
    when that is no lower a kind) and `out` is returned. As in PyTorch, out= does not record
    gradients: it is refused when a gradient would flow."""
    if isinstance(fn, type):   # (the legacy tensor classes, gradc.FloatTensor)
        return fn
    try:
        if "out" in inspect.signature(fn).parameters:
            return fn
    except (TypeError, ValueError):
        return fn

    @functools.wraps(fn)
    def call(*args, **kwargs):
        if kwargs and "out" in kwargs:
            out = kwargs.pop("out")
            result = fn(*args, **kwargs)
            return result if out is None else _write_out(name, result, out, Tensor)
        return fn(*args, **kwargs)
    return call


def _write_out(name, result, out, Tensor):
    if isinstance(result, tuple):
        if not isinstance(out, (tuple, list)) or len(out) != len(result):
            raise TypeError(f"{name}(): out= takes a tuple of {len(result)} tensors here, got {type(out).__name__}")
        return type(result)(*(_write_out(name, r, o, Tensor) for r, o in zip(result, out))) \
            if hasattr(result, "_fields") else tuple(_write_out(name, r, o, Tensor) for r, o in zip(result, out))
    if not isinstance(result, Tensor):
        raise TypeError(f"{name}() got an unexpected keyword argument 'out'")
    if not isinstance(out, Tensor):
        raise TypeError(f"{name}(): out= must be a tensor, got {type(out).__name__}")
    if is_grad_enabled() and (result.requires_grad or out.requires_grad):
        raise AutogradError(f"{name}(): functions with out=... arguments don't support automatic differentiation, "
                            "but one of the arguments requires grad; call it without out= (or under no_grad)")
    if result.dtype.category > out.dtype.category:
        raise CastError(f"{name}(): result type {result.dtype!r} cannot be written into out=, a {out.dtype!r} tensor")
    if tuple(out.shape) != tuple(result.shape):
        if out.numel() != 0:
            warnings.warn(f"{name}(): an output with one or more elements was resized since it had shape "
                          f"{list(out.shape)}, which does not match the required output shape {list(result.shape)}",
                          UserWarning, stacklevel=3)
        out.data = result.to(out.dtype)
        return out
    return out.copy_(result)


def _numpy_axis(fn):
    """PyTorch takes NumPy's `axis=` for every `dim=` (x.sum(axis=1)) and `keepdims=` for every
    `keepdim=`: so does gradc."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return fn
    aliases = {numpy: torch for numpy, torch in (("axis", "dim"), ("keepdims", "keepdim"))
               if torch in params and numpy not in params}
    if not aliases:
        return fn

    @functools.wraps(fn)
    def call(*args, **kwargs):
        if kwargs:
            for numpy, torch in aliases.items():
                if numpy in kwargs:
                    kwargs[torch] = kwargs.pop(numpy)
        return fn(*args, **kwargs)
    return call


# ---------------------------------------------------------------------- arguments
def shape_arg(args):
    """Accept f(2, 3), f((2, 3)) and f([2, 3])."""
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        args = args[0]
    return tuple(a if type(a) is int or is_live(a) else _size(a) for a in args)


def _size(a):
    """An int-like size (a NumPy integer, a 0-d integer tensor) as an int; a float is refused, as torch's."""
    if isinstance(a, (float, np.floating, str, bytes)) or getattr(getattr(a, "dtype", None), "is_floating_point", False):
        raise DTypeError(f"sizes must be ints, got {a!r} ({type(a).__name__}); convert with int()")
    return int(a)


def size_arg(args, name):
    """A shape for a new tensor: non-negative sizes whose product an array can hold."""
    shape = shape_arg(args)
    if any(d < 0 for d in shape):
        raise ShapeError(f"{name}: sizes must be non-negative, got {shape}")
    if type(n := prod(shape)) is int and n >= 2 ** 63:   # (symbolic: too large fails when allocated)
        raise ShapeError(f"{name}: shape {shape} has {prod(shape)} elements, more than an array can index (2**63)")
    return shape


def axes_arg(x, dim, name, empty_is_all=True):
    """A sorted tuple of distinct non-negative axes (all axes for dim=None, and for an empty dim
    list, as PyTorch's reductions read it)."""
    if dim is None or (empty_is_all and isinstance(dim, (tuple, list)) and not dim):
        return tuple(range(x.ndim))
    dims = dim if isinstance(dim, (tuple, list)) else (dim,)
    if any(isinstance(d, (float, str)) for d in dims):
        raise DTypeError(f"{name}: dim must be an int (or a tuple of ints), got {dim!r}")
    axes = tuple(sorted({normalize_axis(name, int(d), x.ndim) for d in dims}))
    if len(axes) != len(dims):
        raise ShapeError(f"{name}: dim {tuple(dims)} names a dimension twice")
    return axes if x.ndim else ()


def _numpy_floats(data):
    """The dtypes of the NumPy floats (scalars and arrays) in nested lists."""
    if isinstance(data, (list, tuple)):
        return [d for x in data for d in _numpy_floats(x)]
    return [data.dtype] if isinstance(data, (np.ndarray, np.floating)) and data.dtype.kind == "f" else []


def infer_dtype(data):
    """The dtype gradc.tensor(data) gets: an array keeps its own, Python floats are float32."""
    if isinstance(data, (np.ndarray, np.generic)):   # a NumPy scalar keeps its dtype too (np.float64(2.5))
        return D.from_numpy_dtype(data.dtype)
    arr = np.asarray(data)
    if arr.dtype.kind == "f":
        # Python floats are the default float; NumPy floats among them keep theirs ([np.float64(1.0), 2.0])
        found = _numpy_floats(data)
        return D.from_numpy_dtype(np.result_type(*found)) if found else D.default_float
    if arr.dtype.kind in "iu":
        return D.int64
    if arr.dtype.kind == "b":
        return D.bool_
    raise DTypeError(f"cannot make a tensor from {type(data).__name__} (NumPy sees dtype {arr.dtype})")


def is_number(x):
    return isinstance(x, (int, float, bool, np.number, np.bool_, SymInt))   # (a traced size is one: see scalar)


def scalar(value, dtype, dev):
    """A 0-d constant (Python scalars in expressions become these; a traced size one made per size)."""
    if is_live(value) and dispatch.tracer() is not None:
        return dispatch.tracer().fill((), value, dtype, dev)
    try:
        data = np.asarray(value, dtype=dtype.np)
    except OverflowError:
        shown = repr(value) if len(repr(value)) <= 24 else f"{repr(value)[:8]}...({len(repr(value))} digits)"
        raise DTypeError(f"the Python number {shown} does not fit a {dtype!r} operand; use a smaller value, or "
                         f"a wider dtype (e.g. x.double() * value)") from None
    return dispatch.interpreter().constant(data, dtype, dev)


def promote_tensors(a, b):
    # PyTorch's rule: a 0-d tensor beside a tensor with dims only counts when its category is higher.
    if (a.ndim == 0) == (b.ndim == 0):
        return D.promote(a.dtype, b.dtype)
    big, small = (a, b) if b.ndim == 0 else (b, a)
    return big.dtype if small.dtype.category <= big.dtype.category else small.dtype


def floating(x, name):
    """`x`, checked to be a floating-point tensor, for ops torch implements for floats only."""
    if not x.dtype.is_floating_point:
        raise DTypeError(f"{name} is not implemented for {x.dtype!r} tensors, as in torch; convert with .float()")
    return x


def as_operand(x, dtype, other):
    if isinstance(x, Value):
        return x if x.dtype is dtype else cast(x, dtype)
    return scalar(x, dtype, other.device)


def cast(x, dtype):
    return x if x.dtype is dtype else OPS["cast"].bind(x, dtype=dtype.name)


def _in_float32(dtype, name, tensor_first):
    """PyTorch's float16 x * c and x / c compute in float32 and round once: c is not rounded to
    float16 first (0 * -1e9, BERT's additive mask, is 0, not NaN); x + c rounds c, as here."""
    return dtype is D.float16 and (name == "mul" or name == "div" and tensor_first)


def binary(name, a, b):
    """Promote two operands (tensors or Python scalars) to one dtype and bind the primitive."""
    ta, tb = isinstance(a, Value), isinstance(b, Value)
    if not ta and not tb:
        raise DTypeError(f"{name}: expected at least one tensor operand")
    if name == "sub" and any(x is True or x is False or isinstance(x, Value) and x.dtype is D.bool_ for x in (a, b)):
        raise DTypeError("subtraction with a bool tensor (or bool) is not supported, as in torch; use ~ or "
                         "logical_xor for bools, or cast to int first")
    if ta and tb:
        dtype = promote_tensors(a, b)
    else:
        t, s = (a, b) if ta else (b, a)
        weak = None if is_number(s) else getattr(s, "gradc_weak_scalar", None)
        if weak is not None:   # a float argument of a compiled function, traced: promotes as a Python float
            dtype = D.promote_weak(t.dtype, 1.0)
            wide = D.float32 if _in_float32(dtype, name, ta) else dtype
            t, s = cast(t, wide), cast(weak, wide)
            out = OPS[name].bind(*((t, s) if ta else (s, t)))
            return out if wide is dtype else cast(out, dtype)
        if not is_number(s):
            if isinstance(s, np.ndarray):   # (as torch's; a list or tuple operand is a TypeError there too)
                arr = np.asarray(s)
                dtype = infer_dtype(arr if arr.dtype.kind != "f" else s)
                s = dispatch.interpreter().constant(arr.astype(dtype.np), dtype, t.device)
                return binary(name, *((a, s) if ta else (s, b)))
            raise DTypeError(f"{name}: unsupported operand of type {type(s).__name__}; expected a tensor or a number")
        dtype = D.promote_weak(t.dtype, s)
        if _in_float32(dtype, name, ta):
            wide = OPS[name].bind(*((cast(t, D.float32), scalar(s, D.float32, t.device)) if ta else
                                    (scalar(s, D.float32, t.device), cast(t, D.float32))))
            return cast(wide, D.float16)
    if name == "div" and dtype.category < 2:
        dtype = D.default_float  # true division, as in PyTorch
    a = as_operand(a, dtype, b)
    b = as_operand(b, dtype, a)
    return OPS[name].bind(a, b)


def where(condition, input, other):
    """Elementwise choice: input where condition is true, other elsewhere (no Python branch)."""
    if not isinstance(condition, Value):
        raise DTypeError("where: condition must be a bool tensor")
    if condition.dtype is not D.bool_:
        raise DTypeError(f"where: condition must be bool, got {condition.dtype!r}; compare first, e.g. x > 0")
    ti, to_ = isinstance(input, Value), isinstance(other, Value)
    if ti and to_:
        dtype = promote_tensors(input, other)
    elif ti or to_:
        t, s = (input, other) if ti else (other, input)
        dtype = D.promote_weak(t.dtype, s)
    else:
        dtype = D.promote(D.scalar_dtype(input), D.scalar_dtype(other))
    input = as_operand(input, dtype, condition)
    other = as_operand(other, dtype, condition)
    return OPS["where"].bind(condition, input, other)


def zeros_like(t):
    """Zeros of t's shape, dtype and device (a broadcast 0-d constant: no storage of its own)."""
    z = scalar(0, t.dtype, t.device)
    return z if not t.shape else OPS["expand"].bind(z.reshape((1,) * t.ndim), shape=tuple(t.shape))
