"""Stacking, splitting and re-orienting tensors the way NumPy-minded PyTorch code spells it
(atleast_Nd, h/v/dstack, tensor_split, rot90, block_diag, cartesian_prod, ...), as composites of
reshape, permute, slice, concat and gather, so autodiff, fusion and every backend cover them."""
import itertools

import numpy as np

from . import dtypes as D
from .composite import cat, copying, split, stack
from .creation import tensor, zeros
from .errors import DTypeError, ShapeError
from .ops.frontend import cast, export
from .ops.movement import strided_slice
from .shapes import broadcast_shapes as _broadcast, normalize_axis
from .tensor import Tensor
from .tensor_ops import flip, movedim


def _tensors(tensors, name):
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    for t in tensors:
        if not isinstance(t, Tensor):
            raise DTypeError(f"{name}: expected tensors, got {type(t).__name__}")
    return tuple(tensors)


# ---------------------------------------------------------------------- at least N dims
def _atleast(shape_of, name):
    def fn(*tensors):
        single = len(tensors) == 1 and isinstance(tensors[0], Tensor)
        out = tuple(t if t.ndim >= len(shape_of(t)) else t.reshape(shape_of(t)) for t in _tensors(tensors, name))
        return out[0] if single else out
    fn.__name__ = name
    fn.__doc__ = f"{name}(x) views x with at least {name[-2]} dims; several tensors give a tuple."
    return fn


atleast_1d = export("atleast_1d", method=False)(_atleast(lambda t: t.shape if t.ndim else (1,), "atleast_1d"))
atleast_2d = export("atleast_2d", method=False)(_atleast(
    lambda t: t.shape if t.ndim >= 2 else (1,) * (2 - t.ndim) + t.shape, "atleast_2d"))
atleast_3d = export("atleast_3d", method=False)(_atleast(
    lambda t: t.shape if t.ndim >= 3 else {0: (1, 1, 1), 1: (1,) + t.shape + (1,), 2: t.shape + (1,)}[t.ndim],
    "atleast_3d"))


def _nonempty(tensors, name):
    tensors = _tensors(tensors, name)
    if not tensors:
        raise ShapeError(f"{name}: expected a non-empty sequence of tensors")
    return tensors


@export("hstack", method=False)
def hstack(tensors):
    """Concatenation along dim 0 of 1-D (and 0-D) tensors, else along dim 1."""
    ts = [atleast_1d(t) for t in _nonempty(tensors, "hstack")]
    return cat(ts, 0 if ts[0].ndim == 1 else 1)


@export("vstack", "row_stack", method=False)
def vstack(tensors):
    return cat([atleast_2d(t) for t in _nonempty(tensors, "vstack")], 0)


@export("dstack", method=False)
def dstack(tensors):
    return cat([atleast_3d(t) for t in _nonempty(tensors, "dstack")], 2)


@export("column_stack", method=False)
def column_stack(tensors):
    """0-D and 1-D tensors become columns (n, 1); the rest are concatenated along dim 1."""
    ts = _nonempty(tensors, "column_stack")
    return cat([t.reshape(t.numel(), 1) if t.ndim <= 1 else t for t in ts], 1)


# ---------------------------------------------------------------------- splitting
def _split_points(x, sections, name):
    if isinstance(sections, Tensor):
        if sections.dtype.is_floating_point or sections.ndim > 1:
            raise DTypeError(f"{name}: indices_or_sections as a tensor must be a 0-D or 1-D integer tensor, "
                             f"got {sections.dtype!r} of shape {tuple(sections.shape)}")
        sections = int(sections.item()) if sections.ndim == 0 else [int(i) for i in sections.tolist()]
    return sections


