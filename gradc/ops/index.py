"""Integer-array indexing along one axis (gather) and its transpose (scatter_add)."""
import numpy as np

from .. import dtypes as D
from .. import dispatch
from ..errors import DTypeError, DistributionError, LinAlgError, OutOfRangeError, ShapeError, ValueRangeError
from ..shapes import normalize_axis
from .primitive import primitive


def _gather_shape(shapes, axis):
    x, idx = shapes
    return tuple(x[:axis]) + tuple(idx) + tuple(x[axis + 1:])


def _index_dtype(name):
    def rule(dtypes, **_):
        if dtypes[1] is not D.int64:
            raise DTypeError(f"{name}: indices must be int64, got {dtypes[1]!r}; convert with .long()")
        return dtypes[0]
    return rule


def _gather_kernel(xp, x, idx, axis):
    n = x.shape[axis]
    if idx.size and (int(idx.max()) >= n or int(idx.min()) < -n):
        raise OutOfRangeError(f"index out of range: indices span {int(idx.min())}..{int(idx.max())} "
                         f"but dim {axis} has size {n}")
    return xp.take(x, idx, axis=axis)


def _scatter_shape(shapes, axis, size):
    src, idx = shapes
    k = len(idx)
    if tuple(src[axis:axis + k]) != tuple(idx):
        raise ShapeError(f"scatter_add: source shape {tuple(src)} does not hold index shape {tuple(idx)} at dim {axis}")
    return tuple(src[:axis]) + (size,) + tuple(src[axis + k:])


def _scatter_kernel(xp, src, idx, axis, size):
    shape = src.shape[:axis] + (size,) + src.shape[axis + idx.ndim:]
    out = xp.zeros(shape, dtype=src.dtype)
    where = (slice(None),) * axis + (idx,)
    if xp is np:
        np.add.at(out, where, src)
    else:
        import cupyx
        cupyx.scatter_add(out, where, src)
    return out


gather_p = primitive("gather", "index", 2, _gather_shape, _index_dtype("gather"), _gather_kernel, saves=(1,))
scatter_add_p = primitive("scatter_add", "index", 2, _scatter_shape, _index_dtype("scatter_add"),
                          _scatter_kernel, saves=(1,))

gather_p.def_vjp(lambda ctx, g: (scatter_add_p.bind(g, ctx.inputs[1], axis=ctx.attrs["axis"],
                                                   size=ctx.shapes[0][ctx.attrs["axis"]]), None))
scatter_add_p.def_vjp(lambda ctx, g: (gather_p.bind(g, ctx.inputs[1], axis=ctx.attrs["axis"]), None))


@gather_p.def_frontend("index_select")
def index_select(input, dim, index):
    """The entries of `input` at the int64 `index` (1-D, or 0-d as one index) along `dim`, as
    torch.index_select; an index outside [0, size) raises, as in PyTorch (no negative indices)."""
    if index.ndim > 1:
        raise ShapeError(f"index_select: index must be 1-D, got shape {tuple(index.shape)}")
    if index.dtype is D.int32:   # PyTorch takes int32 indices too
        index = index.long()
    if input.ndim == 0:
        return index_select(input.reshape(1), 0, index.reshape(1)).reshape(())
    axis = normalize_axis("index_select", dim, input.ndim)
    index = check_index_p.bind(index.reshape(-1), high=int(input.shape[axis]), ignore=None,
                                what="index_select:")
    return gather_p.bind(input, index, axis=axis)


VALUE_CHECK = "value check: "
DISTRIBUTION_CHECK = "distributions: "


def check_values(bad, message, out, code=None):
    """`out`, after checking that the bool tensor `bad` is all False; else `message` is raised (a
    ValueRangeError; LinAlgError where it starts with 'linalg.', DistributionError where it starts with
    DISTRIBUTION_CHECK, which is left out). Eagerly the check runs at once;
    traced, it is a check_index that runs with the program, on `code` (int64, 0 where good; the
    first other entry replaces "{index}" in the message; default: bad as 0/1), whose zeros are
    added to `out` so that the check stays in the program."""
    code = bad.to(D.int64) if code is None else code
    if dispatch.tracer() is None:
        if bool(bad.numpy().any()):
            _check_index_kernel(np, code.numpy().reshape(-1), 1, None, VALUE_CHECK + message)
        return out
    code = check_index_p.bind(code, high=1, ignore=None, what=VALUE_CHECK + message)
    return out + code.to(out.dtype)


def _check_index_kernel(xp, idx, high, ignore, what=""):
    """idx itself, after checking that every entry (other than `ignore`) is in [0, high). `what`
    names the caller's argument (`cross_entropy: target`); the message starts with it, eagerly and in
    compiled programs alike. A `what` starting with VALUE_CHECK is a check of values, not of indices
    (see check_values): the rest is the whole message, "{index}" in it replaced by the first bad entry,
    raised as ValueRangeError (LinAlgError for a message from linalg)."""
    bad = (idx < 0) | (idx >= high)
    if ignore is not None:
        bad &= idx != ignore
    if bool(bad.any()):
        first = int(idx[bad].reshape(-1)[0])
        if what.startswith(VALUE_CHECK):
            message = what[len(VALUE_CHECK):].replace("{index}", str(first))
            if message.startswith(DISTRIBUTION_CHECK):   # a distribution's validation: a ValueError, as PyTorch's
                raise DistributionError(message[len(DISTRIBUTION_CHECK):])
            raise (LinAlgError if message.startswith("linalg.") else ValueRangeError)(message)
        also = f", or the ignored {ignore}" if ignore is not None else ""
        core = ("" if what.endswith("index") else "index ") + \
            f"{first} is out of range for a dimension of size {high} (valid: 0..{high - 1}{also})"
        raise OutOfRangeError(f"{what} {core}" if what else core)
    return idx


# Class labels and embedding indices are checked where they are used, eagerly and in compiled code
# alike: one pass over the integer indices, no copy.
check_index_p = primitive("check_index", "index", 1, lambda shapes, high, ignore, what="": tuple(shapes[0]),
                          lambda dtypes, high, ignore, what="": dtypes[0],
                          _check_index_kernel, diff=False)
