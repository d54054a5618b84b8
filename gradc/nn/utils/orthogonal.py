"""parametrizations.orthogonal (PyTorch's parametrization): a matrix (or a batch) kept orthogonal
through the matrix exponential or the Cayley map of a skew-symmetric matrix, or a product of
Householder reflections, by default relative to a `base` found when the parametrization is
registered or assigned (use_trivialization). The maps are written here with tensor ops:

- matrix_exp: scaling and squaring of a degree-18 Taylor polynomial. The number of squarings
  depends on the matrix's norm; it is a select over a fixed 16 squarings, so a compiled program is
  the same for every value (norms up to 2**16).
- cayley: (I - A/2)^-1 (I + A/2) by Gaussian elimination without pivoting, stable here because the
  symmetric part of I - A/2 is the identity.
- householder: H_1 ... H_k, H_i = I - tau_i v_i v_i^T.

Each loops in Python over the matrix's size (O(n) to O(n^2) tensor ops): meant for the small and
medium matrices of layers, not for large ones. Assigning to the weight orthogonalises the value
with a QR factorisation (NumPy's, eagerly)."""
import math

import numpy as np

from ...errors import GradcError
from ...functions import cat, eye, randn, stack, tensor, where, zeros, zeros_like
from ...grad_mode import no_grad
from ...tensor import Tensor
from ..module import Module
from .parametrize import register_parametrization

_MAPS = ("matrix_exp", "cayley", "householder")
_SQUARINGS = 16


def _eye_like(x):
    return eye(x.shape[-1], dtype=x.dtype, device=x.device).expand(x.shape)


def matrix_exp(a):
    """exp(a) for a batch of square matrices (..., n, n)."""
    norm = a.abs().sum(-2).amax(-1)                                   # the 1-norm, per matrix
    s = (norm.clamp(min=1e-30).log() / math.log(2)).ceil().clamp(min=0, max=_SQUARINGS)
    b = a * (2.0 ** (-s)).unsqueeze(-1).unsqueeze(-1)
    i = _eye_like(a)
    q = i
    for k in range(18, 0, -1):                                      # Horner: I + B(I + B/2(I + ...))
        q = i + (b @ q) / k
    for k in range(_SQUARINGS):
        q = where((s > k).unsqueeze(-1).unsqueeze(-1), q @ q, q)
    return q


def solve(m, b):
    """x with m @ x == b (..., n, n) by Gaussian elimination without pivoting."""
    n = m.shape[-1]
    rows = [m[..., i, :] for i in range(n)]
    rhs = [b[..., i, :] for i in range(n)]
    for k in range(n):
        for i in range(k + 1, n):
            f = (rows[i][..., k] / rows[k][..., k]).unsqueeze(-1)
            rows[i], rhs[i] = rows[i] - f * rows[k], rhs[i] - f * rhs[k]
    xs = [None] * n
    for i in range(n - 1, -1, -1):
        r = rhs[i]
        for j in range(i + 1, n):
            r = r - rows[i][..., j:j + 1] * xs[j]
        xs[i] = r / rows[i][..., i:i + 1]
    return stack(xs, -2)


def householder_product(a, tau):
    """The first k columns of H_1 ... H_k, H_i = I - tau_i v_i v_i^T with v_i column i of a below the
    diagonal and 1 on it (LAPACK's convention, as torch.linalg.householder_product)."""
    n, k = a.shape[-2], a.shape[-1]
    unit = eye(n, k, dtype=a.dtype, device=a.device)
    q = eye(n, dtype=a.dtype, device=a.device).expand(a.shape[:-2] + (n, n))
    low = a.tril(-1) + unit
    for i in range(k):
        v = low[..., :, i]
        q = q - (tau[..., i].unsqueeze(-1).unsqueeze(-1) * (q @ v.unsqueeze(-1))) * v.unsqueeze(-2)
    return q[..., :k]


def _qr_orthogonal(x):
    """Q of x's QR factorisation with R's diagonal made positive (unique for full rank), eagerly."""
    a = x.detach().numpy()
    q, r = np.linalg.qr(a)
    d = np.sign(np.diagonal(r, axis1=-2, axis2=-1)).copy()
    d[d == 0] = 1
    return tensor(q * d[..., None, :], dtype=x.dtype, device=x.device)


