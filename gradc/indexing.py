"""`Tensor.__getitem__`: basic indexing (ints, slices, None, ...) lowers to slice + reshape;
integer-array indexing lowers to gather on one (possibly merged) axis, NumPy's placement rules
included. Boolean masks become integer arrays, which needs concrete values (eager mode only)."""
import operator

import numpy as np

from . import dtypes as D
from .creation import tensor
from .errors import OutOfRangeError
from .ops import OPS
from .ops.movement import strided_slice
from .shapes import broadcast_shapes
from .symint import SymInt
from .tensor import Tensor


def _index_tensor(k, x):
    """[(int64 index, the size a mask requires of its dim, or None)], one per dim the index takes."""
    t = k if isinstance(k, Tensor) else tensor(np.asarray(k, dtype=np.int64 if isinstance(k, list) and not k
                                                          else None), device=x.device)   # x[[]]: no rows
    if t.dtype is D.bool_:
        data = t._concrete("indexing with a boolean mask (its result shape depends on the data)")
        xp = np if t.device.type == "cpu" else t.device.xp
        found = [tensor(i, dtype=D.int64, device=x.device) for i in xp.nonzero(data)] if xp is np else \
            [Tensor._wrap(i.astype(np.int64), D.int64, x.device) for i in xp.nonzero(data)]
        return list(zip(found, t.shape))
    if t.dtype is D.int32:   # PyTorch takes int32 indices too
        t = t.long()
    if t.dtype is not D.int64:
        raise IndexError(f"tensors used as indices must be int64, int32 or bool, got {t.dtype!r}")
    return [(t, None)]


def _as_tuple(key):
    """PyTorch's (and old NumPy's) rule: a list holding a sequence, tensor, slice, None or ... is a
    tuple of indices (x[[[0, 1], [2, 3]]] is x[[0, 1], [2, 3]]); any other list is one index array."""
    if isinstance(key, range):
        return (list(key),)
    if isinstance(key, tuple):
        return tuple(list(k) if isinstance(k, range) else k for k in key)
    if isinstance(key, list) and len(key) < 32 and any(
            isinstance(k, (Tensor, list, tuple, np.ndarray, slice)) or k is None or k is Ellipsis for k in key):
        return tuple(key)
    return (key,)


def getitem(x, key):
    if isinstance(key, bool) or (isinstance(key, Tensor) and key.ndim == 0 and key.dtype.name == "bool"):
        # x[True] is x with a new leading dim of 1, x[False] with one of 0 (a 0-d mask), as in PyTorch
        return x.unsqueeze(0) if bool(key) else x.unsqueeze(0)[:0]
    key = _as_tuple(key)
    items = []
    for k in key:
        if isinstance(k, (Tensor, list, np.ndarray)):
            items.extend(("array", t) for t in _index_tensor(k, x))
        elif k is None or k is Ellipsis or isinstance(k, slice):
            items.append((k if k is None or k is Ellipsis else "slice", k))
        elif isinstance(k, (int, np.integer, SymInt)) and not isinstance(k, bool):
            items.append(("int", k if isinstance(k, SymInt) else int(k)))
        else:
            raise IndexError(f"unsupported index {k!r}: use ints, slices, None, ..., or integer/bool tensors")
    consumed = sum(1 for kind, _ in items if kind in ("int", "slice", "array"))
    if consumed > x.ndim:
        raise OutOfRangeError(f"too many indices for a tensor of dimension {x.ndim} (got {consumed})")
    ellipses = [i for i, (kind, _) in enumerate(items) if kind is Ellipsis]
    if len(ellipses) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    fill = [("slice", slice(None))] * (x.ndim - consumed)
    if ellipses:
        items[ellipses[0]:ellipses[0] + 1] = fill
    else:
        items += fill

    starts, stops, steps, out_shape, arrays, dim = [], [], [], [], [], 0
    for kind, k in items:
        if kind is None:
            out_shape.append(1)
            continue
        n = x.shape[dim]
        if kind == "int":
            if not -n <= k < n:
                raise OutOfRangeError(f"index {k} is out of bounds for dimension {dim} with size {n}")
            k = k + n if k < 0 else k   # (not k % n: n may be a symbolic size)
            starts.append(k), stops.append(k + 1), steps.append(1)
        elif kind == "slice":
            if k.step is not None and k.step <= 0:
                raise IndexError("slice step must be positive (as in PyTorch); use .flip() style indexing instead")
            a, b, c = _bounds(k, n)
            b = max(a, b)
            starts.append(a), stops.append(b), steps.append(c)
            out_shape.append(max(0, (b - a + c - 1) // c))
        else:
            k, need = k
            if need is not None and need != n:
                raise OutOfRangeError(f"the shape of the mask ({need} at index {dim}) does not match the shape of the "
                                      f"indexed tensor {tuple(x.shape)} (size {n} at index {dim})")
            starts.append(0), stops.append(n), steps.append(1)
            arrays.append((len(out_shape), k, n))
            out_shape.append(n)
        dim += 1
    y = strided_slice(x, starts, stops, steps).reshape(out_shape)
    if not arrays:
        return y
    return _advanced(y, arrays)


def _bounds(k, n):
    """slice.indices(n) for a size that may be symbolic (gradc.symint): comparisons with it are
    guards, so only what the size decides is held."""
    if type(n) is int and not isinstance(k.start, SymInt) and not isinstance(k.stop, SymInt):
        return k.indices(n)   # (slice.indices would take a symbolic bound as its value: x[:, :T] of a buffer)

    def clamp(v, default):
        if v is None:
            return default
        v = v if isinstance(v, SymInt) else operator.index(v)
        if v < 0:
            v = v + n
            return v if v >= 0 else 0
        return v if v <= n else n
    return clamp(k.start, 0), clamp(k.stop, n), 1 if k.step is None else operator.index(k.step)


def _advanced(y, arrays):
    positions = [p for p, _, _ in arrays]
    shape = broadcast_shapes("index", [t.shape for _, t, _ in arrays])
    idxs = [t.expand(shape) if t.shape != shape else t for _, t, _ in arrays]
    k = len(positions)
    if positions != list(range(positions[0], positions[0] + k)):
        # Non-adjacent index arrays: NumPy and PyTorch put the indexed dims first.
        rest = [i for i in range(y.ndim) if i not in positions]
        y = y.permute(positions + rest)
        positions = list(range(k))
    p0 = positions[0]
    if k == 1:
        return OPS["gather"].bind(y, idxs[0], axis=p0)
    sizes = [n for _, _, n in arrays]
    for t, n in zip(idxs, sizes):
        if t._data is not None and t.numel() and (int(t._data.max()) >= n or int(t._data.min()) < -n):
            raise OutOfRangeError(f"index out of range: indices span {int(t._data.min())}..{int(t._data.max())} "
                             f"for a dimension of size {n}")
    # Merge the indexed dims into one and gather with the linear index.
    merged = y.reshape(y.shape[:p0] + (int(np.prod(sizes)),) + y.shape[p0 + k:])
    lin, stride = None, 1
    for t, n in reversed(list(zip(idxs, sizes))):
        t = t + (t < 0).long() * n
        term = t * stride if stride != 1 else t
        lin = term if lin is None else lin + term
        stride *= n
    return OPS["gather"].bind(merged, lin, axis=p0)
