"""A stand-in for CuPy that runs on NumPy but accepts only what CuPy accepts.

The eager kernels of the op table receive their array module as `xp`; on a GPU that is CuPy, which
implements a subset of NumPy's API with its own signatures (no `dtype=` on clip, no `where=` on
ufuncs, 0-d arrays where NumPy returns scalars, no implicit conversion to NumPy arrays). Without a
GPU those differences go unnoticed, so this module gives the kernels an `xp` that computes with
NumPy and raises `CupyMismatch` for any call CuPy would refuse:

- functions and ufuncs have CuPy's signatures (`SIGNATURES` / `UFUNCS`, copied from CuPy 14's
  `inspect.signature` and argument checks; test_cupy_signatures compares them with CuPy itself
  wherever CuPy is importable) and refuse NumPy arrays as operands;
- a name CuPy lacks (np.vectorize, np.errstate, ...) is an AttributeError;
- arrays (`StrictArray`) have cupy.ndarray's methods, properties and operators only; converting one
  to a NumPy array (np.asarray, np.vectorize, np.* functions) raises, as CuPy does;
- NumPy ufuncs applied to a StrictArray run as the same-named CuPy ufunc (`__call__`, as CuPy's
  __array_ufunc__ does); their other methods (np.add.at, reduce, ...) are refused;
- `cupyx.scatter_add` and `cupyx.scipy.special.erf` (with its loop types) exist in `MODULES`, to be
  installed in sys.modules while kernels run;
- `cupy.cuda` models streams and CUDA graphs as CuPy 14 has them (Stream with begin_capture /
  end_capture / is_capturing, record / wait_event, Graph.launch, MemoryPool, using_allocator,
  get_current_stream): work enqueued with `launch(fn, *args)` (what a RawKernel call does) runs
  at once, or is recorded while the current stream captures and runs when the graph launches;
  synchronising a capturing stream, or reading a device value while any stream captures
  (`int(a)`, `a.item()`, `cupy.asnumpy`), raises as CUDA does.

It is stricter than CuPy in one respect on purpose: NumPy *functions* (np.sum, np.where, ...) on a
StrictArray are refused even where CuPy would forward them, so kernels always say `xp.`."""
import ast
import inspect
import math
import types

import numpy as np


class CupyMismatch(TypeError):
    """A call that CuPy would refuse (or that the stand-in does not model)."""


# ---------------------------------------------------------------------------------------- signatures
def signature(spec):
    """An inspect.Signature from a parameter list written as in a def statement ("a, axis=None,
    *, copy=None"); defaults are literals, or `float` (the default dtype of empty/zeros)."""
    fn = ast.parse(f"def f({spec}): pass").body[0].args

    def default(node):
        if isinstance(node, ast.Name) and node.id == "float":
            return float
        return ast.literal_eval(node)
    P = inspect.Parameter
    params = []
    positional = fn.posonlyargs + fn.args
    defaults = [P.empty] * (len(positional) - len(fn.defaults)) + [default(d) for d in fn.defaults]
    for i, (arg, d) in enumerate(zip(positional, defaults)):
        kind = P.POSITIONAL_ONLY if i < len(fn.posonlyargs) else P.POSITIONAL_OR_KEYWORD
        params.append(P(arg.arg, kind, default=d))
    if fn.vararg:
        params.append(P(fn.vararg.arg, P.VAR_POSITIONAL))
    for arg, d in zip(fn.kwonlyargs, fn.kw_defaults):
        params.append(P(arg.arg, P.KEYWORD_ONLY, default=P.empty if d is None else default(d)))
    if fn.kwarg:
        params.append(P(fn.kwarg.arg, P.VAR_KEYWORD))
    return inspect.Signature(params)


# CuPy 14's module-level functions that the stand-in models: name -> (parameters, NumPy implementation
# taking the bound arguments, defaults applied, as keywords).
def _astuple(x):
    return tuple(x) if isinstance(x, (list, tuple)) else x


