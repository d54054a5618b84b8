"""Products, diagonals, differences and distances with PyTorch's names and defaults: addcmul /
addcdiv, addbmm, addr, mv, inner, vdot, tensordot, kron, cross, diff, diagonal, diag_embed,
trace, cdist, dist, pdist, renorm, cov, corrcoef, vander. Composites of matmul, reshape,
permute, slice and elementwise ops, so autodiff, fusion and every backend cover them."""
import math
import warnings

import numpy as np

from . import dtypes as D
from .composite import cat, copying, safe_sqrt
from .creation import arange, ones
from .errors import DTypeError, ShapeError
from .ops.frontend import cast, export, scalar, where
from .ops.movement import strided_slice
from .shapes import normalize_axis
from .tensor import Tensor
from .tensor_ops import movedim
from .tensor_stacking import triu_indices


def _need(x, ndim, name, what="input"):
    if x.ndim != ndim:
        raise ShapeError(f"{name}: {what} must be {ndim}-D, got shape {tuple(x.shape)}")


def _scaled(input, product, beta, alpha):
    product = product if alpha == 1 else product * alpha
    if beta == 0:   # PyTorch ignores input then (nan and inf in it do not propagate)
        return product
    return (input if beta == 1 else input * beta) + product


# ---------------------------------------------------------------------- fused multiply-adds
export("addcmul")(lambda input, tensor1, tensor2, value=1: input + (tensor1 * tensor2 if value == 1
                                                                    else tensor1 * tensor2 * value))
@export("addcdiv")
def addcdiv(input, tensor1, tensor2, value=1):
    """input + value * tensor1 / tensor2 (true division: integer operands are refused, as in PyTorch)."""
    if not any(isinstance(t, Tensor) and t.dtype.is_floating_point for t in (tensor1, tensor2)):
        raise DTypeError("addcdiv: integer division is not supported; make tensor1 or tensor2 floating-point "
                         "(e.g. tensor1.float()), or write input + value * (tensor1 // tensor2) for floor division")
    return input + (tensor1 / tensor2 if value == 1 else tensor1 / tensor2 * value)


@export("addbmm")
def addbmm(input, batch1, batch2, beta=1, alpha=1):
    """beta * input + alpha * (the sum over the batch of batch1[i] @ batch2[i])."""
    _need(batch1, 3, "addbmm", "batch1")
    _need(batch2, 3, "addbmm", "batch2")
    if batch1.shape[0] != batch2.shape[0] or batch1.shape[2] != batch2.shape[1]:
        raise ShapeError(f"addbmm: batch1 {tuple(batch1.shape)} and batch2 {tuple(batch2.shape)} do not multiply; they need the "
                         "same batch size and batch1.shape[2] == batch2.shape[1]")
    b, n, k = batch1.shape
    flat1 = batch1.permute(1, 0, 2).reshape(n, b * k)    # sum_i A_i B_i as one (n, b*k) @ (b*k, m) product
    return _scaled(input, flat1 @ batch2.reshape(b * k, batch2.shape[2]), beta, alpha)


@export("addr")
def addr(input, vec1, vec2, beta=1, alpha=1):
    """beta * input + alpha * outer(vec1, vec2)."""
    _need(vec1, 1, "addr", "vec1")
    _need(vec2, 1, "addr", "vec2")
    return _scaled(input, vec1.reshape(-1, 1) * vec2.reshape(1, -1), beta, alpha)


# ---------------------------------------------------------------------- products
@export("mv")
def mv(input, vec):
    _need(input, 2, "mv")
    _need(vec, 1, "mv", "vec")
    if input.shape[1] != vec.shape[0]:
        raise ShapeError(f"mv: matrix {tuple(input.shape)} and vector {tuple(vec.shape)} do not multiply; the vector needs "
                         f"{input.shape[1]} entries")
    return input.matmul(vec)


@export("vdot")
def vdot(input, other):
    _need(input, 1, "vdot")
    _need(other, 1, "vdot", "other")
    if input.shape != other.shape:
        raise ShapeError(f"vdot: inputs {tuple(input.shape)} and {tuple(other.shape)} must have the same length")
    return (input * other).sum()