@export("tensor_split")
def tensor_split(input, indices_or_sections, dim=0):
    """Views of input along dim: `n` sections (the first size % n one longer), or cut before each
    index of a list (indices past the end give empty pieces), as torch.tensor_split."""
    d = normalize_axis("tensor_split", dim, input.ndim)
    n = input.shape[d]
    sections = _split_points(input, indices_or_sections, "tensor_split")
    if isinstance(sections, int):
        if sections <= 0:
            raise ShapeError(f"tensor_split: number of sections must be at least 1, got {sections}")
        q, r = divmod(n, sections)
        sizes = [q + 1] * r + [q] * (sections - r)
        return split(input, sizes, d)
    points = [min(max(int(i) + n if int(i) < 0 else int(i), 0), n) for i in sections]
    bounds = [0] + points + [n]
    pieces = []
    for a, b in zip(bounds, bounds[1:]):   # Python slicing: a stop before its start is an empty piece
        starts, stops = [0] * input.ndim, list(input.shape)
        starts[d], stops[d] = a, max(a, b)
        pieces.append(strided_slice(input, starts, stops, [1] * input.ndim))
    return tuple(pieces)


def _exact_split(input, sections, dim, name):
    sections = _split_points(input, sections, name)
    if isinstance(sections, int):
        if sections <= 0 or input.shape[dim] % sections:
            raise ShapeError(f"{name}: dim {dim} of shape {tuple(input.shape)} (size {input.shape[dim]}) cannot be split "
                             f"into {sections} equal sections; pick a divisor of {input.shape[dim]}, or pass "
                             "split indices (a list)")
    return tensor_split(input, sections, dim)


@export("hsplit")
def hsplit(input, indices_or_sections):
    if input.ndim < 1:
        raise ShapeError(f"hsplit: needs a tensor of at least 1 dim, got shape {tuple(input.shape)}")
    return _exact_split(input, indices_or_sections, 0 if input.ndim == 1 else 1, "hsplit")


@export("vsplit")
def vsplit(input, indices_or_sections):
    if input.ndim < 2:
        raise ShapeError(f"vsplit: needs a tensor of at least 2 dims, got shape {tuple(input.shape)}")
    return _exact_split(input, indices_or_sections, 0, "vsplit")


@export("dsplit")
def dsplit(input, indices_or_sections):
    if input.ndim < 3:
        raise ShapeError(f"dsplit: needs a tensor of at least 3 dims, got shape {tuple(input.shape)}")
    return _exact_split(input, indices_or_sections, 2, "dsplit")


# ---------------------------------------------------------------------- re-orienting
export("swapaxes")(lambda input, axis0, axis1: input.transpose(axis0, axis1))
export("swapdims")(lambda input, dim0, dim1: input.transpose(dim0, dim1))
export("moveaxis")(lambda input, source, destination: movedim(input, source, destination))
export("ravel")(lambda input: input.reshape(-1))


@export("rot90")
@copying
def rot90(input, k=1, dims=(0, 1)):
    """input rotated by k quarter turns from dims[0] towards dims[1]."""
    dims = tuple(dims)
    if len(dims) != 2:
        raise ShapeError(f"rot90: dims must name two dimensions, got {dims}")
    if input.ndim < 2:
        raise ShapeError(f"rot90: needs a tensor of at least 2 dims, got shape {tuple(input.shape)}")
    a, b = (normalize_axis("rot90", d, input.ndim) for d in dims)
    if a == b:
        raise ShapeError(f"rot90: dims must differ, got {dims}")
    k %= 4
    if k == 1:
        return flip(input, (b,)).transpose(a, b)
    if k == 2:
        return flip(input, (a, b))
    if k == 3:
        return flip(input, (a,)).transpose(a, b)
    return input.reshape(input.shape)


@export("fliplr")
def fliplr(input):
    if input.ndim < 2:
        raise ShapeError(f"fliplr: needs a tensor of at least 2 dims, got shape {tuple(input.shape)}")
    return flip(input, (1,))


@export("flipud")
def flipud(input):
    if input.ndim < 1:
        raise ShapeError(f"flipud: needs a tensor of at least 1 dim, got shape {tuple(input.shape)}")
    return flip(input, (0,))


# ---------------------------------------------------------------------- broadcasting
@export("broadcast_shapes", method=False)
def broadcast_shapes(*shapes):
    """The shape tensors of these shapes broadcast to (ints count as 1-D shapes)."""
    shapes = [(int(s),) if isinstance(s, (int, np.integer)) else tuple(int(d) for d in s) for s in shapes]
    return _broadcast("broadcast_shapes", shapes) if shapes else ()


