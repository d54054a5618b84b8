"""Losses beyond the classification ones (gradc.nn.functional re-exports these), with PyTorch's
signatures, defaults and reductions, and the helpers every loss shares."""
import warnings

from .. import dtypes as D
from ..errors import DTypeError, ShapeError
from ..functions import arange, where
from ..ops import OPS
from ..shapes import broadcast_shapes


def reduce_loss(loss, reduction, name):
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"{name}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def legacy_reduction(size_average, reduce, reduction):
    """PyTorch's deprecated size_average / reduce arguments, mapped to a reduction."""
    if size_average is None and reduce is None:
        return reduction
    if reduce is False:
        return "none"
    return "sum" if size_average is False else "mean"


def _same_shape(input, target, name):
    if input.shape != target.shape:
        raise ShapeError(f"{name}: input shape {tuple(input.shape)} and target shape {tuple(target.shape)} differ; give a target "
                         "of the input's shape")


def broadcast_target(input, target, name):
    """What PyTorch does for the regression losses when the shapes differ: warn (an (N, 1) output
    against an (N,) target is almost always a bug: the loss becomes N x N) and broadcast."""
    if input.shape == target.shape:
        return input, target
    warnings.warn(f"{name}: using a target size ({tuple(target.shape)}) that is different to the input size "
                  f"({tuple(input.shape)}). This will likely lead to incorrect results due to broadcasting. "
                  "Please ensure they have the same size.", UserWarning, stacklevel=3)
    shape = broadcast_shapes(name, [tuple(input.shape), tuple(target.shape)])
    return input.expand(*shape), target.expand(*shape)


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None, reduction="mean",
                                     pos_weight=None):
    """Binary cross-entropy of logits, computed stably: (1 - t) x + (1 + (pw - 1) t) softplus(-x)."""
    _same_shape(input, target, "binary_cross_entropy_with_logits")
    # log(1 + exp(-x)) without overflow: max(-x, 0) + log(exp(-max(-x,0)) + exp(-x - max(-x,0)))
    m = (-input).clamp(min=0.0)
    softplus_neg = m + ((-m).exp() + (-input - m).exp()).log()
    if pos_weight is None:
        loss = (1 - target) * input + softplus_neg
    else:
        loss = (1 - target) * input + (1 + (pos_weight - 1) * target) * softplus_neg
    if weight is not None:
        loss = loss * weight
    return reduce_loss(loss, legacy_reduction(size_average, reduce, reduction), "binary_cross_entropy_with_logits")


def weighted(loss, weight, reduction, what, mean_by_weight=True):
    """PyTorch's weight= of mse, l1 and huber (the input's shape): the elementwise loss times its
    weight, and a 'mean' of mse and l1 divided by the weights' sum (huber's by the element count)."""
    if weight is not None:
        if tuple(weight.shape) != tuple(loss.shape):
            raise ShapeError(f"{what}: weight has shape {tuple(weight.shape)}, the input {tuple(loss.shape)}; they "
                             "must be the same size")
        loss = loss * weight
        if reduction == "mean" and mean_by_weight:
            return loss.sum() / weight.sum()
    return reduce_loss(loss, reduction, what)


def l1_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    input, target = broadcast_target(input, target, "l1_loss")
    return weighted((input - target).abs(), weight, legacy_reduction(size_average, reduce, reduction), "l1_loss")


def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction="mean", beta=1.0):
    input, target = broadcast_target(input, target, "smooth_l1_loss")
    if beta < 0:
        raise ValueError(f"smooth_l1_loss: beta must be non-negative, got {beta}")
    d = (input - target).abs()
    loss = d if beta == 0 else where(d < beta, 0.5 * d * d / beta, d - 0.5 * beta)
    return reduce_loss(loss, legacy_reduction(size_average, reduce, reduction), "smooth_l1_loss")


def huber_loss(input, target, reduction="mean", delta=1.0, weight=None):
    input, target = broadcast_target(input, target, "huber_loss")
    d = (input - target).abs()
    return weighted(where(d < delta, 0.5 * d * d, delta * (d - 0.5 * delta)), weight, reduction, "huber_loss",
                    mean_by_weight=False)


def kl_div(input, target, size_average=None, reduce=None, reduction="mean", log_target=False):
    """KL divergence with `input` as log-probabilities; 'batchmean' divides the sum by the batch size."""
    if log_target:
        loss = target.exp() * (target - input)
    else:
        loss = where(target > 0, target * (where(target > 0, target, 1.0).log() - input), 0.0)
    reduction = legacy_reduction(size_average, reduce, reduction)
    if reduction == "batchmean":
        return loss.sum() / float(input.shape[0] if input.ndim else 1)
    return reduce_loss(loss, reduction, "kl_div")


def cosine_similarity(x1, x2, dim=1, eps=1e-8):
    """x1 . x2 / max(|x1| |x2|, eps) along dim (each norm clamped at eps, as PyTorch does)."""
    n1 = x1.norm(2, dim).clamp(min=eps)   # (norm's gradient at the zero vector is 0, as PyTorch's)
    n2 = x2.norm(2, dim).clamp(min=eps)
    return (x1 * x2).sum(dim) / (n1 * n2)


def one_hot(tensor, num_classes=-1):
    if tensor.dtype is not D.int64:
        raise DTypeError(f"one_hot: expects an int64 tensor of class indices, got {tensor.dtype!r}")
    if num_classes < 0:
        if tensor.numel() == 0:
            raise ShapeError("one_hot: cannot infer num_classes from an empty tensor; pass num_classes")
        num_classes = int(tensor.max().item()) + 1
    # a class outside [0, num_classes) would give an all-zero row: PyTorch raises, and so does this
    tensor = OPS["check_index"].bind(tensor, high=int(num_classes), ignore=None, what="one_hot: class value")
    return (tensor.unsqueeze(-1) == arange(num_classes, device=tensor.device)).long()

