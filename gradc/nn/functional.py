"""gradc.nn.functional: composites over primitives (so autodiff, fusion and codegen cover them)."""
import math
import warnings

from .. import dtypes as D
from ..errors import CastError, DTypeError, ShapeError, ValueRangeError
from ..grad_mode import no_grad
from ..tensor import Tensor
from ..ops import OPS
from ..ops.index import check_values
from ..composite import accumulate_in_float32, copying
from ..ops.frontend import cast, floating
from .losses import broadcast_target
from .losses import (binary_cross_entropy_with_logits, cosine_similarity, huber_loss, kl_div,  # noqa: F401
                     l1_loss, legacy_reduction, one_hot, reduce_loss, smooth_l1_loss, weighted)
from ..functions import where, arange, rand, pdist  # noqa: F401  (F.pdist is gradc.pdist)
from .functional_conv import (conv1d, conv2d, conv3d, conv_transpose1d, conv_transpose2d, conv_transpose3d,  # noqa: F401
                              unfold, fold)
from .functional_pad import pad  # noqa: F401
from .functional_pool import (max_pool1d, max_pool2d, max_pool3d, avg_pool1d, avg_pool2d, avg_pool3d,  # noqa: F401
                              max_pool1d_with_indices, max_pool2d_with_indices, max_pool3d_with_indices,
                              adaptive_avg_pool1d, adaptive_avg_pool2d, adaptive_max_pool1d, adaptive_max_pool2d,
                              adaptive_max_pool3d, max_unpool1d, max_unpool2d, max_unpool3d)
from .functional_sample import interpolate  # noqa: F401
from .functional_norm import batch_norm, instance_norm, group_norm, rms_norm, normalize  # noqa: F401
from .functional_act import (leaky_relu, relu6, hardtanh, elu, selu, celu, silu, softplus, mish,  # noqa: F401
                             logsigmoid, hardsigmoid, hardswish, softsign, tanhshrink, threshold, hardshrink,
                             softshrink, prelu, glu, dropout1d, dropout2d, dropout3d)
from .functional_attention import scaled_dot_product_attention, multi_head_attention_forward  # noqa: F401
from .losses_more import (margin_ranking_loss, hinge_embedding_loss, soft_margin_loss,  # noqa: F401
                          cosine_embedding_loss, multilabel_soft_margin_loss, multi_margin_loss,
                          multilabel_margin_loss, pairwise_distance, triplet_margin_loss,
                          triplet_margin_with_distance_loss, gaussian_nll_loss, poisson_nll_loss)
from .functional_ctc import ctc_loss  # noqa: F401
from .functional_grid import affine_grid, grid_sample  # noqa: F401
from .functional_more import (bilinear, embedding_bag, gumbel_softmax, alpha_dropout,  # noqa: F401
                              feature_alpha_dropout, rrelu, rrelu_, channel_shuffle, local_response_norm, upsample,
                              upsample_nearest, upsample_bilinear)
from .functional_pool_more import (lp_pool1d, lp_pool2d, lp_pool3d, adaptive_avg_pool3d,  # noqa: F401
                                   fractional_max_pool2d)


def linear(input, weight, bias=None):
    """y = input @ weight.T + bias, with weight of shape (out_features, in_features)."""
    if input.shape[-1] != weight.shape[-1]:
        raise ShapeError(f"linear: input has {input.shape[-1]} features (shape {tuple(input.shape)}) but the weight "
                         f"expects {weight.shape[-1]} (weight shape {tuple(weight.shape)}, i.e. out x in)")
    out = input @ weight.t()
    # The bias takes the product's dtype, so that under autocast all of linear runs in float16, as
    # torch's fused linear does (with input, weight and bias of one dtype this is a no-op).
    return out + bias.to(out.dtype) if bias is not None else out


def relu(input, inplace=False):
    if input.dtype is D.bool_:
        raise DTypeError("relu: bool inputs are not supported, as in torch")
    return input.relu_() if inplace else input.relu()


def relu_(input):
    return input.relu_()


def leaky_relu_(input, negative_slope=0.01):
    return leaky_relu(input, negative_slope, inplace=True)


def hardtanh_(input, min_val=-1.0, max_val=1.0):
    return hardtanh(input, min_val, max_val, inplace=True)


def elu_(input, alpha=1.0):
    return elu(input, alpha, inplace=True)


def selu_(input):
    return selu(input, inplace=True)


def celu_(input, alpha=1.0):
    return celu(input, alpha, inplace=True)