def _geqrf(x):
    """LAPACK's geqrf of a (..., n, k) matrix, n >= k: (the reflectors below R, tau), eagerly."""
    a = x.detach().numpy().astype(np.float64)
    flat = a.reshape((-1,) + a.shape[-2:])
    hs, taus = [], []
    for m in flat:
        h, tau = np.linalg.qr(m, mode="raw")
        hs.append(h.T)
        taus.append(tau)
    h = np.stack(hs).reshape(a.shape)
    t = np.stack(taus).reshape(a.shape[:-2] + (a.shape[-1],))
    return tensor(h, dtype=x.dtype, device=x.device), tensor(t, dtype=x.dtype, device=x.device)


class _Orthogonal(Module):
    def __init__(self, weight, orthogonal_map, *, use_trivialization=True):
        super().__init__()
        self.shape, self.orthogonal_map = tuple(weight.shape), orthogonal_map
        if use_trivialization:
            self.register_buffer("base", None)

    def forward(self, x):
        n, k = x.shape[-2], x.shape[-1]
        transposed = n < k
        if transposed:
            x = x.transpose(-1, -2)
            n, k = k, n
        if self.orthogonal_map in ("matrix_exp", "cayley"):
            x = x.tril()
            if n != k:
                x = cat([x, zeros(x.shape[:-2] + (n, n - k), dtype=x.dtype, device=x.device)], -1)
            a = x - x.transpose(-1, -2)
            if self.orthogonal_map == "matrix_exp":
                q = matrix_exp(a)
            else:
                i = _eye_like(a)
                q = solve(i - a * 0.5, i + a * 0.5)
            q = q[..., :k] if n != k else q
        else:
            a = x.tril(-1)
            tau = 2.0 / (1.0 + (a * a).sum(-2))
            q = householder_product(a, tau)
            # the diagonal of x holds the signs (1 or -1) of the columns: not differentiated
            q = q * x.diagonal(0, -2, -1).detach().trunc().unsqueeze(-2)
        if "base" in self.__dict__.get("_buffers", {}):
            q = self.base @ q
        return q.transpose(-1, -2) if transposed else q

    def right_inverse(self, q):
        if tuple(q.shape) != self.shape:
            raise GradcError(f"orthogonal: expected a matrix of shape {tuple(self.shape)}, got {tuple(q.shape)}")
        q_init = q
        n, k = q.shape[-2], q.shape[-1]
        transpose = n < k
        if transpose:
            q = q.transpose(-1, -2)
            n, k = k, n
        with no_grad():
            if "base" not in self.__dict__.get("_buffers", {}):
                if self.orthogonal_map != "householder":
                    raise NotImplementedError("it is not possible to assign to the matrix exponential or the "
                                              "Cayley parametrizations when use_trivialization=False")
                a, tau = _geqrf(q)
                d = a.diagonal(0, -2, -1)
                sign = where(tau == 0, -d.sign(), d.sign())   # (LAPACK returns tau 0 for a reflection it skips)
                on = eye(a.shape[-2], a.shape[-1], dtype=a.dtype, device=a.device)
                a = a * (1 - on) + on * sign.unsqueeze(-2)
                return a.transpose(-1, -2) if transpose else a
            if n == k:
                ident = _eye_like(q)
                orthogonal = bool(((q.transpose(-1, -2) @ q - ident).abs() <= 1e-5).bool().logical_not().sum() == 0)
                q = q.clone() if orthogonal else _qr_orthogonal(q)
            else:
                extra = randn(q.shape[:-2] + (n, n - k), dtype=q.dtype, device=q.device)
                q = _qr_orthogonal(cat([q, extra], -1))
            self.base = q
            neg_id = zeros_like(q_init) - eye(q_init.shape[-2], q_init.shape[-1], dtype=q_init.dtype,
                                               device=q_init.device)
            return neg_id


def orthogonal(module, name="weight", orthogonal_map=None, *, use_trivialization=True):
    """Keep module.<name> orthogonal (its rows or columns, whichever are fewer, orthonormal)."""
    weight = getattr(module, name, None)
    if not isinstance(weight, Tensor):
        raise GradcError(f"orthogonal: {type(module).__name__} has no parameter or buffer named '{name}'")
    if weight.ndim < 2:
        raise GradcError(f"orthogonal: expected a matrix or a batch of matrices, got a tensor of {weight.ndim} "
                         "dimensions")
    if orthogonal_map is None:
        orthogonal_map = "matrix_exp" if weight.shape[-2] == weight.shape[-1] else "householder"
    if orthogonal_map not in _MAPS:
        raise GradcError(f"orthogonal: orthogonal_map must be one of {', '.join(map(repr, _MAPS))}, got "
                         f"{orthogonal_map!r}")
    register_parametrization(module, name, _Orthogonal(weight, orthogonal_map,
                                                       use_trivialization=use_trivialization), unsafe=True)
    return module
