"""The eager Tensor: an array (NumPy or CuPy) plus autograd history.

Every op reaches `_dispatch`, which either runs the primitive's eager kernel and records a Node
(eager mode) or hands the call to the active tracer (compile mode). Methods here are the user
surface; they normalise arguments (dims, dtypes, scalars) and bind primitives from the op table."""
import builtins
import collections

import numpy as np

from . import autograd
from . import dtypes as D
from . import ops
from .device import CPU, device as _device, require as _require_device
from .errors import AutogradError, DeviceError, DTypeError, ShapeError
from .ops import OPS
from .ops._rules import normalize_axis

_VIEW_OPS = frozenset({"reshape", "permute", "expand", "slice"})
# The active tracer (gradc.trace sets it while a function is being traced).
_tracer = [None]
# gradc.amp's cast rule while an autocast region is open in any thread (None otherwise: one check).
_autocast = [None]

max_result = collections.namedtuple("max", ["values", "indices"])


def _dispatch(prim, args, attrs):
    if _autocast[0] is not None:  # before the tracer, so eager and traced calls get the same casts
        args = _autocast[0](prim, args)
    if _tracer[0] is not None:
        return _tracer[0].record(prim, args, attrs)
    dev = args[0].device
    for a in args:
        if a.device is not dev and a.device != dev:
            raise DeviceError(f"{prim.name}: operands are on different devices ({dev} and {a.device}); "
                              f"move them to one device with .to('{dev}')")
    shape, dtype = prim.infer([a.shape for a in args], [a.dtype for a in args], attrs)
    xp = np if dev is CPU else dev.xp
    data = prim.eager(xp, *[a._data for a in args], **attrs)
    if type(data) is not np.ndarray and xp is np:
        data = np.asarray(data)
    out = Tensor._wrap(data, dtype, dev)
    if prim.name in _VIEW_OPS:
        out._version = args[0]._version  # views share their base's version counter
    if (prim.diff and dtype.is_floating_point and autograd.is_grad_enabled()
            and any(a.requires_grad for a in args)):
        out._grad_fn = autograd.Node(prim, attrs, args, out)
        out.requires_grad = True
    return out


ops.set_dispatch(_dispatch)


def _shape_arg(args):
    """Accept f(2, 3), f((2, 3)) and f([2, 3])."""
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        args = args[0]
    return tuple(int(a) for a in args)


