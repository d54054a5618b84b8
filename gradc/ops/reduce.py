"""Reductions over a sorted tuple of axes. float16 sums accumulate in float32 (as PyTorch and the
CUDA templates do); sums of bool/int give int64."""
import numpy as np

from .. import dtypes as D
from ..errors import DTypeError, ShapeError
from ..shapes import normalize_axis
from . import frontend as F
from .primitive import primitive


def _reduced_shape(shape, axes, keepdim):
    if keepdim:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def _reduce_shape(shapes, axes, keepdim):
    return _reduced_shape(shapes[0], axes, keepdim)


def _nonempty(name):
    """max and argmax have no value over an empty dimension (PyTorch raises too); sum does (0)."""
    def rule(shapes, axes=None, axis=None, keepdim=False):
        over = axes if axes is not None else (range(len(shapes[0])) if axis is None else (axis,))
        empty = [a for a in over if a < len(shapes[0]) and shapes[0][a] == 0]
        if empty or (not over and 0 in shapes[0]):
            raise ShapeError(f"{name}: dim {empty[0] if empty else ''} of shape {tuple(shapes[0])} is empty, and the "
                             f"{name} of no elements is undefined; reduce a non-empty dim, or use sum()")
        return _reduced_shape(shapes[0], axes, keepdim) if axes is not None else _argmax_shape(shapes, axis, keepdim)
    return rule


def _sum_kernel(xp, x, axes, keepdim):
    if x.dtype == np.float16:
        return xp.sum(x, axis=axes, keepdims=keepdim, dtype=np.float32).astype(np.float16)
    if x.dtype == np.bool_ or x.dtype == np.int32:  # integer sums are int64, as in PyTorch
        return xp.sum(x, axis=axes, keepdims=keepdim, dtype=np.int64)
    return xp.sum(x, axis=axes, keepdims=keepdim)


def _max_dtype(dtypes, **_):
    return dtypes[0]


sum_p = primitive("sum", "reduce", 1, _reduce_shape,
                  lambda dts, **_: D.int64 if dts[0].category < 2 else dts[0], _sum_kernel, amp="fp32")
max_p = primitive("max", "reduce", 1, _nonempty("max"), _max_dtype,
                  lambda xp, x, axes, keepdim: xp.max(x, axis=axes, keepdims=keepdim), saves=(0, "out"),
                  amp="fp32")  # like every reduction: softmax's x - max(x) is then exact in float32


def _keep(g, shape, axes):
    """g reshaped so that it broadcasts against the unreduced shape."""
    return g.reshape(_reduced_shape(shape, axes, True))


@sum_p.def_vjp
def _sum_vjp(ctx, g):
    shape, axes = ctx.shapes[0], ctx.attrs["axes"]
    return (_keep(g, shape, axes).expand(shape),)


@max_p.def_vjp
def _max_vjp(ctx, g):
    # The gradient goes to the maxima, split evenly among ties (as torch.amax does).
    x, shape, axes = ctx.inputs[0], ctx.shapes[0], ctx.attrs["axes"]
    top = _keep(ctx.out, shape, axes)
    # A NaN maximum comes from NaN elements: they are the "ties" that share it (as in PyTorch).
    mask = ((x == top) | ((x != x) & (top != top))).to(g.dtype)
    return (mask * (_keep(g, shape, axes) / mask.sum(axes, keepdim=True)),)


def _argmax_shape(shapes, axis, keepdim):
    if axis is None:
        return (1,) * len(shapes[0]) if keepdim else ()
    return _reduced_shape(shapes[0], (axis,), keepdim)


def _argmax_kernel(xp, x, axis, keepdim):
    if axis is None:
        out = xp.asarray(xp.argmax(x))
        return out.reshape((1,) * x.ndim) if keepdim else out
    out = xp.argmax(x, axis=axis)
    return xp.expand_dims(out, axis) if keepdim else out


def _argmax_dtype(dtypes, **_):
    if dtypes[0] is D.bool_:
        raise DTypeError("argmax is not defined for bool tensors; convert with .long() first")
    return D.int64


argmax_p = primitive("argmax", "reduce", 1, _nonempty("argmax"), _argmax_dtype, _argmax_kernel, diff=False)


@sum_p.def_frontend("sum")
def sum(input, dim=None, keepdim=False, dtype=None):
    x = input if dtype is None else F.cast(input, D.get_dtype(dtype))
    out = sum_p.bind(x, axes=F.axes_arg(x, dim, "sum"), keepdim=bool(keepdim))
    # integers add up in int64; an integer dtype asked for is the result's (wrapping as torch's does)
    return out if dtype is None or out.dtype is x.dtype else F.cast(out, x.dtype)


@max_p.def_frontend("amax")
def amax(input, dim=None, keepdim=False):
    return max_p.bind(input, axes=F.axes_arg(input, dim, "amax"), keepdim=bool(keepdim))


@argmax_p.def_frontend("argmax")
def argmax(input, dim=None, keepdim=False):
    axis = None if dim is None else normalize_axis("argmax", dim, input.ndim)
    if input.ndim == 0:   # (a 0-d result: keepdim has no dim to keep, as in PyTorch)
        return argmax_p.bind(input, axis=None, keepdim=False)
    return argmax_p.bind(input, axis=axis, keepdim=bool(keepdim))