SIGNATURES = {
    "asarray": ("a, dtype=None, order=None, *, copy=None, blocking=False",
                lambda a, dtype, order, copy, blocking: np.asarray(a, dtype=dtype, order=order, copy=copy)),
    "ascontiguousarray": ("a, dtype=None", lambda a, dtype: np.ascontiguousarray(a, dtype=dtype)),
    "asnumpy": ("a, stream=None, order='C', out=None, *, blocking=True", None),   # see _asnumpy
    "empty": ("shape, dtype=float, order='C'", lambda shape, dtype, order: np.empty(shape, dtype, order)),
    "zeros": ("shape, dtype=float, order='C'", lambda shape, dtype, order: np.zeros(shape, dtype, order)),
    "ones": ("shape, dtype=float, order='C'", lambda shape, dtype, order: np.ones(shape, dtype, order)),
    "full": ("shape, fill_value, dtype=None, order='C'",
             lambda shape, fill_value, dtype, order: np.full(shape, fill_value, dtype, order)),
    "zeros_like": ("a, dtype=None, order='K', subok=None, shape=None",
                   lambda a, dtype, order, subok, shape: np.zeros_like(a, dtype, order, shape=shape)),
    "empty_like": ("prototype, dtype=None, order='K', subok=None, shape=None",
                   lambda prototype, dtype, order, subok, shape: np.empty_like(prototype, dtype, order, shape=shape)),
    "arange": ("start, stop=None, step=1, dtype=None",
               lambda start, stop, step, dtype: np.arange(start, stop, step, dtype=dtype)),
    "reshape": ("a, newshape, order='C', *, copy=None",
                lambda a, newshape, order, copy: np.reshape(a, newshape, order=order, copy=copy)),
    "transpose": ("a, axes=None", lambda a, axes: np.transpose(a, axes)),
    "broadcast_to": ("array, shape", lambda array, shape: np.broadcast_to(array, shape)),
    "expand_dims": ("a, axis", lambda a, axis: np.expand_dims(a, axis)),
    "squeeze": ("a, axis=None", lambda a, axis: np.squeeze(a, axis)),
    "concatenate": ("tup, axis=0, out=None, *, dtype=None, casting='same_kind'",
                    lambda tup, axis, out, dtype, casting: np.concatenate(tup, axis, out, dtype=dtype,
                                                                           casting=casting)),
    "stack": ("tup, axis=0, out=None, *, dtype=None, casting='same_kind'",
              lambda tup, axis, out, dtype, casting: np.stack(tup, axis, out, dtype=dtype, casting=casting)),
    "take": ("a, indices, axis=None, out=None", lambda a, indices, axis, out: np.take(a, indices, axis, out)),
    "take_along_axis": ("a, indices, axis", lambda a, indices, axis: np.take_along_axis(a, indices, axis)),
    "where": ("condition, x=None, y=None",
              lambda condition, x, y: np.where(condition) if x is None and y is None else np.where(condition, x, y)),
    "nonzero": ("a", lambda a: np.nonzero(a)),
    "clip": ("a, a_min, a_max, out=None", lambda a, a_min, a_max, out: np.clip(a, a_min, a_max, out=out)),
    "sum": ("a, axis=None, dtype=None, out=None, keepdims=False",
            lambda a, axis, dtype, out, keepdims: np.sum(a, _astuple(axis), dtype, out, keepdims)),
    "mean": ("a, axis=None, dtype=None, out=None, keepdims=False",
             lambda a, axis, dtype, out, keepdims: np.mean(a, _astuple(axis), dtype, out, keepdims)),
    "max": ("a, axis=None, out=None, keepdims=False",
            lambda a, axis, out, keepdims: np.max(a, _astuple(axis), out, keepdims)),
    "amax": ("a, axis=None, out=None, keepdims=False",
             lambda a, axis, out, keepdims: np.max(a, _astuple(axis), out, keepdims)),
    "min": ("a, axis=None, out=None, keepdims=False",
            lambda a, axis, out, keepdims: np.min(a, _astuple(axis), out, keepdims)),
    "amin": ("a, axis=None, out=None, keepdims=False",
             lambda a, axis, out, keepdims: np.min(a, _astuple(axis), out, keepdims)),
    "argmax": ("a, axis=None, dtype=None, out=None, keepdims=False",
               lambda a, axis, dtype, out, keepdims: _arg(np.argmax, a, axis, dtype, out, keepdims)),
    "argmin": ("a, axis=None, dtype=None, out=None, keepdims=False",
               lambda a, axis, dtype, out, keepdims: _arg(np.argmin, a, axis, dtype, out, keepdims)),
    "argsort": ("a, axis=-1, kind=None", lambda a, axis, kind: np.argsort(a, axis, kind=_stable(kind))),
    "sort": ("a, axis=-1, kind=None", lambda a, axis, kind: np.sort(a, axis, kind=_stable(kind))),
    "cumsum": ("a, axis=None, dtype=None, out=None", lambda a, axis, dtype, out: np.cumsum(a, axis, dtype, out)),
    "flip": ("a, axis=None", lambda a, axis: np.flip(a, axis)),
    "roll": ("a, shift, axis=None", lambda a, shift, axis: np.roll(a, shift, axis)),
    "tril": ("m, k=0", lambda m, k: np.tril(m, k)),
    "triu": ("m, k=0", lambda m, k: np.triu(m, k)),
    "swapaxes": ("a, axis1, axis2", lambda a, axis1, axis2: np.swapaxes(a, axis1, axis2)),
    "moveaxis": ("a, source, destination", lambda a, source, destination: np.moveaxis(a, source, destination)),
    "ones_like": ("a, dtype=None, order='K', subok=None, shape=None",
                  lambda a, dtype, order, subok, shape: np.ones_like(a, dtype, order, shape=shape)),
    "full_like": ("a, fill_value, dtype=None, order='K', subok=None, shape=None",
                  lambda a, fill_value, dtype, order, subok, shape: np.full_like(a, fill_value, dtype, order,
                                                                                 shape=shape)),
    "copy": ("a, order='K'", lambda a, order: np.array(a, order=order, copy=True)),
    "ravel": ("a, order='C'", lambda a, order: np.ravel(a, order)),
    "split": ("ary, indices_or_sections, axis=0",
              lambda ary, indices_or_sections, axis: tuple(np.split(ary, indices_or_sections, axis))),
    "repeat": ("a, repeats, axis=None", lambda a, repeats, axis: np.repeat(a, repeats, axis)),
    "tile": ("A, reps", lambda A, reps: np.tile(A, reps)),
    "broadcast_arrays": ("*args", lambda args: tuple(np.broadcast_arrays(*args))),
    "dot": ("a, b, out=None", lambda a, b, out: np.dot(a, b, out)),
    "outer": ("a, b, out=None", lambda a, b, out: np.outer(a, b, out)),
    "tensordot": ("a, b, axes=2", lambda a, b, axes: np.tensordot(a, b, axes)),
    "prod": ("a, axis=None, dtype=None, out=None, keepdims=False",
             lambda a, axis, dtype, out, keepdims: np.prod(a, _astuple(axis), dtype, out, keepdims)),
    "cumprod": ("a, axis=None, dtype=None, out=None", lambda a, axis, dtype, out: np.cumprod(a, axis, dtype, out)),
    "var": ("a, axis=None, dtype=None, out=None, ddof=0, keepdims=False",
            lambda a, axis, dtype, out, ddof, keepdims: np.var(a, _astuple(axis), dtype, out, ddof, keepdims)),
    "std": ("a, axis=None, dtype=None, out=None, ddof=0, keepdims=False",
            lambda a, axis, dtype, out, ddof, keepdims: np.std(a, _astuple(axis), dtype, out, ddof, keepdims)),
    "all": ("a, axis=None, out=None, keepdims=False",
            lambda a, axis, out, keepdims: np.all(a, _astuple(axis), out, keepdims)),
    "any": ("a, axis=None, out=None, keepdims=False",
            lambda a, axis, out, keepdims: np.any(a, _astuple(axis), out, keepdims)),
    "around": ("a, decimals=0, out=None", lambda a, decimals, out: np.round(a, decimals, out)),
    "round": ("a, decimals=0, out=None", lambda a, decimals, out: np.round(a, decimals, out)),
    "isclose": ("a, b, rtol=1e-05, atol=1e-08, equal_nan=False",
                lambda a, b, rtol, atol, equal_nan: np.isclose(a, b, rtol, atol, equal_nan)),
    "linspace": ("start, stop, num=50, endpoint=True, retstep=False, dtype=None, axis=0",
                 lambda start, stop, num, endpoint, retstep, dtype, axis: np.linspace(start, stop, num, endpoint,
                                                                                      retstep, dtype, axis)),
    "eye": ("N, M=None, k=0, dtype=float, order='C'",
            lambda N, M, k, dtype, order: np.eye(N, M, k, dtype, order)),
}


