"""Index-driven writes and lookups with PyTorch's names: index_add / index_copy / index_fill /
index_put, take / take_along_dim, scatter_reduce, masked_scatter, and the sorted-sequence
lookups searchsorted / bucketize / isin, with histc beside them. Composites of gather,
scatter_add, argsort and where, so they differentiate and compile like the primitives."""
import math

import numpy as np

from . import dtypes as D
from .composite import assign, put
from .creation import arange, full, ones, tensor, zeros
from .errors import DTypeError, ShapeError
from .indexing import getitem
from .ops import OPS
from .ops.frontend import cast, export, scalar, where
from .ops.movement import strided_slice
from .shapes import normalize_axis
from .tensor import Tensor
from .tensor_ops import gather, linear_index


def _index_1d(index, name):
    if not isinstance(index, Tensor) or index.dtype is not D.int64:
        raise DTypeError(f"{name}: index must be an int64 tensor" +
                         (f", got {index.dtype!r}; convert with .long()" if isinstance(index, Tensor) else ""))
    if index.ndim > 1:
        raise ShapeError(f"{name}: index must be 0-D or 1-D, got shape {tuple(index.shape)}")
    return index.reshape(-1)


def _along(input, dim, index, source, name):
    """dim, the 1-D index, and source checked to be input's shape with len(index) at dim."""
    d = normalize_axis(name, dim, input.ndim)
    index = _index_1d(index, name)
    want = input.shape[:d] + (index.shape[0],) + input.shape[d + 1:] if input.ndim else (index.shape[0],)
    if source.shape != want and not (input.ndim == 0 and source.numel() == index.shape[0]):
        raise ShapeError(f"{name}: source has shape {tuple(source.shape)} but input {tuple(input.shape)} with index of length "
                         f"{index.shape[0]} at dim {d} needs {tuple(want)}")
    return d, index, cast(source, input.dtype).reshape(want)


def _scatter_along(values, index, d, n):
    return OPS["scatter_add"].bind(values, index, axis=d, size=n)


# ---------------------------------------------------------------------- index_add / copy / fill
@export("index_add")
def index_add(input, dim, index, source, alpha=1):
    """input with source's slices added at `index` along dim (repeated indices add up)."""
    x = input.reshape(1) if input.ndim == 0 else input
    d, index, source = _along(x, dim, index, source, "index_add")
    added = _scatter_along(source if alpha == 1 else source * alpha, index, d, x.shape[d])
    return (x + added).reshape(input.shape)


def _hits(index, d, x):
    """How many entries of `index` name each position along dim d of x, shaped to broadcast with x."""
    n = x.shape[d]
    count = OPS["scatter_add"].bind(ones(index.shape, dtype=x.dtype if x.dtype.is_floating_point else D.int64,
                                         device=x.device), index, axis=0, size=n)
    return count.reshape((1,) * d + (n,) + (1,) * (x.ndim - d - 1))


@export("index_copy")
def index_copy(input, dim, index, source):
    """input with the slices at `index` along dim replaced by source's; for a repeated index the
    last slice is written (PyTorch leaves it unspecified; its loop writes the last)."""
    x = input.reshape(1) if input.ndim == 0 else input
    d, index, source = _along(x, dim, index, source, "index_copy")
    positions = arange(x.numel(), device=x.device).reshape(x.shape)
    lin = OPS["gather"].bind(positions, index, axis=d)
    return put(x, lin.reshape(-1), cast(source, x.dtype).reshape(-1)).reshape(input.shape)


@export("index_fill")
def index_fill(input, dim, index, value):
    x = input.reshape(1) if input.ndim == 0 else input
    d = normalize_axis("index_fill", dim, x.ndim)
    index = _index_1d(index, "index_fill")
    if isinstance(value, Tensor):
        if value.ndim != 0:
            raise ShapeError(f"index_fill: value must be a number or a 0-D tensor, got shape {tuple(value.shape)}")
        value = cast(value, x.dtype)
    elif not x.dtype.is_floating_point and isinstance(value, float):
        value = int(value) if x.dtype is not D.bool_ else bool(value)   # as torch: the input's dtype, truncated
    return where(_hits(index, d, x) > 0, value, x).reshape(input.shape)


