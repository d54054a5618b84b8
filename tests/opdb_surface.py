"""Op-database rows for the tensor surface and the losses real scripts use (composites of the
primitives): registered into opdb.ROWS, so gradcheck, eager vs compiled, PyTorch parity and the
CUDA host check iterate them like every other row."""
import math

import numpy as np

import gradc
import gradc.nn.functional as F
from opdb import S, _tF, _torch, away0, distinct, op, positive, randn


def _idx(rng, shape, n):
    return rng.integers(0, n, shape).astype(np.int64)


def _t(name):
    return lambda *a, **k: getattr(_torch(), name)(*a, **k)


def _m(name):
    return lambda x, *a, **k: getattr(x, name)(*a, **k)


op("tril", lambda x, **k: gradc.tril(x, **k), lambda rng: [S(randn(rng, (4, 5))), S(randn(rng, (2, 3, 3)), diagonal=-1)],
   ref=lambda x, diagonal=0: np.tril(x, diagonal), torch_fn=_t("tril"))
op("triu", lambda x, **k: gradc.triu(x, **k), lambda rng: [S(randn(rng, (4, 5))), S(randn(rng, (2, 3, 3)), diagonal=1)],
   ref=lambda x, diagonal=0: np.triu(x, diagonal), torch_fn=_t("triu"))
op("masked_fill", lambda x, m, value: x.masked_fill(m, value),
   lambda rng: [S(randn(rng, (3, 4)), rng.random((3, 4)) > 0.5, value=-2.0),
                S(randn(rng, (2, 3, 4)), rng.random((4,)) > 0.5, value=0.0)],
   ref=lambda x, m, value: np.where(m, value, x), torch_fn=lambda x, m, value: x.masked_fill(m, value))
op("gather", lambda x, i, dim: gradc.gather(x, dim, i),
   lambda rng: [S(randn(rng, (3, 4, 5)), _idx(rng, (3, 2, 5), 4), dim=1), S(randn(rng, (4, 3)), _idx(rng, (2, 3), 4), dim=0)],
   ref=lambda x, i, dim: np.take_along_axis(x, i, dim), torch_fn=lambda x, i, dim: _torch().gather(x, dim, i))
op("scatter_add", lambda x, i, src, dim: x.scatter_add(dim, i, src),
   lambda rng: [S(randn(rng, (3, 4)), _idx(rng, (2, 4), 3), randn(rng, (2, 4)), dim=0)],
   torch_fn=lambda x, i, src, dim: x.scatter_add(dim, i, src))
op("index_select", lambda x, i, dim: x.index_select(dim, i),
   lambda rng: [S(randn(rng, (4, 5)), _idx(rng, (6,), 5), dim=1), S(randn(rng, (2, 3, 4)), _idx(rng, (2,), 2), dim=0)],
   ref=lambda x, i, dim: np.take(x, i, axis=dim), torch_fn=lambda x, i, dim: x.index_select(dim, i))
op("roll", lambda x, **k: x.roll(**k), lambda rng: [S(randn(rng, (3, 4)), shifts=1, dims=0),
                                                    S(randn(rng, (2, 3, 4)), shifts=(2, -1), dims=(1, 2)),
                                                    S(randn(rng, (3, 4)), shifts=5)],
   torch_fn=lambda x, **k: x.roll(**k))
op("flip", lambda x, dims: x.flip(dims), lambda rng: [S(randn(rng, (3, 4)), dims=(0,)), S(randn(rng, (2, 3, 4)), dims=(0, 2))],
   ref=lambda x, dims: np.flip(x, dims), torch_fn=lambda x, dims: x.flip(dims))
op("repeat", lambda x, reps: x.repeat(*reps), lambda rng: [S(randn(rng, (2, 3)), reps=(2, 1)), S(randn(rng, (3,)), reps=(2, 2))],
   ref=lambda x, reps: np.tile(x, reps), torch_fn=lambda x, reps: x.repeat(*reps))
