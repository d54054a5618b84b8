"""The eager Tensor, kept thin: an array (NumPy or CuPy) plus what autograd and tracing need.

Op methods (arithmetic, reductions, movement, ...) are not written here: gradc.ops.frontend
installs one per entry of the op table and per composite. What needs execution state (constants,
in-place writes, detach, backward) asks the active interpreter on the dispatch stack."""

from . import autograd, dispatch
from . import dtypes as D
from .device import CPU
from .errors import AutogradError, DTypeError, ScalarError, ShapeError, TraceError
from .grad_mode import is_grad_enabled
from .tensor_text import values_text, with_suffixes
from .shapes import Size, normalize_axis


class Tensor(dispatch.Value):
    __slots__ = ("_data", "_sym", "shape", "dtype", "device", "requires_grad", "_grad", "_grad_fn",
                 "_version", "_hooks", "_view_of", "__weakref__")
    # _hooks: a leaf's register_hook hooks; _view_of: (its view node, the shared version then) for a
    # view recorded by eager autograd, else None (read with getattr: a traced tensor may lack it)
    __array_priority__ = 1000  # so ndarray (op) Tensor defers to Tensor

    @staticmethod
    def _wrap(data, dtype, dev=CPU):
        t = object.__new__(Tensor)
        t._data, t._sym = data, None
        t.shape, t.dtype, t.device = Size(data.shape), dtype, dev
        t.requires_grad, t._grad, t._grad_fn, t._version, t._hooks, t._view_of = False, None, None, [0], None, None
        return t

    # ------------------------------------------------------------------ properties
    @property
    def ndim(self):
        return len(self.shape)

    def dim(self):
        return len(self.shape)

    def size(self, dim=None):
        return Size(self.shape) if dim is None else self.shape[normalize_axis("size", dim, self.ndim)]

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
        g = self._grad
        if g is not None and g._data is not None:
            tracer = dispatch.tracer()
            if tracer is not None:   # lifted, the program reads self.grad afresh on every call
                tracer.grad_owner.setdefault(id(g), self)
        return g

    @grad.setter
    def grad(self, value):
        if value is not None and (not isinstance(value, Tensor) or value.shape != self.shape):
            what = f"shape {tuple(value.shape)}" if isinstance(value, Tensor) else f"type {type(value).__name__}"
            raise ShapeError(f"cannot assign a .grad of {what} to a tensor of shape {tuple(self.shape)}; "
                             "assign a tensor of the same shape, or None")
        tracer = dispatch.tracer()
        if tracer is not None:
            tracer.note_grad(self, value)  # a traced call that sets .grad replays that on every run
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
        """detach(), but with a version counter of its own, as PyTorch's .data: an in-place write
        through it (w.data.mul_(10)) is not seen by autograd's check on what w saved."""
        out = self.detach()
        if self._data is not None:
            out._version = [0]
        return out

    @data.setter
    def data(self, value):
        """p.data = t (loading pretrained values): p takes t's values, shape and dtype in place of its
        own, keeping its identity, requires_grad and .grad, as in PyTorch. Its version counter moves:
        a backward that saved p's old value then fails loudly instead of reading the new one."""
        if not isinstance(value, Tensor):
            raise DTypeError(f".data must be assigned a tensor, got {type(value).__name__}")
        if self._data is None and value._sym is not None and value._sym == self._sym:
            return   # `p.data += u` traced: the in-place add already wrote p; this assignment writes nothing new
        if self._data is None or value._data is None:
            raise AutogradError(".data cannot be assigned while gradc.compile traces; assign it outside the "
                                "compiled function")
        self._data, self.shape, self.dtype, self.device = value._data, value.shape, value.dtype, value.device
        self._version[0] += 1

    @property
    def T(self):
        return self.permute(tuple(reversed(range(self.ndim))))

    @property
    def mT(self):
        if self.ndim < 2:
            raise ShapeError(f"mT needs a tensor of at least 2 dims, got shape {tuple(self.shape)}")
        return self.transpose(-2, -1)

    # ------------------------------------------------------------------ conversion
    def _concrete(self, what):
        if self._data is None:
            tracer = dispatch.tracer()
            if tracer is None:
                raise TraceError(f"{what} of a tensor made while gradc.compile traced a function and kept in "
                                 "Python state (a list, a dict, a global): a compiled call gives back only what it "
                                 "returns. Return the tensor from the compiled function instead")
            return tracer.concretize(self, what)
        return self._data

    def numpy(self, *, force=False):
        """The values as a NumPy array (shared memory on the CPU); force=True detaches (and copies
        from a GPU) first, as torch's."""
        if force:
            return self.detach().cpu().numpy()
        if self.requires_grad and is_grad_enabled() and dispatch.tracer() is None:
            raise AutogradError("numpy() on a tensor that requires grad; call .detach().numpy() instead")
        data = self._concrete("numpy()")
        return data if self.device is CPU else data.get()

    def item(self):
        if self.numel() != 1:
            raise ScalarError(f"item() needs a tensor with one element, got shape {tuple(self.shape)}")
        return self._concrete("item()").reshape(()).item()

    def tolist(self):
        data = self._concrete("tolist()")
        return (data if self.device is CPU else data.get()).tolist()

    def __bool__(self):
        if self.numel() != 1:
            raise ScalarError(f"the truth value of a tensor with {self.numel()} elements is ambiguous; "
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
            body = f"<traced {tuple(self.shape)}>"
        else:
            body = values_text(self._data if self.device is CPU else self._data.get(), len("tensor("))
        extra = [f"device='{self.device}'"] if self.device is not CPU else []   # (PyTorch's order of suffixes)
        if self._data is not None and 0 in self.shape:   # an empty tensor names its size (unless 1-d)
            if len(self.shape) != 1:
                extra.append(f"size={tuple(self.shape)}")
            if self.dtype is not D.default_float:
                extra.append(f"dtype={self.dtype!r}")
        elif self.dtype not in (D.default_float, D.int64, D.bool_):
            extra.append(f"dtype={self.dtype!r}")
        if self._grad_fn is not None:
            extra.append(f"grad_fn={self._grad_fn!r}")
        elif self.requires_grad:
            extra.append("requires_grad=True")
        return with_suffixes("tensor(" + body, extra, len("tensor("))

    # ------------------------------------------------------------------ autograd
    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        interp = self._sym[0] if self._sym is not None else dispatch.eager()
        if isinstance(inputs, Tensor):
            inputs = [inputs]
        return interp.backward(self, gradient, bool(retain_graph), bool(create_graph),
                               None if inputs is None else list(inputs))

    def register_hook(self, hook):
        return autograd.register_hook(self, hook)

    def retain_grad(self):
        autograd.retain_grad(self)

    @property
    def retains_grad(self):
        return autograd.retains_grad(self)

    def detach(self):
        if self._data is None:
            return self._sym[0].detach(self)
        t = Tensor._wrap(self._data, self.dtype, self.device)
        t._version = self._version  # shares data, so shares the version counter (as in PyTorch)
        return t

    def requires_grad_(self, requires_grad=True):
        if requires_grad and not self.dtype.is_floating_point:
            raise DTypeError(f"only floating-point tensors can require grad, got {self.dtype!r}")
        if not self.is_leaf:
            if requires_grad and self.requires_grad:
                return self   # (already so: PyTorch allows it)
            raise AutogradError("requires_grad_() can only change leaf tensors; use .detach().requires_grad_()")
        self.requires_grad = requires_grad
        return self

    def detach_(self):
        self._grad_fn, self.requires_grad = None, False
        return self

    def contiguous(self):
        return self
