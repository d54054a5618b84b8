"""Sorting: argsort is the primitive (integer indices, no gradient). sort and topk are composites
(gradc.tensor_ops) that gather the values with these indices, so values differentiate."""
import numpy as np

from .. import dtypes as D
from ..shapes import normalize_axis
from .primitive import primitive


def _argsort_kernel(xp, x, axis, descending):
    """A stable order along `axis`: equal values keep their original order, and NaN counts as the
    largest value (as in PyTorch)."""
    if not descending:
        return xp.argsort(x, axis=axis, kind="stable")
    if x.dtype.kind == "f":
        nan = xp.isnan(x)
        order = xp.argsort(xp.where(nan, -xp.inf, -x), axis=axis, kind="stable")
        # then NaNs first (they tie with +inf above): a stable sort on "is not NaN" keeps the rest in order
        later = xp.argsort(~xp.take_along_axis(nan, order, axis=axis), axis=axis, kind="stable")
        return xp.take_along_axis(order, later, axis=axis)
    if x.dtype.kind == "b":
        key = ~x
    else:
        key = -(x.astype(np.int64))
    return xp.argsort(key, axis=axis, kind="stable")


argsort_p = primitive("argsort", "sort", 1, lambda shapes, axis, descending: tuple(shapes[0]),
                      lambda dtypes, **_: D.int64, _argsort_kernel, diff=False)


@argsort_p.def_frontend("argsort")
def argsort(input, dim=-1, descending=False, stable=False):
    """Indices that sort `input` along dim (always stable, so `stable` changes nothing)."""
    if input.ndim == 0:
        return argsort_p.bind(input.reshape(1), axis=0, descending=bool(descending)).reshape(())
    return argsort_p.bind(input, axis=normalize_axis("argsort", dim, input.ndim), descending=bool(descending))
