"""Batched matrix multiply (NumPy matmul semantics for operands of rank >= 2), and what LAPACK
(NumPy) or cuSOLVER (CuPy) compute: linalg.solve, inverse, det, slogdet, svd, eigh and qr."""

import numpy as np

from .. import dispatch
from ..dispatch import Value
from .. import dtypes as D
from ..errors import DTypeError, LinAlgError, ShapeError
from .frontend import cast
from .primitive import primitive
from .rules import broadcast_shapes, floating, same_dtype
from ..return_types import return_type
from ..shapes import shape_or


def _matmul_shape(shapes):
    a, b = shapes
    if len(a) < 2 or len(b) < 2:
        raise ShapeError(f"matmul: the primitive needs operands of rank >= 2, got {tuple(a)} and {tuple(b)}")
    if a[-1] != b[-2]:
        raise ShapeError(f"matmul: shapes {tuple(a)} and {tuple(b)} cannot be multiplied "
                         f"({a[-1]} columns vs {b[-2]} rows)")
    return broadcast_shapes("matmul", [a[:-2], b[:-2]]) + (a[-2], b[-1])


def _blas_ready(xp, a):
    """`a`, or a contiguous copy when its last two dims are not a BLAS matrix (e.g. the zero strides
    of an expanded gradient), which would send NumPy down a loop ~20x slower than sgemm."""
    if a.ndim > 2:
        # NumPy's stacked matmul takes its BLAS path only for contiguous stacks; a strided stack
        # (heads split out of a fused qkv projection) runs a plain loop ~500x slower than a copy.
        return a if a.flags.c_contiguous else xp.ascontiguousarray(a)
    (rs, cs), item = a.strides[-2:], a.itemsize
    if (cs == item and rs >= a.shape[-1] * item) or (rs == item and cs >= a.shape[-2] * item):
        return a
    return xp.ascontiguousarray(a)


def _matmul_kernel(xp, a, b, out=None):
    if xp is np and a.dtype == np.float16:
        # NumPy has no float16 BLAS (its loop is ~25x slower): multiply in float32, round once.
        res = np.matmul(a.astype(np.float32), b.astype(np.float32)).astype(np.float16)
        if out is None:
            return res
        out[...] = res
        return out
    return xp.matmul(_blas_ready(xp, a), _blas_ready(xp, b), out=out)


matmul_p = primitive("matmul", "matmul", 2, lambda shapes: _matmul_shape(shapes), same_dtype("matmul"),
                     _matmul_kernel, saves=(0, 1), amp="fp16")


@matmul_p.def_vjp
def _matmul_vjp(ctx, g):
    a, b = ctx.inputs
    gb = None
    if ctx.needs[1]:
        # A gradient in its operand's layout: for x @ w.t() (F.linear) the operand is a transposed
        # view, and (g.T @ x).T makes the weight's gradient come back contiguous (no strided copy).
        gb = (g.mT @ a).mT if _transposed(b) else a.mT @ g
    return (g @ b.mT if ctx.needs[0] else None, gb)


def _transposed(t):
    d = t._data
    return d is not None and d.ndim == 2 and d.flags.f_contiguous and not d.flags.c_contiguous