@export("index_put")
def index_put(input, indices, values, accumulate=False):
    """input with input[indices] = values (or += with accumulate=True, repeated positions adding up;
    without accumulate a repeated position takes its last value, as PyTorch's loop does)."""
    if not isinstance(indices, (tuple, list)):
        raise DTypeError(f"index_put: indices must be a tuple of tensors, got {type(indices).__name__}")
    positions = arange(input.numel(), device=input.device).reshape(input.shape)
    lin = getitem(positions, tuple(indices))
    if not isinstance(values, Tensor):
        values = full((), values, dtype=input.dtype, device=input.device)
    values = cast(values, input.dtype)
    try:
        values = values.expand(lin.shape) if values.shape != lin.shape else values
    except ShapeError:
        raise ShapeError(f"index_put: values of shape {tuple(values.shape)} cannot be broadcast to the indexed shape "
                         f"{tuple(lin.shape)}") from None
    lin, values = lin.reshape(-1), values.reshape(-1)
    if accumulate:
        return input + OPS["scatter_add"].bind(values, lin, axis=0, size=input.numel()).reshape(input.shape)
    return put(input, lin, values)


for _name, _fn in (("index_add", index_add), ("index_copy", index_copy), ("index_fill", index_fill)):
    export(_name + "_", function=False)(
        lambda self, dim, index, arg, *a, _fn=_fn, _name=_name, **k: assign(self, _fn(self, dim, index, arg, *a, **k),
                                                                           _name + "_"))
export("index_put_", function=False)(lambda self, indices, values, accumulate=False:
                                     assign(self, index_put(self, indices, values, accumulate), "index_put_"))


# ---------------------------------------------------------------------- take
@export("take")
def take(input, index):
    """input's elements, read as if 1-D, at `index` (any shape; negative indices count from the end)."""
    if not isinstance(index, Tensor) or index.dtype is not D.int64:
        raise DTypeError("take: index must be an int64 tensor")
    n = input.numel()
    idx = OPS["check_index"].bind(where(index < 0, index + n, index), high=n, ignore=None,
                                  what=f"take: index (for {n} elements, -{n} .. {n - 1})")
    return OPS["gather"].bind(input.reshape(-1), idx, axis=0)


@export("take_along_dim")
def take_along_dim(input, indices, dim=None):
    """gather with NumPy's take_along_axis broadcasting: input and indices broadcast outside dim
    (dim=None: both read as 1-D)."""
    if not isinstance(indices, Tensor) or indices.dtype is not D.int64:
        raise DTypeError("take_along_dim: indices must be an int64 tensor")
    if dim is None:
        return gather(input.reshape(-1), 0, indices.reshape(-1))
    d = normalize_axis("take_along_dim", dim, input.ndim)
    if indices.ndim != input.ndim:
        raise ShapeError(f"take_along_dim: input {tuple(input.shape)} and indices {tuple(indices.shape)} must have the same "
                         "number of dims")
    outer = np.broadcast_shapes(*(tuple(s[:d] + (1,) + s[d + 1:]) for s in (input.shape, indices.shape)))
    x = input.expand(outer[:d] + (input.shape[d],) + outer[d + 1:])
    i = indices.expand(outer[:d] + (indices.shape[d],) + outer[d + 1:])
    return gather(x, d, i)


