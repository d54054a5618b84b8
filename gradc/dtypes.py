"""The dtypes of the public API and the promotion rule shared by eager mode and tracing.

Promotion follows PyTorch: tensors promote by category (bool < integer < floating) and then by
width; Python scalars are "weak" and only lift the category (float32 * 2.5 stays float32)."""
import math

import numpy as np

from .errors import DTypeError


class DType:
    __slots__ = ("name", "np", "itemsize", "is_floating_point", "rank", "category", "is_signed")
    is_complex = False   # (gradc has no complex dtypes)

    def __init__(self, name, np_dtype, rank, category):
        self.name = name
        self.np = np.dtype(np_dtype)
        self.itemsize = self.np.itemsize
        self.is_floating_point = category == 2
        self.is_signed = category != 0
        self.rank = rank          # order within the promotion lattice
        self.category = category  # 0 bool, 1 integer, 2 floating

    def __repr__(self):
        return f"gradc.{self.name}"

    def __reduce__(self):  # pickles as the singleton
        return (get_dtype, (self.name,))


bool_ = DType("bool", np.bool_, 0, 0)
int32 = DType("int32", np.int32, 1, 1)
int64 = DType("int64", np.int64, 2, 1)
float16 = DType("float16", np.float16, 3, 2)
float32 = DType("float32", np.float32, 4, 2)
float64 = DType("float64", np.float64, 5, 2)

ALL = {d.name: d for d in (bool_, int32, int64, float16, float32, float64)}
_BY_NP = {d.np: d for d in ALL.values()}
# NumPy dtypes accepted on input and what they become (PyTorch keeps int32 etc.; gradc keeps a
# small closed set so every backend supports every dtype).
_NP_ALIASES = {np.dtype(t): int64 for t in (np.int8, np.int16, np.uint8, np.uint16, np.uint32)}

default_float = float32


class UnsupportedDType:
    """A dtype PyTorch has and gradc does not: naming it works (scripts test `dtype == bfloat16`),
    using it raises a DTypeError that says why and what to use instead."""
    __slots__ = ("name", "why")

    def __init__(self, name, why):
        self.name, self.why = name, why

    def __repr__(self):
        return f"gradc.{self.name}"


# Measured with ml_dtypes' NumPy bfloat16 on this project's reference CPU: elementwise ops 3-16x
# slower than float32 (add 6.8 vs 0.43 ms, sum 20 vs 2.5 ms over 1M values) and matmul no faster,
# so bfloat16 tensors would be slower than float32 with no memory win worth it on NumPy.
bfloat16 = UnsupportedDType("bfloat16", "bfloat16 is not supported: NumPy has no native bfloat16 (the ml_dtypes "
                            "extension runs elementwise ops 3-16x slower than float32); use float32, or float16 "
                            "with autocast and a GradScaler")
# Small integer types: gradc keeps one integer storage type per width class (int32, int64), so
# every backend supports every dtype; NumPy arrays of these types are read as int64.
int8, int16, uint8 = (UnsupportedDType(n, f"{n} tensors are not supported: gradc stores integers as int32 or "
                                          "int64 (NumPy arrays of small integer types become int64); use "
                                          "gradc.int64, or float32 for image data (x.float() / 255)")
                      for n in ("int8", "int16", "uint8"))


def set_default_dtype(d):
    """torch.set_default_dtype: the dtype of new floating-point tensors made from Python floats,
    of creation functions without a dtype, and of new parameters (float32 or float64)."""
    global default_float
    d = get_dtype(d)
    if d not in (float32, float64):
        raise DTypeError(f"set_default_dtype takes float32 or float64, got {d!r}")
    default_float = d


def get_dtype(x):
    """Normalise a gradc dtype, a NumPy dtype, a Python type or a name to a gradc DType."""
    if isinstance(x, DType):
        return x
    if isinstance(x, UnsupportedDType):
        raise DTypeError(x.why)
    if x is float:   # as torch: the Python type float is float64 (a Python float *value* is the default dtype)
        return float64
    if x is int:
        return int64
    if x is bool:
        return bool_
    if isinstance(x, str) and x in ALL:
        return ALL[x]
    try:
        npd = np.dtype(x)
    except TypeError:
        raise DTypeError(f"unknown dtype {x!r}; use one of {', '.join('gradc.' + n for n in ALL)}") from None
    if npd in _BY_NP:
        return _BY_NP[npd]
    if npd in _NP_ALIASES:
        return _NP_ALIASES[npd]
    raise DTypeError(f"dtype {npd} is not supported; use one of {', '.join('gradc.' + n for n in ALL)}")


def from_numpy_dtype(npd):
    return _BY_NP.get(npd) or get_dtype(npd)


def promote(a, b):
    """Result dtype of two tensor dtypes."""
    return a if a.rank >= b.rank else b


def scalar_dtype(value):
    """The category a Python scalar asks for: bool, int64 or the default float."""
    floating = getattr(value, "floating", None)   # (a traced size, gradc.symint: an int or a float expression)
    if floating is not None:
        return default_float if floating else int64
    if isinstance(value, (bool, np.bool_)):
        return bool_
    if isinstance(value, (int, np.integer)):
        return int64
    if isinstance(value, (float, np.floating)):
        return default_float
    raise DTypeError(f"expected a number, got {type(value).__name__}")


def promote_weak(tensor_dtype, scalar):
    """Result dtype of a tensor and a Python scalar: the scalar only raises the category."""
    s = scalar_dtype(scalar)
    return tensor_dtype if s.category <= tensor_dtype.category else s


def nbytes(shape, dtype):
    """Bytes of a dense array of `shape` and `dtype` (a DType or a dtype name): the one size rule
    the memory plan, the statistics and artifact checks share."""
    dt = dtype if isinstance(dtype, DType) else ALL[dtype]
    return math.prod(shape) * dt.itemsize   # (exact: Python ints; a symbolic size stays one)