# ---------------------------------------------------------------------- public names
@matmul_p.def_frontend("matmul", "__matmul__")
def matmul(input, other):
    a, b = input, other
    if not isinstance(a, Value) or not isinstance(b, Value):
        raise DTypeError("matmul: both operands must be tensors")
    if a.ndim == 0 or b.ndim == 0:
        raise ShapeError(f"matmul: both operands need at least 1 dim, got shapes {tuple(a.shape)} and {tuple(b.shape)}")
    if a.dtype is not b.dtype:
        dtype = D.promote(a.dtype, b.dtype)
        low = dispatch.low_precision()
        if low is None or not (a.dtype.is_floating_point and b.dtype.is_floating_point):
            # as torch: no promotion (a float64 input to a float32 Linear is a mistake to name)
            raise DTypeError(f"matmul: expected both operands to have the same dtype, got {a.dtype!r} and {b.dtype!r}; "
                             f"convert one with .to({dtype!r}) (or the model with .double()/.float())")
        if dtype is D.float32:
            # float16 @ float32 under autocast: cast the float32 side down (where autocast takes it
            # anyway), not the float16 side up and back down
            dtype = low
        a, b = cast(a, dtype), cast(b, dtype)
    if a.ndim == 1 and b.ndim == 1:
        _check_inner(a, b, a.shape[0], b.shape[0])
        return matmul(a.reshape(1, -1), b.reshape(-1, 1)).reshape(())
    if a.ndim == 1:
        return matmul(a.unsqueeze(0), b).squeeze(-2)
    if b.ndim == 1:
        return matmul(a, b.unsqueeze(-1)).squeeze(-1)
    _check_inner(a, b, a.shape[-1], b.shape[-2])
    if b.ndim == 2 and a.ndim > 2:
        # Fold batch dims into rows: one GEMM, and the weight gradient needs no batch reduction.
        return matmul_p.bind(a.reshape(-1, a.shape[-1]), b).reshape(a.shape[:-1] + (b.shape[-1],))
    return matmul_p.bind(a, b)


matmul_p.def_frontend("__rmatmul__", function=False)(lambda input, other: matmul(other, input))


@matmul_p.def_frontend("mm")
def mm(input, mat2):
    a, b = input, mat2
    if not isinstance(a, Value) or not isinstance(b, Value) or a.ndim != 2 or b.ndim != 2:
        raise ShapeError(f"mm needs two 2-D tensors, got shapes {shape_or(a, type(a).__name__)} and "
                         f"{shape_or(b, type(b).__name__)}; use matmul for 1-D or batched operands")
    return matmul(a, b)


def _check_inner(a, b, k1, k2):
    if k1 != k2:
        raise ShapeError(f"matmul: shapes {tuple(a.shape)} and {tuple(b.shape)} cannot be multiplied ({k1} != {k2}); "
                         "the last dim of the first must equal the second-to-last of the second")


# ---------------------------------------------------------------------- solve, det, slogdet
# LAPACK (NumPy) or cuSOLVER (CuPy) per call; float16 is computed in float32. A singular matrix
# raises LinAlgError as PyTorch's does, eagerly and when a compiled program runs.
def _square(name, shape):
    if len(shape) < 2 or shape[-1] != shape[-2]:
        raise ShapeError(f"{name}: expects square matrices (..., n, n), got shape {tuple(shape)}")


def _solve_shape(shapes):
    a, b = shapes
    _square("linalg.solve", a)
    if len(b) < 2 or b[-2] != a[-1]:
        raise ShapeError(f"linalg.solve: A of shape {tuple(a)} and B of shape {tuple(b)} do not fit "
                         f"(B needs {a[-1]} rows)")
    return broadcast_shapes("linalg.solve", [a[:-2], b[:-2]]) + tuple(b[-2:])


def _lapack(*arrays):
    """The operands in a dtype LAPACK takes (float16 as float32)."""
    return [a.astype(np.float32) if a.dtype == np.float16 else a for a in arrays]


def _into(res, out):
    """A kernel's result, or `out` holding it (a planned buffer)."""
    if out is None:
        return res
    out[...] = res
    return out


def _singular(name, error=None):
    return LinAlgError(f"{name}: The solver failed because the input matrix is singular"
                       f"{f' ({error})' if error else ''}; a matrix with dependent rows or columns has no inverse "
                       "(add a small multiple of the identity, or use a least-squares method)")


