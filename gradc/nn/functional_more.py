"""More of torch.nn.functional as composites (gradc.nn.functional re-exports these): bilinear,
embedding_bag, gumbel_softmax, alpha dropout, rrelu, channel_shuffle, local_response_norm and the
deprecated upsample spellings, with PyTorch's signatures, defaults and formulas."""
import math
import warnings

import numpy as np

from .. import dtypes as D
from ..errors import DTypeError, OutOfRangeError, ShapeError
from ..functions import arange, cat, ones, rand, searchsorted, tensor, where, zeros
from ..ops import OPS
from ..tensor import Tensor
from .functional_sample import interpolate

_SELU_ALPHA_SCALE = 1.7580993408473766    # selu's alpha * scale: the value a dropped unit takes, negated


def bilinear(input1, input2, weight, bias=None):
    """y[..., o] = sum_ij input1[..., i] weight[o, i, j] input2[..., j] + bias[o]."""
    if weight.ndim != 3 or input1.shape[-1] != weight.shape[1] or input2.shape[-1] != weight.shape[2]:
        raise ShapeError(f"bilinear: weight {tuple(weight.shape)} must be (out, in1, in2) with in1 = "
                         f"{input1.shape[-1]} (input1 {tuple(input1.shape)}) and in2 = {input2.shape[-1]} "
                         f"(input2 {tuple(input2.shape)})")
    if tuple(input1.shape[:-1]) != tuple(input2.shape[:-1]):
        raise ShapeError(f"bilinear: input1 {tuple(input1.shape)} and input2 {tuple(input2.shape)} must agree "
                         "in every dim but the last")
    n_out, n1, n2 = weight.shape
    lead = tuple(input1.shape[:-1])
    x1, x2 = input1.reshape(-1, n1), input2.reshape(-1, n2)
    tmp = (x1 @ weight.permute(1, 0, 2).reshape(n1, n_out * n2)).reshape(-1, n_out, n2)
    out = (tmp * x2.unsqueeze(1)).sum(-1)
    if bias is not None:
        out = out + bias
    return out.reshape(*lead, n_out)


_BAG_MODES = ("sum", "mean", "max")


def _bag_layout(input, offsets, include_last_offset, name):
    """(flat indices (L,), bag starts (B,) as a tensor, end of the last bag or None)."""
    if input.ndim == 2:
        if offsets is not None:
            raise ValueError(f"{name}: offsets must be None when input is 2-D (each row is a bag)")
        b, n = input.shape
        return input.reshape(-1), tensor(np.arange(b, dtype=np.int64) * n, device=input.device), None
    if input.ndim != 1:
        raise ShapeError(f"{name}: input must be 1-D (with offsets) or 2-D (B, N), got {tuple(input.shape)}")
    if offsets is None:
        raise ValueError(f"{name}: a 1-D input needs offsets (the start of each bag)")
    if not isinstance(offsets, Tensor):
        offsets = tensor(np.asarray(offsets, dtype=np.int64), device=input.device)
    if offsets.ndim != 1 or offsets.dtype.is_floating_point:
        raise ShapeError(f"{name}: offsets must be a 1-D integer tensor, got {offsets.dtype!r} of shape "
                         f"{tuple(offsets.shape)}")
    offsets = offsets.long()
    o = offsets._data
    if o is not None and o.size:   # (checked where the values are known: eagerly, as PyTorch checks them)
        if int(o[0]) != 0:
            raise OutOfRangeError(f"{name}: offsets[0] must be 0 (the first bag starts at the first index), "
                                  f"got {int(o[0])}")
        if bool((o[1:] < o[:-1]).any()):
            raise OutOfRangeError(f"{name}: offsets must not decrease, got {o.tolist()}")
        if int(o[-1]) > input.shape[0]:
            raise OutOfRangeError(f"{name}: offsets[-1] ({int(o[-1])}) is past the end of the input "
                                  f"({input.shape[0]} indices)")
    if include_last_offset:
        if offsets.shape[0] < 1:
            raise ShapeError(f"{name}: include_last_offset=True needs at least one offset")
        return input, offsets[:-1], offsets[-1]
    return input, offsets, None


