"""Creating tensors: from data, filled, ranges and random draws (PyTorch's names and defaults).

Under tracing a created tensor is a constant of the program, and a random draw a program input
drawn afresh on every call: the active interpreter decides (gradc.dispatch)."""
import math

import numpy as np

from . import dispatch
from . import dtypes as D
from .device import CPU, creation_device
from .errors import DTypeError, OutOfMemoryError, ShapeError, ValueRangeError
from .ops.frontend import export, infer_dtype, shape_arg as _shape_arg, size_arg
from .shapes import Size, prod
from .symint import SymInt, is_live, is_symbolic
from .random import takes_generator
from .tensor import Tensor


def _new(data, dtype, device, requires_grad, fill_shape=None, kind="fill"):
    """Wrap a fresh host array as a tensor on `device` (the tracer makes it a constant); with
    `fill_shape` (symbolic sizes, while tracing), a constant of that shape that `data` describes
    (Tracer.fill)."""
    dev = creation_device(device)
    if requires_grad and not dtype.is_floating_point:
        raise DTypeError(f"only floating-point tensors can require grad, got {dtype!r}")
    t = dispatch.tracer().fill(fill_shape, data, dtype, dev, kind) if fill_shape is not None else \
        dispatch.interpreter().constant(data, dtype, dev)
    t.requires_grad = bool(requires_grad)
    return t


@export("tensor", method=False)
def tensor(data, dtype=None, device=None, requires_grad=False):
    """A new tensor that copies `data` (nested lists, numbers, arrays or a tensor)."""
    data = data.detach().numpy() if isinstance(data, Tensor) else _elements(data)
    dtype = D.get_dtype(dtype) if dtype is not None else infer_dtype(data)
    if hasattr(data, "__cuda_array_interface__"):
        data = data.get()
    arr = np.array(data, dtype=dtype.np, copy=True)
    return _new(arr, dtype, device, requires_grad)


def _elements(data):
    """Nested lists with tensors in them: a one-element tensor is a number there, as PyTorch reads
    it (tensor([t1, t2]) of two (1,) tensors has shape (2,))."""
    if isinstance(data, Tensor):
        a = data.detach().numpy()
        return a.reshape(()) if a.size == 1 else a
    if isinstance(data, (list, tuple)) and data and (isinstance(data[0], (list, tuple, Tensor)) or
                                                     isinstance(data[-1], Tensor)):   # (lists of numbers: as they are)
        return [_elements(x) for x in data]
    return data


def legacy(name, dtype, args, device=None):
    """torch.{name}(data) (a copy as {dtype}), torch.{name}(*sizes) (zero-filled here: gradc
    has no uninitialised memory) or torch.{name}() (empty)."""
    if not args:
        return empty(0, dtype=dtype, device=device)
    if all(isinstance(a, int) and not isinstance(a, bool) for a in args) or \
            (len(args) == 1 and isinstance(args[0], Size)):
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


def _legacy_new(self, *args):
    """x.new(*sizes) / x.new(data): PyTorch's legacy constructor with x's dtype and device."""
    return legacy("new", self.dtype, args, self.device)


Tensor.new = _legacy_new


def _init(self, *args, device=None):
    t = legacy("Tensor", D.default_float, args, device)
    for k in Tensor.__slots__[:-1]:
        setattr(self, k, getattr(t, k, None))


Tensor.__init__ = _init  # gradc.Tensor(...) is the default float type's legacy constructor, as torch.Tensor


@export("as_tensor", method=False)
def as_tensor(data, dtype=None, device=None):
    if isinstance(data, Tensor):
        return data.to(dtype=dtype, device=device)
    if (isinstance(data, np.ndarray) and creation_device(device) is CPU and data.dtype.kind in "biuf" and data.dtype.itemsize > 1
            and (dtype is None or D.get_dtype(dtype).np == data.dtype)):
        return from_numpy(data)   # shares the array's memory, as PyTorch's as_tensor does
    return tensor(data, dtype=dtype, device=device)


@export("from_numpy", method=False)
def from_numpy(a):
    """A tensor sharing memory with the NumPy array `a` (as torch.from_numpy does)."""
    if not isinstance(a, np.ndarray):
        raise DTypeError(f"from_numpy expects a numpy.ndarray, got {type(a).__name__}")
    dtype = D.from_numpy_dtype(a.dtype)
    if a.dtype != dtype.np:
        a = a.astype(dtype.np)
    return Tensor._wrap(a, dtype, CPU)


def _creation_dtype(dtype, default=None):
    return D.get_dtype(dtype) if dtype is not None else (default or D.default_float)