def threshold_(input, threshold_, value):
    return threshold(input, threshold_, value, inplace=True)


def gelu(input, approximate="none"):
    floating(input, "gelu")
    if approximate == "tanh":
        inner = (input + input * input * input * 0.044715) * math.sqrt(2.0 / math.pi)
        return input * 0.5 * (inner.tanh() + 1.0)
    if approximate != "none":
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return input * 0.5 * ((input * (1.0 / math.sqrt(2.0))).erf() + 1.0)


def sigmoid(input):
    return input.sigmoid()


def tanh(input):
    return input.tanh()


def implicit_softmax_dim(input, name):
    """PyTorch's legacy choice when softmax gets no dim (0 for 0-, 1- and 3-D inputs, else 1), with
    its deprecation warning."""
    warnings.warn(f"Implicit dimension choice for {name} has been deprecated. Change the call to include "
                  "dim=X as an argument.", stacklevel=3)
    return 0 if input.ndim in (0, 1, 3) else 1


def _softmax_input(input, dim, dtype, name):
    if dtype is not None:
        input = input.to(dtype)  # cast before the op, as PyTorch does (e.g. float16 logits in float32)
    return input, implicit_softmax_dim(input, name) if dim is None else dim


def softmax(input, dim=None, _stacklevel=3, dtype=None):
    input, dim = _softmax_input(input, dim, dtype, "softmax")
    return input.softmax(dim)


def log_softmax(input, dim=None, _stacklevel=3, dtype=None):
    input, dim = _softmax_input(input, dim, dtype, "log_softmax")
    return input.log_softmax(dim)


def softmin(input, dim=None, _stacklevel=3, dtype=None):
    input, dim = _softmax_input(input, dim, dtype, "softmin")
    return (-input).softmax(dim)


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if tuple(input.shape[-len(shape):]) != shape:
        raise ShapeError(f"layer_norm: normalized_shape {shape} does not match the trailing dims of input {tuple(input.shape)}")
    out = _standardized(input, tuple(range(input.ndim - len(shape), input.ndim)), eps)
    if weight is not None:
        out = out * weight
    if bias is not None:
        out = out + bias
    return out


@accumulate_in_float32
def _standardized(input, axes, eps):
    """(x - mean) / sqrt(var + eps) over axes; float16 in float32, as PyTorch's layer norm (a float16
    square of 1e4 overflows)."""
    centered = input - input.mean(axes, keepdim=True)
    return centered * ((centered * centered).mean(axes, keepdim=True) + eps).rsqrt()


def dropout(input, p=0.5, training=True, inplace=False):
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, got {p}")
    if not training or p == 0.0:
        return input
    x = input.clone() if inplace else input  # the write below must not overwrite what the VJP reads
    if p == 1.0:
        out = x * 0.0
    else:
        keep = rand(input.shape, device=input.device) >= p
        out = where(keep, x * (1.0 / (1.0 - p)), 0.0)
    return input.copy_(out) if inplace else out


def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0, scale_grad_by_freq=False,
              sparse=False):
    """Rows of weight at the int64 indices; lookups of padding_idx pass no gradient to its row."""
    if input.dtype is D.int32:   # PyTorch takes int32 indices too
        input = input.long()
    if input.dtype is not D.int64:
        raise DTypeError(f"embedding: indices must be int64 or int32, got {input.dtype!r}; convert with .long()")
    if scale_grad_by_freq or sparse:
        raise ValueError("embedding: scale_grad_by_freq and sparse gradients are not supported; "
                         "scale the weight's gradient explicitly instead")
    input = _check_range(input, weight.shape[0], None, "embedding", "index")
    if max_norm is not None:
        _renorm_rows(weight, input.reshape(-1), float(max_norm), norm_type)
    out = OPS["gather"].bind(weight, input, axis=0)
    if padding_idx is None:
        return out
    if padding_idx < 0:
        padding_idx += weight.shape[0]
    # the value is the row itself; only its gradient is cut (PyTorch zeroes that row's gradient)
    return where((input != padding_idx).unsqueeze(-1), out, out.detach())


def _renorm_rows(weight, idx, max_norm, norm_type):
    """PyTorch's max_norm: the rows of `weight` looked up whose norm_type-norm exceeds max_norm are
    scaled, in place and outside autograd, to norm max_norm (max_norm / (norm + 1e-7), as PyTorch)."""
    with no_grad():
        rows = OPS["gather"].bind(weight, idx, axis=0)
        norms = rows.norm(norm_type, 1, keepdim=True)
        weight[idx] = rows * where(norms > max_norm, max_norm / (norms + 1e-7), 1.0)


