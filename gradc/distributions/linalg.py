"""The small dense linear algebra MultivariateNormal needs, written with tensor ops (so autograd,
tracing and every backend cover it): batched Cholesky factorisation, solves with a lower-triangular
matrix, and the inverse of one. Each loops over the n rows or columns in Python, O(n) tensor ops:
meant for the event sizes of a distribution (tens), not for large matrices."""
import numpy as np

from .. import dispatch
from ..dtypes import int64
from ..errors import LinAlgError
from ..functions import arange, eye, stack, where
from ..ops.index import check_values


def cholesky_pivots(a):
    """The pivots of a's Cholesky factorisation (all > 0 exactly when a, symmetric, is positive
    definite): shape (..., n)."""
    n = a.shape[-1]
    cols, pivots = [], []
    for j in range(n):
        v = a[..., :, j]
        if j:
            done = stack(cols, -1)
            v = v - (done * done[..., j:j + 1, :]).sum(-1)
        pivot = v[..., j]
        pivots.append(pivot)
        keep = (_index(n, a) >= j).to(a.dtype)          # rows above the diagonal stay zero
        cols.append(v / pivot.abs().sqrt().clamp(min=1e-300).unsqueeze(-1) * keep)
    return stack(pivots, -1)


def _index(n, like):
    return arange(n, device=like.device)


def cholesky(a):
    """The lower-triangular L with L @ L.mT == a, for a batch (..., n, n) of symmetric positive
    definite matrices."""
    n = a.shape[-1]
    cols = []
    for j in range(n):
        v = a[..., :, j]
        if j:
            done = stack(cols, -1)
            v = v - (done * done[..., j:j + 1, :]).sum(-1)
        keep = (_index(n, a) >= j).to(a.dtype)
        pivot = v[..., j:j + 1]   # not > 0: the matrix is not positive definite; NaN, not a warning
        cols.append(v / where(pivot > 0, pivot, float("nan")).sqrt() * keep)
    return stack(cols, -1)


_NOT_PD = ("linalg.cholesky: The factorization could not be completed because the input is not "
           "positive-definite (the leading minor of order {index} is not positive-definite); a covariance "
           "or kernel matrix often needs jitter on its diagonal (A + eps * I)")


def checked_cholesky(a):
    """cholesky(a), raising LinAlgError (as PyTorch) when a is not positive definite: at once
    eagerly, and when the program runs if traced."""
    if not a.shape[-1]:
        return a
    L = cholesky(a)
    # the first diagonal entry that is not > 0 (NaN included) is the failing minor's order - 1
    bad = ~(L.diagonal(0, -2, -1) > 0)
    order = where(bad.any(-1), bad.to(int64).argmax(-1) + 1, 0)
    if dispatch.tracer() is not None:
        return check_values(bad, _NOT_PD, L, code=order.unsqueeze(-1).unsqueeze(-1))
    failed = order.numpy().reshape(-1)
    if failed.any():
        first = int(np.flatnonzero(failed)[0])
        batch = f"(Batch element {first}): " if a.ndim > 2 else ""
        raise LinAlgError(_NOT_PD.replace("linalg.cholesky: ", "linalg.cholesky: " + batch)
                          .format(index=int(failed[first])))
    return L


def solve_lower(l, b):
    """x with l @ x == b, for l lower triangular (..., n, n) and b (..., n) (forward substitution)."""
    n = l.shape[-1]
    xs = []
    for i in range(n):
        r = b[..., i]
        if i:
            r = r - (l[..., i, :i] * stack(xs, -1)).sum(-1)
        xs.append(r / l[..., i, i])
    return stack(xs, -1)


def solve_lower_matrix(l, b):
    """x with l @ x == b for a matrix right-hand side b (..., n, m)."""
    return solve_lower(l.unsqueeze(-3), b.transpose(-1, -2)).transpose(-1, -2)


def lower_inverse(l):
    """The inverse of a lower-triangular (..., n, n) matrix (lower triangular too)."""
    n = l.shape[-1]
    return solve_lower_matrix(l, eye(n, dtype=l.dtype, device=l.device).expand(l.shape))