def _solve_kernel(xp, a, b, out=None):
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    a2, b2 = _lapack(xp.broadcast_to(a, batch + a.shape[-2:]), xp.broadcast_to(b, batch + b.shape[-2:]))
    if a2.shape[-1] == 0:
        res = xp.zeros(b2.shape, b.dtype)
    else:
        try:
            res = xp.linalg.solve(a2, b2)
        except np.linalg.LinAlgError as e:
            raise _singular("linalg.solve", e) from None
        if xp is not np and not bool(xp.isfinite(res).all()):   # cuSOLVER does not raise: check
            raise _singular("linalg.solve")
    return _into(res.astype(b.dtype, copy=False), out)


solve_p = primitive("linalg_solve", "linalg", 2, lambda shapes: _solve_shape(shapes), floating("linalg.solve"),
                    _solve_kernel, saves=(0, "out"))


@solve_p.def_vjp
def _solve_vjp(ctx, g):
    a, x = ctx.inputs[0], ctx.out
    gb = solve_p.bind(a.mT, g)          # A^T gB = g
    return (-(gb @ x.mT) if ctx.needs[0] else None, gb if ctx.needs[1] else None)


def _det_kernel(xp, a, out=None):
    (a2,) = _lapack(a)
    res = xp.linalg.det(a2) if a.shape[-1] else xp.ones(a.shape[:-2], a2.dtype)
    return _into(xp.asarray(res).astype(a.dtype, copy=False), out)


def _batch_shape(name):
    def rule(shapes):
        _square(name, shapes[0])
        return tuple(shapes[0][:-2])
    return rule


det_p = primitive("det", "linalg", 1, _batch_shape("linalg.det"), floating("linalg.det"), _det_kernel,
                  saves=(0, "out"))


@det_p.def_vjp
def _det_vjp(ctx, g):
    # d det(A) = det(A) tr(A^-1 dA): the gradient is g det(A) A^-T (infinite for a singular A)
    a = ctx.inputs[0]
    return ((g * ctx.out).unsqueeze(-1).unsqueeze(-1) * inverse_t(a),)


def _slogdet_kernel(xp, a, sign, out=None):
    (a2,) = _lapack(a)
    if a.shape[-1]:
        parts = xp.linalg.slogdet(a2)
    else:
        parts = xp.ones(a.shape[:-2], a2.dtype), xp.zeros(a.shape[:-2], a2.dtype)
    return _into(xp.asarray(parts[0 if sign else 1]).astype(a.dtype, copy=False), out)


_slogdet_shape = _batch_shape("linalg.slogdet")
slogdet_p = primitive("slogdet", "linalg", 1, lambda shapes, sign: _slogdet_shape(shapes),
                      floating("linalg.slogdet"), _slogdet_kernel, saves=(0,))


@slogdet_p.def_vjp
def _slogdet_vjp(ctx, g):
    if ctx.attrs["sign"]:   # piecewise constant
        return (None,)
    return (g.unsqueeze(-1).unsqueeze(-1) * inverse_t(ctx.inputs[0]),)


def inverse_t(a):
    """A^-T, solved against the identity."""
    return solve_p.bind(a.mT, cast(_eye_like(a), a.dtype).expand(tuple(a.shape)))


def _float_matrices(name, a):
    if not isinstance(a, Value):
        raise DTypeError(f"{name} expects a tensor, got {type(a).__name__}")
    _square(name, a.shape)
    if not a.dtype.is_floating_point:
        raise DTypeError(f"{name}: expects a floating-point tensor, got {a.dtype!r}; convert with .float()")


@det_p.def_frontend("det")
def det(input):
    """The determinant of each square matrix of `input` (..., n, n)."""
    _float_matrices("linalg.det", input)
    return det_p.bind(input)


slogdet_result = return_type("slogdet", ["sign", "logabsdet"])


@slogdet_p.def_frontend("slogdet")
def slogdet(input):
    """(sign, log |det|) of each square matrix: the log-determinant without overflow or underflow."""
    _float_matrices("linalg.slogdet", input)
    return slogdet_result(slogdet_p.bind(input, sign=True), slogdet_p.bind(input, sign=False))