def mse_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    input, target = broadcast_target(input, target, "mse_loss")
    diff = input - target
    return weighted(diff * diff, weight, legacy_reduction(size_average, reduce, reduction), "mse_loss")


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None, reduction="mean"):
    """Binary cross-entropy of probabilities `input` against `target` (torch's binary_cross_entropy);
    like PyTorch, each log is clamped at -100 so a probability of exactly 0 or 1 stays finite."""
    if input.shape != target.shape:
        raise ShapeError(f"binary_cross_entropy: input shape {tuple(input.shape)} and target shape {tuple(target.shape)} "
                         "differ; give a target of the input's shape")
    # PyTorch raises for probabilities outside [0, 1] (NaN included), which would give NaN or a
    # wrong finite loss; so does gradc, eagerly and when a compiled program runs
    input = check_values(~((input >= 0) & (input <= 1)), "binary_cross_entropy: all elements of input should be "
                         "between 0 and 1 (pass logits to binary_cross_entropy_with_logits instead)", input)
    target = check_values(~((target >= 0) & (target <= 1)), "binary_cross_entropy: all elements of target should "
                          "be between 0 and 1", target)
    # each log clamped at -100 as PyTorch's; taken of 1 where its argument is 0, so that no 0 * inf = nan
    # reaches the gradient of a saturated sigmoid (p of exactly 0 or 1)
    log_p, log_q = (where(v > 0, where(v > 0, v, 1.0).log(), -100.0).clamp(min=-100.0) for v in (input, 1 - input))
    loss = -(target * log_p + (1 - target) * log_q)
    # and there PyTorch's gradient, (p - t) / max(p (1 - p), 1e-12), which the masked log leaves out
    # (in float32: 1e12 is inf in float16, and inf * 0 would make the loss NaN)
    wide = cast(input, D.float32) if input.dtype is D.float16 else input
    edge = where(wide * (1 - wide) == 0, (wide - target) * 1e12, 0.0).detach()
    loss = loss + cast(edge * (wide - wide.detach()), loss.dtype)
    if weight is not None:
        loss = loss * weight
    return reduce_loss(loss, legacy_reduction(size_average, reduce, reduction), "binary_cross_entropy")


def _class_layout(input, target, name):
    """(input with the class dim second, target with a batch dim, C, unbatched?) as PyTorch
    accepts them: (C,) with a 0-d target, (N, C) with (N,), (N, C, d1, ...) with (N, d1, ...)."""
    if not isinstance(target, Tensor):
        raise DTypeError(f"{name}: target must be a tensor")
    unbatched = input.ndim == 1
    if unbatched:
        input, target = input.unsqueeze(0), target.unsqueeze(0)
    if input.ndim < 2:
        raise ShapeError(f"{name}: expected input of shape (C,), (N, C) or (N, C, d1, ...), got {tuple(input.shape)}")
    return input, target, input.shape[1], unbatched


def _check_range(index, n, ignore_index, name, what):
    """`index`, checked to lie in [0, n) (ignore_index aside) by the check_index primitive: where it is
    used, eagerly and on every run of a compiled program alike."""
    return OPS["check_index"].bind(index, high=int(n), ignore=None if ignore_index is None else int(ignore_index),
                                   what=f"{name}: {what}")


def _check_targets(target, n_classes, ignore_index, name):
    """Class indices outside [0, C) that are not ignore_index are an error, as in PyTorch (a silent
    loss of 0 would still count in the mean). Checked where the values are known (eagerly)."""
    return _check_range(target, n_classes, ignore_index, name, "target")


def _onehot(target, n_classes, ndim, device):
    classes = arange(n_classes, device=device).reshape((1, n_classes) + (1,) * (ndim - 2))
    return target.unsqueeze(1) == classes