class Tensor:
    __slots__ = ("_data", "_sym", "shape", "dtype", "device", "requires_grad", "_grad", "_grad_fn",
                 "_version", "__weakref__")
    __array_priority__ = 1000  # so ndarray (op) Tensor defers to Tensor

    def __init__(self, data, dtype=None, device=None, requires_grad=False):
        t = tensor(data, dtype=dtype, device=device, requires_grad=requires_grad)
        for k in Tensor.__slots__[:-1]:
            setattr(self, k, getattr(t, k))

    @staticmethod
    def _wrap(data, dtype, dev=CPU):
        t = object.__new__(Tensor)
        t._data, t._sym = data, None
        t.shape, t.dtype, t.device = data.shape, dtype, dev
        t.requires_grad, t._grad, t._grad_fn, t._version = False, None, None, [0]
        return t

    # ------------------------------------------------------------------ properties
    @property
    def ndim(self):
        return len(self.shape)

    def dim(self):
        return len(self.shape)

    def size(self, dim=None):
        return self.shape if dim is None else self.shape[normalize_axis("size", dim, self.ndim)]

    def numel(self):
        n = 1
        for d in self.shape:
            n *= d
        return n

    def __len__(self):
        if not self.shape:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    @property
    def grad(self):
        return self._grad

    @grad.setter
    def grad(self, value):
        if _tracer[0] is not None:
            _tracer[0].note_grad(self, value)  # a traced call that sets .grad replays that on every run
        self._grad = value

    @property
    def is_leaf(self):
        return self._grad_fn is None

    @property
    def grad_fn(self):
        return self._grad_fn

    @property
    def is_cuda(self):
        return self.device.type == "cuda"

    @property
    def data(self):
        return self.detach()

    @property
    def T(self):
        return self.permute(tuple(reversed(range(self.ndim))))

    @property
    def mT(self):
        if self.ndim < 2:
            raise ShapeError(f"mT needs a tensor of at least 2 dims, got shape {self.shape}")
        return self.transpose(-2, -1)

    # ------------------------------------------------------------------ conversion
    def _concrete(self, what):
        if self._data is None:
            return _tracer[0].concretize(self, what) if _tracer[0] is not None else None
        return self._data

    def numpy(self):
        if self.requires_grad and autograd.is_grad_enabled() and _tracer[0] is None:
            raise AutogradError("numpy() on a tensor that requires grad; call .detach().numpy() instead")
        data = self._concrete("numpy()")
        return data if self.device is CPU else data.get()

    def item(self):
        if self.numel() != 1:
            raise ShapeError(f"item() needs a tensor with one element, got shape {self.shape}")
        return self._concrete("item()").reshape(()).item()

    def tolist(self):
        data = self._concrete("tolist()")
        return (data if self.device is CPU else data.get()).tolist()

    def __bool__(self):
        if self.numel() != 1:
            raise ShapeError(f"the truth value of a tensor with {self.numel()} elements is ambiguous; "
                             "use .any() or .all(), or gradc.where for elementwise choice")
        return bool(self._concrete("bool()").reshape(()).item())

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __index__(self):
        if self.dtype.category == 2:
            raise TypeError("only integer tensors of one element can be used as an index")
        return int(self.item())

    def __array__(self, dtype=None, copy=None):
        a = self.detach().numpy()
        return a if dtype is None else a.astype(dtype)

    def __iter__(self):
        if not self.shape:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self.shape[0]))

    def __hash__(self):
        return id(self)

    def __repr__(self):
        if self._data is None:
            body = f"<traced {self.shape}>"
        else:
            data = self._data if self.device is CPU else self._data.get()
            body = np.array2string(data, separator=", ", prefix="tensor(", precision=4)
        extra = []
        if self.dtype not in (D.float32, D.int64, D.bool_) or not self.shape and self.dtype is not D.float32:
            extra.append(f"dtype={self.dtype!r}")
        if self.device is not CPU:
            extra.append(f"device='{self.device}'")
        if self._grad_fn is not None:
            extra.append(f"grad_fn={self._grad_fn!r}")
        elif self.requires_grad:
            extra.append("requires_grad=True")
        return f"tensor({body}{''.join(', ' + e for e in extra)})"

    # ------------------------------------------------------------------ autograd
    def backward(self, gradient=None, retain_graph=None):
        if _tracer[0] is not None and self._sym is not None:
            return _tracer[0].backward(self, gradient)
        autograd.backward(self, gradient, retain_graph=bool(retain_graph))

    def detach(self):
        if self._data is None:
            return _tracer[0].detach(self)
        t = Tensor._wrap(self._data, self.dtype, self.device)
        t._version = self._version  # shares data, so shares the version counter (as in PyTorch)
        return t

    def requires_grad_(self, requires_grad=True):
        if requires_grad and not self.dtype.is_floating_point:
            raise DTypeError(f"only floating-point tensors can require grad, got {self.dtype!r}")
        if not self.is_leaf:
            raise AutogradError("requires_grad_() can only change leaf tensors; use .detach().requires_grad_()")
        self.requires_grad = requires_grad
        return self

    def detach_(self):
        self._grad_fn, self.requires_grad = None, False
        return self

    def clone(self):
        """A copy with its own storage; autograd sees it as identity."""
        out = OPS["reshape"].bind(self, shape=self.shape)
        if out._data is not None:
            out._data, out._version = out._data.copy(), [0]
        return out

    def contiguous(self):
        return self

    # ------------------------------------------------------------------ devices and dtypes
    def to(self, *args, dtype=None, device=None, copy=False):
        for a in args:
            if isinstance(a, (D.DType, type)) or (isinstance(a, str) and a in D.ALL):
                dtype = a
            elif isinstance(a, Tensor):
                dtype, device = a.dtype, a.device
            else:
                device = a
        out = self
        if device is not None:
            dev = _require_device(_device(device))
            if dev != out.device:
                out = _to_device(out, dev)
        if dtype is not None:
            dtype = D.get_dtype(dtype)
            if dtype is not out.dtype:
                out = OPS["cast"].bind(out, dtype=dtype.name)
        if copy and out is self:
            out = self.clone()
        return out

    def cuda(self, device=None):
        return self.to("cuda" if device is None else f"cuda:{int(device)}")

    def cpu(self):
        return self.to("cpu")

    def float(self):
        return self.to(D.float32)

    def half(self):
        return self.to(D.float16)

    def double(self):
        return self.to(D.float64)

    def long(self):
        return self.to(D.int64)

    def bool(self):
        return self.to(D.bool_)

    def type_as(self, other):
        return self.to(other.dtype)

    # ------------------------------------------------------------------ elementwise
    def _float_unary(self, name):
        x = self if self.dtype.is_floating_point else self.to(D.default_float)
        return OPS[name].bind(x)

    def exp(self):
        return self._float_unary("exp")

    def log(self):
        return self._float_unary("log")

    def sqrt(self):
        return self._float_unary("sqrt")

    def rsqrt(self):
        return 1.0 / self.sqrt()

    def tanh(self):
        return self._float_unary("tanh")

    def sigmoid(self):
        return self._float_unary("sigmoid")

    def erf(self):
        return self._float_unary("erf")

    def sin(self):
        return self._float_unary("sin")

    def cos(self):
        return self._float_unary("cos")

    def abs(self):
        return OPS["abs"].bind(self)

    def sign(self):
        return OPS["sign"].bind(self)

    def neg(self):
        if self.dtype is D.bool_:
            raise DTypeError("negation of a bool tensor is not defined; use logical_not() or ~")
        return OPS["neg"].bind(self)

    __neg__ = neg

    def relu(self):
        return where(self > 0, self, 0)

    def clamp(self, min=None, max=None):
        out = self
        if min is not None:
            out = where(out < min, min, out)
        if max is not None:
            out = where(out > max, max, out)
        return out

    clip = clamp

    def square(self):
        return self * self

    def maximum(self, other):
        return _binary("maximum", self, other)

    def minimum(self, other):
        return _binary("minimum", self, other)

    def pow(self, exponent):
        if (isinstance(exponent, (int, float)) and not isinstance(exponent, bool) and exponent == 2
                and D.promote_weak(self.dtype, exponent) is self.dtype):  # int ** 2.0 is float, bool ** 2 int
            return self * self
        if self.dtype.category < 2 and isinstance(exponent, (int, np.integer)) and exponent < 0:
            raise DTypeError("integers to negative integer powers are not allowed; use x.float() ** n")
        return _binary("pow", self, exponent)

    def logical_not(self):
        return OPS["logical_not"].bind(self)

    def __invert__(self):
        if self.dtype is not D.bool_:
            raise DTypeError(f"~ is defined for bool tensors only, got {self.dtype!r}")
        return self.logical_not()

    def __add__(self, other): return _binary("add", self, other)
    def __radd__(self, other): return _binary("add", other, self)
    def __sub__(self, other): return _binary("sub", self, other)
    def __rsub__(self, other): return _binary("sub", other, self)
    def __mul__(self, other): return _binary("mul", self, other)
    def __rmul__(self, other): return _binary("mul", other, self)
    def __truediv__(self, other): return _binary("div", self, other)
    def __rtruediv__(self, other): return _binary("div", other, self)
    def __pow__(self, other): return self.pow(other)
    def __rpow__(self, other): return _binary("pow", other, self)
    def __matmul__(self, other): return matmul(self, other)
    def __rmatmul__(self, other): return matmul(other, self)
    def __lt__(self, other): return _binary("lt", self, other)
    def __le__(self, other): return _binary("le", self, other)
    def __gt__(self, other): return _binary("gt", self, other)
    def __ge__(self, other): return _binary("ge", self, other)
    def __eq__(self, other): return _binary("eq", self, other)
    def __ne__(self, other): return _binary("ne", self, other)
    def __and__(self, other): return _binary("logical_and", self, other)
    def __or__(self, other): return _binary("logical_or", self, other)

    add = __add__
    sub = __sub__
    mul = __mul__
    div = __truediv__
    eq, ne, lt, le, gt, ge = __eq__, __ne__, __lt__, __le__, __gt__, __ge__

    # ------------------------------------------------------------------ in place
    def _assign(self, result, what):
        """Make `self` hold `result` (same shape): the mechanism of every in-place op."""
        if result.shape != self.shape:
            raise ShapeError(f"{what}: the result has shape {result.shape}, which cannot be written into "
                             f"a tensor of shape {self.shape}")
        if result.dtype is not self.dtype:
            if result.dtype.category > self.dtype.category:
                raise DTypeError(f"{what}: result type {result.dtype!r} cannot be written into a {self.dtype!r} tensor")
            result = result.to(self.dtype)
        if _tracer[0] is not None:
            return _tracer[0].assign(self, result)
        grad_mode = autograd.is_grad_enabled()
        recording = grad_mode and result.requires_grad
        if grad_mode and self.is_leaf and self.requires_grad:  # also zero_/fill_/copy_ of a constant
            raise AutogradError(f"{what} on a leaf tensor that requires grad; wrap parameter updates "
                                "in `with gradc.no_grad():`")
        if (grad_mode and self._grad_fn is not None and self._grad_fn.prim.name in _VIEW_OPS
                and getattr(self._data, "base", None) is not None):
            # the base tensor's history would not see the write, so its gradient would be wrong
            raise AutogradError(f"{what} on a view ({self._grad_fn.prim.name} result) of a tensor that requires "
                                "grad is not supported; write into a .clone() of the view, or make the change "
                                "under `with gradc.no_grad():`")
        try:
            self._data[...] = result._data
        except ValueError as e:  # e.g. the read-only result of expand()
            raise AutogradError(f"{what}: this tensor cannot be written in place ({e}); use .clone() first") from None
        self._version[0] += 1
        if recording:
            self._grad_fn, self.requires_grad = result._grad_fn, True
        elif grad_mode and self.requires_grad:
            # the new value does not depend on the old one (fill_, zero_, copy_ of a constant): keeping
            # the old history would send gradient through values that are gone
            self._grad_fn, self.requires_grad = None, False
        return self

    def add_(self, other, alpha=1):
        return self._assign(self + (other * alpha if alpha != 1 else other), "add_")

    def sub_(self, other, alpha=1):
        return self._assign(self - (other * alpha if alpha != 1 else other), "sub_")

    def mul_(self, other):
        return self._assign(self._old_value(other) * other, "mul_")

    def _old_value(self, *others):
        """`self` as an operand of its own in-place op. mul's VJP reads its operands after the write,
        so when autograd records the op it gets a copy of the old value (torch saves original_self)."""
        if autograd.is_grad_enabled() and _tracer[0] is None and (
                self.requires_grad or any(isinstance(o, Tensor) and o.requires_grad for o in others)):
            return self.clone()
        return self

    def div_(self, other):
        return self._assign(self / other, "div_")

    def addcmul_(self, a, b, value=1):
        return self._assign(self + a * b * value, "addcmul_")

    def addcdiv_(self, a, b, value=1):
        return self._assign(self + a / b * value, "addcdiv_")

    def clamp_(self, min=None, max=None):
        return self._assign(self.clamp(min, max), "clamp_")

    def zero_(self):
        return self.fill_(0)

    def fill_(self, value):
        if isinstance(value, Tensor):
            return self.copy_(value.reshape(()).expand(self.shape))
        return self._assign(full(self.shape, value, dtype=self.dtype, device=self.device), "fill_")

    def copy_(self, src):
        if not isinstance(src, Tensor):
            src = tensor(src, dtype=self.dtype, device=self.device)
        if src.device != self.device:
            src = src.to(self.device)
        if src.shape != self.shape:
            src = src.expand(self.shape)
        return self._assign(src, "copy_")

    # ------------------------------------------------------------------ reductions
    def _axes(self, dim, name):
        if dim is None:
            return tuple(range(self.ndim))
        dims = dim if isinstance(dim, (tuple, list)) else (dim,)
        axes = tuple(sorted({normalize_axis(name, int(d), self.ndim) for d in dims}))
        if len(axes) != len(dims):
            raise ShapeError(f"{name}: dim {tuple(dims)} names a dimension twice")
        return axes if self.ndim else ()

    def sum(self, dim=None, keepdim=False, dtype=None):
        x = self if dtype is None else self.to(dtype)
        return OPS["sum"].bind(x, axes=x._axes(dim, "sum"), keepdim=bool(keepdim))

    def mean(self, dim=None, keepdim=False):
        if not self.dtype.is_floating_point:
            raise DTypeError(f"mean() needs a floating-point tensor, got {self.dtype!r}; call .float() first")
        axes = self._axes(dim, "mean")
        n = 1
        for a in axes:
            n *= self.shape[a]
        return self.sum(axes, keepdim) / float(n)

    def var(self, dim=None, keepdim=False, unbiased=True, correction=None):
        axes = self._axes(dim, "var")
        n = 1
        for a in axes:
            n *= self.shape[a]
        ddof = (1 if unbiased else 0) if correction is None else correction
        centered = self - self.mean(axes, keepdim=True)
        return (centered * centered).sum(axes, keepdim) / float(builtins.max(n - ddof, 0))

    def std(self, dim=None, keepdim=False, unbiased=True, correction=None):
        return self.var(dim, keepdim, unbiased, correction).sqrt()

    def amax(self, dim=None, keepdim=False):
        return OPS["max"].bind(self, axes=self._axes(dim, "amax"), keepdim=bool(keepdim))

    def amin(self, dim=None, keepdim=False):
        if self.dtype is D.bool_:  # bool has no negation
            return self.logical_not().amax(dim, keepdim).logical_not()
        return -((-self).amax(dim, keepdim))

    def max(self, dim=None, keepdim=False):
        """Without dim: the largest element. With dim: (values, indices), as in PyTorch."""
        if isinstance(dim, Tensor):
            return self.maximum(dim)
        if dim is None:
            return self.amax()
        return max_result(self.amax(dim, keepdim), self.argmax(dim, keepdim))

    def min(self, dim=None, keepdim=False):
        if isinstance(dim, Tensor):
            return self.minimum(dim)
        if dim is None:
            return self.amin()
        return max_result(self.amin(dim, keepdim), (-self).argmax(dim, keepdim))

    def argmax(self, dim=None, keepdim=False):
        axis = None if dim is None else normalize_axis("argmax", dim, self.ndim)
        return OPS["argmax"].bind(self, axis=axis, keepdim=bool(keepdim))

    def argmin(self, dim=None, keepdim=False):
        return (-self).argmax(dim, keepdim)

    def all(self):
        return self.bool().logical_not().sum() == 0

    def any(self):
        return self.bool().sum() > 0

    def softmax(self, dim):
        z = self - self.amax(dim, keepdim=True).detach()
        e = z.exp()
        return e / e.sum(dim, keepdim=True)

    def log_softmax(self, dim):
        z = self - self.amax(dim, keepdim=True).detach()
        return z - z.exp().sum(dim, keepdim=True).log()

    # ------------------------------------------------------------------ movement
    def reshape(self, *shape):
        shape = list(_shape_arg(shape))
        if shape.count(-1) > 1:
            raise ShapeError(f"reshape: only one dimension can be -1, got {tuple(shape)}")
        if -1 in shape:
            known = 1
            for d in shape:
                known *= d if d != -1 else 1
            if known == 0 or self.numel() % known:
                raise ShapeError(f"reshape: cannot reshape a tensor of shape {self.shape} into {tuple(shape)}")
            shape[shape.index(-1)] = self.numel() // known
        shape = tuple(shape)
        if shape == self.shape:
            return self
        return OPS["reshape"].bind(self, shape=shape)

    view = reshape

    def view_as(self, other):
        return self.reshape(other.shape)

    reshape_as = view_as

    def flatten(self, start_dim=0, end_dim=-1):
        if self.ndim == 0:
            return self.reshape(1)
        s = normalize_axis("flatten", start_dim, self.ndim)
        e = normalize_axis("flatten", end_dim, self.ndim)
        return self.reshape(self.shape[:s] + (-1,) + self.shape[e + 1:])

    def permute(self, *dims):
        dims = tuple(normalize_axis("permute", d, self.ndim) for d in _shape_arg(dims))
        if dims == tuple(range(self.ndim)):
            return self
        return OPS["permute"].bind(self, perm=dims)

    def transpose(self, dim0, dim1):
        perm = list(range(self.ndim))
        a = normalize_axis("transpose", dim0, self.ndim)
        b = normalize_axis("transpose", dim1, self.ndim)
        perm[a], perm[b] = perm[b], perm[a]
        return self.permute(perm)

    def t(self):
        if self.ndim > 2:
            raise ShapeError(f"t() expects a tensor with <= 2 dims, got shape {self.shape}; use transpose(dim0, dim1)")
        return self.T

    def unsqueeze(self, dim):
        d = normalize_axis("unsqueeze", dim, self.ndim + 1)
        return self.reshape(self.shape[:d] + (1,) + self.shape[d:])

    def squeeze(self, dim=None):
        if dim is None:
            return self.reshape(tuple(s for s in self.shape if s != 1))
        axes = self._axes(dim, "squeeze")
        return self.reshape(tuple(s for i, s in enumerate(self.shape) if not (i in axes and s == 1)))

    def expand(self, *sizes):
        sizes = _shape_arg(sizes)
        if len(sizes) < self.ndim:
            raise ShapeError(f"expand: target {sizes} has fewer dims than the tensor's shape {self.shape}")
        lead = len(sizes) - self.ndim
        x = self.reshape((1,) * lead + self.shape) if lead else self
        shape = tuple(x.shape[i] if s == -1 else s for i, s in enumerate(sizes))
        if shape == x.shape:
            return x
        return OPS["expand"].bind(x, shape=shape)

    broadcast_to = expand

    def expand_as(self, other):
        return self.expand(other.shape)

    def _slice(self, starts, stops, steps):
        if all(a == 0 and b == n and c == 1 for a, b, c, n in zip(starts, stops, steps, self.shape)):
            return self
        return OPS["slice"].bind(self, starts=tuple(starts), stops=tuple(stops), steps=tuple(steps))

    def _pad_into(self, shape, starts, stops, steps):
        return OPS["pad"].bind(self, shape=tuple(shape), starts=tuple(starts), stops=tuple(stops), steps=tuple(steps))

    def _gather(self, idx, axis):
        return OPS["gather"].bind(self, idx, axis=axis)

    def _scatter_add(self, idx, axis, size):
        return OPS["scatter_add"].bind(self, idx, axis=axis, size=size)

    def __getitem__(self, key):
        from .indexing import getitem
        return getitem(self, key)

    def chunk(self, chunks, dim=0):
        d = normalize_axis("chunk", dim, self.ndim)
        step = -(-self.shape[d] // chunks)
        return self.split(step, d)

    def split(self, split_size, dim=0):
        d = normalize_axis("split", dim, self.ndim)
        n = self.shape[d]
        sizes = [split_size] * (n // split_size) + ([n % split_size] if n % split_size else []) \
            if isinstance(split_size, int) else list(split_size)
        out, start = [], 0
        for s in sizes:
            starts, stops = [0] * self.ndim, list(self.shape)
            starts[d], stops[d] = start, start + s
            out.append(self._slice(starts, stops, [1] * self.ndim))
            start += s
        return tuple(out)

    # ------------------------------------------------------------------ linear algebra
    def mm(self, other):
        return mm(self, other)

    def matmul(self, other):
        return matmul(self, other)


def _to_device(t, dev):
    """Copy to another device; autograd sees the copy as identity."""
    if _tracer[0] is not None:
        return _tracer[0].to_device(t, dev)
    src = t._data if t.device is CPU else t._data.get()
    data = src if dev is CPU else dev.xp.asarray(src)
    out = Tensor._wrap(data, t.dtype, dev)
    if t.requires_grad and autograd.is_grad_enabled():
        out._grad_fn = autograd.Node(_device_copy, {"device": str(t.device)}, (t,), out)
        out.requires_grad = True
    return out


class _DeviceCopy:
    """Autograd's record of a device transfer: its VJP moves the gradient back."""
    name, saves = "to_device", frozenset()

    @staticmethod
    def vjp(ctx, g):
        return (_to_device(g, _device(ctx.attrs["device"])),)


_device_copy = _DeviceCopy()


# ---------------------------------------------------------------------- argument normalisation
def _is_number(x):
    return isinstance(x, (int, float, bool, np.number, np.bool_))


def _binary(name, a, b):
    """Promote two operands (tensors or Python scalars) to one dtype and bind the primitive."""
    prim = OPS[name]
    ta, tb = isinstance(a, Tensor), isinstance(b, Tensor)
    if not ta and not tb:
        raise DTypeError(f"{name}: expected at least one tensor operand")
    if ta and tb:
        dtype = _promote_tensors(a, b)
    else:
        t, s = (a, b) if ta else (b, a)
        if not _is_number(s):
            if isinstance(s, (np.ndarray, list, tuple)):
                s = tensor(s, device=t.device)
                return _binary(name, *((a, s) if ta else (s, b)))
            raise DTypeError(f"{name}: unsupported operand of type {type(s).__name__}; expected a tensor or a number")
        dtype = D.promote_weak(t.dtype, s)
    if name == "div" and dtype.category < 2:
        dtype = D.default_float  # true division, as in PyTorch
    elif name == "sub" and dtype is D.bool_:
        raise DTypeError("subtraction of bool tensors is not supported; use ~ or logical ops, or cast to int")
    a = _as_operand(a, dtype, b)
    b = _as_operand(b, dtype, a)
    return prim.bind(a, b)


def _promote_tensors(a, b):
    # PyTorch's rule: a 0-d tensor beside a tensor with dims only counts when its category is higher.
    if (a.ndim == 0) == (b.ndim == 0):
        return D.promote(a.dtype, b.dtype)
    big, small = (a, b) if b.ndim == 0 else (b, a)
    return big.dtype if small.dtype.category <= big.dtype.category else small.dtype


def _as_operand(x, dtype, other):
    if isinstance(x, Tensor):
        return x if x.dtype is dtype else x.to(dtype)
    return scalar_tensor(x, dtype, other.device)


def scalar_tensor(value, dtype, dev=CPU):
    """A 0-d constant (Python scalars in expressions become these)."""
    if _tracer[0] is not None:
        return _tracer[0].constant(np.asarray(value, dtype=dtype.np), dtype, dev)
    data = np.asarray(value, dtype=dtype.np)
    return Tensor._wrap(data if dev is CPU else dev.xp.asarray(data), dtype, dev)


# ---------------------------------------------------------------------- functions
def where(condition, input, other):
    """Elementwise choice: input where condition is true, other elsewhere (no Python branch)."""
    if not isinstance(condition, Tensor):
        raise DTypeError("where: condition must be a bool tensor")
    if condition.dtype is not D.bool_:
        raise DTypeError(f"where: condition must be bool, got {condition.dtype!r}; compare first, e.g. x > 0")
    ti, to_ = isinstance(input, Tensor), isinstance(other, Tensor)
    if ti and to_:
        dtype = _promote_tensors(input, other)
    elif ti or to_:
        t, s = (input, other) if ti else (other, input)
        dtype = D.promote_weak(t.dtype, s)
    else:
        dtype = D.promote(D.scalar_dtype(input), D.scalar_dtype(other))
    input = _as_operand(input, dtype, condition)
    other = _as_operand(other, dtype, condition)
    return OPS["where"].bind(condition, input, other)


def mm(a, b):
    if not isinstance(a, Tensor) or not isinstance(b, Tensor) or a.ndim != 2 or b.ndim != 2:
        raise ShapeError(f"mm needs two 2-D tensors, got shapes {getattr(a, 'shape', type(a).__name__)} and "
                         f"{getattr(b, 'shape', type(b).__name__)}; use matmul for 1-D or batched operands")
    return matmul(a, b)


def matmul(a, b):
    if not isinstance(a, Tensor) or not isinstance(b, Tensor):
        raise DTypeError("matmul: both operands must be tensors")
    if a.ndim == 0 or b.ndim == 0:
        raise ShapeError(f"matmul: both operands need at least 1 dim, got shapes {a.shape} and {b.shape}")
    if a.dtype is not b.dtype:
        dtype = D.promote(a.dtype, b.dtype)
        if _autocast[0] is not None and dtype is D.float32 and a.dtype.is_floating_point and b.dtype.is_floating_point:
            # float16 @ float32 under autocast: cast the float32 side down (where autocast takes it
            # anyway), not the float16 side up and back down
            from .amp import get_autocast_dtype, is_autocast_enabled
            dtype = get_autocast_dtype() if is_autocast_enabled() else dtype
        a, b = a.to(dtype), b.to(dtype)
    if a.ndim == 1 and b.ndim == 1:
        _check_inner(a, b, a.shape[0], b.shape[0])
        return (a.reshape(1, -1) @ b.reshape(-1, 1)).reshape(())
    if a.ndim == 1:
        return matmul(a.unsqueeze(0), b).squeeze(-2)
    if b.ndim == 1:
        return matmul(a, b.unsqueeze(-1)).squeeze(-1)
    _check_inner(a, b, a.shape[-1], b.shape[-2])
    if b.ndim == 2 and a.ndim > 2:
        # Fold batch dims into rows: one GEMM, and the weight gradient needs no batch reduction.
        return OPS["matmul"].bind(a.reshape(-1, a.shape[-1]), b).reshape(a.shape[:-1] + (b.shape[-1],))
    return OPS["matmul"].bind(a, b)


def _check_inner(a, b, k1, k2):
    if k1 != k2:
        raise ShapeError(f"matmul: shapes {a.shape} and {b.shape} cannot be multiplied ({k1} != {k2}); "
                         "the last dim of the first must equal the second-to-last of the second")


def cat(tensors, dim=0):
    tensors = list(tensors)
    if not tensors:
        raise ShapeError("cat: expected a non-empty list of tensors")
    dtype = tensors[0].dtype
    for t in tensors[1:]:
        dtype = D.promote(dtype, t.dtype)
    tensors = [t.to(dtype) for t in tensors]
    ndim = tensors[0].ndim
    for t in tensors:
        if t.ndim != ndim:
            raise ShapeError(f"cat: all tensors need the same number of dims, got shapes "
                             f"{', '.join(str(t.shape) for t in tensors)}")
    axis = normalize_axis("cat", dim, ndim)
    if len(tensors) == 1:
        return tensors[0]
    return OPS["concat"].bind(*tensors, axis=axis)


def stack(tensors, dim=0):
    tensors = list(tensors)
    if not tensors:
        raise ShapeError("stack: expected a non-empty list of tensors")
    shapes = {t.shape for t in tensors}
    if len(shapes) > 1:
        raise ShapeError(f"stack: all tensors need the same shape, got {', '.join(str(t.shape) for t in tensors)}")
    d = normalize_axis("stack", dim, tensors[0].ndim + 1)
    return cat([t.unsqueeze(d) for t in tensors], d)


# ---------------------------------------------------------------------- creation
def _infer_dtype(data):
    if isinstance(data, np.ndarray):
        return D.from_numpy_dtype(data.dtype)
    arr = np.asarray(data)
    if arr.dtype.kind == "f":
        return D.default_float
    if arr.dtype.kind in "iu":
        return D.int64
    if arr.dtype.kind == "b":
        return D.bool_
    raise DTypeError(f"cannot make a tensor from {type(data).__name__} (NumPy sees dtype {arr.dtype})")


def _new(data, dtype, device, requires_grad):
    """Wrap a fresh host array as a tensor on `device` (the tracer makes it a constant)."""
    dev = _require_device(_device(device)) if device is not None else CPU
    if requires_grad and not dtype.is_floating_point:
        raise DTypeError(f"only floating-point tensors can require grad, got {dtype!r}")
    if _tracer[0] is not None:
        t = _tracer[0].constant(data, dtype, dev)
    else:
        t = Tensor._wrap(data if dev is CPU else dev.xp.asarray(data), dtype, dev)
    t.requires_grad = bool(requires_grad)
    return t


def tensor(data, dtype=None, device=None, requires_grad=False):
    """A new tensor that copies `data` (nested lists, numbers, arrays or a tensor)."""
    if isinstance(data, Tensor):
        data = data.detach().numpy()
    dtype = D.get_dtype(dtype) if dtype is not None else _infer_dtype(data)
    if hasattr(data, "__cuda_array_interface__"):
        data = data.get()
    arr = np.array(data, dtype=dtype.np, copy=True)
    return _new(arr, dtype, device, requires_grad)


def as_tensor(data, dtype=None, device=None):
    if isinstance(data, Tensor):
        return data.to(dtype=dtype, device=device)
    return tensor(data, dtype=dtype, device=device)


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


def full(size, fill_value, dtype=None, device=None, requires_grad=False):
    dtype = _creation_dtype(dtype, None if dtype else D.scalar_dtype(fill_value) if not isinstance(fill_value, float)
                            else D.default_float)
    return _new(np.full(_shape_arg((size,) if isinstance(size, int) else size), fill_value, dtype=dtype.np),
                dtype, device, requires_grad)


def zeros(*size, dtype=None, device=None, requires_grad=False):
    return full(_shape_arg(size), 0.0 if dtype is None else 0, dtype=_creation_dtype(dtype), device=device,
                requires_grad=requires_grad)


def ones(*size, dtype=None, device=None, requires_grad=False):
    return full(_shape_arg(size), 1, dtype=_creation_dtype(dtype), device=device, requires_grad=requires_grad)


def empty(*size, dtype=None, device=None, requires_grad=False):
    return zeros(*size, dtype=dtype, device=device, requires_grad=requires_grad)


def _like(t, dtype, device):
    return (dtype or t.dtype), (device if device is not None else t.device)


def zeros_like(t, dtype=None, device=None, requires_grad=False):
    dtype, device = _like(t, dtype, device)
    return zeros(t.shape, dtype=dtype, device=device, requires_grad=requires_grad)


def ones_like(t, dtype=None, device=None, requires_grad=False):
    dtype, device = _like(t, dtype, device)
    return ones(t.shape, dtype=dtype, device=device, requires_grad=requires_grad)


def full_like(t, fill_value, dtype=None, device=None, requires_grad=False):
    dtype, device = _like(t, dtype, device)
    return full(t.shape, fill_value, dtype=dtype, device=device, requires_grad=requires_grad)


def empty_like(t, dtype=None, device=None, requires_grad=False):
    return zeros_like(t, dtype, device, requires_grad)


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False):
    if end is None:
        start, end = 0, start
    is_float = any(isinstance(v, float) for v in (start, end, step))
    dtype = _creation_dtype(dtype, D.default_float if is_float else D.int64)
    return _new(np.arange(start, end, step).astype(dtype.np), dtype, device, requires_grad)


def linspace(start, end, steps, dtype=None, device=None, requires_grad=False):
    dtype = _creation_dtype(dtype)
    return _new(np.linspace(start, end, steps).astype(dtype.np), dtype, device, requires_grad)


def eye(n, m=None, dtype=None, device=None, requires_grad=False):
    dtype = _creation_dtype(dtype)
    return _new(np.eye(n, m, dtype=dtype.np), dtype, device, requires_grad)


def _random(kind, shape, dtype, device, requires_grad, low=0, high=0):
    """A tensor of random draws. While tracing it becomes a program input drawn afresh on every
    call (never a constant baked into the program)."""
    from .random import sample
    spec = (kind, tuple(shape), dtype.name, int(low), int(high))
    if _tracer[0] is not None:
        dev = _require_device(_device(device)) if device is not None else CPU
        t = _tracer[0].random_input(spec, dev)
        t.requires_grad = bool(requires_grad)
        return t
    return _new(sample(spec), dtype, device, requires_grad)


def _random_float(kind, size, dtype, device, requires_grad):
    dtype = _creation_dtype(dtype)
    if not dtype.is_floating_point:
        raise DTypeError(f"random floats need a floating dtype, got {dtype!r}")
    return _random(kind, _shape_arg(size), dtype, device, requires_grad)


def rand(*size, dtype=None, device=None, requires_grad=False):
    """Uniform samples in [0, 1)."""
    return _random_float("rand", size, dtype, device, requires_grad)


def randn(*size, dtype=None, device=None, requires_grad=False):
    """Standard normal samples."""
    return _random_float("randn", size, dtype, device, requires_grad)


def rand_like(t, dtype=None, device=None, requires_grad=False):
    dtype, device = _like(t, dtype, device)
    return rand(t.shape, dtype=dtype, device=device, requires_grad=requires_grad)


def randn_like(t, dtype=None, device=None, requires_grad=False):
    dtype, device = _like(t, dtype, device)
    return randn(t.shape, dtype=dtype, device=device, requires_grad=requires_grad)


def randint(low, high=None, size=(), dtype=None, device=None):
    if high is None:
        low, high = 0, low
    return _random("randint", _shape_arg(size), _creation_dtype(dtype, D.int64), device, False, low, high)


def randperm(n, device=None):
    return _random("randperm", (int(n),), D.int64, device, False, 0, n)