def _stable(kind):
    # CuPy sorts with a stable radix sort and refuses any other kind
    if kind not in (None, "stable"):
        raise CupyMismatch(f"cupy sorts take kind=None or 'stable' only (CuPy raises ValueError), got {kind!r}")
    return "stable"


def _arg(fn, a, axis, dtype, out, keepdims):
    res = fn(a, axis, keepdims=keepdims)
    res = res if dtype is None else res.astype(dtype)
    if out is not None:
        out[...] = res
        return out
    return res


# CuPy's ufuncs: name -> number of inputs. Each takes (*inputs, out=None, *, casting='same_kind',
# dtype=None) and nothing else (no where=, order=, subok=, signature=).
UFUNCS = dict.fromkeys(
    ("abs absolute negative positive exp expm1 log log1p log2 log10 sqrt square tanh sinh cosh sin cos tan "
     "arcsin arccos arctan sign floor ceil trunc rint reciprocal logical_not isnan isinf isfinite invert "
     "arcsinh arccosh arctanh exp2 signbit").split(), 1)
UFUNCS.update(dict.fromkeys(
    ("add subtract multiply divide true_divide floor_divide power remainder fmod maximum minimum fmax fmin "
     "less less_equal greater greater_equal equal not_equal logical_and logical_or logical_xor "
     "arctan2 hypot bitwise_and bitwise_or bitwise_xor nextafter").split(), 2))