def _weighted_nll(logp, target, weight, ignore_index, reduction, label_smoothing, name):
    logp, target, n_classes, unbatched = _class_layout(logp, target, name)
    if target.dtype.is_floating_point:  # class probabilities
        if target.shape != logp.shape:
            raise DTypeError(f"{name}: target must be int64 class indices, or float class probabilities of the "
                             f"input's shape {tuple(logp.shape)}; got {target.dtype!r} of shape {tuple(target.shape)}")
        if label_smoothing:
            target = target * (1.0 - label_smoothing) + label_smoothing / n_classes
        w = 1.0 if weight is None else weight.reshape((1, n_classes) + (1,) * (logp.ndim - 2))
        loss = -(logp * target * w).sum(1)
        return reduce_loss(loss.squeeze(0) if unbatched else loss, reduction, name)
    if target.dtype is not D.int64:
        raise CastError(f"{name}: target must be int64 class indices (or float probabilities), got {target.dtype!r}; "
                        "use target.long()")
    if target.shape != logp.shape[:1] + logp.shape[2:]:
        raise ShapeError(f"{name}: target shape {tuple(target.shape)} does not match input {tuple(logp.shape)} "
                         f"(expected {tuple(logp.shape[:1] + logp.shape[2:])})")
    target = _check_targets(target, n_classes, ignore_index, name)
    onehot = _onehot(target, n_classes, logp.ndim, logp.device)
    keep = (target != ignore_index).to(logp.dtype)
    wshape = (1, n_classes) + (1,) * (logp.ndim - 2)
    wt = keep if weight is None else where(onehot, weight.reshape(wshape), 0.0).sum(1) * keep
    loss = -where(onehot, logp, 0.0).sum(1) * wt
    if label_smoothing:
        smooth = -(logp if weight is None else logp * weight.reshape(wshape)).sum(1) * keep
    if unbatched:
        loss, wt = loss.squeeze(0), wt.squeeze(0)
        smooth = smooth.squeeze(0) if label_smoothing else None
    if reduction == "mean":
        # every target ignored: the mean is 0/0 = nan, as torch's, with a zero gradient (not inf * 0)
        total = wt.sum()
        none = total == 0
        safe = where(none, 1.0, total)
        out = loss.sum() / safe
        if label_smoothing:
            out = out * (1.0 - label_smoothing) + smooth.sum() / safe * (label_smoothing / n_classes)
        return where(none, math.nan, out)
    if label_smoothing:
        loss = loss * (1.0 - label_smoothing) + smooth * (label_smoothing / n_classes)
    return reduce_loss(loss, reduction, name)


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
                  reduction="mean", label_smoothing=0.0):
    """Cross-entropy of logits against class indices (or class probabilities), as
    torch.nn.functional.cross_entropy: `ignore_index` rows leave the mean and get no gradient,
    `weight` rescales classes, `label_smoothing` mixes in the uniform distribution."""
    reduction = legacy_reduction(size_average, reduce, reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueRangeError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    dim = 0 if input.ndim == 1 else 1
    return _weighted_nll(input.log_softmax(dim), target, weight, ignore_index, reduction, label_smoothing,
                         "cross_entropy")


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean"):
    """Negative log-likelihood of log-probabilities against class indices (torch's nll_loss)."""
    return _weighted_nll(input, target, weight, ignore_index, legacy_reduction(size_average, reduce, reduction),
                         0.0, "nll_loss")


@copying
def pixel_shuffle(input, upscale_factor):
    """(*, C * r * r, H, W) -> (*, C, H * r, W * r), as the super-resolution example's last layer."""
    r = int(upscale_factor)
    if input.ndim < 3 or input.shape[-3] % (r * r):
        raise ShapeError(f"pixel_shuffle: expected an input of at least 3 dims whose channels ({input.shape[-3] if input.ndim >= 3 else None}) "
                         f"divide by upscale_factor ** 2 = {r * r}, got shape {tuple(input.shape)}")
    *lead, c, h, w = input.shape
    x = input.reshape(*lead, c // (r * r), r, r, h, w)
    n = len(lead)
    x = x.permute(*range(n), n, n + 3, n + 1, n + 4, n + 2)
    return x.reshape(*lead, c // (r * r), h * r, w * r)


@copying
def pixel_unshuffle(input, downscale_factor):
    """The inverse of pixel_shuffle: (*, C, H * r, W * r) -> (*, C * r * r, H, W)."""
    r = int(downscale_factor)
    if input.ndim < 3 or input.shape[-2] % r or input.shape[-1] % r:
        raise ShapeError(f"pixel_unshuffle: expected an input of at least 3 dims whose height and width divide by "
                         f"downscale_factor = {r}, got shape {tuple(input.shape)}")
    *lead, c, h, w = input.shape
    x = input.reshape(*lead, c, h // r, r, w // r, r)
    n = len(lead)
    x = x.permute(*range(n), n, n + 2, n + 4, n + 1, n + 3)
    return x.reshape(*lead, c * r * r, h // r, w // r)