@slogdet_p.def_frontend("logdet")
def logdet(input):
    """log det: NaN for a negative determinant and -inf for a zero one, as PyTorch's."""
    sign, logabs = slogdet(input)
    return logabs + sign.log()   # (log of the sign: 0, NaN or -inf; the sign has no gradient)


@solve_p.def_frontend("inverse")
def inverse(input):
    """The inverse of each square matrix (solved against the identity); a singular one raises LinAlgError."""
    _float_matrices("linalg.inv", input)
    return inverse_t(input.mT)


def solve(A, B, left=True):
    """X with A @ X == B (left) or X @ A == B; B a batch of vectors (..., n) when it has one dim
    fewer than A (or is 1-D), else of matrices (..., n, k); batch dims broadcast."""
    _float_matrices("linalg.solve", A)
    if not isinstance(B, Value):
        raise DTypeError(f"linalg.solve: B must be a tensor, got {type(B).__name__}")
    if A.dtype is not B.dtype:
        raise DTypeError(f"linalg.solve: A is {A.dtype!r} and B is {B.dtype!r}; give both the same dtype")
    vector = B.ndim == 1 or (B.ndim == A.ndim - 1 and tuple(B.shape) == tuple(A.shape[:-1]))
    if not left:
        if vector:
            raise ShapeError("linalg.solve: left=False needs B to be a matrix (..., k, n)")
        return solve_p.bind(A.mT, B.mT).mT
    if vector:
        return solve_p.bind(A, B.unsqueeze(-1)).squeeze(-1)
    return solve_p.bind(A, B)


# ---------------------------------------------------------------------- svd, eigh, qr
# One primitive per factor, each a LAPACK call (NumPy or CuPy): the factors a caller does not use
# cost nothing, and each factor's VJP is the part of the decomposition's gradient it feeds (they
# add up to the whole). The gradients are the real-valued formulas of the SVD, symmetric
# eigendecomposition and QR; like PyTorch's they are undefined at repeated singular values or
# eigenvalues (inf or nan there).
def _factor(xp, fn, a, part, out=None):
    (a2,) = _lapack(a)
    return _into(xp.asarray(fn(a2)[part]).astype(a.dtype, copy=False), out)


def _svd_shape(shapes, part, full):
    a = shapes[0]
    if len(a) < 2:
        raise ShapeError(f"linalg.svd: expects matrices (..., m, n), got shape {tuple(a)}")
    m, n = a[-2], a[-1]
    k = min(m, n)
    return tuple(a[:-2]) + ((m, m if full else k), (k,), (n if full else k, n))[part]


svd_p = primitive("svd", "linalg", 1, lambda shapes, part, full: _svd_shape(shapes, part, full),
                  floating("linalg.svd"),
                  lambda xp, a, part, full, out=None: _factor(xp, lambda m: xp.linalg.svd(m, full_matrices=full), a,
                                                              part, out), saves=(0,))


def _svd_factors(a):
    return tuple(svd_p.bind(a, part=i, full=False) for i in range(3))


def _off_diagonal_inverse(d):
    """F with F[i, j] = 1 / (d[j] - d[i]) off the diagonal and 0 on it."""
    diff = d.unsqueeze(-2) - d.unsqueeze(-1)
    eye = cast(_eye_like(d), d.dtype)
    return (diff + eye).reciprocal() * (1 - eye)


