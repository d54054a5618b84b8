"""Batched matrix multiply (NumPy matmul semantics for operands of rank >= 2)."""
import numpy as np

from ..errors import ShapeError
from . import primitive
from ._rules import broadcast_shapes, same_dtype


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
