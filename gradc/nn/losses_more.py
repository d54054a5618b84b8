"""Margin, embedding, distance and likelihood losses (gradc.nn.functional re-exports these) as
composites, with PyTorch's signatures, defaults, reductions ('none' / 'mean' / 'sum') and formulas;
and the distance they use (pairwise_distance)."""
import math

import numpy as np

from .. import dtypes as D
from ..errors import DTypeError, ShapeError
from ..functions import tensor, where
from ..ops import OPS
from ..tensor import Tensor
from .functional_act import logsigmoid, softplus
from .losses import legacy_reduction, reduce_loss


def _shapes_match(name, **tensors):
    items = list(tensors.items())
    first_name, first = items[0]
    for other_name, other in items[1:]:
        if tuple(other.shape) != tuple(first.shape):
            raise ShapeError(f"{name}: {other_name} has shape {tuple(other.shape)} but {first_name} has "
                             f"{tuple(first.shape)}; they must match")


def _red(size_average, reduce, reduction):
    return legacy_reduction(size_average, reduce, reduction)


def margin_ranking_loss(input1, input2, target, margin=0.0, size_average=None, reduce=None, reduction="mean"):
    """max(0, -target * (input1 - input2) + margin), target in {1, -1}."""
    _shapes_match("margin_ranking_loss", input1=input1, input2=input2, target=target)
    loss = (-target * (input1 - input2) + margin).clamp(min=0.0)
    return reduce_loss(loss, _red(size_average, reduce, reduction), "margin_ranking_loss")


def hinge_embedding_loss(input, target, margin=1.0, size_average=None, reduce=None, reduction="mean"):
    """x where target is 1, max(0, margin - x) where it is -1 (PyTorch sums both terms for any
    other target value, and so does this)."""
    _shapes_match("hinge_embedding_loss", input=input, target=target)
    loss = where(target != 1, (margin - input).clamp(min=0.0), 0.0) + where(target != -1, input, 0.0)
    return reduce_loss(loss, _red(size_average, reduce, reduction), "hinge_embedding_loss")


def soft_margin_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    """log(1 + exp(-target * input)), the two-class logistic loss."""
    _shapes_match("soft_margin_loss", input=input, target=target)
    return reduce_loss(softplus(-target * input), _red(size_average, reduce, reduction), "soft_margin_loss")


def cosine_embedding_loss(input1, input2, target, margin=0.0, size_average=None, reduce=None, reduction="mean"):
    """1 - cos(x1, x2) where target is 1, max(0, cos(x1, x2) - margin) where it is -1; inputs
    (N, D) with target (N,), or (D,) with a 0-d target."""
    if input1.ndim not in (1, 2) or tuple(input1.shape) != tuple(input2.shape):
        raise ShapeError(f"cosine_embedding_loss: input1 {tuple(input1.shape)} and input2 {tuple(input2.shape)} "
                         "must be equal (N, D) or (D,) shapes")
    dim = input1.ndim - 1
    if tuple(target.shape) != tuple(input1.shape[:dim]):
        raise ShapeError(f"cosine_embedding_loss: target has shape {tuple(target.shape)}, expected "
                         f"{tuple(input1.shape[:dim])} for inputs of shape {tuple(input1.shape)}")
    eps = 1e-12
    prod = (input1 * input2).sum(dim)
    denom = (((input1 * input1).sum(dim) + eps) * ((input2 * input2).sum(dim) + eps)).sqrt()
    cos = prod / denom
    loss = where(target == 1, 1.0 - cos, 0.0) + where(target == -1, (cos - margin).clamp(min=0.0), 0.0)
    return reduce_loss(loss, _red(size_average, reduce, reduction), "cosine_embedding_loss")


def multilabel_soft_margin_loss(input, target, weight=None, size_average=None, reduce=None, reduction="mean"):
    """-mean over classes of t log sigmoid(x) + (1 - t) log sigmoid(-x), per sample."""
    _shapes_match("multilabel_soft_margin_loss", input=input, target=target)
    loss = -(target * logsigmoid(input) + (1 - target) * logsigmoid(-input))
    if weight is not None:
        loss = loss * weight
    dim = input.ndim - 1
    loss = loss.sum(dim) / float(input.shape[dim])
    return reduce_loss(loss, _red(size_average, reduce, reduction), "multilabel_soft_margin_loss")


