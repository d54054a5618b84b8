"""Batched matrix multiply (NumPy matmul semantics for operands of rank >= 2)."""
import numpy as np

from .. import dispatch
from ..dispatch import Value
from .. import dtypes as D
from ..errors import DTypeError, ShapeError
from .frontend import cast
from .primitive import primitive
from .rules import broadcast_shapes, same_dtype


def _matmul_shape(shapes):
    a, b = shapes
    if len(a) < 2 or len(b) < 2:
        raise ShapeError(f"matmul: the primitive needs operands of rank >= 2, got {tuple(a)} and {tuple(b)}")
    if a[-1] != b[-2]:
        raise ShapeError(f"matmul: shapes {tuple(a)} and {tuple(b)} cannot be multiplied "
                         f"({a[-1]} columns vs {b[-2]} rows)")
    return broadcast_shapes("matmul", [a[:-2], b[:-2]]) + (a[-2], b[-1])


def _blas_ready(xp, a):
    """`a`, or a contiguous copy when its last two dims are not a BLAS matrix (e.g. the zero strides
    of an expanded gradient), which would send NumPy down a loop ~20x slower than sgemm."""
    if a.ndim > 2:
        # NumPy's stacked matmul takes its BLAS path only for contiguous stacks; a strided stack
        # (heads split out of a fused qkv projection) runs a plain loop ~500x slower than a copy.
        return a if a.flags.c_contiguous else xp.ascontiguousarray(a)
    (rs, cs), item = a.strides[-2:], a.itemsize
    if (cs == item and rs >= a.shape[-1] * item) or (rs == item and cs >= a.shape[-2] * item):
        return a
    return xp.ascontiguousarray(a)


def _matmul_kernel(xp, a, b, out=None):
    if xp is np and a.dtype == np.float16:
        # NumPy has no float16 BLAS (its loop is ~25x slower): multiply in float32, round once.
        res = np.matmul(a.astype(np.float32), b.astype(np.float32)).astype(np.float16)
        if out is None:
            return res
        out[...] = res
        return out
    return xp.matmul(_blas_ready(xp, a), _blas_ready(xp, b), out=out)


matmul_p = primitive("matmul", "matmul", 2, lambda shapes: _matmul_shape(shapes), same_dtype("matmul"),
                     _matmul_kernel, saves=(0, 1), amp="fp16")


@matmul_p.def_vjp
def _matmul_vjp(ctx, g):
    a, b = ctx.inputs
    gb = None
    if ctx.needs[1]:
        # A gradient in its operand's layout: for x @ w.t() (F.linear) the operand is a transposed
        # view, and (g.T @ x).T makes the weight's gradient come back contiguous (no strided copy).
        gb = (g.mT @ a).mT if _transposed(b) else a.mT @ g
    return (g @ b.mT if ctx.needs[0] else None, gb)


def _transposed(t):
    d = t._data
    return d is not None and d.ndim == 2 and d.flags.f_contiguous and not d.flags.c_contiguous


# ---------------------------------------------------------------------- public names
@matmul_p.def_frontend("matmul", "__matmul__")
def matmul(input, other):
    a, b = input, other
    if not isinstance(a, Value) or not isinstance(b, Value):
        raise DTypeError("matmul: both operands must be tensors")
    if a.ndim == 0 or b.ndim == 0:
        raise ShapeError(f"matmul: both operands need at least 1 dim, got shapes {a.shape} and {b.shape}")
    if a.dtype is not b.dtype:
        dtype = D.promote(a.dtype, b.dtype)
        low = dispatch.low_precision()
        if low is not None and dtype is D.float32 and a.dtype.is_floating_point and b.dtype.is_floating_point:
            # float16 @ float32 under autocast: cast the float32 side down (where autocast takes it
            # anyway), not the float16 side up and back down
            dtype = low
        a, b = cast(a, dtype), cast(b, dtype)
    if a.ndim == 1 and b.ndim == 1:
        _check_inner(a, b, a.shape[0], b.shape[0])
        return matmul(a.reshape(1, -1), b.reshape(-1, 1)).reshape(())
    if a.ndim == 1:
        return matmul(a.unsqueeze(0), b).squeeze(-2)
    if b.ndim == 1:
        return matmul(a, b.unsqueeze(-1)).squeeze(-1)
    _check_inner(a, b, a.shape[-1], b.shape[-2])
    if b.ndim == 2 and a.ndim > 2:
        # Fold batch dims into rows: one GEMM, and the weight gradient needs no batch reduction.
        return matmul_p.bind(a.reshape(-1, a.shape[-1]), b).reshape(a.shape[:-1] + (b.shape[-1],))
    return matmul_p.bind(a, b)


matmul_p.def_frontend("__rmatmul__", function=False)(lambda input, other: matmul(other, input))


@matmul_p.def_frontend("mm")
def mm(input, mat2):
    a, b = input, mat2
    if not isinstance(a, Value) or not isinstance(b, Value) or a.ndim != 2 or b.ndim != 2:
        raise ShapeError(f"mm needs two 2-D tensors, got shapes {getattr(a, 'shape', type(a).__name__)} and "
                         f"{getattr(b, 'shape', type(b).__name__)}; use matmul for 1-D or batched operands")
    return matmul(a, b)


def _check_inner(a, b, k1, k2):
    if k1 != k2:
        raise ShapeError(f"matmul: shapes {a.shape} and {b.shape} cannot be multiplied ({k1} != {k2}); "
                         "the last dim of the first must equal the second-to-last of the second")