@export("broadcast_tensors", method=False)
def broadcast_tensors(*tensors):
    tensors = _tensors(tensors, "broadcast_tensors")
    shape = _broadcast("broadcast_tensors", [t.shape for t in tensors]) if tensors else ()
    return tuple(t if t.shape == shape else t.expand(shape) for t in tensors)


# ---------------------------------------------------------------------- assembling matrices
@export("block_diag", method=False)
@copying
def block_diag(*tensors):
    """The tensors (0-D, 1-D as one row, or 2-D) along the diagonal of one matrix, zeros elsewhere."""
    tensors = _tensors(tensors, "block_diag")
    for t in tensors:
        if t.ndim > 2:
            raise ShapeError(f"block_diag: inputs must have at most 2 dims, got shape {tuple(t.shape)}")
    if not tensors:
        return zeros(1, 0)
    dtype = tensors[0].dtype
    for t in tensors[1:]:
        dtype = D.promote(dtype, t.dtype)
    blocks = [cast(t, dtype).reshape(t.shape if t.ndim == 2 else (1, t.numel())) for t in tensors]
    width = sum(b.shape[1] for b in blocks)
    rows, left = [], 0
    for b in blocks:
        h, w = b.shape
        parts = [zeros(h, left, dtype=dtype, device=b.device), b,
                 zeros(h, width - left - w, dtype=dtype, device=b.device)]
        rows.append(cat([p for p in parts if p.shape[1]] or [b], 1))
        left += w
    return cat(rows, 0)


@export("cartesian_prod", method=False)
def cartesian_prod(*tensors):
    """Every combination of one element from each 1-D tensor, as rows (one tensor: itself)."""
    tensors = _tensors(tensors, "cartesian_prod")
    for t in tensors:
        if t.ndim != 1:
            raise ShapeError(f"cartesian_prod: expects 1-D tensors, got shape {tuple(t.shape)}")
    if len(tensors) == 1:
        return tensors[0]
    shape = tuple(t.shape[0] for t in tensors)
    cols = [t.reshape(tuple(-1 if i == j else 1 for j in range(len(tensors)))).expand(shape).reshape(-1)
            for i, t in enumerate(tensors)]
    return stack(cols, 1)


@export("combinations", method=False)
def combinations(input, r=2, with_replacement=False):
    """Rows of r elements of the 1-D input, in itertools.combinations order (or
    combinations_with_replacement)."""
    if input.ndim != 1:
        raise ShapeError(f"combinations: expects a 1-D tensor, got shape {tuple(input.shape)}")
    if r < 0:
        raise ShapeError(f"combinations: r must be non-negative, got {r}")
    pick = itertools.combinations_with_replacement if with_replacement else itertools.combinations
    idx = np.array(list(pick(range(input.shape[0]), r)), dtype=np.int64).reshape(-1, r)
    if r == 0 or idx.shape[0] == 0:   # PyTorch's shapes: (0,) for r=0, (0, r) when r exceeds the length
        return input.reshape(-1)[:0].reshape((0,) if r == 0 else (0, r))
    flat = tensor(idx.reshape(-1), dtype=D.int64, device=input.device)
    return input.index_select(0, flat).reshape(idx.shape)


def _tri_indices(row, col, offset, dtype, device, lower, name):
    if row < 0 or col < 0:
        raise ShapeError(f"{name}: row and col must be non-negative, got {row} and {col}")
    dtype = D.int64 if dtype is None else D.get_dtype(dtype)
    if dtype.is_floating_point or dtype is D.bool_:
        raise DTypeError(f"{name}: dtype must be an integer dtype, got {dtype!r}")
    i, j = (np.tril_indices if lower else np.triu_indices)(row, offset, col)
    return tensor(np.stack([i, j]).astype(np.int64).reshape(2, -1), dtype=dtype, device=device)


@export("tril_indices", method=False)
def tril_indices(row, col, offset=0, dtype=None, device=None):
    """The (2, N) coordinates of the lower triangle of a row x col matrix, row by row."""
    return _tri_indices(row, col, offset, dtype, device, True, "tril_indices")


@export("triu_indices", method=False)
def triu_indices(row, col, offset=0, dtype=None, device=None):
    """The (2, N) coordinates of the upper triangle of a row x col matrix, row by row."""
    return _tri_indices(row, col, offset, dtype, device, False, "triu_indices")
