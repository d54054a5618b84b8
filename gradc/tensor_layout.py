"""A tensor's memory layout as PyTorch reports it (stride in elements, contiguity, storage offset,
address, byte sizes), contiguous() copying what is not row-major, the legacy `type()` spelling, predicates scripts test (is_nonzero,
is_complex), sliding windows (Tensor.unfold), sum_to_size, and the in-place shape changes
(squeeze_, unsqueeze_, t_, transpose_) that rebind a tensor to a view of its own memory.

Eagerly the figures are read off the tensor's array. A traced value has no memory yet: it reports
the row-major (contiguous) layout, which is how a compiled program hands its values back, and
asking for its address is a TraceError."""
from . import dispatch
from . import dtypes as D
from .composite import clone, squeeze, t as _t, transpose, unsqueeze
from .creation import arange
from .errors import AutogradError, DTypeError, ShapeError, TraceError
from .grad_mode import is_grad_enabled
from .ops.frontend import export
from .tensor_products import read_only_unless_view
from .shapes import MemoryFormat, contiguous_format, normalize_axis


def _row_major(shape):
    strides, step = [], 1
    for n in reversed(shape):
        strides.append(step)
        step *= max(n, 1)
    return tuple(reversed(strides))


def _array(x):
    return x._data if x._sym is None and x._data is not None else None