@export("full", method=False)
def full(size, fill_value, dtype=None, device=None, requires_grad=False):
    dtype = _creation_dtype(dtype, None if dtype else D.scalar_dtype(fill_value) if not isinstance(fill_value, float)
                            else D.default_float)
    shape = size_arg((size,) if isinstance(size, (int, SymInt)) else size, "full")
    if is_symbolic(shape) or is_live(fill_value):   # traced sizes: a constant made per size
        value = fill_value if is_live(fill_value) else np.asarray(fill_value, dtype.np).item()
        return _new(value, dtype, device, requires_grad, fill_shape=shape)
    if dtype.is_floating_point and isinstance(fill_value, (int, float)) and math.isfinite(fill_value) and \
            abs(fill_value) > float(np.finfo(dtype.np).max):
        raise DTypeError(f"full: the fill value {fill_value!r} cannot be converted to {dtype!r} without overflow "
                         "(as PyTorch refuses it); use a wider dtype, or finfo(dtype).min of the dtype it fills")
    try:
        # zeros (not -0.0) come from calloc: no pass over the memory (optimizer state, zero_grad)
        zero = type(fill_value) in (int, bool, float) and fill_value == 0 and math.copysign(1.0, fill_value) > 0
        data = np.zeros(shape, dtype=dtype.np) if zero else np.full(shape, fill_value, dtype=dtype.np)
    except OverflowError:
        raise DTypeError(f"full: the fill value {fill_value!r} does not fit {dtype!r}; use a wider dtype") from None
    except MemoryError:
        raise OutOfMemoryError(f"full: not enough memory for shape {shape} of {dtype!r} "
                               f"({prod(shape) * dtype.itemsize} bytes)") from None
    return _new(data, dtype, device, requires_grad)


@export("zeros", method=False)
def zeros(*dims, size=None, dtype=None, device=None, requires_grad=False):
    return full(_shape_arg(dims if size is None else (size,)), 0.0 if dtype is None else 0, dtype=_creation_dtype(dtype), device=device,
                requires_grad=requires_grad)


@export("ones", method=False)
def ones(*dims, size=None, dtype=None, device=None, requires_grad=False):
    return full(_shape_arg(dims if size is None else (size,)), 1, dtype=_creation_dtype(dtype), device=device, requires_grad=requires_grad)


@export("empty", method=False)
def empty(*dims, size=None, dtype=None, device=None, requires_grad=False, memory_format=None):
    out = zeros(*dims, size=size, dtype=dtype, device=device, requires_grad=requires_grad)
    return out if memory_format is None else out.contiguous(memory_format=memory_format)


def _like(t, dtype, device):
    return (dtype or t.dtype), (device if device is not None else t.device)


@export("zeros_like", method=False)
def zeros_like(t, dtype=None, device=None, requires_grad=False):
    dtype, device = _like(t, dtype, device)
    return zeros(t.shape, dtype=dtype, device=device, requires_grad=requires_grad)


@export("ones_like", method=False)
def ones_like(t, dtype=None, device=None, requires_grad=False):
    dtype, device = _like(t, dtype, device)
    return ones(t.shape, dtype=dtype, device=device, requires_grad=requires_grad)


@export("full_like", method=False)
def full_like(t, fill_value, dtype=None, device=None, requires_grad=False):
    dtype, device = _like(t, dtype, device)
    return full(t.shape, fill_value, dtype=dtype, device=device, requires_grad=requires_grad)


@export("empty_like", method=False)
def empty_like(t, dtype=None, device=None, requires_grad=False):
    return zeros_like(t, dtype, device, requires_grad)