def _class_rows(input, target, name):
    """input (N, C) or (C,) with int64 targets (N,) or 0-d: as (N, C) and (N,), and unbatched?"""
    if not isinstance(target, Tensor) or target.dtype is not D.int64:
        raise DTypeError(f"{name}: target must be an int64 tensor of class indices, got "
                         f"{getattr(target, 'dtype', type(target).__name__)!r}")
    unbatched = input.ndim == 1
    x, t = (input.reshape(1, -1), target.reshape(-1)) if unbatched else (input, target)
    if x.ndim != 2 or t.ndim != 1:
        raise ShapeError(f"{name}: expected input (N, C) with target (N,), or (C,) with a 0-d target; got "
                         f"{tuple(input.shape)} and {tuple(target.shape)}")
    return x, t, unbatched


def _check_classes(target, n, name):
    return OPS["check_index"].bind(target, high=int(n), ignore=None, what=f"{name}: target")


def multi_margin_loss(input, target, p=1, margin=1.0, weight=None, size_average=None, reduce=None,
                      reduction="mean"):
    """Per sample: sum over classes j != y of max(0, margin - x[y] + x[j]) ** p (times weight[y]),
    divided by the number of classes."""
    if p not in (1, 2):
        raise ValueError(f"multi_margin_loss: only p == 1 and p == 2 are supported (as in PyTorch), got {p}")
    x, t, unbatched = _class_rows(input, target, "multi_margin_loss")
    if t.shape[0] != x.shape[0]:
        raise ShapeError(f"multi_margin_loss: target has {t.shape[0]} entries but the input {tuple(input.shape)} "
                         f"has {x.shape[0]} rows")
    n_cls = x.shape[1]
    t = _check_classes(t, n_cls, "multi_margin_loss")
    xy = x.gather(1, t.reshape(-1, 1))
    z = (margin - xy + x).clamp(min=0.0)
    if p == 2:
        z = z * z
    if weight is not None:
        z = z * weight.gather(0, t).reshape(-1, 1)
    own = t.reshape(-1, 1) == tensor(np.arange(n_cls), device=x.device).reshape(1, -1)
    loss = where(own, 0.0, z).sum(1) / float(n_cls)
    loss = loss.reshape(()) if unbatched else loss
    return reduce_loss(loss, _red(size_average, reduce, reduction), "multi_margin_loss")


def multilabel_margin_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    """Per sample: sum over its target classes j (the int64 target row up to its first -1) and the
    non-target classes k of max(0, 1 - (x[j] - x[k])), divided by the number of classes."""
    if not isinstance(target, Tensor) or target.dtype is not D.int64:
        raise DTypeError("multilabel_margin_loss: target must be an int64 tensor of class indices padded with -1")
    if tuple(target.shape) != tuple(input.shape) or input.ndim not in (1, 2):
        raise ShapeError(f"multilabel_margin_loss: input {tuple(input.shape)} and target {tuple(target.shape)} "
                         "must both be (N, C) or (C,)")
    unbatched = input.ndim == 1
    x = input.reshape(1, -1) if unbatched else input
    t = target.reshape(1, -1) if unbatched else target
    n_cls = x.shape[1]
    valid = (t >= 0).to(x.dtype).cumprod(1)   # positions before the first -1
    tc = where(valid > 0, t, 0)
    classes = tensor(np.arange(n_cls), device=x.device)
    hit = (tc.unsqueeze(2) == classes.reshape(1, 1, -1)).to(x.dtype) * valid.unsqueeze(2)   # (N, pos, C)
    is_target = hit.amax(1)                                                                  # (N, C)
    # the checked indices feed only the gather traced right after the check: check_index's kernel
    # returns its input array, and a compiled program's buffer plan may hand that (intermediate)
    # array's buffer to a later value while the check's result is still to be read (known bug)
    xt = x.gather(1, _check_classes(tc, n_cls, "multilabel_margin_loss"))                   # (N, pos)
    z = (1.0 - xt.unsqueeze(2) + x.unsqueeze(1)).clamp(min=0.0)
    z = z * valid.unsqueeze(2) * (1.0 - is_target).unsqueeze(1)
    loss = z.sum((1, 2)) / float(n_cls)
    loss = loss.reshape(()) if unbatched else loss
    return reduce_loss(loss, _red(size_average, reduce, reduction), "multilabel_margin_loss")