op("cumsum", lambda x, dim: x.cumsum(dim), lambda rng: [S(randn(rng, (3, 5)), dim=1), S(randn(rng, (4, 2, 3)), dim=0)],
   ref=lambda x, dim: np.cumsum(x, dim), torch_fn=lambda x, dim: x.cumsum(dim))
op("prod", lambda x, **k: x.prod(**k), lambda rng: [S(away0(rng, (3, 5)), dim=1), S(away0(rng, (2, 3))),
                                                    S(away0(rng, (2, 3, 4)), dim=0, keepdim=True)],
   torch_fn=lambda x, **k: x.prod(**k))
op("logsumexp", lambda x, dim: x.logsumexp(dim), lambda rng: [S(randn(rng, (3, 5)), dim=1), S(randn(rng, (2, 3, 4)), dim=0)],
   torch_fn=lambda x, dim: x.logsumexp(dim))
op("log1p", lambda x: x.log1p(), lambda rng: [S(positive(rng, (3, 4)) - 0.4), S(randn(rng, (5,)) * 1e-6)],
   ref=np.log1p, torch_fn=_m("log1p"))
op("expm1", lambda x: x.expm1(), lambda rng: [S(randn(rng, (3, 4))), S(randn(rng, (5,)) * 1e-6)],
   ref=np.expm1, torch_fn=_m("expm1"))
op("einsum", lambda *xs, eq: gradc.einsum(eq, *xs),
   lambda rng: [S(randn(rng, (2, 3, 4)), randn(rng, (4, 5)), eq="bij,jk->bik"),
                S(randn(rng, (3, 4)), randn(rng, (3, 4)), eq="ij,ij->i"), S(randn(rng, (2, 3)), eq="ij->ji")],
   ref=lambda *xs, eq: np.einsum(eq, *xs), torch_fn=lambda *xs, eq: _torch().einsum(eq, *xs))
op("bmm", lambda a, b: gradc.bmm(a, b), lambda rng: [S(randn(rng, (2, 3, 4)), randn(rng, (2, 4, 5)))],
   ref=np.matmul, torch_fn=_t("bmm"))
op("outer", lambda a, b: gradc.outer(a, b), lambda rng: [S(randn(rng, (3,)), randn(rng, (4,)))],
   ref=np.outer, torch_fn=_t("outer"))
op("norm", lambda x, **k: x.norm(**k), lambda rng: [S(randn(rng, (3, 4))), S(randn(rng, (3, 4)), p=1, dim=1),
                                                    S(distinct(rng, (3, 4)), p=math.inf, dim=0), S(away0(rng, (2, 5)), p=3, dim=1)],
   torch_fn=lambda x, **k: x.norm(**k))
op("nan_to_num", lambda x: (x / (x > 0).double() - 1).nan_to_num(0.5, 9.0, -9.0),
   lambda rng: [S(away0(rng, (3, 4)))], dtypes=("float64",), differentiable=False,
   torch_fn=lambda x: (x / (x > 0).double() - 1).nan_to_num(0.5, 9.0, -9.0))


def _pair(gen_a, gen_b):
    return lambda rng: [S(gen_a(rng, (3, 4)), gen_b(rng, (3, 4)), reduction=r) for r in ("mean", "sum", "none")]


def _probs(rng, shape):
    return rng.uniform(0.05, 0.95, shape)


def _bits(rng, shape):
    return (rng.random(shape) > 0.5).astype(np.float64)


def _logp(rng, shape):
    return np.log(rng.dirichlet(np.ones(shape[-1]), shape[:-1]))


def _dist(rng, shape):
    return rng.dirichlet(np.ones(shape[-1]), shape[:-1])


for _name, _a, _b in (("l1_loss", randn, randn), ("smooth_l1_loss", randn, randn), ("huber_loss", randn, randn),
                      ("binary_cross_entropy", _probs, _bits), ("binary_cross_entropy_with_logits", randn, _bits),
                      ("kl_div", _logp, _dist)):
    op(_name, lambda a, b, _n=_name, **k: getattr(F, _n)(a, b, **k), _pair(_a, _b),
       torch_fn=lambda a, b, _n=_name, **k: getattr(_tF(), _n)(a, b, **k), grad_args=(0,))