# ---------------------------------------------------------------------- scatter_reduce
def _segment_extreme(src, lin, n, largest):
    """Per flat position in [0, n), the largest (or smallest) src value sent there, and whether any was:
    src sorted by value, then stably by position, so each position's first entry is its extreme."""
    by_value = src.argsort(0, descending=largest)
    lin1 = OPS["gather"].bind(lin, by_value, axis=0)
    by_pos = lin1.argsort(0)
    order = OPS["gather"].bind(by_value, by_pos, axis=0)
    pos = OPS["gather"].bind(lin1, by_pos, axis=0)
    first = OPS["concat"].bind(full((1,), True, dtype=D.bool_, device=src.device), pos[1:] != pos[:-1], axis=0) \
        if pos.shape[0] > 1 else full(pos.shape, True, dtype=D.bool_, device=src.device)
    picked = where(first, OPS["gather"].bind(src, order, axis=0), scalar(0, src.dtype, src.device))
    value = OPS["scatter_add"].bind(picked, pos, axis=0, size=n)
    hit = OPS["scatter_add"].bind(cast(first, D.int64), pos, axis=0, size=n) > 0
    return value, hit


def _segment_prod(src, lin, n):
    """Per flat position in [0, n), the product of the src values sent there (1 where none is): src
    grouped by position (a stable sort), a log-depth scan of products within each group, and each
    group's last entry scattered. Exact for integers, and zeros get PyTorch's gradient."""
    order = lin.argsort(0)
    pos = OPS["gather"].bind(lin, order, axis=0)
    vals = OPS["gather"].bind(src, order, axis=0)
    m, k = pos.shape[0], 1
    one = scalar(1, src.dtype, src.device)
    while k < m:
        same = pos[k:] == pos[:-k]
        prev = OPS["concat"].bind(full((k,), 1, dtype=src.dtype, device=src.device),
                                  where(same, vals[:-k], one), axis=0)
        vals = vals * prev
        k *= 2
    last = OPS["concat"].bind(pos[1:] != pos[:-1], full((1,), True, dtype=D.bool_, device=src.device), axis=0) \
        if m > 1 else full(pos.shape, True, dtype=D.bool_, device=src.device)
    total = OPS["scatter_add"].bind(where(last, vals, scalar(0, src.dtype, src.device)), pos, axis=0, size=n)
    return total


@export("scatter_reduce")
def scatter_reduce(input, dim, index, src, reduce, include_self=True):
    """input with src reduced into the positions index names along dim (PyTorch's gather/scatter
    layout): reduce is 'sum', 'prod', 'mean', 'amax' or 'amin'; include_self=False leaves input's
    own value out at every position that receives one. Gradients of 'amax'/'amin' go to the chosen
    element (PyTorch splits them among ties)."""
    if reduce not in ("sum", "prod", "mean", "amax", "amin"):
        raise ValueError(f"scatter_reduce: reduce must be 'sum', 'prod', 'mean', 'amax' or 'amin', got {reduce!r}")
    if not isinstance(index, Tensor) or index.dtype is not D.int64:
        raise DTypeError("scatter_reduce: index must be an int64 tensor")
    if index.ndim != input.ndim or index.ndim != src.ndim:
        raise ShapeError(f"scatter_reduce: input {tuple(input.shape)}, index {tuple(index.shape)} and src {tuple(src.shape)} must have "
                         "the same number of dims")
    d = normalize_axis("scatter_reduce", dim, input.ndim)
    if any(i > s for i, s in zip(index.shape, src.shape)) or \
            any(i > s for k, (i, s) in enumerate(zip(index.shape, input.shape)) if k != d):
        raise ShapeError(f"scatter_reduce: index shape {tuple(index.shape)} must be no larger than src {tuple(src.shape)}, nor "
                         f"than input {tuple(input.shape)} outside dim {d}")
    n, flat = input.numel(), input.reshape(-1)
    src = cast(src, input.dtype)
    src = strided_slice(src, [0] * src.ndim, list(index.shape), [1] * src.ndim) if src.shape != index.shape else src
    lin, src = linear_index(index, d, input.shape).reshape(-1), src.reshape(-1)
    counts = OPS["scatter_add"].bind(ones(lin.shape, dtype=D.int64, device=input.device), lin, axis=0, size=n)
    hit = counts > 0
    keep = scalar(True, D.bool_, input.device) if include_self else hit.logical_not()
    if reduce in ("sum", "mean"):
        own = where(keep, flat, scalar(0, flat.dtype, flat.device))
        total = OPS["scatter_add"].bind(src, lin, axis=0, size=n) + own
        if reduce == "mean":
            count = counts + cast(keep, D.int64)
            count = where(count > 0, count, 1)
            total = total / cast(count, flat.dtype) if flat.dtype.is_floating_point else total // count
            total = cast(total, flat.dtype)
        out = total
    elif reduce == "prod":
        product = _segment_prod(src, lin, n)
        out = where(hit, product * where(keep, flat, scalar(1, flat.dtype, flat.device)), flat)
    else:
        value, hit = _segment_extreme(src, lin, n, reduce == "amax")
        pick = flat.maximum(value) if reduce == "amax" else flat.minimum(value)
        out = where(hit, where(keep, pick, value), flat)
    return out.reshape(input.shape)