def pairwise_distance(x1, x2, p=2.0, eps=1e-6, keepdim=False):
    """The p-norm of x1 - x2 + eps over the last dim (PyTorch's formula, eps inside the norm)."""
    if x1.ndim == 0 or x2.ndim == 0:
        raise ShapeError(f"pairwise_distance: inputs need at least one dim, got {tuple(x1.shape)} and "
                         f"{tuple(x2.shape)}")
    if x1.shape[-1] != x2.shape[-1] and 1 not in (x1.shape[-1], x2.shape[-1]):
        raise ShapeError(f"pairwise_distance: the last dims differ: {tuple(x1.shape)} and {tuple(x2.shape)}")
    return (x1 - x2 + eps).norm(p, -1, keepdim)


def triplet_margin_loss(anchor, positive, negative, margin=1.0, p=2, eps=1e-6, swap=False, size_average=None,
                        reduce=None, reduction="mean"):
    """max(0, d(a, p) - d(a, n) + margin) with d the pairwise p-norm distance; swap uses
    min(d(a, n), d(p, n)) as the negative distance."""
    nd = anchor.ndim
    if nd not in (1, 2) or positive.ndim != nd or negative.ndim != nd:
        raise ShapeError(f"triplet_margin_loss: anchor, positive and negative must all be (N, D) or (D,), got "
                         f"{tuple(anchor.shape)}, {tuple(positive.shape)}, {tuple(negative.shape)}")
    d_pos = pairwise_distance(anchor, positive, p, eps)
    d_neg = pairwise_distance(anchor, negative, p, eps)
    if swap:
        d_neg = d_neg.minimum(pairwise_distance(positive, negative, p, eps))
    loss = (margin + d_pos - d_neg).clamp(min=0.0)
    return reduce_loss(loss, _red(size_average, reduce, reduction), "triplet_margin_loss")


def triplet_margin_with_distance_loss(anchor, positive, negative, *, distance_function=None, margin=1.0,
                                      swap=False, reduction="mean"):
    """triplet_margin_loss with any distance (pairwise_distance by default)."""
    if margin <= 0:
        raise ValueError(f"triplet_margin_with_distance_loss: margin must be greater than 0, got {margin}")
    dist = pairwise_distance if distance_function is None else distance_function
    d_pos, d_neg = dist(anchor, positive), dist(anchor, negative)
    if swap:
        d_neg = d_neg.minimum(dist(positive, negative))
    return reduce_loss((margin + d_pos - d_neg).clamp(min=0.0), reduction, "triplet_margin_with_distance_loss")


def gaussian_nll_loss(input, target, var, full=False, eps=1e-6, reduction="mean"):
    """0.5 * (log(max(var, eps)) + (input - target) ** 2 / max(var, eps)) (+ 0.5 log(2 pi) if
    full); var may lack the last dim, or have 1 there (one variance per sample). As in PyTorch, the
    clamp at eps passes the gradient through unchanged."""
    if not isinstance(var, Tensor):
        var = tensor(float(var), dtype=input.dtype, device=input.device)
    vs, xs = tuple(var.shape), tuple(input.shape)
    if vs != xs:
        if xs[:-1] == vs:
            var = var.unsqueeze(-1)
        elif not (xs[:-1] == vs[:-1] and vs[-1:] == (1,)) and var.ndim != 0:
            raise ShapeError(f"gaussian_nll_loss: var of shape {vs} does not fit the input {xs}: give the input's "
                             "shape, the input's shape without its last dim, or that with a last dim of 1")
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"gaussian_nll_loss: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    v = var + (var.clamp(min=eps) - var).detach()
    diff = input - target
    loss = 0.5 * (v.log() + diff * diff / v)
    if full:
        loss = loss + 0.5 * math.log(2 * math.pi)
    return reduce_loss(loss, reduction, "gaussian_nll_loss")


def poisson_nll_loss(input, target, log_input=True, full=False, size_average=None, eps=1e-8, reduce=None,
                     reduction="mean"):
    """exp(input) - target * input for log-rates (log_input), else input - target * log(input + eps);
    full adds Stirling's term target log target - target + 0.5 log(2 pi target) where target > 1."""
    loss = input.exp() - target * input if log_input else input - target * (input + eps).log()
    if full:
        safe = where(target > 1, target, 2.0)
        stirling = safe * safe.log() - safe + 0.5 * (2 * math.pi * safe).log()
        loss = loss + where(target > 1, stirling, 0.0)
    return reduce_loss(loss, _red(size_average, reduce, reduction), "poisson_nll_loss")