UFUNC_KWARGS = ("out", "casting", "dtype")
# The ufuncs whose `.at` CuPy implements (it raises NotImplementedError for the rest).
UFUNC_AT = frozenset({"add", "subtract", "maximum", "minimum"})
# matmul is a generalized ufunc in CuPy, with its own keyword arguments.
MATMUL = ("*args, axes=None, axis=None, keepdims=False, casting='same_kind', dtype=None, signature=None, "
          "order='K', out=None")

# cupy.ndarray's methods that the stand-in models: name -> parameters (after self).
METHODS = {
    "astype": "dtype, order='K', casting=None, subok=None, copy=True",
    "reshape": "*shape, order='C', copy=None",
    "transpose": "*axes",
    "swapaxes": "axis1, axis2",
    "squeeze": "axis=None",
    "ravel": "order='C'",
    "flatten": "order='C'",
    "copy": "order='C'",
    "view": "dtype=None, type=None",
    "fill": "value",
    "item": "",
    "tolist": "",
    "get": "stream=None, order='C', out=None, blocking=True",
    "set": "arr, stream=None",
    "take": "indices, axis=None, out=None",
    "repeat": "repeats, axis=None",
    "nonzero": "",
    "clip": "min=None, max=None, out=None",
    "sum": "axis=None, dtype=None, out=None, keepdims=False",
    "mean": "axis=None, dtype=None, out=None, keepdims=False",
    "prod": "axis=None, dtype=None, out=None, keepdims=None",
    "cumsum": "axis=None, dtype=None, out=None",
    "var": "axis=None, dtype=None, out=None, ddof=0, keepdims=False",
    "std": "axis=None, dtype=None, out=None, ddof=0, keepdims=False",
    "max": "axis=None, out=None, keepdims=False",
    "min": "axis=None, out=None, keepdims=False",
    "all": "axis=None, out=None, keepdims=False",
    "any": "axis=None, out=None, keepdims=False",
    "argmax": "axis=None, out=None, dtype=None, keepdims=False",
    "argmin": "axis=None, out=None, dtype=None, keepdims=False",
    "argsort": "axis=-1, kind=None",
}

# The scalar types CuPy re-exports from NumPy (cupy.float32 is numpy.float32).
DTYPES = ("bool_ int8 int16 int32 int64 uint8 uint16 uint32 uint64 float16 float32 float64 "
          "complex64 complex128 intp dtype").split()
CONSTANTS = ["newaxis", "inf", "nan", "pi", "e"]


# ---------------------------------------------------------------------------------------- arrays
def _unwrap(x, where, allow_host=False):
    """A stand-in value as NumPy sees it; NumPy arrays are refused (CuPy does not take host arrays)."""
    if isinstance(x, StrictArray):
        return x._a
    if isinstance(x, np.ndarray) and not allow_host:
        raise CupyMismatch(f"{where}: a NumPy array (shape {x.shape}) was passed where CuPy needs a device "
                           "array (CuPy raises 'Unsupported type'); move it with xp.asarray first")
    if isinstance(x, (tuple, list)):
        return type(x)(_unwrap(v, where, allow_host) for v in x)
    return x


def _wrap(x):
    """CuPy returns device arrays where NumPy returns arrays or scalars (a 0-d array for a reduction)."""
    if isinstance(x, np.ndarray):
        return StrictArray(x)
    if isinstance(x, np.generic):
        return StrictArray(np.asarray(x))
    if isinstance(x, tuple):
        return tuple(_wrap(v) for v in x)
    return x


class _Flags:
    """cupy.ndarray.flags: only c_contiguous, f_contiguous and owndata."""
    __slots__ = ("c_contiguous", "f_contiguous", "owndata")

    def __init__(self, a):
        self.c_contiguous, self.f_contiguous = a.flags.c_contiguous, a.flags.f_contiguous
        self.owndata = a.base is None