@svd_p.def_vjp
def _svd_vjp(ctx, g):
    part, a = ctx.attrs["part"], ctx.inputs[0]
    m, n = a.shape[-2], a.shape[-1]
    if ctx.attrs["full"] and part != 1 and m != n:
        raise ShapeError("linalg.svd: the gradient of U or Vh with full_matrices=True is not defined for a "
                         "non-square matrix (as in PyTorch); pass full_matrices=False")
    u, s, vh = _svd_factors(a)
    if part == 1:   # dA = U diag(gS) Vh
        return ((u * g.unsqueeze(-2)) @ vh,)
    if ctx.attrs["full"]:
        g = g[..., :, :min(m, n)] if part == 0 else g[..., :min(m, n), :]
    f = _off_diagonal_inverse(s * s)
    if part == 0:   # U [F o (U^T gU - gU^T U)] S Vh + (I - U U^T) gU S^-1 Vh
        ut_g = u.mT @ g
        inner = (f * (ut_g - ut_g.mT)) * s.unsqueeze(-2)
        rest = (g - u @ ut_g) / s.unsqueeze(-2)
        return ((u @ inner + rest) @ vh,)
    # gV = gVh^T: U S [F o (V^T gV - gV^T V)] Vh + U S^-1 gVh (I - V Vh)
    v, gv = vh.mT, g.mT
    vt_g = v.mT @ gv
    inner = s.unsqueeze(-1) * (f * (vt_g - vt_g.mT))
    rest = (g - (g @ v) @ vh) / s.unsqueeze(-1)
    return (u @ (inner @ vh + rest),)


def _eigh_shape(shapes, part):
    _square("linalg.eigh", shapes[0])
    return tuple(shapes[0][:-1]) if part == 0 else tuple(shapes[0])


eigh_p = primitive("eigh", "linalg", 1, lambda shapes, part: _eigh_shape(shapes, part), floating("linalg.eigh"),
                   lambda xp, a, part, out=None: _factor(xp, lambda m: xp.linalg.eigh(m, UPLO="L"), a, part, out),
                   saves=(0,))


@eigh_p.def_vjp
def _eigh_vjp(ctx, g):
    # A = V diag(w) V^T from A's lower triangle; the gradient, symmetric as PyTorch's:
    # sym(V (diag(gw) + F o (V^T gV)) V^T), F[i, j] = 1 / (w[j] - w[i])
    a = ctx.inputs[0]
    w, v = eigh_p.bind(a, part=0), eigh_p.bind(a, part=1)
    inner = g.unsqueeze(-1) * cast(_eye_like(w), w.dtype) if ctx.attrs["part"] == 0 else \
        _off_diagonal_inverse(w) * (v.mT @ g)
    x = v @ inner @ v.mT
    return ((x + x.mT) * 0.5,)


def _eye_like(d):
    return dispatch.interpreter().constant(np.eye(int(d.shape[-1]), dtype=bool), D.bool_, d.device)


def _qr_shape(shapes, part, complete):
    a = shapes[0]
    if len(a) < 2:
        raise ShapeError(f"linalg.qr: expects matrices (..., m, n), got shape {tuple(a)}")
    m, n = a[-2], a[-1]
    k = m if complete else min(m, n)
    return tuple(a[:-2]) + ((m, k) if part == 0 else (k, n))


qr_p = primitive("qr", "linalg", 1, lambda shapes, part, complete: _qr_shape(shapes, part, complete),
                 floating("linalg.qr"),
                 lambda xp, a, part, complete, out=None: _factor(
                     xp, lambda m: xp.linalg.qr(m, mode="complete" if complete else "reduced"), a, part, out),
                 saves=(0,))


@qr_p.def_vjp
def _qr_vjp(ctx, g):
    # reduced QR of a tall (or square) A: M = R gR^T - gQ^T Q, gA = (gQ + Q copyltu(M)) R^-T
    a = ctx.inputs[0]
    m, n = a.shape[-2], a.shape[-1]
    if m < n or (ctx.attrs["complete"] and m != n):
        raise ShapeError(f"linalg.qr: the gradient is defined for a reduced QR of a matrix with at least as many "
                         f"rows as columns (as in PyTorch), got shape {tuple(a.shape)}")
    q, r = qr_p.bind(a, part=0, complete=False), qr_p.bind(a, part=1, complete=False)
    gq, gr = (g, None) if ctx.attrs["part"] == 0 else (None, g)
    mm = -(gq.mT @ q) if gr is None else r @ gr.mT
    lower = _tril(mm, -1)
    sym = lower + lower.mT + mm * cast(_eye_like(mm[..., 0]), mm.dtype)
    b = q @ sym if gq is None else gq + q @ sym
    return (solve_p.bind(r, b.mT).mT,)   # B R^-T


