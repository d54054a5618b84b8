"""gradc.nn.functional: composites over primitives (so autodiff, fusion and codegen cover them)."""
import math

from .. import dtypes as D
from ..errors import DTypeError, ShapeError
from ..tensor import Tensor
from ..ops import OPS
from ..functions import where, arange
from .functional_conv import conv1d, conv2d, conv_transpose1d, conv_transpose2d, unfold, fold  # noqa: F401
from .functional_pad import pad  # noqa: F401
from .functional_pool import (max_pool1d, max_pool2d, avg_pool1d, avg_pool2d, adaptive_avg_pool1d,  # noqa: F401
                              adaptive_avg_pool2d, adaptive_max_pool1d, adaptive_max_pool2d)
from .functional_sample import interpolate  # noqa: F401


def linear(input, weight, bias=None):
    """y = input @ weight.T + bias, with weight of shape (out_features, in_features)."""
    if input.shape[-1] != weight.shape[-1]:
        raise ShapeError(f"linear: input has {input.shape[-1]} features (shape {input.shape}) but the weight "
                         f"expects {weight.shape[-1]} (weight shape {weight.shape}, i.e. out x in)")
    out = input @ weight.t()
    # The bias takes the product's dtype, so that under autocast all of linear runs in float16, as
    # torch's fused linear does (with input, weight and bias of one dtype this is a no-op).
    return out + bias.to(out.dtype) if bias is not None else out


def relu(input):
    return input.relu()


def gelu(input, approximate="none"):
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


def softmax(input, dim):
    return input.softmax(dim)


def log_softmax(input, dim):
    return input.log_softmax(dim)


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if tuple(input.shape[-len(shape):]) != shape:
        raise ShapeError(f"layer_norm: normalized_shape {shape} does not match the trailing dims of input {input.shape}")
    axes = tuple(range(input.ndim - len(shape), input.ndim))
    mean = input.mean(axes, keepdim=True)
    centered = input - mean
    var = (centered * centered).mean(axes, keepdim=True)
    out = centered * (var + eps).rsqrt()
    if weight is not None:
        out = out * weight
    if bias is not None:
        out = out + bias
    return out


def dropout(input, p=0.5, training=True):
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, got {p}")
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return input * 0.0
    from ..functions import rand
    keep = rand(input.shape, device=input.device) >= p
    return where(keep, input * (1.0 / (1.0 - p)), 0.0)


def embedding(input, weight):
    if input.dtype is not D.int64:
        raise DTypeError(f"embedding: indices must be int64, got {input.dtype!r}; convert with .long()")
    return OPS["gather"].bind(weight, input, axis=0)


def _reduce(loss, reduction, name):
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"{name}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def mse_loss(input, target, reduction="mean"):
    if input.shape != target.shape:
        raise ShapeError(f"mse_loss: input shape {input.shape} and target shape {target.shape} differ")
    diff = input - target
    return _reduce(diff * diff, reduction, "mse_loss")


def cross_entropy(input, target, reduction="mean"):
    """Cross-entropy of logits (N, C) against int64 class indices (N,); stable via log_softmax."""
    if input.ndim != 2:
        raise ShapeError(f"cross_entropy: expected logits of shape (N, C), got {input.shape}")
    if not isinstance(target, Tensor) or target.dtype is not D.int64:
        raise DTypeError("cross_entropy: target must be an int64 tensor of class indices")
    if target.shape != input.shape[:1]:
        raise ShapeError(f"cross_entropy: target shape {target.shape} does not match the batch of logits {input.shape}")
    logp = input.log_softmax(1)
    # The target's log-probability picked with a one-hot mask: elementwise work that fuses.
    onehot = target.unsqueeze(1) == arange(input.shape[1], device=input.device)
    picked = where(onehot, logp, 0.0).sum(1)
    return _reduce(-picked, reduction, "cross_entropy")


def nll_loss(input, target, reduction="mean"):
    onehot = target.unsqueeze(1) == arange(input.shape[1], device=input.device)
    return _reduce(-where(onehot, input, 0.0).sum(1), reduction, "nll_loss")
