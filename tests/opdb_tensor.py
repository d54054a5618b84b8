"""Op-database rows for the structural tensor functions (stacking, splitting, indexing, reductions,
products): registered into opdb.ROWS, so gradcheck, eager vs compiled, PyTorch parity and the CUDA
host check iterate them like every other row."""
import math

import numpy as np

import gradc
from opdb import S, _torch, distinct, op, positive, randn


def _both(name):
    """(gradc fn, torch fn) calling the same-named function of each library."""
    return (lambda *a, **k: getattr(gradc, name)(*a, **k)), (lambda *a, **k: getattr(_torch(), name)(*a, **k))


def _meth(name):
    return lambda x, *a, **k: getattr(x, name)(*a, **k)


def row(name, sample_fn, fn=None, torch_fn=None, **kw):
    g, t = _both(name)
    op(name, fn or g, sample_fn, torch_fn=torch_fn or t, **kw)


def _idx(rng, shape, n):
    return rng.integers(0, n, shape).astype(np.int64)


def _perm(rng, n, k):
    return rng.permutation(n)[:k].astype(np.int64)


# ---------------------------------------------------------------------- stacking, splitting, re-orienting
def _reshuffles(lib):
    """atleast_Nd, h/v/d/column_stack, h/v/dsplit, swapaxes/swapdims/moveaxis/ravel and fliplr/flipud:
    pure re-arrangements, one row between them (each row sample costs a few compiles)."""
    def fn(a, b, c, x):
        out = (lib.atleast_1d(a),) + lib.atleast_2d(b, c) + (lib.atleast_3d(c),)
        out += tuple(getattr(lib, n)([b, b * 2]) for n in ("hstack", "vstack", "dstack", "column_stack"))
        out += lib.hsplit(x, 3) + lib.vsplit(x, [1, 3]) + lib.dsplit(x, 2)
        out += (lib.swapaxes(x, 0, 2), lib.swapdims(x, 1, 2), lib.moveaxis(x, (0, 1), (2, 0)), lib.ravel(x))
        return out + (lib.fliplr(c), lib.flipud(c))
    return fn


op("reshuffles", _reshuffles(gradc), lambda rng: [S(randn(rng, ()), randn(rng, (3,)), randn(rng, (2, 3)),
                                                    randn(rng, (4, 6, 2)))],
   torch_fn=lambda *xs: _reshuffles(_torch())(*xs))
row("tensor_split", lambda rng: [S(randn(rng, (3, 6)), sections=[1, 4, 2], dim=1)],
    fn=lambda x, sections, **k: gradc.tensor_split(x, sections, **k),
    torch_fn=lambda x, sections, **k: _torch().tensor_split(x, sections, **k))
row("rot90", lambda rng: [S(randn(rng, (3, 4))), S(randn(rng, (2, 3, 4)), k=3, dims=[1, 2])])
op("fliplr_flipud", lambda x: (gradc.fliplr(x), gradc.flipud(x)), lambda rng: [S(randn(rng, (3, 4)))],
   torch_fn=lambda x: (_torch().fliplr(x), _torch().flipud(x)))
row("broadcast_tensors", lambda rng: [S(randn(rng, (3, 1)), randn(rng, (4,)), randn(rng, (2, 1, 1)))])
row("block_diag", lambda rng: [S(randn(rng, (2, 2)), randn(rng, (3,)), randn(rng, ()), randn(rng, (1, 2)))])
row("cartesian_prod", lambda rng: [S(randn(rng, (2,)), randn(rng, (3,)), randn(rng, (2,)))])
row("combinations", lambda rng: [S(randn(rng, (3,)), r=3, with_replacement=True)])
op("unfold", lambda x, **k: x.unfold(**k), lambda rng: [S(randn(rng, (3, 7)), dimension=1, size=3, step=2)],
   torch_fn=lambda x, **k: x.unfold(**k))
op("sum_to_size", lambda x, size: x.sum_to_size(size), lambda rng: [S(randn(rng, (2, 3, 4)), size=(3, 1))],
   torch_fn=lambda x, size: x.sum_to_size(size))

# ---------------------------------------------------------------------- index-driven writes and lookups
row("index_add", lambda rng: [S(randn(rng, (4, 5)), _idx(rng, (4,), 5), randn(rng, (4, 4)), alpha=2.0)],
    fn=lambda x, i, s, **k: gradc.index_add(x, 1, i, s, **k),
    torch_fn=lambda x, i, s, **k: _torch().index_add(x, 1, i, s, **k))
op("index_copy", lambda x, i, s: x.index_copy(0, i, s),
   lambda rng: [S(randn(rng, (5, 3)), _perm(rng, 5, 3), randn(rng, (3, 3)))],
   torch_fn=lambda x, i, s: x.index_copy(0, i, s))