def embedding_bag(input, weight, offsets=None, max_norm=None, norm_type=2, scale_grad_by_freq=False, mode="mean",
                  sparse=False, per_sample_weights=None, include_last_offset=False, padding_idx=None):
    """Sums, means or maxima of bags of embedding rows, without the (L, D) lookups ever being
    split by bag in Python: each entry's bag is counted from the offsets and the rows are
    scattered into their bags, so a compiled step traces for any offsets of one length. Empty bags
    give zeros; padding_idx entries are left out of their bag (and of its count)."""
    name = "embedding_bag"
    if mode not in _BAG_MODES:
        raise ValueError(f"{name}: mode must be one of {_BAG_MODES}, got {mode!r}")
    if max_norm is not None or scale_grad_by_freq or sparse:
        raise ValueError(f"{name}: max_norm, scale_grad_by_freq and sparse gradients are not supported; "
                         "renormalise the weight explicitly under no_grad instead")
    if not isinstance(input, Tensor) or input.dtype not in (D.int64, D.int32):
        raise DTypeError(f"{name}: input must be an int64 tensor of indices, got "
                         f"{getattr(input, 'dtype', type(input).__name__)!r}")
    if per_sample_weights is not None:
        if mode != "sum":
            raise ValueError(f"{name}: per_sample_weights is only supported for mode='sum' (as in PyTorch), "
                             f"got mode={mode!r}")
        if tuple(per_sample_weights.shape) != tuple(input.shape):
            raise ShapeError(f"{name}: per_sample_weights {tuple(per_sample_weights.shape)} must have the input's "
                             f"shape {tuple(input.shape)}")
        per_sample_weights = per_sample_weights.reshape(-1)
    flat, starts, end = _bag_layout(input.long(), offsets, include_last_offset, name)
    n_rows = weight.shape[0]
    if padding_idx is not None and padding_idx < 0:
        padding_idx += n_rows
    flat = OPS["check_index"].bind(flat, high=int(n_rows), ignore=None, what=f"{name}: index")
    rows = weight.index_select(0, flat)                                          # (L, D)
    n_pos, n_bags, dim = flat.shape[0], starts.shape[0], weight.shape[1]
    dev = weight.device
    # each entry's bag: the number of bag starts at or before it, less one (a binary search of the
    # sorted starts, O(L log B)); entries in no bag (before the first start, past the last offset,
    # padding_idx) go to an extra bag B that is dropped
    pos = arange(n_pos, device=dev)
    bag = searchsorted(starts, pos, right=True) - 1
    keep = bag >= 0
    if end is not None:
        keep = keep & (pos < end)
    if padding_idx is not None:
        keep = keep & (flat != padding_idx)
    target = where(keep, bag, n_bags)
    index = target.unsqueeze(1).expand(n_pos, dim)
    if mode == "max":    # a bag no entry reaches keeps its 0, as in PyTorch
        out = zeros(n_bags + 1, dim, dtype=weight.dtype, device=dev).scatter_reduce(0, index, rows, "amax",
                                                                                   include_self=False)
        return out[:n_bags]
    if per_sample_weights is not None:
        rows = rows * per_sample_weights.to(weight.dtype).unsqueeze(1)
    out = zeros(n_bags + 1, dim, dtype=weight.dtype, device=dev).scatter_add(0, index, rows)[:n_bags]
    if mode == "mean":
        counts = zeros(n_bags + 1, dtype=weight.dtype, device=dev).scatter_add(
            0, target, ones(n_pos, dtype=weight.dtype, device=dev))[:n_bags]
        out = out / counts.clamp(min=1.0).unsqueeze(1)
    return out


def gumbel_softmax(logits, tau=1.0, hard=False, eps=1e-10, dim=-1):
    """softmax((logits + g) / tau) with g ~ Gumbel(0, 1); hard=True returns the one-hot argmax in the
    forward pass with the soft sample's gradient (straight-through)."""
    u = rand(logits.shape, dtype=logits.dtype, device=logits.device)
    exp_noise = (-(1.0 - u).log()).clamp(min=1e-30)         # Exponential(1), never exactly 0
    y_soft = ((logits - exp_noise.log()) / tau).softmax(dim)
    if not hard:
        return y_soft
    index = y_soft.argmax(dim, keepdim=True)
    d = dim % logits.ndim
    classes = arange(logits.shape[d], device=logits.device).reshape((-1,) + (1,) * (logits.ndim - 1 - d))
    y_hard = (index == classes).to(logits.dtype)
    return y_hard - y_soft.detach() + y_soft