@export("stride", function=False)
def stride(self, dim=None):
    """Steps between neighbouring elements along each dim, counted in elements (as PyTorch does)."""
    a = _array(self)
    if a is None:
        out = _row_major(self.shape)
    else:
        out = tuple(s // a.itemsize for s in a.strides)
    return out if dim is None else out[normalize_axis("stride", dim, self.ndim)]


def _channels_last(fmt, x, what):
    """The rank a channels-last format needs, checked against x; None for contiguous_format."""
    if fmt is None or fmt is contiguous_format:
        return None
    if not isinstance(fmt, MemoryFormat) or fmt.rank is None:
        raise ValueError(f"{what}: memory_format must be gradc.contiguous_format, channels_last or channels_last_3d, "
                         f"got {fmt!r}")
    if x.ndim != fmt.rank:
        raise ShapeError(f"{what}: {fmt!r} needs a {fmt.rank}-D tensor, got shape {tuple(x.shape)}")
    return fmt.rank


@export("is_contiguous", function=False)
def is_contiguous(self, memory_format=contiguous_format):
    """Whether the elements lie row-major with no gaps (dims of size 1 do not count, as in PyTorch),
    or, for channels_last(_3d), row-major with the channels dim last."""
    if self.numel() == 0:
        return True
    order = list(range(self.ndim))
    if _channels_last(memory_format, self, "is_contiguous"):
        order = [0] + order[2:] + [1]
    expected, steps = 1, stride(self)
    for d in reversed(order):
        if self.shape[d] != 1:
            if steps[d] != expected:
                return False
            expected *= self.shape[d]
    return True


@export("contiguous", function=False)
def contiguous(self, memory_format=contiguous_format):
    """self when its elements already lie so, else a copy laid out that way (autograd sees identity),
    so x.contiguous().is_contiguous() holds as in PyTorch. A traced value is row-major already."""
    rank = _channels_last(memory_format, self, "contiguous")
    writable = self._data is None or getattr(self._data.flags, "writeable", True)   # (an empty expand is not)
    if is_contiguous(self, memory_format) and writable:
        return self
    out = clone(self)
    if rank and out._data is not None:   # the same values, channels last in memory
        xp = out.device.xp
        out._data = xp.moveaxis(xp.ascontiguousarray(xp.moveaxis(out._data, 1, -1)), -1, 1)
    return out


def _base(a):
    while getattr(a, "base", None) is not None:
        a = a.base
    return a


def _address(a):
    if hasattr(a, "__cuda_array_interface__"):
        return a.__cuda_array_interface__["data"][0]
    return a.__array_interface__["data"][0]


def _no_memory(self, what):
    raise TraceError(f"{what} of a traced tensor: inside gradc.compile a value has no memory until the program "
                     f"runs; read it outside the compiled function")


@export("storage_offset", function=False)
def storage_offset(self):
    """Where the tensor's first element sits in the memory it views, in elements."""
    a = _array(self)
    if a is None:
        return 0
    base = _base(a)
    if base is a or not hasattr(base, "__array_interface__") and not hasattr(base, "__cuda_array_interface__"):
        return 0
    return (_address(a) - _address(base)) // a.itemsize


@export("data_ptr", function=False)
def data_ptr(self):
    """The address of the tensor's first element."""
    a = _array(self)
    if a is None:
        _no_memory(self, "data_ptr()")
    return _address(a)


export("nbytes", function=False)(property(lambda self: self.numel() * self.dtype.itemsize,
                                          doc="Bytes the elements take (numel * itemsize)."))
export("itemsize", function=False)(property(lambda self: self.dtype.itemsize, doc="Bytes per element."))
export("is_complex")(lambda input: False)   # gradc has no complex dtypes


@export("is_nonzero")
def is_nonzero(input):
    if input.numel() != 1:
        raise ShapeError(f"is_nonzero: needs a tensor with exactly one element, got shape {tuple(input.shape)}")
    return bool(input.reshape(()) != 0)


# ---------------------------------------------------------------------- legacy type()
_TYPE_NAMES = {D.float32: "FloatTensor", D.float64: "DoubleTensor", D.float16: "HalfTensor",
               D.int64: "LongTensor", D.int32: "IntTensor", D.bool_: "BoolTensor"}
if getattr(D, "bfloat16", None) is not None and isinstance(D.bfloat16, D.DType):
    _TYPE_NAMES[D.bfloat16] = "BFloat16Tensor"
_BY_NAME = {v: k for k, v in _TYPE_NAMES.items()}


@export("type", function=False)
def type_(self, dtype=None, non_blocking=False):
    """No argument: PyTorch's type string ('torch.FloatTensor', 'torch.cuda.LongTensor'). With a dtype,
    a type string or a legacy class (gradc.FloatTensor): the tensor cast to it (itself if it already is)."""
    if dtype is None:
        return f"torch.{'cuda.' if self.device.type == 'cuda' else ''}{_TYPE_NAMES[self.dtype]}"
    device = None
    if isinstance(dtype, str) and dtype.endswith("Tensor"):
        parts = dtype.split(".")
        if parts[0] not in ("torch", "gradc") or len(parts) not in (2, 3) or len(parts) == 3 and parts[1] != "cuda":
            raise DTypeError(f"type: {dtype!r} is not a tensor type name; expected e.g. 'torch.FloatTensor' "
                             "or 'torch.cuda.FloatTensor'")
        if parts[-1] not in _BY_NAME:
            raise DTypeError(f"type: {dtype!r} names a dtype gradc does not have (there are no int8, int16 or "
                             f"uint8 tensors); use one of {', '.join(sorted(_BY_NAME))}")
        device = "cuda" if len(parts) == 3 else "cpu"
        dtype = _BY_NAME[parts[-1]]
    elif isinstance(dtype, type) and isinstance(getattr(dtype, "dtype", None), D.DType):
        dtype, device = dtype.dtype, "cpu"
    elif not isinstance(dtype, D.DType):   # (torch's type() takes no Python type or dtype name: .to() does)
        raise DTypeError(f"type: invalid type {dtype!r}; pass a dtype (gradc.float64), a type name "
                         "('torch.DoubleTensor') or a tensor class, or use .to(float)")
    out = self.to(D.get_dtype(dtype))
    return out if device is None or out.device.type == device else out.to(device)


# ---------------------------------------------------------------------- windows and sums
@export("unfold", function=False)
def unfold(self, dimension, size, step):
    """Windows of `size` elements every `step` along `dimension`, in a new last dim: shape
    (..., (n - size) // step + 1, ..., size). PyTorch returns a view; here the windows are gathered
    (a copy), which is read-only eagerly, so a write into it fails instead of silently missing self."""
    d = normalize_axis("unfold", dimension, self.ndim)
    n = self.shape[d] if self.ndim else 1
    if size < 0 or size > n:
        raise ShapeError(f"unfold: size {size} is out of range for dim {d} of size {n} (shape {tuple(self.shape)}); "
                         f"use a size of at most {n}")
    if step <= 0:
        raise ShapeError(f"unfold: step must be positive, got {step}")
    x = self if self.ndim else self.reshape(1)
    count = (n - size) // step + 1
    idx = (arange(count, device=self.device).reshape(count, 1) * step
           + arange(size, device=self.device).reshape(1, size)).reshape(-1)
    out = x.index_select(d, idx).reshape(x.shape[:d] + (count, size) + x.shape[d + 1:])
    out = out.movedim(d + 1, -1)
    return read_only_unless_view(out.reshape(size) if self.ndim == 0 else out, self)


@export("sum_to_size", function=False)
def sum_to_size(self, *size):
    """self summed over the dims where `size` (a shape self broadcasts from) has 1 or no entry."""
    size = tuple(size[0]) if len(size) == 1 and isinstance(size[0], (tuple, list)) else tuple(size)
    lead = self.ndim - len(size)
    if lead < 0 or any(s != 1 and s != n for s, n in zip(size, self.shape[lead:])):
        raise ShapeError(f"sum_to_size: size {size} is not expandable to the tensor's shape {tuple(self.shape)}; each "
                         "entry must be 1 or the matching size, with no more dims than the tensor")
    out = self.sum(tuple(range(lead))) if lead else self
    dims = tuple(i for i, (s, n) in enumerate(zip(size, out.shape)) if s == 1 and n != 1)
    return out.sum(dims, keepdim=True) if dims else out


# ---------------------------------------------------------------------- in-place shape changes
def _rebind(self, view, what):
    """Make `self` the tensor `view` (a view of self's own memory with a new shape)."""
    if is_grad_enabled() and self.is_leaf and self.requires_grad:
        raise AutogradError(f"{what} on a leaf tensor that requires grad; use the out-of-place form "
                            f"(x = x.{what[:-1]}(...)), or change it under `with gradc.no_grad():`")
    tracer = dispatch.tracer()
    if tracer is not None:
        lifted = tracer.lifted.get(id(self))
        if self._sym is None or lifted is not None and lifted[0] is self:
            raise TraceError(f"{what} at {tracer.where()} changes the shape of a tensor from outside the compiled "
                             "function, which a compiled program cannot replay on its caller's tensors; write "
                             f"x = x.{what[:-1]}(...) instead")
        self._sym = view._sym   # a value made inside the trace: it becomes the view's node
    self._data, self.shape = view._data, view.shape
    self._grad_fn, self.requires_grad = view._grad_fn, view.requires_grad
    return self


export("squeeze_", function=False)(lambda self, dim=None: _rebind(self, squeeze(self, dim), "squeeze_"))
export("unsqueeze_", function=False)(lambda self, dim: _rebind(self, unsqueeze(self, dim), "unsqueeze_"))
export("t_", function=False)(lambda self: _rebind(self, _t(self), "t_"))
export("transpose_", function=False)(lambda self, dim0, dim1: _rebind(self, transpose(self, dim0, dim1),
                                                                       "transpose_"))
