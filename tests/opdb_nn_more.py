"""Op-database rows for the losses, layers and sampling functions of nn beyond the vision and sequence layers: registered into opdb.ROWS, so gradcheck, eager vs compiled, PyTorch
parity and the CUDA host check iterate them like every other row."""
import numpy as np

import gradc.nn.functional as F
from opdb import S, _tF, away0, distinct, op, randn


def _signs(rng, shape):
    return rng.choice([-1.0, 1.0], shape)


def _pos(rng, shape, lo=0.5, hi=2.0):
    return rng.uniform(lo, hi, shape)


def _loss(name, sample_fn, grad_args=(0,), **kw):
    op(name, lambda *a, _n=name, **k: getattr(F, _n)(*a, **k), sample_fn,
       torch_fn=lambda *a, _n=name, **k: getattr(_tF(), _n)(*a, **k), grad_args=grad_args, **kw)


# ---------------------------------------------------------------------------- margin and embedding losses
_loss("margin_ranking_loss", lambda rng: [S(randn(rng, (6,)), randn(rng, (6,)), _signs(rng, (6,)), margin=0.3)],
      grad_args=(0, 1))
_loss("hinge_embedding_loss", lambda rng: [S(randn(rng, (3, 4)), _signs(rng, (3, 4)), margin=0.5, reduction="sum")])
_loss("soft_margin_loss", lambda rng: [S(randn(rng, (3, 4)), _signs(rng, (3, 4)), reduction="none")])
_loss("cosine_embedding_loss", lambda rng: [S(randn(rng, (4, 5)), randn(rng, (4, 5)), _signs(rng, (4,)), margin=-0.5)],
      grad_args=(0, 1))
_loss("multilabel_soft_margin_loss", lambda rng: [S(randn(rng, (3, 5)), (rng.random((3, 5)) > 0.5) * 1.0)])
_loss("multi_margin_loss", lambda rng: [S(randn(rng, (4, 5)), rng.integers(0, 5, 4), p=2, margin=0.7),
                                        S(randn(rng, (4, 5)), rng.integers(0, 5, 4), reduction="none")])
_loss("multilabel_margin_loss",
      lambda rng: [S(randn(rng, (3, 5)), np.array([[3, 0, -1, 1, 2], [1, 2, 3, 4, 0], [-1, 1, 1, 1, 1]]))])
_loss("triplet_margin_loss", lambda rng: [S(randn(rng, (4, 5)), randn(rng, (4, 5)), randn(rng, (4, 5)), margin=2.0,
                                            swap=True)], grad_args=(0, 1, 2))
_loss("gaussian_nll_loss", lambda rng: [S(randn(rng, (4, 3)), randn(rng, (4, 3)), _pos(rng, (4, 1)), full=True)],
      grad_args=(0, 1, 2))
_loss("poisson_nll_loss", lambda rng: [S(randn(rng, (4, 3)), rng.poisson(2.0, (4, 3)) * 1.0, full=True),
                                       S(_pos(rng, (4, 3)), rng.poisson(2.0, (4, 3)) * 1.0, log_input=False)])
op("pairwise_distance", lambda a, b, **k: F.pairwise_distance(a, b, **k),
   lambda rng: [S(randn(rng, (4, 5)), randn(rng, (4, 5)), p=1.5, keepdim=True)],
   torch_fn=lambda a, b, **k: _tF().pairwise_distance(a, b, **k))
op("pdist", lambda x, **k: F.pdist(x, **k), lambda rng: [S(randn(rng, (5, 3))), S(randn(rng, (4, 3)), p=1.0)],
   torch_fn=lambda x, **k: _tF().pdist(x, **k))


# ---------------------------------------------------------------------------- CTC
def _ctc_samples(rng):
    targets = rng.integers(1, 5, (3, 3))
    targets[1, 1] = targets[1, 0]            # a repeated label needs a blank between its copies
    return [S(randn(rng, (7, 3, 5)), targets, np.array([7, 6, 5]), np.array([3, 2, 1])),
            S(randn(rng, (6, 2, 4)), rng.integers(1, 4, (2, 2)), np.array([6, 2]), np.array([2, 2]),
              reduction="none", zero_infinity=True)]


# PyTorch's CTC backward assumes log_probs come from a log_softmax (see gradc.nn.functional_ctc):
# the row differentiates through one, as every CTC model does
op("ctc_loss", lambda x, t, il, tl, **k: F.ctc_loss(x.log_softmax(2), t, il, tl, **k), _ctc_samples,
   torch_fn=lambda x, t, il, tl, **k: _tF().ctc_loss(x.log_softmax(2), t, il, tl, **k), grad_args=(0,))


# ---------------------------------------------------------------------------- sampling grids
op("affine_grid", lambda theta, **k: F.affine_grid(theta, **k),
   lambda rng: [S(randn(rng, (2, 2, 3)), size=(2, 3, 4, 5), align_corners=False),
                S(randn(rng, (1, 3, 4)), size=(1, 2, 2, 3, 4), align_corners=True)],
   torch_fn=lambda theta, **k: _tF().affine_grid(theta, **k))
