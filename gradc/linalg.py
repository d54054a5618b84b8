"""torch.linalg's everyday names: vector and matrix norms, vecdot, cross, multi_dot; solve, inv,
det and slogdet (primitives computed by LAPACK or cuSOLVER); the Cholesky factorisation and
triangular solves (written with tensor ops, O(n) of them: for the small matrices of a distribution
or a Gaussian-process toy, not for large systems). Everything here differentiates and compiles
like any op."""
import math

import numpy as np

from .distributions.linalg import checked_cholesky, solve_lower_matrix
from .errors import LinAlgError, ShapeError  # noqa: F401  (LinAlgError: as torch.linalg.LinAlgError)
from .functions import cross as _cross, diagonal as _diagonal, eye, flip, matmul, norm as _norm, where  # noqa: F401
from .ops.linalg import det, eigh, eigvalsh, inverse as inv, qr, slogdet, solve, svd, svdvals  # noqa: F401
from .return_types import return_type


def matrix_power(A, n):
    """A multiplied by itself n times (by squaring); n < 0 takes the inverse first, n == 0 is the identity."""
    if A.ndim < 2 or A.shape[-1] != A.shape[-2]:
        raise ShapeError(f"linalg.matrix_power: expects square matrices (..., n, n), got shape {tuple(A.shape)}")
    n = int(n)
    if n < 0:
        A, n = inv(A), -n
    out = None
    while n:
        if n & 1:
            out = A if out is None else out @ A
        n >>= 1
        if n:
            A = A @ A
    if out is None:   # the identity, with A's history (gradient zero) as in PyTorch
        identity = eye(A.shape[-1], dtype=A.dtype, device=A.device).expand(A.shape)
        return where(identity < 0, A, identity)
    return out


def vector_norm(x, ord=2, dim=None, keepdim=False, *, dtype=None):
    """The ord-norm of x over dim (all elements when None) as one vector."""
    if dtype is not None:
        x = x.to(dtype)
    if dim is None and not keepdim:
        x, dim = x.reshape(-1), 0
    return _norm(x, ord, dim, keepdim)


def matrix_norm(A, ord="fro", dim=(-2, -1), keepdim=False, *, dtype=None):
    """'fro', 1, -1, inf or -inf norm of the matrices over the two dims `dim`."""
    if dtype is not None:
        A = A.to(dtype)
    if A.ndim < 2:
        raise ShapeError(f"matrix_norm: expects at least 2 dims, got shape {tuple(A.shape)}")
    r, c = (d % A.ndim for d in dim)
    if ord == "fro":
        return _norm(A, 2, (r, c), keepdim)
    if ord in (1, -1, math.inf, -math.inf):
        # 1: the largest column sum of |A|; inf: the largest row sum (minus: the smallest)
        summed, picked = (r, c) if ord in (1, -1) else (c, r)
        sums = A.abs().sum(summed, keepdim=True)
        out = sums.amax(picked, keepdim=True) if ord > 0 else sums.amin(picked, keepdim=True)
        return out if keepdim else out.squeeze((r, c))
    if ord in (2, -2, "nuc"):   # from the singular values
        s = svdvals(A.movedim((r, c), (-2, -1)))
        out = s.sum(-1) if ord == "nuc" else (s.amax(-1) if ord == 2 else s.amin(-1))
        return out.unsqueeze(-1).unsqueeze(-1).movedim((-2, -1), (r, c)) if keepdim else out
    raise ValueError(f"matrix_norm: ord must be 'fro', 'nuc', 1, -1, 2, -2, inf or -inf, got {ord!r}")


def norm(A, ord=None, dim=None, keepdim=False, *, dtype=None):
    """vector_norm for a vector (or an int dim), matrix_norm for a matrix (or a pair of dims)."""
    if isinstance(dim, int) or (dim is None and (A.ndim == 1 or ord is None)):
        return vector_norm(A, 2 if ord is None else ord, dim, keepdim, dtype=dtype)
    return matrix_norm(A, "fro" if ord is None else ord, (-2, -1) if dim is None else dim, keepdim, dtype=dtype)


def vecdot(x, y, *, dim=-1):
    return (x * y).sum(dim)


def cross(input, other, *, dim=-1):
    return _cross(input, other, dim=dim)


def diagonal(A, *, offset=0, dim1=-2, dim2=-1):
    return _diagonal(A, offset, dim1, dim2)


def multi_dot(tensors):
    """A chain of matrix products (a 1-D first or last operand is a row or column vector)."""
    if len(tensors) < 2:
        raise ShapeError(f"multi_dot: expects at least 2 tensors, got {len(tensors)}")
    out = tensors[0]
    for t in tensors[1:]:
        out = matmul(out, t)
    return out