def _alpha_dropout(input, p, training, feature, name):
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{name}: dropout probability has to be between 0 and 1, got {p}")
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return input * 0.0
    if feature and input.ndim < 2:
        raise ShapeError(f"{name}: expected an input (N, C, ...) with at least 2 dims, got {tuple(input.shape)}")
    shape = tuple(input.shape[:2]) + (1,) * (input.ndim - 2) if feature else tuple(input.shape)
    keep = (rand(shape, device=input.device) >= p).to(input.dtype)
    a = 1.0 / math.sqrt((_SELU_ALPHA_SCALE ** 2 * p + 1) * (1 - p))
    b = (keep - 1.0) * (_SELU_ALPHA_SCALE * a) + _SELU_ALPHA_SCALE * a * p
    return input * (keep * a) + b


def alpha_dropout(input, p=0.5, training=False, inplace=False):
    """Dropout that keeps SELU's self-normalising mean and variance: dropped units take selu's
    negative saturation value, then an affine map restores mean 0 and variance 1."""
    out = _alpha_dropout(input, p, training, False, "alpha_dropout")
    return input.copy_(out) if inplace and out is not input else out


def feature_alpha_dropout(input, p=0.5, training=False, inplace=False):
    """alpha_dropout with one draw per (sample, channel)."""
    out = _alpha_dropout(input, p, training, True, "feature_alpha_dropout")
    return input.copy_(out) if inplace and out is not input else out


def rrelu(input, lower=1.0 / 8, upper=1.0 / 3, training=False, inplace=False):
    """Randomised leaky ReLU: negative inputs scaled by a slope drawn from U(lower, upper) per
    element when training, by the fixed (lower + upper) / 2 otherwise."""
    if lower > upper:
        raise ValueError(f"rrelu: lower ({lower}) must not exceed upper ({upper})")
    if training:
        slope = rand(input.shape, dtype=input.dtype, device=input.device) * (upper - lower) + lower
    else:
        slope = (lower + upper) / 2.0
    out = where(input >= 0, input, input * slope)
    return input.copy_(out) if inplace else out


def rrelu_(input, lower=1.0 / 8, upper=1.0 / 3, training=False):
    return rrelu(input, lower, upper, training, inplace=True)


def channel_shuffle(input, groups):
    """(N, C, *) with C = g * k: channel j * k + i moves to i * g + j (ShuffleNet's shuffle)."""
    g = int(groups)
    if input.ndim < 3 or g <= 0 or input.shape[1] % g:
        raise ShapeError(f"channel_shuffle: expected an input (N, C, *) of at least 3 dims whose channels divide "
                         f"by groups = {groups}, got shape {tuple(input.shape)}")
    n, c = input.shape[:2]
    rest = tuple(input.shape[2:])
    return input.reshape(n, g, c // g, *rest).transpose(1, 2).reshape(n, c, *rest)


def local_response_norm(input, size, alpha=1e-4, beta=0.75, k=1.0):
    """input / (k + alpha * mean of squares over `size` neighbouring channels) ** beta, the window
    zero-padded by size // 2 before and (size - 1) // 2 after each channel, as PyTorch does."""
    if input.ndim < 3:
        raise ShapeError(f"local_response_norm: expected an input (N, C, *) of at least 3 dims, got "
                         f"{tuple(input.shape)}")
    if size < 1:
        raise ValueError(f"local_response_norm: size must be positive, got {size}")
    sq = input * input
    n, c = input.shape[:2]
    rest = tuple(input.shape[2:])
    before, after = size // 2, (size - 1) // 2
    parts = [zeros(n, before, *rest, dtype=input.dtype, device=input.device)] if before else []
    parts += [sq] + ([zeros(n, after, *rest, dtype=input.dtype, device=input.device)] if after else [])
    padded = cat(parts, 1) if len(parts) > 1 else sq
    total = None
    for s in range(size):
        window = padded[:, s:s + c]
        total = window if total is None else total + window
    div = (total * (alpha / size) + k) ** beta
    return input / div


def upsample(input, size=None, scale_factor=None, mode="nearest", align_corners=None):
    """Deprecated spelling of interpolate (as in PyTorch, with its warning)."""
    warnings.warn("nn.functional.upsample is deprecated. Use nn.functional.interpolate instead.", stacklevel=2)
    return interpolate(input, size, scale_factor, mode, align_corners)


def upsample_nearest(input, size=None, scale_factor=None):
    warnings.warn("nn.functional.upsample_nearest is deprecated. Use nn.functional.interpolate instead.",
                  stacklevel=2)
    return interpolate(input, size, scale_factor, mode="nearest")


def upsample_bilinear(input, size=None, scale_factor=None):
    warnings.warn("nn.functional.upsample_bilinear is deprecated. Use nn.functional.interpolate instead.",
                  stacklevel=2)
    return interpolate(input, size, scale_factor, mode="bilinear", align_corners=True)