@export("tensordot", method=False)
def tensordot(a, b, dims=2):
    """Contract a's dims `dims[0]` with b's `dims[1]` (an int n: a's last n with b's first n)."""
    if isinstance(dims, Tensor):
        dims = dims.tolist()
    if isinstance(dims, int):
        if dims < 0 or dims > min(a.ndim, b.ndim):
            raise ShapeError(f"tensordot: dims={dims} must be between 0 and the inputs' dims ({a.ndim}, {b.ndim})")
        da, db = list(range(a.ndim - dims, a.ndim)), list(range(dims))
    else:
        da, db = ([d] if isinstance(d, int) else list(d) for d in dims)
    da = [normalize_axis("tensordot", d, a.ndim) for d in da]
    db = [normalize_axis("tensordot", d, b.ndim) for d in db]
    if len(da) != len(db) or any(a.shape[i] != b.shape[j] for i, j in zip(da, db)):
        raise ShapeError(f"tensordot: contracted dims {da} of {tuple(a.shape)} and {db} of {tuple(b.shape)} must pair up with "
                         "equal sizes")
    free_a = [i for i in range(a.ndim) if i not in da]
    free_b = [j for j in range(b.ndim) if j not in db]
    k = 1
    for i in da:
        k *= a.shape[i]
    am = a.permute(free_a + da).reshape(-1, k)
    bm = b.permute(db + free_b).reshape(k, -1)
    return (am @ bm).reshape(tuple(a.shape[i] for i in free_a) + tuple(b.shape[j] for j in free_b))


@export("inner")
def inner(input, other):
    """Sum over the last dims of both (0-D operands: a product)."""
    if input.ndim == 0 or other.ndim == 0:
        return input * other
    if input.shape[-1] != other.shape[-1]:
        raise ShapeError(f"inner: last dims of {tuple(input.shape)} and {tuple(other.shape)} must match")
    return tensordot(input, other, ([input.ndim - 1], [other.ndim - 1]))


@export("kron")
@copying
def kron(input, other):
    """The Kronecker product: every element of input times a block of other."""
    n = max(input.ndim, other.ndim)
    a = input.reshape((1,) * (n - input.ndim) + input.shape)
    b = other.reshape((1,) * (n - other.ndim) + other.shape)
    out = a.reshape(tuple(s for d in a.shape for s in (d, 1))) * b.reshape(tuple(s for d in b.shape for s in (1, d)))
    return out.reshape(tuple(x * y for x, y in zip(a.shape, b.shape)))


@export("cross")
def cross(input, other, dim=None):
    """The cross product of 3-vectors along dim (None: the first dim of size 3, as PyTorch, which
    warns that this default is deprecated)."""
    if input.ndim != other.ndim:
        raise ShapeError(f"cross: inputs {tuple(input.shape)} and {tuple(other.shape)} must have the same number of dims")
    a, b = (t.expand(tuple(max(x, y) for x, y in zip(input.shape, other.shape))) for t in (input, other))
    if dim is None:
        found = [i for i, s in enumerate(a.shape) if s == 3]
        if not found:
            raise ShapeError(f"cross: no dimension of size 3 in shape {tuple(a.shape)}; pass dim=")
        warnings.warn("Using torch.cross without specifying the dim arg is deprecated.", UserWarning, stacklevel=2)
        dim = found[0]
    d = normalize_axis("cross", dim, a.ndim)
    if a.shape[d] != 3:
        raise ShapeError(f"cross: dim {d} of shape {tuple(a.shape)} has size {a.shape[d]}, expected 3")
    a0, a1, a2 = (a.narrow(d, i, 1) for i in range(3))
    b0, b1, b2 = (b.narrow(d, i, 1) for i in range(3))
    return cat([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0], d)


# ---------------------------------------------------------------------- differences
@export("diff")
@copying
def diff(input, n=1, dim=-1, prepend=None, append=None):
    """The n-th forward difference along dim, after prepend / append are joined on (bool: !=)."""
    if input.ndim == 0:
        raise ShapeError("diff: expects a tensor of at least 1 dim, got a 0-D tensor")
    if n < 0:
        raise ShapeError(f"diff: order n must be non-negative, got {n}")
    d = normalize_axis("diff", dim, input.ndim)
    x = cat([t for t in (prepend, input, append) if t is not None], d) if prepend is not None or append is not None \
        else input
    for _ in range(n):
        m = x.shape[d]
        if m == 0:
            break
        hi, lo = x.narrow(d, 1, m - 1), x.narrow(d, 0, m - 1)
        x = hi != lo if x.dtype is D.bool_ else hi - lo
    return x