def _method(name, spec):
    sig = signature(spec)

    def call(self, *args, **kwargs):
        try:
            bound = sig.bind(*args, **kwargs)
        except TypeError as e:
            raise CupyMismatch(f"cupy.ndarray.{name}{sig}: {e}") from None
        bound.apply_defaults()
        kw = {k: _unwrap(v, f"ndarray.{name}", allow_host=name == "set") for k, v in bound.arguments.items()}
        out = kwargs.get("out")
        res = _method_impl(self._a, name, kw)
        if name == "get":   # the one method that returns host data
            return res
        return out if out is not None else _wrap(res)
    call.__name__ = name
    call.__signature__ = sig
    return call


def _method_impl(a, name, kw):
    if name == "astype":
        if kw["casting"] not in (None, "unsafe"):
            raise CupyMismatch("cupy.ndarray.astype does not support casting= (only the default)")
        return a.astype(kw["dtype"], order=kw["order"], copy=kw["copy"])
    if name == "reshape":
        return a.reshape(*kw["shape"], order=kw["order"], copy=kw["copy"])
    if name == "transpose":
        return a.transpose(*kw["axes"])
    if name == "get":
        if kw["out"] is not None:
            kw["out"][...] = a
            return kw["out"]
        return np.array(a, order=kw["order"])
    if name == "set":   # a host-to-device copy: CuPy takes a NumPy array of the same shape and dtype only
        arr = kw["arr"]
        if not isinstance(arr, np.ndarray) or arr.shape != a.shape or arr.dtype != a.dtype:
            raise CupyMismatch("cupy.ndarray.set needs a numpy.ndarray of the array's shape and dtype, got "
                               f"{type(arr).__name__} {getattr(arr, 'shape', '')} {getattr(arr, 'dtype', '')}")
        a[...] = arr
        return None
    if name in ("argmax", "argmin"):
        return _arg(getattr(np, name), a, kw["axis"], kw["dtype"], kw["out"], kw["keepdims"])
    if name == "argsort":
        return a.argsort(kw["axis"], kind=_stable(kw["kind"]))
    if name == "view":
        if kw["type"] is not None:
            raise CupyMismatch("cupy.ndarray.view(type=...) is not modelled")
        return a.view() if kw["dtype"] is None else a.view(kw["dtype"])
    if name == "clip":
        return np.clip(a, kw["min"], kw["max"], out=kw["out"])
    if name == "fill":   # NumPy's fill takes its value positionally only
        return a.fill(kw["value"])
    if name in ("sum", "mean", "prod", "cumsum", "var", "std", "max", "min", "all", "any"):
        if "axis" in kw:
            kw["axis"] = _astuple(kw["axis"])
        if kw.get("keepdims", False) is None:
            kw["keepdims"] = False
    return getattr(a, name)(**kw)


def _operator(name, inplace=False):
    def op(self, *others):
        values = [_unwrap(o, f"ndarray.{name}") for o in others]
        res = getattr(self._a, name)(*values)
        if res is NotImplemented:
            return res
        return self if inplace else _wrap(res)
    op.__name__ = name
    return op


class StrictArray:
    """A device array as CuPy has it: cupy.ndarray's attributes, methods and operators only."""
    __slots__ = ("_a",)
    __hash__ = None

    def __init__(self, a):
        self._a = a

    # memory layout and shape
    shape = property(lambda self: self._a.shape)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    dtype = property(lambda self: self._a.dtype)
    strides = property(lambda self: self._a.strides)
    data = property(lambda self: MemoryPointer(self._a))   # the device address (cupy.cuda.MemoryPointer)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    flags = property(lambda self: _Flags(self._a))
    base = property(lambda self: None if self._a.base is None else StrictArray(self._a.base))
    T = property(lambda self: StrictArray(self._a.T))
    mT = property(lambda self: StrictArray(self._a.mT))
    real = property(lambda self: StrictArray(self._a.real))
    imag = property(lambda self: StrictArray(self._a.imag))

    def __repr__(self):
        return f"StrictArray({self._a!r})"

    # conversions: CuPy syncs and converts arrays of one element to Python numbers, nothing else
    def __array__(self, *args, **kwargs):
        raise CupyMismatch("Implicit conversion to a NumPy array is not allowed (CuPy raises this); "
                           "use xp.asnumpy(a) or a.get() to copy a device array to the host")

    def __array_function__(self, func, types, args, kwargs):
        mod = getattr(func, "__module__", "") or ""
        raise CupyMismatch(f"{mod}.{func.__name__} called on a device array: call the array module's "
                           f"function (xp.{func.__name__}) so that it runs on the GPU")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if method != "__call__":
            raise CupyMismatch(f"numpy.{ufunc.__name__}.{method} on a device array: CuPy does not forward "
                               "ufunc methods; use xp's own functions (for np.add.at: cupyx.scatter_add)")
        if ufunc.__name__ not in UFUNCS and ufunc.__name__ != "matmul":
            raise CupyMismatch(f"numpy.{ufunc.__name__} has no CuPy ufunc of that name")
        return getattr(MODULE, ufunc.__name__)(*inputs, **kwargs)

    def __bool__(self):
        return bool(self._scalar("__bool__"))

    def __int__(self):
        return int(self._scalar("__int__"))

    def __float__(self):
        return float(self._scalar("__float__"))

    def __complex__(self):
        return complex(self._scalar("__complex__"))

    def _scalar(self, what):
        if self._a.size != 1:
            raise (ValueError if what == "__bool__" else TypeError)(
                f"{what}: only arrays of one element convert to Python scalars (shape {self._a.shape})")
        return self._a.reshape(()).item()

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        return (_wrap(v) for v in self._a)

    def __getitem__(self, key):
        return _wrap(self._a[_unwrap(key, "ndarray.__getitem__")])

    def __setitem__(self, key, value):
        self._a[_unwrap(key, "ndarray.__setitem__")] = _unwrap(value, "ndarray.__setitem__")