op("index_fill", lambda x, i, value: x.index_fill(1, i, value),
   lambda rng: [S(randn(rng, (3, 5)), _idx(rng, (3,), 5), value=-1.5)],
   torch_fn=lambda x, i, value: x.index_fill(1, i, value))
op("index_put", lambda x, i, j, v, **k: x.index_put((i, j), v, **k),
   lambda rng: [S(randn(rng, (4, 5)), np.array([0, 2, 3]), np.array([1, 1, 4]), randn(rng, (3,))),
                S(randn(rng, (4, 5)), np.array([0, 0, 3]), np.array([1, 1, 4]), randn(rng, (3,)), accumulate=True)],
   torch_fn=lambda x, i, j, v, **k: x.index_put((i, j), v, **k))
row("take", lambda rng: [S(randn(rng, (3, 4)), np.array([[0, -1, 5], [11, 2, -12]]))])
row("take_along_dim", lambda rng: [S(randn(rng, (3, 4)), _idx(rng, (2, 1), 3), dim=0),
                                   S(randn(rng, (3, 4)), _idx(rng, (5,), 12))])
_SR = (("prod", False), ("mean", False), ("amax", True))   # sum and amin: eager parity in test_tensor_structural
op("scatter_reduce", lambda x, i, s, **k: x.scatter_reduce(0, i, s, **k),
   lambda rng: [S(distinct(rng, (3, 5)), _idx(rng, (2, 5), 3), distinct(rng, (2, 5)) + 0.1, reduce=r, include_self=inc)
                for r, inc in _SR],
   torch_fn=lambda x, i, s, **k: x.scatter_reduce(0, i, s, **k))
op("masked_scatter", lambda x, m, s: x.masked_scatter(m, s),
   lambda rng: [S(randn(rng, (2, 3)), rng.random((3,)) > 0.3, randn(rng, (6,)))],
   torch_fn=lambda x, m, s: x.masked_scatter(m, s))
row("searchsorted", lambda rng: [S(np.array([0., 1., 1., 2., 3.]), np.array([1., 2.5, -1., 3.]), right=True),
                                 S(np.sort(randn(rng, (2, 5)), 1), randn(rng, (2, 3)), side="right")],
    differentiable=False)
row("bucketize", lambda rng: [S(np.array([0., 1., 1.5, 3.]), np.array([0., 1., 2., 3.]), right=True)],
    differentiable=False)
row("isin", lambda rng: [S(np.array([[1., 2.], [3., 4.]]), np.array([4., 1.]), invert=True)], differentiable=False)
row("histc", lambda rng: [S(randn(rng, (4, 5)), bins=4)],
    differentiable=False)

# ---------------------------------------------------------------------- products and distances
def _small_products(lib):
    """addcmul, addcdiv, addr, mv, inner and vdot: one row between them."""
    def fn(x, a, b, pos, v3, v4, m34, t234, t54):
        return (lib.addcmul(x, a, b, value=0.5), lib.addcdiv(x, a, pos, value=2.0), lib.addr(x, v3, v4, alpha=3.0),
                lib.mv(m34, v4), lib.inner(t234, t54), lib.vdot(v4, v4 * v4))
    return fn


op("small_products", _small_products(gradc),
   lambda rng: [S(randn(rng, (3, 4)), randn(rng, (3, 4)), randn(rng, (4,)), positive(rng, (3, 4)), randn(rng, (3,)),
                  randn(rng, (4,)), randn(rng, (3, 4)), randn(rng, (2, 3, 4)), randn(rng, (5, 4)))],
   torch_fn=lambda *xs: _small_products(_torch())(*xs))
row("addbmm", lambda rng: [S(randn(rng, (3, 5)), randn(rng, (2, 3, 4)), randn(rng, (2, 4, 5)), beta=0.5, alpha=2.0)])
row("tensordot", lambda rng: [S(randn(rng, (2, 3, 4)), randn(rng, (4, 2, 5)), dims=([0, 2], [1, 0]))])
row("kron", lambda rng: [S(randn(rng, (2, 3)), randn(rng, (3, 2, 2)))])
row("cross", lambda rng: [S(randn(rng, (3, 2)), randn(rng, (3, 1)), dim=0)])
row("diff", lambda rng: [S(randn(rng, (4, 2)), randn(rng, (1, 2)), n=2, dim=0)],
    fn=lambda x, *p, **k: gradc.diff(x, prepend=p[0] if p else None, **k),
    torch_fn=lambda x, *p, **k: _torch().diff(x, prepend=p[0] if p else None, **k))