# ---------------------------------------------------------------------- diagonals
@export("diagonal")
def diagonal(input, offset=0, dim1=0, dim2=1):
    """The entries (i, i + offset) of dims dim1, dim2, in a new last dim (a strided slice)."""
    if input.ndim < 2:
        raise ShapeError(f"diagonal: needs a tensor of at least 2 dims, got shape {tuple(input.shape)}")
    a, b = normalize_axis("diagonal", dim1, input.ndim), normalize_axis("diagonal", dim2, input.ndim)
    if a == b:
        raise ShapeError(f"diagonal: dim1 and dim2 must differ, both are {a}")
    x = movedim(input, (a, b), (input.ndim - 2, input.ndim - 1))
    n, m = x.shape[-2:]
    start = offset if offset >= 0 else -offset * m
    length = max(min(n, m - offset) if offset >= 0 else min(n + offset, m), 0)
    flat = x.reshape(x.shape[:-2] + (n * m,))
    lead = [0] * (flat.ndim - 1)
    if length == 0:
        return strided_slice(flat, lead + [0], list(flat.shape[:-1]) + [0], [1] * flat.ndim)
    out = strided_slice(flat, lead + [start], list(flat.shape[:-1]) + [start + (length - 1) * (m + 1) + 1],
                        [1] * (flat.ndim - 1) + [m + 1])
    return read_only_unless_view(out, input)


def read_only_unless_view(out, input):
    """PyTorch's result here is a view of input, so writing into it changes input. When gradc's is a
    copy (eagerly: a reshape of non-contiguous memory), it is made read-only, so such a write fails
    with an error instead of silently missing input."""
    data, base = out._data, input._data
    if isinstance(data, np.ndarray) and isinstance(base, np.ndarray) and not np.shares_memory(data, base):
        data.flags.writeable = False
    return out


@export("diag_embed")
def diag_embed(input, offset=0, dim1=-2, dim2=-1):
    """input's last dim on the offset diagonal of new dims dim1, dim2 (zeros elsewhere)."""
    nd = input.ndim + 1
    a, b = normalize_axis("diag_embed", dim1, nd), normalize_axis("diag_embed", dim2, nd)
    if a == b:
        raise ShapeError(f"diag_embed: dim1 and dim2 must differ, both are {a}")
    x = input if input.ndim else input.reshape(1)
    k = x.shape[-1]
    n = k + abs(offset)
    rows, cols = arange(n, device=x.device).reshape(n, 1), arange(n, device=x.device).reshape(1, n)
    pos = (rows if offset >= 0 else cols).expand(n, n).clamp(max=max(k - 1, 0)).reshape(-1)
    vals = x.index_select(x.ndim - 1, pos).reshape(x.shape[:-1] + (n, n)) if k else \
        x.reshape(x.shape[:-1] + (0, 0)).expand(x.shape[:-1] + (n, n))
    out = where(cols - rows == offset, vals, scalar(0, x.dtype, x.device))
    return movedim(out, (nd - 2, nd - 1), (a, b)) if (a, b) != (nd - 2, nd - 1) else out


@export("trace")
def trace(self):
    _need(self, 2, "trace")
    return diagonal(self).sum()


# ---------------------------------------------------------------------- distances
def _pnorm(d, p, dim):
    """The p-norm of the differences `d` over dim (p in [0, inf]; gradient 0 at equal points)."""
    return d.norm(p, dim)


def _check_p(p, name):
    if not isinstance(p, (int, float)) or p < 0 or math.isnan(p):
        raise ValueError(f"{name}: p must be a non-negative number (or inf), got {p!r}")


@export("cdist", method=False)
def cdist(x1, x2, p=2.0, compute_mode="use_mm_for_euclid_dist_if_necessary"):
    """p-norm distances between the rows of x1 (..., P, M) and of x2 (..., R, M): (..., P, R). For p=2
    it follows PyTorch's compute_mode: the matrix-product form |a|^2 + |b|^2 - 2 a.b when P or R
    exceeds 25 (the default) or always ('use_mm_for_euclid_dist'), else the differences."""
    _check_p(p, "cdist")
    if compute_mode not in ("use_mm_for_euclid_dist_if_necessary", "use_mm_for_euclid_dist",
                            "donot_use_mm_for_euclid_dist"):
        raise ValueError(f"cdist: unknown compute_mode {compute_mode!r}")
    if x1.ndim < 2 or x2.ndim < 2 or x1.shape[-1] != x2.shape[-1]:
        raise ShapeError(f"cdist: x1 {tuple(x1.shape)} and x2 {tuple(x2.shape)} must be at least 2-D with the same last dim")
    if not x1.dtype.is_floating_point or not x2.dtype.is_floating_point:
        raise DTypeError(f"cdist: needs floating-point inputs, got {x1.dtype!r} and {x2.dtype!r}")
    P, R = x1.shape[-2], x2.shape[-2]
    use_mm = p == 2 and (compute_mode == "use_mm_for_euclid_dist" or
                         compute_mode == "use_mm_for_euclid_dist_if_necessary" and (P > 25 or R > 25))
    if use_mm:
        sq = ((x1 * x1).sum(-1).unsqueeze(-1) + (x2 * x2).sum(-1).unsqueeze(-2)
              - 2 * (x1 @ x2.transpose(-2, -1)))
        return safe_sqrt(sq.clamp(min=0))
    return _pnorm(x1.unsqueeze(-2) - x2.unsqueeze(-3), p, -1)