for _name in ("add sub mul truediv floordiv mod pow matmul and or xor lshift rshift "
              "lt le gt ge eq ne neg pos abs invert divmod").split():
    setattr(StrictArray, f"__{_name}__", _operator(f"__{_name}__"))
for _name in "add sub mul truediv floordiv mod pow matmul and or xor lshift rshift divmod".split():
    setattr(StrictArray, f"__r{_name}__", _operator(f"__r{_name}__"))
for _name in "add sub mul truediv floordiv mod pow and or xor lshift rshift".split():  # no @= in CuPy
    setattr(StrictArray, f"__i{_name}__", _operator(f"__i{_name}__", inplace=True))
for _name, _spec in METHODS.items():
    setattr(StrictArray, _name, _method(_name, _spec))


# ---------------------------------------------------------------------------------------- callables
class Function:
    """A CuPy function: binds CuPy's signature, then computes with NumPy."""

    def __init__(self, name, spec, impl):
        self.__name__, self.__signature__, self._impl = name, signature(spec), impl

    def __call__(self, *args, **kwargs):
        try:
            bound = self.__signature__.bind(*args, **kwargs)
        except TypeError as e:
            raise CupyMismatch(f"cupy.{self.__name__}{self.__signature__}: {e}") from None
        bound.apply_defaults()
        host = self.__name__ in ("asarray", "asnumpy")   # the two that take host data
        kw = {k: _unwrap(v, f"cupy.{self.__name__}", allow_host=host) for k, v in bound.arguments.items()}
        if self.__name__ == "asnumpy":
            return _asnumpy(**kw)
        res = self._impl(**kw)
        out = bound.arguments.get("out")
        return out if out is not None else _wrap(res)

    def __repr__(self):
        return f"<stand-in cupy.{self.__name__}{self.__signature__}>"


def _asnumpy(a, stream, order, out, blocking):
    res = np.array(a, order=order)
    if out is not None:
        out[...] = res
        return out
    return res


class Ufunc:
    """A CuPy ufunc: `nin` operands (plus an optional positional out), out=, casting=, dtype=.

    `types` restricts the loops like CuPy's ("f->f" ...): an input dtype without a loop is cast up
    to the first loop that takes it, and the result has that loop's output type."""

    def __init__(self, name, nin, np_fn, types=None):
        self.__name__, self.nin, self.nout, self._np, self.types = name, nin, 1, np_fn, types

    def __call__(self, *args, **kwargs):
        where = f"cupy.{self.__name__}"
        unknown = set(kwargs) - set(UFUNC_KWARGS)
        if unknown or not self.nin <= len(args) <= self.nin + 1 or (len(args) > self.nin and "out" in kwargs):
            raise CupyMismatch(f"{where}: CuPy's ufuncs take {self.nin} operand(s), out=, casting= and dtype= "
                               f"only; got {len(args)} positional and {sorted(kwargs)} (CuPy: 'Wrong arguments')")
        out = args[self.nin] if len(args) > self.nin else kwargs.pop("out", None)
        if out is not None and not isinstance(out, StrictArray):
            raise CupyMismatch(f"{where}: out= must be a device array, got {type(out).__name__}")
        values = [_unwrap(a, where) for a in args[:self.nin]]
        if self.types is not None:
            values, loop_out = self._loop(values, kwargs.get("dtype"))
            res = self._np(*values).astype(loop_out)
            if out is None:
                return _wrap(res)
            out._a[...] = res
            return out
        res = self._np(*values, out=None if out is None else out._a, **kwargs)
        return out if out is not None else _wrap(res)

    def _loop(self, values, dtype):
        have = np.result_type(*values) if dtype is None else np.dtype(dtype)
        for t in self.types:
            ins, outs = t.split("->")
            if all(np.can_cast(have, np.dtype(c)) for c in ins):
                return [np.asarray(v, dtype=np.dtype(ins[0])) for v in values], np.dtype(outs)
        raise CupyMismatch(f"cupy {self.__name__}: no loop for {have} (loops: {self.types})")

    def at(self, a, indices, b=None):
        if self.__name__ not in UFUNC_AT:
            raise CupyMismatch(f"cupy.{self.__name__}.at is not supported by CuPy (only "
                               f"{', '.join(sorted(UFUNC_AT))})")
        where = f"cupy.{self.__name__}.at"
        self._np.at(_unwrap(a, where), _unwrap(indices, where), _unwrap(b, where))

    def __getattr__(self, name):
        raise AttributeError(f"cupy.{self.__name__}.{name} is not modelled by the CuPy stand-in")