def _tril(x, k):
    rows = int(x.shape[-2])
    mask = np.tril(np.ones((rows, int(x.shape[-1])), dtype=bool), k)
    return x * cast(dispatch.interpreter().constant(mask, D.bool_, x.device), x.dtype)


svd_result = return_type("svd", ["U", "S", "Vh"])
eigh_result = return_type("eigh", ["eigenvalues", "eigenvectors"])
qr_result = return_type("qr", ["Q", "R"])


def _float_input(name, a):
    if not isinstance(a, Value):
        raise DTypeError(f"{name} expects a tensor, got {type(a).__name__}")
    if a.ndim < 2:
        raise ShapeError(f"{name}: expects matrices (..., m, n), got shape {tuple(a.shape)}")
    if not a.dtype.is_floating_point:
        raise DTypeError(f"{name}: expects a floating-point tensor, got {a.dtype!r}; convert with .float()")


def svd(A, full_matrices=True, *, driver=None):
    """(U, S, Vh) with A = U diag(S) Vh, S descending."""
    _float_input("linalg.svd", A)
    full = bool(full_matrices) and min(A.shape[-2:]) > 0
    return svd_result(*(svd_p.bind(A, part=i, full=full) for i in range(3)))


def svdvals(A, *, driver=None):
    _float_input("linalg.svdvals", A)
    return svd_p.bind(A, part=1, full=False)


def eigh(A, UPLO="L"):
    """(eigenvalues ascending, eigenvectors as columns) of symmetric A, read from its lower (UPLO='L')
    or upper ('U') triangle."""
    _float_matrices("linalg.eigh", A)
    if UPLO not in ("L", "U"):
        raise ValueError(f"linalg.eigh: UPLO must be 'L' or 'U', got {UPLO!r}")
    a = A if UPLO == "L" else A.mT
    return eigh_result(eigh_p.bind(a, part=0), eigh_p.bind(a, part=1))


def eigvalsh(A, UPLO="L"):
    return eigh(A, UPLO).eigenvalues


def qr(A, mode="reduced"):
    """(Q, R) with A = Q R, Q with orthonormal columns, R upper triangular; mode 'reduced',
    'complete' or 'r' (R only, Q empty)."""
    _float_input("linalg.qr", A)
    if mode not in ("reduced", "complete", "r"):
        raise ValueError(f"linalg.qr: mode must be 'reduced', 'complete' or 'r', got {mode!r}")
    complete = mode == "complete"
    r = qr_p.bind(A, part=1, complete=complete)
    if mode == "r":
        empty = dispatch.interpreter().constant(np.zeros((0,), dtype=A.dtype.np), A.dtype, A.device)
        return qr_result(empty, r)
    return qr_result(qr_p.bind(A, part=0, complete=complete), r)


# torch's older top-level names (also Tensor methods)
@svd_p.def_frontend("svd")
def legacy_svd(input, some=True, compute_uv=True):
    """torch.svd: (U, S, V) with V, not Vh (reduced unless some=False); without compute_uv, U and V
    are zeros as in PyTorch."""
    u, s, vh = svd(input, full_matrices=not some)
    if not compute_uv:
        return svd_result(u.detach() * 0, s, vh.mT.detach() * 0)
    return svd_result(u, s, vh.mT)


@qr_p.def_frontend("qr")
def legacy_qr(input, some=True):
    return qr(input, "reduced" if some else "complete")