export("scatter_reduce_", function=False)(lambda self, dim, index, src, reduce, include_self=True: assign(
    self, scatter_reduce(self, dim, index, src, reduce, include_self), "scatter_reduce_"))


# ---------------------------------------------------------------------- masked_scatter
@export("masked_scatter")
def masked_scatter(input, mask, source):
    """input with source's elements, in order, written where mask (broadcast to input) is true."""
    if not isinstance(mask, Tensor) or mask.dtype is not D.bool_:
        raise DTypeError("masked_scatter: mask must be a bool tensor")
    shape = np.broadcast_shapes(input.shape, mask.shape)
    if tuple(shape) != input.shape:
        raise ShapeError(f"masked_scatter: mask of shape {tuple(mask.shape)} does not broadcast to input's {tuple(input.shape)}")
    m = mask.expand(input.shape).reshape(-1)
    # the true entries come first, in order, in a stable sort of ~m: a true entry's rank there is the
    # index of the source element it takes
    rank = m.logical_not().argsort(0).argsort(0)
    rank = where(m, rank, scalar(0, D.int64, input.device))
    rank = OPS["check_index"].bind(rank, high=max(source.numel(), 1), ignore=None,
                                   what="masked_scatter: source has fewer elements than mask has true entries;")
    taken = OPS["gather"].bind(cast(source, input.dtype).reshape(-1), rank, axis=0) if source.numel() else \
        zeros(m.shape, dtype=input.dtype, device=input.device)
    return where(m, taken, input.reshape(-1)).reshape(input.shape)


export("masked_scatter_", function=False)(lambda self, mask, source:
                                          assign(self, masked_scatter(self, mask, source), "masked_scatter_"))


# ---------------------------------------------------------------------- sorted lookups
@export("searchsorted", method=False)
def searchsorted(sorted_sequence, input, out_int32=False, right=False, side=None, sorter=None):
    """For each value of input, the index in the sorted last dim of sorted_sequence where it would be
    inserted to keep it sorted (before equal values, or after them with right=True / side='right'):
    a vectorised binary search of ceil(log2(n + 1)) gathers."""
    if side is not None:
        if side not in ("left", "right"):
            raise ValueError(f"searchsorted: side must be 'left' or 'right', got {side!r}")
        if right and side == "left":
            raise ValueError("searchsorted: side='left' and right=True contradict each other")
        right = side == "right"
    seq = sorted_sequence
    if sorter is not None:
        seq = gather(seq, seq.ndim - 1, sorter)
    scalar_input = not isinstance(input, Tensor)
    values = tensor(input, dtype=seq.dtype, device=seq.device) if scalar_input else input
    if seq.ndim > 1 and (values.ndim != seq.ndim or values.shape[:-1] != seq.shape[:-1]):
        raise ShapeError(f"searchsorted: sorted_sequence {tuple(seq.shape)} and input {tuple(values.shape)} must share every dim "
                         "but the last (or sorted_sequence must be 1-D)")
    dtype = D.promote(seq.dtype, values.dtype)
    seq, values = cast(seq, dtype), cast(values, dtype)
    n = seq.shape[-1]
    if n == 0:   # every value goes in at 0
        out = zeros(values.shape, dtype=D.int64, device=seq.device)
        return cast(out, D.int32) if out_int32 else out
    rows = seq.reshape(-1, n)
    v = values.reshape(rows.shape[0], -1) if seq.ndim > 1 else values.reshape(1, -1)
    base = (arange(rows.shape[0], device=seq.device) * n).reshape(-1, 1)
    flat = rows.reshape(-1)
    lo = zeros(v.shape, dtype=D.int64, device=seq.device)
    hi = full(v.shape, n, dtype=D.int64, device=seq.device)
    for _ in range(math.ceil(math.log2(n + 1)) if n else 0):
        mid = (lo + hi) // 2
        probe = OPS["gather"].bind(flat, (base + mid.clamp(max=n - 1)).reshape(-1), axis=0).reshape(v.shape)
        go_right = (probe <= v if right else probe < v) & (mid < hi)
        lo, hi = where(go_right, mid + 1, lo), where(go_right, hi, mid)
    if v.dtype.is_floating_point:   # NaN sorts after everything, as in PyTorch
        lo = where(v != v, n, lo)
    out = lo.reshape(values.shape)
    return cast(out, D.int32) if out_int32 else out