class Module(types.ModuleType):
    """The stand-in `cupy` module: the modelled functions, ufuncs and NumPy's scalar types."""

    def __getattr__(self, name):
        raise AttributeError(f"module 'cupy' has no attribute {name!r} (or the CuPy stand-in does not model "
                             "it; CuPy implements a subset of NumPy, so check CuPy's API before using it)")


MODULE = Module("cupy")
MODULE.ndarray = StrictArray
for _name, (_spec, _impl) in SIGNATURES.items():
    setattr(MODULE, _name, Function(_name, _spec, _impl))
for _name, _nin in UFUNCS.items():
    setattr(MODULE, _name, Ufunc(_name, _nin, getattr(np, _name)))
MODULE.matmul = Function("matmul", MATMUL, lambda args, out, dtype, casting, **rest: _matmul(args, out, dtype, casting,
                                                                                          rest))
for _name in DTYPES + CONSTANTS:
    setattr(MODULE, _name, getattr(np, _name))


def _matmul(args, out, dtype, casting, rest):
    given = {k: v for k, v in rest.items() if v != MATMUL_DEFAULTS[k]}
    if given:
        raise CupyMismatch(f"cupy.matmul: {sorted(given)} are not modelled by the stand-in")
    return np.matmul(*args, out=out, dtype=dtype, casting=casting)


MATMUL_DEFAULTS = {p.name: p.default for p in signature(MATMUL).parameters.values()}


def _solve(a, b):
    if b.ndim != 1 and a.shape[:-2] != b.shape[:-2]:
        raise CupyMismatch(f"cupy.linalg.solve: batch dims of a {a.shape} and b {b.shape} differ (CuPy does not "
                           "broadcast them)")
    if a.dtype != b.dtype or a.dtype.kind != "f" or a.dtype == np.float16:
        raise CupyMismatch(f"cupy.linalg.solve: no cuSOLVER routine for {a.dtype} and {b.dtype}")
    return np.linalg.solve(a, b)


def _float_matrix(name, fn):
    def impl(a):
        if a.dtype.kind != "f" or a.dtype == np.float16:
            raise CupyMismatch(f"cupy.linalg.{name}: no cuSOLVER routine for {a.dtype}")
        return fn(a)
    return impl


# cupy.linalg: the solves and determinants (CuPy 14's signatures)
MODULE.linalg = types.ModuleType("cupy.linalg")
MODULE.linalg.solve = Function("linalg.solve", "a, b", _solve)
MODULE.linalg.det = Function("linalg.det", "a", _float_matrix("det", np.linalg.det))
MODULE.linalg.slogdet = Function("linalg.slogdet", "a", _float_matrix("slogdet", lambda a: tuple(np.linalg.slogdet(a))))
MODULE.linalg.svd = Function("linalg.svd", "a, full_matrices=True, compute_uv=True",
                             lambda a, full_matrices, compute_uv: _float_matrix("svd", lambda m: tuple(
                                 np.linalg.svd(m, full_matrices=full_matrices, compute_uv=compute_uv)))(a))
MODULE.linalg.eigh = Function("linalg.eigh", "a, UPLO='L'",
                              lambda a, UPLO: _float_matrix("eigh", lambda m: tuple(np.linalg.eigh(m, UPLO)))(a))
MODULE.linalg.qr = Function("linalg.qr", "a, mode='reduced'",
                            lambda a, mode: _float_matrix("qr", lambda m: tuple(np.linalg.qr(m, mode)))(a))


def _scatter_add(a, slices, value):
    np.add.at(a, slices, value)   # the operands arrive unwrapped: `a` is the device array's own buffer