row("diagonal", lambda rng: [S(randn(rng, (3, 4, 5)), offset=1, dim1=0, dim2=2),
                             S(randn(rng, (3, 4, 5)), offset=-1, dim1=2, dim2=0)])
row("diag_embed", lambda rng: [S(randn(rng, (2, 3)), offset=1, dim1=0, dim2=2)])
op("trace", lambda x: x.trace(), lambda rng: [S(randn(rng, (3, 4)))], torch_fn=lambda x: x.trace())
row("cdist", lambda rng: [S(randn(rng, (2, 4, 3)), randn(rng, (2, 5, 3))),
                          S(randn(rng, (30, 3)), randn(rng, (4, 3)))])
row("dist", lambda rng: [S(randn(rng, (3, 4)), randn(rng, (4,)), p=3)])
# "pdist" is nn.functional.pdist's row; this one is gradc.pdist's
op("gradc_pdist", lambda x, **k: gradc.pdist(x, **k), lambda rng: [S(randn(rng, (4, 2)), p=1.5)],
   torch_fn=lambda x, **k: _torch().pdist(x, **k))
row("renorm", lambda rng: [S(randn(rng, (3, 4)), p=2, dim=0, maxnorm=1.5)],
    fn=lambda x, **k: gradc.renorm(x, **k), torch_fn=lambda x, **k: _torch().renorm(x, **k))
row("cov", lambda rng: [S(randn(rng, (2, 5)), np.array([1, 2, 1, 3, 1]), positive(rng, (5,)), correction=0)],
    fn=lambda x, *w, **k: gradc.cov(x, fweights=w[0] if w else None, aweights=w[1] if w else None, **k),
    torch_fn=lambda x, *w, **k: _torch().cov(x, fweights=w[0] if w else None, aweights=w[1] if w else None, **k))
row("corrcoef", lambda rng: [S(randn(rng, (3, 6)))])
# torch.vander's own backward fails (it writes into a tensor its gradient needs): values only are compared
row("vander", lambda rng: [S(randn(rng, (3,)), N=4, increasing=True, _torch_grad=False)])

# ---------------------------------------------------------------------- order statistics and running reductions
row("cummax", lambda rng: [S(distinct(rng, (3, 5)), dim=1)])
row("cummin", lambda rng: [S(distinct(rng, (4, 2)), dim=0)])
row("logcumsumexp", lambda rng: [S(randn(rng, (3, 5)) * 30, dim=1)])


def _nan_mask(shape):
    """Where the NaN-handling rows put NaN (the fn writes it in: sample arrays hold no NaN, so the
    database's determinism check can compare them)."""
    m = np.zeros(shape, dtype=bool)
    m.reshape(-1)[1] = True
    return m


def _nan_row(name, sample_fn, **kw):
    row(name, sample_fn, fn=lambda x, m, **k: getattr(gradc, name)(x.masked_fill(m, math.nan), **k),
        torch_fn=lambda x, m, **k: getattr(_torch(), name)(x.masked_fill(m, math.nan), **k), **kw)


_nan_row("nansum", lambda rng: [S(randn(rng, (3, 4)), _nan_mask((3, 4)), dim=1)])
_nan_row("nanmean", lambda rng: [S(randn(rng, (3, 4)), _nan_mask((3, 4)), dim=0, keepdim=True)])
row("median", lambda rng: [S(distinct(rng, (3, 4))), S(distinct(rng, (4, 3)), dim=0, keepdim=True)])
_nan_row("nanmedian", lambda rng: [S(distinct(rng, (3, 4)), _nan_mask((3, 4)), dim=1)])
row("kthvalue", lambda rng: [S(distinct(rng, (4, 3)), k=4, dim=0, keepdim=True)])
row("mode", lambda rng: [S(np.array([[3., 1.], [1., 1.], [3., 2.]]), dim=0, _grad=False)])
row("quantile", lambda rng: [S(distinct(rng, (3, 5)), q=0.3, dim=1),
                             S(distinct(rng, (4, 3)), np.array([0.0, 0.25, 1.0]), dim=0, keepdim=True)],
    fn=lambda x, *q, **k: gradc.quantile(x, q[0] if q else k.pop("q"), **k),
    torch_fn=lambda x, *q, **k: _torch().quantile(x, q[0] if q else k.pop("q"), **k), grad_args=(0,))
_nan_row("nanquantile",
         lambda rng: [S(distinct(rng, (3, 5)), _nan_mask((3, 5)), q=0.4, dim=1, interpolation="nearest")])
row("std_mean", lambda rng: [S(randn(rng, (3, 4)), dim=1)])
row("var_mean", lambda rng: [S(randn(rng, (3, 4)), dim=(0, 1), keepdim=True, correction=0)])