@export("bucketize", method=False)
def bucketize(input, boundaries, out_int32=False, right=False):
    """The bucket of each value among the 1-D sorted boundaries (right=False: boundaries[i-1] < x <= boundaries[i])."""
    if not isinstance(boundaries, Tensor) or boundaries.ndim != 1:
        raise ShapeError("bucketize: boundaries must be a 1-D tensor" +
                         (f", got shape {tuple(boundaries.shape)}" if isinstance(boundaries, Tensor) else ""))
    return searchsorted(boundaries, input, out_int32=out_int32, right=right)


@export("isin", method=False)
def isin(elements, test_elements, assume_unique=False, invert=False):
    """Whether each element of `elements` is among test_elements (a sort and a binary search)."""
    if not isinstance(elements, Tensor) and not isinstance(test_elements, Tensor):
        raise DTypeError("isin: expected at least one tensor argument")
    dev = (elements if isinstance(elements, Tensor) else test_elements).device
    elements = elements if isinstance(elements, Tensor) else tensor(elements, device=dev)
    test = test_elements if isinstance(test_elements, Tensor) else tensor(test_elements, device=dev)
    dtype = D.promote(elements.dtype, test.dtype)
    e, t = cast(elements, dtype), cast(test, dtype).reshape(-1)
    if t.shape[0] == 0:
        found = zeros(e.shape, dtype=D.bool_, device=dev)
    else:
        s = gather(t, 0, t.argsort(0))
        pos = searchsorted(s, e).clamp(max=t.shape[0] - 1)
        found = OPS["gather"].bind(s, pos.reshape(-1), axis=0).reshape(e.shape) == e
    return found.logical_not() if invert else found


@export("histc")
def histc(input, bins=100, min=0, max=0):
    """Counts of input's values in `bins` equal-width bins over [min, max] (min == max: the data's own
    range); values outside it are not counted. No gradient, as in PyTorch."""
    if not input.dtype.is_floating_point:
        raise DTypeError(f"histc: needs a floating-point tensor, got {input.dtype!r}; call .float() first")
    if bins <= 0:
        raise ShapeError(f"histc: bins must be positive, got {bins}")
    if min > max:
        raise ShapeError(f"histc: max ({max}) must be at least min ({min})")
    x = input.detach().reshape(-1)
    if min == max and x.shape[0]:
        lo, hi = x.amin(), x.amax()
    else:
        lo, hi = scalar(min, x.dtype, x.device), scalar(max, x.dtype, x.device)
    same = lo == hi
    lo, hi = where(same, lo - 1, lo), where(same, hi + 1, hi)
    inside = (x >= lo) & (x <= hi)
    b = ((x - lo) * bins / (hi - lo)).floor().clamp(0, bins - 1)
    b = cast(where(inside, b, scalar(0, x.dtype, x.device)), D.int64)
    return OPS["scatter_add"].bind(cast(inside, x.dtype), b, axis=0, size=bins)