_erf = np.vectorize(math.erf, otypes=[np.float64])
cupyx = types.ModuleType("cupyx")
cupyx.scatter_add = Function("scatter_add", "a, slices, value", None)
cupyx.scatter_add._impl = _scatter_add
cupyx.scipy = types.ModuleType("cupyx.scipy")
cupyx.scipy.special = types.ModuleType("cupyx.scipy.special")
cupyx.scipy.special.erf = Ufunc("erf", 1, _erf, types=("e->d", "f->f", "d->d"))
cupyx.scipy.special.erfc = Ufunc("erfc", 1, np.vectorize(math.erfc, otypes=[np.float64]), types=("e->d", "f->f", "d->d"))
cupyx.scipy.special.gammaln = Ufunc("gammaln", 1, np.vectorize(lambda v: math.lgamma(v) if v > 0 or v != math.floor(v)
                                                               else (-math.inf if v == -math.inf else math.inf),
                                                               otypes=[np.float64]), types=("f->f", "d->d"))
# What to put into sys.modules while kernels run with the stand-in.
MODULES = {"cupyx": cupyx, "cupyx.scipy": cupyx.scipy, "cupyx.scipy.special": cupyx.scipy.special}


# ------------------------------------------------------------------------------ streams and graphs
class MemoryPointer:
    __slots__ = ("ptr",)

    def __init__(self, a):
        self.ptr = a.__array_interface__["data"][0]


class Event:
    pass


class StreamCaptureError(CupyMismatch):
    """What CUDA answers for an operation that is not allowed while a stream captures."""


_STREAMS = []


class Stream:
    def __init__(self, null=False, non_blocking=False, ptds=False):
        self._ops = None

    def __enter__(self):
        _STREAMS.append(self)
        return self

    def __exit__(self, *exc):
        _STREAMS.pop()

    def begin_capture(self, mode=None):
        if self._ops is not None:
            raise StreamCaptureError("cudaErrorIllegalState: the stream is capturing already")
        if self is NULL_STREAM:
            raise StreamCaptureError("cudaErrorStreamCaptureUnsupported: the null stream cannot capture")
        self._ops = []

    def end_capture(self):
        if self._ops is None:
            raise StreamCaptureError("cudaErrorIllegalState: the stream is not capturing")
        graph, self._ops = Graph(self._ops), None
        return graph

    def is_capturing(self):
        return self._ops is not None

    def record(self, event=None):
        return Event() if event is None else event

    def wait_event(self, event):
        pass

    def synchronize(self):
        if self._ops is not None:
            raise StreamCaptureError("cudaErrorStreamCaptureUnsupported: synchronize while capturing")


NULL_STREAM = Stream(null=True)


class Graph:
    def __init__(self, ops):
        self.ops, self.launches = ops, 0

    def launch(self, stream=None):
        if any(s.is_capturing() for s in _STREAMS):
            raise StreamCaptureError("the stand-in does not model a graph launched into a capture")
        self.launches += 1
        for fn, args in self.ops:
            fn(*args)


def get_current_stream():
    return _STREAMS[-1] if _STREAMS else NULL_STREAM


def capturing():
    return any(s.is_capturing() for s in _STREAMS)


def launch(fn, *args):
    """Enqueue fn(*args) on the current stream, as a kernel launch does."""
    stream = get_current_stream()
    if stream.is_capturing():
        stream._ops.append((fn, args))
    else:
        fn(*args)


class MemoryPool:
    def malloc(self, size):
        return size


class _UsingAllocator:
    def __init__(self, allocator):
        self.allocator = allocator

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass


def _refuse_read(what):
    def read(*args, **kwargs):
        if capturing():
            raise StreamCaptureError(f"cudaErrorStreamCaptureImplicit: {what} reads device memory while a stream "
                                     "captures")
        return read.inner(*args, **kwargs)
    return read


cuda = types.ModuleType("cupy.cuda")
cuda.Stream, cuda.Event, cuda.MemoryPool, cuda.get_current_stream = Stream, Event, MemoryPool, get_current_stream
cuda.using_allocator = _UsingAllocator
cuda.runtime = types.SimpleNamespace(streamCaptureModeGlobal=0, streamCaptureModeThreadLocal=1,
                                     streamCaptureModeRelaxed=2)
cuda.graph = types.SimpleNamespace(Graph=Graph)
MODULE.cuda = cuda
for _name in ("__int__", "__float__", "__bool__", "item", "tolist"):
    if hasattr(StrictArray, _name):
        _guard = _refuse_read(f"ndarray.{_name}")
        _guard.inner = getattr(StrictArray, _name)
        setattr(StrictArray, _name, _guard)