def cholesky(A, *, upper=False):
    """L with L @ L.mH == A for symmetric positive-definite A (..., n, n), read from A's lower
    triangle; with upper, U with U.mH @ U == A, read from the upper triangle. A matrix that is not
    positive definite raises LinAlgError, eagerly and in compiled programs."""
    if A.ndim < 2 or A.shape[-1] != A.shape[-2]:
        raise ShapeError(f"cholesky: expects square matrices (..., n, n), got shape {tuple(A.shape)}")
    L = checked_cholesky(A.mT if upper else A)
    return L.mT if upper else L


def solve_triangular(A, B, *, upper, left=True, unitriangular=False):
    """X with A @ X == B (left) or X @ A == B, for triangular A."""
    if A.ndim < 2 or A.shape[-1] != A.shape[-2]:
        raise ShapeError(f"solve_triangular: A must be square matrices (..., n, n), got shape {tuple(A.shape)}")
    if not left:   # X A = B  <=>  A^T X^T = B^T, and A^T is triangular the other way
        return solve_triangular(A.mT, B.mT, upper=not upper, unitriangular=unitriangular).mT
    if unitriangular:
        n = A.shape[-1]
        I = eye(n, dtype=A.dtype, device=A.device)
        A = A * (1 - I) + I
    if upper:   # reversing rows and columns turns an upper system into a lower one
        return flip(solve_lower_matrix(flip(A, (-2, -1)), flip(B, (-2,))), (-2,))
    return solve_lower_matrix(A, B)


def _cutoff(s, shape, atol, rtol):
    """PyTorch's tolerance for rank and pinv: max(atol, rtol * largest singular value), rtol
    defaulting to eps * max(m, n) when atol is not given either."""
    if rtol is None:
        rtol = 0.0 if atol is not None and atol > 0 else max(shape[-2:]) * float(np.finfo(s.dtype.np).eps)
    tol = s.amax(-1, keepdim=True) * rtol
    return tol if atol is None else tol.clamp(min=float(atol))


def _pseudo_inverse(A, cutoff):
    """(V diag(1/S) U^T with the singular values at or below cutoff(S) taken as zero, S, which are kept)."""
    U, S, Vh = svd(A, full_matrices=False)
    keep = S > cutoff(S)
    inv_s = where(keep, 1.0 / where(keep, S, 1.0), 0.0)
    return (Vh.mT * inv_s.unsqueeze(-2)) @ U.mT, S, keep


def matrix_rank(A, *, atol=None, rtol=None, hermitian=False):
    """The number of singular values above the tolerance (see pinv)."""
    s = svdvals(A) if not hermitian else eigvalsh(A).abs()
    return (s > _cutoff(s, A.shape, atol, rtol)).sum(-1)


def pinv(A, *, atol=None, rtol=None, hermitian=False):
    """The Moore-Penrose pseudo-inverse V diag(1/S) U^T, singular values at or below the tolerance
    (max(atol, rtol * max S); rtol by default eps * max(m, n)) treated as zero."""
    return _pseudo_inverse(A, lambda S: _cutoff(S, A.shape, atol, rtol))[0]


def cond(A, p=None):
    """The condition number: largest over smallest singular value (p None or 2), or a matrix norm
    of A times that of its inverse."""
    if p is None or p == 2 or p == -2:
        s = svdvals(A)
        big, small = s.amax(-1), s.amin(-1)
        return big / small if p != -2 else small / big
    return matrix_norm(A, p) * matrix_norm(inv(A), p)


lstsq_result = return_type("lstsq", ["solution", "residuals", "rank", "singular_values"])


def lstsq(A, B, rcond=None, *, driver=None):
    """The least-squares solution X of A X = B (solution, residuals, rank, singular_values), with
    what PyTorch's CPU drivers report (the default is 'gelsy'): rank for every driver but 'gels',
    singular values for 'gelsd' and 'gelss', squared residuals per column for every driver but
    'gelsy' when A is tall and full-rank. X is computed from the SVD whatever the driver."""
    if driver not in (None, "gels", "gelsy", "gelsd", "gelss"):
        raise ValueError(f"linalg.lstsq: driver must be 'gels', 'gelsy', 'gelsd' or 'gelss', got {driver!r}")
    vector = B.ndim == A.ndim - 1
    b = B.unsqueeze(-1) if vector else B
    inverse, S, keep = _pseudo_inverse(A, lambda S: _cutoff(S, A.shape, None, rcond) if rcond is None or rcond >= 0
                                       else 0.0)
    x = inverse @ b
    rank = keep.sum(-1)
    m, n = A.shape[-2], A.shape[-1]
    empty = A.new_zeros((0,))
    residuals = empty
    if driver not in (None, "gelsy") and m > n and bool((rank == n).all()):
        residuals = ((A @ x - b) ** 2).sum(-2)
        residuals = residuals.squeeze(-1) if vector else residuals
    return lstsq_result(x.squeeze(-1) if vector else x, residuals, rank if driver != "gels" else empty.long(),
                  S if driver in ("gelsd", "gelss") else empty)


def pinverse(input, rcond=1e-15):
    """torch.pinverse: pinv with a relative cutoff."""
    return pinv(input, rtol=rcond)