@export("dist")
def dist(input, other, p=2):
    """The p-norm of input - other (broadcast), over every element."""
    _check_p(p, "dist")
    return _pnorm((input - other).reshape(-1), p, 0)


@export("pdist", method=False)
def pdist(input, p=2):
    """Distances between each pair of rows i < j of the (N, M) input, row by row: N(N-1)/2 values."""
    _check_p(p, "pdist")
    _need(input, 2, "pdist")
    n = input.shape[0]
    ij = triu_indices(n, n, 1, device=input.device)
    return _pnorm(input.index_select(0, ij[0]) - input.index_select(0, ij[1]), p, 1)


@export("renorm")
def renorm(input, p, dim, maxnorm):
    """Each slice along dim whose p-norm exceeds maxnorm scaled down to norm maxnorm (PyTorch's
    factor maxnorm / (norm + 1e-7))."""
    _check_p(p, "renorm")
    if p == 0:
        raise ValueError("renorm: p must be positive, got 0")
    d = normalize_axis("renorm", dim, input.ndim)
    x = input.movedim(d, 0).reshape(input.shape[d], -1) if input.ndim else input.reshape(1, 1)
    norms = _pnorm(x, p, 1).reshape(tuple(input.shape[i] if i == d else 1 for i in range(input.ndim)))
    factor = where(norms > maxnorm, maxnorm / (norms + 1e-7), scalar(1, norms.dtype, norms.device))
    return input * factor


# ---------------------------------------------------------------------- statistics of variables
@export("cov")
def cov(input, correction=1, fweights=None, aweights=None):
    """The covariance of the variables in input's rows (observations in columns; 1-D: one variable),
    with optional integer frequency and float observation weights (NumPy's formula)."""
    if input.ndim > 2:
        raise ShapeError(f"cov: expects a 1-D or 2-D tensor, got shape {tuple(input.shape)}")
    x = input.reshape(1, -1) if input.ndim < 2 else input
    if not x.dtype.is_floating_point:
        x = cast(x, D.default_float)
    n = x.shape[1]
    w = None
    for wt, what in ((fweights, "fweights"), (aweights, "aweights")):
        if wt is None:
            continue
        if wt.ndim != 1 or wt.shape[0] != n:
            raise ShapeError(f"cov: {what} must be 1-D with one entry per observation ({n}), got shape {tuple(wt.shape)}")
        if what == "fweights" and wt.dtype.is_floating_point:
            raise DTypeError(f"cov: fweights must be integers, got {wt.dtype!r}")
        wt = cast(wt, x.dtype)
        w = wt if w is None else w * wt
    if w is None:
        avg = x.mean(1, keepdim=True)
        fact = scalar(max(n - correction, 0), x.dtype, x.device)
        centered = x - avg
        c = centered @ centered.t()
    else:
        w_sum = w.sum()
        avg = (x * w).sum(1, keepdim=True) / w_sum
        if aweights is None:
            fact = w_sum - correction
        else:
            fact = w_sum - correction * (w * cast(aweights, x.dtype)).sum() / w_sum
        fact = where(fact > 0, fact, scalar(0, x.dtype, x.device))
        centered = x - avg
        c = (centered * w) @ centered.t()
    out = c / fact
    return out.reshape(()) if input.ndim < 2 else out


@export("corrcoef")
def corrcoef(input):
    """Pearson correlation coefficients of input's rows, clipped to [-1, 1]."""
    c = cov(input)
    if c.ndim == 0:
        return c / c
    d = diagonal(c).sqrt()
    return (c / d.reshape(-1, 1) / d.reshape(1, -1)).clamp(-1, 1)


@export("vander", method=False)
def vander(x, N=None, increasing=False):
    """Columns of powers of the 1-D x: x^(N-1) .. x^0 (increasing=True: x^0 .. x^(N-1)), as running products."""
    _need(x, 1, "vander", "x")
    N = x.shape[0] if N is None else int(N)
    if N < 0:
        raise ShapeError(f"vander: N must be non-negative, got {N}")
    if x.dtype is D.bool_:
        x = cast(x, D.int64)
    if N == 0:
        return x.reshape(-1, 1)[:, :0]
    first = ones(x.shape[0], 1, dtype=x.dtype, device=x.device)
    cols = cat([first, x.reshape(-1, 1).expand(x.shape[0], N - 1)], 1) if N > 1 else first
    out = cols.cumprod(1)
    return out if increasing else out.flip((1,))

