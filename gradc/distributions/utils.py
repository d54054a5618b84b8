"""Helpers every distribution shares: its named errors, broadcasting parameters to one shape,
probabilities <-> logits, summing the rightmost dimensions, and lazily computed properties."""
import math

from .. import dtypes as D
from ..errors import DistributionError, GradcError  # noqa: F401  (DistributionError: public here)
from ..functions import broadcast_tensors, finfo, tensor
from ..tensor import Tensor


class KLNotImplementedError(GradcError, NotImplementedError):
    """No KL divergence is registered for this pair of distribution types (see register_kl)."""


class lazy_property:
    """Computed on first access and then stored on the instance (probs from logits and back)."""

    def __init__(self, fn):
        self.fn = fn
        self.__doc__ = fn.__doc__
        self.__name__ = fn.__name__

    def __get__(self, obj, cls=None):
        if obj is None:
            return self
        value = self.fn(obj)
        obj.__dict__[self.fn.__name__] = value
        return value


def broadcast_all(*values):
    """Tensors of one broadcast shape; Python numbers become tensors of the tensors' dtype (the
    default float dtype when there are none)."""
    tensors = [v for v in values if isinstance(v, Tensor)]
    if any(not isinstance(v, (Tensor, int, float)) or isinstance(v, bool) for v in values):
        bad = next(v for v in values if not isinstance(v, (Tensor, int, float)) or isinstance(v, bool))
        raise DistributionError(f"distribution parameters must be tensors or Python numbers, got "
                                f"{type(bad).__name__}")
    if tensors:
        like = tensors[0]
        dtype = like.dtype if like.dtype.is_floating_point else D.default_float
        values = [v if isinstance(v, Tensor) else tensor(float(v), dtype=dtype, device=like.device) for v in values]
    else:
        values = [tensor(float(v)) for v in values]
    return tuple(broadcast_tensors(*values))


def as_shape(sample_shape, who):
    if isinstance(sample_shape, int) and not isinstance(sample_shape, bool):
        return (sample_shape,)
    if not isinstance(sample_shape, (tuple, list)) or not all(isinstance(n, int) and n >= 0 for n in sample_shape):
        raise DistributionError(f"{who}: sample_shape must be a tuple of sizes >= 0, got {sample_shape!r}")
    return tuple(sample_shape)


def all_last(value, keepdim=False):
    """Whether every entry along the last dimension is true."""
    return value.bool().logical_not().sum(-1, keepdim=keepdim) == 0


def clamp_probs(probs):
    eps = finfo(probs.dtype).eps
    return probs.clamp(min=eps, max=1 - eps)


def probs_to_logits(probs, is_binary=False):
    ps = clamp_probs(probs)
    return ps.log() - (-ps).log1p() if is_binary else ps.log()


def logits_to_probs(logits, is_binary=False):
    return logits.sigmoid() if is_binary else logits.softmax(-1)


def sum_rightmost(value, dim):
    """Sum over the `dim` rightmost dimensions."""
    return value.reshape(value.shape[:len(value.shape) - dim] + (-1,)).sum(-1) if dim > 0 else value


LOG_SQRT_2PI = math.log(math.sqrt(2 * math.pi))