@export("arange", method=False)
def arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False):
    if end is None:
        start, end = 0, start
    # 0-d tensors as bounds (arange(t.max())): their numbers, a float one making the result float
    start, end, step = (v.item() if isinstance(v, Tensor) and v.ndim == 0 else v for v in (start, end, step))
    start, end, step = (v if is_live(v) or not isinstance(v, SymInt) else v.hint for v in (start, end, step))
    is_float = any(isinstance(v, float) or isinstance(v, SymInt) and v.floating for v in (start, end, step))
    dtype = _creation_dtype(dtype, D.default_float if is_float else D.int64)
    if any(isinstance(v, SymInt) for v in (start, end, step)):
        if is_float or isinstance(step, SymInt) or step == 0:   # the values, held by guards
            start, end, step = ((float(v) if v.floating else int(v)) if isinstance(v, SymInt) else v
                                for v in (start, end, step))
        else:   # a dynamic size: made per size
            n = max(0, (end - start + step - 1) // step) if step > 0 else max(0, (start - end - step - 1) // -step)
            return _new((start, end, step), dtype, device, requires_grad, fill_shape=(n,), kind="arange")
    if step == 0 or (end - start) * step < 0:
        raise ValueRangeError(f"arange({start}, {end}, {step}): " + ("step must be nonzero" if step == 0 else
                              "the end lies behind the start for this step's sign; pass a step of the other sign"))
    return _new(np.arange(start, end, step).astype(dtype.np), dtype, device, requires_grad)


@export("linspace", method=False)
def linspace(start, end, steps, dtype=None, device=None, requires_grad=False):
    dtype = _creation_dtype(dtype)
    return _new(linspace_values(start, end, steps, dtype.np), dtype, device, requires_grad)


def linspace_values(start, end, steps, np_dtype):
    """PyTorch's linspace, value for value: the step in the dtype, the first half counted up from
    start and the rest down from end, each as one fused multiply-add (NumPy's differs in the last
    bit, which moves affine_grid's sample points off pixel centres)."""
    steps = int(steps)
    if steps < 0:
        raise ShapeError(f"linspace: number of steps must be non-negative, got {steps}")
    if steps <= 1:
        return np.full(steps, start).astype(np_dtype)
    i, np_dtype = np.arange(steps), np.dtype(np_dtype).type
    first = i < steps // 2
    if np.dtype(np_dtype).kind != "f":   # the ends as integers, the step a double
        s, e = int(start), int(end)
        step = (e - s) / (steps - 1)
        return np.trunc(np.where(first, s + step * i, e - step * (steps - 1 - i))).astype(np_dtype)
    s, e = np_dtype(start), np_dtype(end)
    if np_dtype is np.float16:   # float16 arithmetic rounds after every operation
        step = np.float16(np.float16(e - s) / np.float32(steps - 1))
        up, down = (np.float16(step * k.astype(np.float32)) for k in (i, steps - 1 - i))
        return np.where(first, s + up, e - down).astype(np_dtype)
    wide = np.longdouble if np_dtype is np.float64 else np.float64   # rounds once, as an FMA
    step = wide((e - s) / np_dtype(steps - 1))
    return np.where(first, wide(s) + step * i, wide(e) - step * (steps - 1 - i)).astype(np_dtype)


@export("logspace", method=False)
def logspace(start, end, steps, base=10.0, dtype=None, device=None, requires_grad=False):
    """base ** linspace(start, end, steps)."""
    dtype = _creation_dtype(dtype)
    data = np.power(float(base), np.linspace(start, end, steps))
    return _new(data.astype(dtype.np), dtype, device, requires_grad)


@export("eye", method=False)
def eye(n, m=None, dtype=None, device=None, requires_grad=False):
    dtype = _creation_dtype(dtype)
    return _new(np.eye(n, m, dtype=dtype.np), dtype, device, requires_grad)


def _random(kind, shape, dtype, device, requires_grad, low=0, high=0):
    """A tensor of random draws. While tracing it becomes a program input drawn afresh on every
    call (never a constant baked into the program)."""
    spec = (kind, size_arg(shape, kind), dtype.name, int(low), int(high))
    dev = creation_device(device)
    t = dispatch.interpreter().random(spec, dtype, dev)
    t.requires_grad = bool(requires_grad)
    return t


def _random_float(kind, size, dtype, device, requires_grad):
    dtype = _creation_dtype(dtype)
    if not dtype.is_floating_point:
        raise DTypeError(f"random floats need a floating dtype, got {dtype!r}")
    return _random(kind, _shape_arg(size), dtype, device, requires_grad)


@export("rand", method=False)
@takes_generator
def rand(*dims, size=None, dtype=None, device=None, requires_grad=False):
    """Uniform samples in [0, 1)."""
    return _random_float("rand", dims if size is None else (size,), dtype, device, requires_grad)


@export("randn", method=False)
@takes_generator
def randn(*dims, size=None, dtype=None, device=None, requires_grad=False):
    """Standard normal samples."""
    return _random_float("randn", dims if size is None else (size,), dtype, device, requires_grad)


@export("rand_like", method=False)
def rand_like(t, dtype=None, device=None, requires_grad=False):
    dtype, device = _like(t, dtype, device)
    return rand(t.shape, dtype=dtype, device=device, requires_grad=requires_grad)


@export("randn_like", method=False)
def randn_like(t, dtype=None, device=None, requires_grad=False):
    dtype, device = _like(t, dtype, device)
    return randn(t.shape, dtype=dtype, device=device, requires_grad=requires_grad)


@export("randint", method=False)
@takes_generator
def randint(low=None, high=None, size=None, dtype=None, device=None, requires_grad=False):
    """randint(high, size) or randint(low, high, size), as in PyTorch: integers in [low, high)."""
    if low is None:   # randint(high=10, size=(3,))
        if high is None:
            raise TypeError("randint() needs high, e.g. randint(10, (3,))")
        low = 0
    if size is None and isinstance(high, (tuple, list)):
        low, high, size = 0, low, high
    if high is None:
        low, high = 0, low
    if size is None:
        raise TypeError("randint() needs a size, e.g. randint(10, (3,)) or randint(0, 10, (3,))")
    if high <= low:
        raise ValueError(f"randint: high ({high}) must be greater than low ({low})")
    return _random("randint", _shape_arg(size), _creation_dtype(dtype, D.int64), device, requires_grad, low, high)


@export("randperm", method=False)
@takes_generator
def randperm(n, dtype=None, device=None, requires_grad=False):
    out = _random("randperm", (int(n),), D.int64, device, False, 0, n)
    out = out if dtype is None else out.to(dtype)
    return out.requires_grad_() if requires_grad else out