op("grid_sample", lambda x, g, **k: F.grid_sample(x, g, **k),
   lambda rng: [S(randn(rng, (2, 3, 4, 5)), rng.uniform(-1.2, 1.2, (2, 3, 2, 2)), padding_mode="zeros",
                  align_corners=False),
                S(randn(rng, (1, 2, 3, 4)), rng.uniform(-1.6, 1.6, (1, 2, 3, 2)), padding_mode="reflection",
                  align_corners=True)],
   torch_fn=lambda x, g, **k: _tF().grid_sample(x, g, **k))
op("grid_sample_nearest_border", lambda x, g, **k: F.grid_sample(x, g, mode="nearest", padding_mode="border", **k),
   lambda rng: [S(randn(rng, (1, 2, 4, 5)), rng.uniform(-1.3, 1.3, (1, 3, 2, 2)), align_corners=False)],
   torch_fn=lambda x, g, **k: _tF().grid_sample(x, g, mode="nearest", padding_mode="border", **k), grad_args=(0,))


# ---------------------------------------------------------------------------- layers
op("bilinear", lambda a, b, w, bias: F.bilinear(a, b, w, bias),
   lambda rng: [S(randn(rng, (3, 4)), randn(rng, (3, 2)), randn(rng, (5, 4, 2)), randn(rng, (5,)))],
   torch_fn=lambda a, b, w, bias: _tF().bilinear(a, b, w, bias))
op("embedding_bag", lambda i, w, o, **k: F.embedding_bag(i, w, o, **k),
   lambda rng: [S(np.array([1, 2, 4, 5, 4, 3, 2, 7]), randn(rng, (8, 3)), np.array([0, 2, 2, 5]), mode="mean"),
                S(np.array([1, 2, 4, 5, 4, 3, 2, 7]), distinct(rng, (8, 3)), np.array([0, 3, 6]), mode="max")],
   torch_fn=lambda i, w, o, **k: _tF().embedding_bag(i, w, o, **k), grad_args=(1,))
op("embedding_bag_weighted", lambda i, w, o, p: F.embedding_bag(i, w, o, mode="sum", per_sample_weights=p),
   lambda rng: [S(np.array([1, 2, 4, 5, 4, 3]), randn(rng, (6, 3)), np.array([0, 2, 2]), randn(rng, (6,)))],
   torch_fn=lambda i, w, o, p: _tF().embedding_bag(i, w, o, mode="sum", per_sample_weights=p), grad_args=(1, 3))
op("channel_shuffle", lambda x, groups: F.channel_shuffle(x, groups), lambda rng: [S(randn(rng, (2, 6, 2, 2)), groups=3)],
   torch_fn=lambda x, groups: _tF().channel_shuffle(x, groups))
op("local_response_norm", lambda x, **k: F.local_response_norm(x, **k),
   lambda rng: [S(randn(rng, (2, 5, 3, 2)), size=3), S(randn(rng, (2, 4, 5)), size=2, alpha=0.1, beta=0.5, k=2.0)],
   torch_fn=lambda x, **k: _tF().local_response_norm(x, **k))
op("lp_pool2d", lambda x, **k: F.lp_pool2d(x, **k), lambda rng: [S(_pos(rng, (2, 2, 5, 4)), norm_type=2, kernel_size=2)],
   torch_fn=lambda x, **k: _tF().lp_pool2d(x, **k))
op("lp_pool1d", lambda x, **k: F.lp_pool1d(x, **k),
   lambda rng: [S(_pos(rng, (2, 3, 7)), norm_type=3, kernel_size=3, stride=2)],
   torch_fn=lambda x, **k: _tF().lp_pool1d(x, **k))
op("adaptive_avg_pool3d", lambda x, output_size: F.adaptive_avg_pool3d(x, output_size),
   lambda rng: [S(randn(rng, (1, 2, 5, 4, 3)), output_size=(2, None, 2))],
   torch_fn=lambda x, output_size: _tF().adaptive_avg_pool3d(x, output_size))
op("rrelu_eval", lambda x: F.rrelu(x, 0.1, 0.3, training=False), lambda rng: [S(away0(rng, (3, 4)))],
   torch_fn=lambda x: _tF().rrelu(x, 0.1, 0.3, training=False))
op("fractional_max_pool2d", lambda x, u, **k: F.fractional_max_pool2d(x, _random_samples=u, **k),
   lambda rng: [S(distinct(rng, (2, 2, 7, 6)), rng.random((2, 2, 2)), kernel_size=2, output_size=(3, 4)),
                S(distinct(rng, (1, 2, 8, 8)), rng.random((1, 2, 2)), kernel_size=3, output_size=(4, 5),
                  return_indices=True)],
   torch_fn=lambda x, u, **k: _tF().fractional_max_pool2d(x, _random_samples=u, **k), grad_args=(0,))