op("cosine_similarity", lambda a, b, dim=1: F.cosine_similarity(a, b, dim),
   lambda rng: [S(randn(rng, (3, 4)), randn(rng, (3, 4))), S(randn(rng, (2, 3, 4)), randn(rng, (2, 3, 4)), dim=-1)],
   torch_fn=lambda a, b, dim=1: _tF().cosine_similarity(a, b, dim))


# ---------------------------------------------------------------------- spellings third-party scripts use
op("narrow", lambda x, **k: x.narrow(**k), lambda rng: [S(randn(rng, (4, 5)), dim=1, start=1, length=3),
                                                        S(randn(rng, (3, 2, 4)), dim=0, start=-2, length=2)],
   torch_fn=lambda x, **k: x.narrow(**k))
op("select", lambda x, dim, index: x.select(dim, index),
   lambda rng: [S(randn(rng, (3, 4, 2)), dim=1, index=2), S(randn(rng, (3, 4)), dim=0, index=-1)],
   torch_fn=lambda x, dim, index: x.select(dim, index))
op("addmm", lambda c, a, b, **k: gradc.addmm(c, a, b, **k),
   lambda rng: [S(randn(rng, (3, 5)), randn(rng, (3, 4)), randn(rng, (4, 5)), beta=0.5, alpha=2.0),
                S(randn(rng, (5,)), randn(rng, (3, 4)), randn(rng, (4, 5)))],
   torch_fn=lambda c, a, b, **k: _torch().addmm(c, a, b, **k))
op("baddbmm", lambda c, a, b, **k: gradc.baddbmm(c, a, b, **k),
   lambda rng: [S(randn(rng, (2, 3, 5)), randn(rng, (2, 3, 4)), randn(rng, (2, 4, 5)), alpha=0.5)],
   torch_fn=lambda c, a, b, **k: _torch().baddbmm(c, a, b, **k))
op("repeat_interleave", lambda x, **k: x.repeat_interleave(**k),
   lambda rng: [S(randn(rng, (2, 3)), repeats=2, dim=1), S(randn(rng, (2, 3)), repeats=3)],
   torch_fn=lambda x, **k: x.repeat_interleave(**k))
op("tile", lambda x, reps: x.tile(reps), lambda rng: [S(randn(rng, (2, 3)), reps=(2, 1, 2)), S(randn(rng, (3,)), reps=(2,))],
   ref=lambda x, reps: np.tile(x, reps), torch_fn=lambda x, reps: x.tile(reps))
op("diag", lambda x, **k: gradc.diag(x, **k),
   lambda rng: [S(randn(rng, (4, 5)), diagonal=1), S(randn(rng, (4, 3)), diagonal=-1), S(randn(rng, (3,)), diagonal=-1)],
   ref=lambda x, diagonal=0: np.diag(x, diagonal), torch_fn=lambda x, **k: _torch().diag(x, **k))
op("cumprod", lambda x, dim: x.cumprod(dim), lambda rng: [S(away0(rng, (3, 5)), dim=1), S(away0(rng, (4, 2, 3)), dim=0)],
   ref=lambda x, dim: np.cumprod(x, dim), torch_fn=lambda x, dim: x.cumprod(dim))
op("lerp", lambda a, b, weight: a.lerp(b, weight), lambda rng: [S(randn(rng, (3, 4)), randn(rng, (3, 4)), weight=0.3)],
   torch_fn=lambda a, b, weight: a.lerp(b, weight))
op("pixel_shuffle", lambda x, r: F.pixel_shuffle(x, r), lambda rng: [S(randn(rng, (2, 8, 2, 3)), r=2)],
   torch_fn=lambda x, r: _tF().pixel_shuffle(x, r))
