"""Activation functions as elementwise composites (so they fuse). Each piecewise function picks its
branch with `where` such that the gradient at a kink is PyTorch's (e.g. hardtanh's is 0 at its
bounds, leaky_relu's is the slope at 0), and exp is only ever evaluated where it cannot overflow
(an overflowing branch would turn a zero gradient into 0 * inf = nan)."""
import warnings

from ..errors import ShapeError
from ..tensor import Tensor
from ..functions import rand, where
from ..ops.frontend import floating
from ..shapes import shape_or

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def _out(input, result, inplace):
    if inplace:
        return input.copy_(result)
    return result


def _src(input, inplace):
    """What an in-place activation computes from: a copy, so that the VJPs' saved operands are not
    the tensor that the result then overwrites (PyTorch saves the result for the same reason)."""
    return input.clone() if inplace else input


def leaky_relu(input, negative_slope=0.01, inplace=False):
    floating(input, "leaky_relu")
    x = _src(input, inplace)
    return _out(input, where(x > 0, x, x * negative_slope), inplace)


def relu6(input, inplace=False):
    return hardtanh(input, 0.0, 6.0, inplace)


def hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):
    if min_val > max_val:
        raise ValueError(f"hardtanh: min_val ({min_val}) cannot be greater than max_val ({max_val})")
    x = _src(input, inplace)
    return _out(input, where(x <= min_val, min_val, where(x >= max_val, max_val, x)), inplace)


def elu(input, alpha=1.0, inplace=False):
    floating(input, "elu")
    x = _src(input, inplace)
    neg = where(x > 0, 0.0, x)  # exp only of non-positive values
    return _out(input, where(x > 0, x, (neg.exp() - 1.0) * alpha), inplace)


def selu(input, inplace=False):
    x = _src(input, inplace)
    return _out(input, elu(x, _SELU_ALPHA) * _SELU_SCALE, inplace)


def celu(input, alpha=1.0, inplace=False):
    if alpha == 0:
        raise ValueError("celu: alpha cannot be 0")
    x = _src(input, inplace)
    neg = where(x > 0, 0.0, x)
    return _out(input, where(x > 0, x, ((neg * (1.0 / alpha)).exp() - 1.0) * alpha), inplace)


def silu(input, inplace=False):
    floating(input, "silu")
    x = _src(input, inplace)
    return _out(input, x * x.sigmoid(), inplace)


def softplus(input, beta=1.0, threshold=20.0):
    """log(1 + exp(beta * x)) / beta, and x itself where beta * x > threshold (PyTorch's rule)."""
    z = input * beta
    linear = z > threshold
    soft = where(linear, 0.0, z).exp().log1p()
    return where(linear, input, soft * (1.0 / beta) if beta != 1 else soft)


def mish(input, inplace=False):
    x = _src(input, inplace)
    return _out(input, x * softplus(x).tanh(), inplace)


def logsigmoid(input):
    return -softplus(-input)


def hardsigmoid(input, inplace=False):
    x = _src(input, inplace)
    return _out(input, where(x <= -3.0, 0.0, where(x >= 3.0, 1.0, x * (1.0 / 6) + 0.5)), inplace)


def hardswish(input, inplace=False):
    # the kinks' gradients are PyTorch's: 0 at x = -3 and 1 at x = 3 (the outer pieces')
    x = _src(input, inplace)
    return _out(input, where(x <= -3.0, 0.0, where(x < 3.0, x * (x + 3.0) * (1.0 / 6), x)), inplace)


def softsign(input):
    return input / (input.abs() + 1.0)


def tanhshrink(input):
    return input - input.tanh()


def threshold(input, threshold, value, inplace=False):
    x = _src(input, inplace)
    return _out(input, where(x > threshold, x, value), inplace)


def hardshrink(input, lambd=0.5):
    return where((input > lambd) | (input < -lambd), input, 0.0)


def softshrink(input, lambd=0.5):
    if lambd < 0:
        raise ValueError(f"softshrink: lambda must be non-negative, got {lambd}")
    return where(input > lambd, input - lambd, where(input < -lambd, input + lambd, 0.0))


def prelu(input, weight):
    """x where x > 0, weight * x elsewhere; weight has 1 or C (= input.shape[1]) entries."""
    if not isinstance(weight, Tensor) or weight.ndim != 1:
        raise ShapeError(f"prelu: weight must be a 1-D tensor, got {shape_or(weight, weight)}")
    n = weight.shape[0]
    if n != 1:
        if input.ndim < 2 or input.shape[1] != n:
            raise ShapeError(f"prelu: weight has {n} entries but the input (shape {tuple(input.shape)}) has "
                             f"{input.shape[1] if input.ndim >= 2 else 1} channels in dim 1")
        weight = weight.reshape((1, n) + (1,) * (input.ndim - 2))
    return where(input > 0, input, input * weight)


def glu(input, dim=-1):
    n = input.shape[dim]
    if n % 2:
        raise ShapeError(f"glu: dim {dim} of input shape {tuple(input.shape)} has odd size {n}; it must split in halves")
    a, b = input.chunk(2, dim)
    return a * b.sigmoid()


def _feature_dropout(input, p, training, inplace, nd, name):
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{name}: dropout probability has to be between 0 and 1, got {p}")
    if not training or p == 0.0:
        return input
    # one draw per (sample, channel): whole feature maps are kept or zeroed together
    keep_shape = input.shape[:input.ndim - nd] + (1,) * nd
    out = input * 0.0 if p == 1.0 else where(rand(keep_shape, device=input.device) >= p, input * (1.0 / (1.0 - p)),
                                             0.0)
    return _out(input, out, inplace)


def dropout1d(input, p=0.5, training=True, inplace=False):
    if input.ndim not in (2, 3):
        raise ShapeError(f"dropout1d: expected a 3-D (batched) or 2-D (unbatched) input, got shape {tuple(input.shape)}")
    return _feature_dropout(input, p, training, inplace, 1, "dropout1d")


def dropout2d(input, p=0.5, training=True, inplace=False):
    # PyTorch's rules: other ranks than 3 and 4 are deprecated (a 2-D input drops elements), and a
    # 3-D input is (N, C, L) with one draw per (sample, channel), not an unbatched (C, H, W)
    if input.ndim < 2:
        raise ShapeError(f"dropout2d: feature dropout needs at least 2 dims, got shape {tuple(input.shape)}")
    if input.ndim not in (3, 4):
        warnings.warn(f"dropout2d: Received a {input.ndim}-D input to dropout2d, which is deprecated; it exists "
                      "for 3-D or 4-D inputs (channels and 2 spatial dims, with an optional batch dim): use "
                      "dropout instead", stacklevel=3)
    elif input.ndim == 3:
        warnings.warn("dropout2d: Received a 3D input to dropout2d and assuming that channel-wise 1D dropout "
                      "behavior is desired - input is interpreted as shape (N, C, L), where C is the channel dim; "
                      "use dropout1d for that", stacklevel=3)
    return _feature_dropout(input, p, training, inplace, input.ndim - 2, "dropout2d")


def dropout3d(input, p=0.5, training=True, inplace=False):
    if input.ndim not in (4, 5):
        warnings.warn(f"dropout3d: Received a {input.ndim}-D input to dropout3d, which is deprecated; it exists "
                      "for 4-D or 5-D inputs (channels and 3 spatial dims, with an optional batch dim)", stacklevel=3)
    if input.ndim == 5:
        return _feature_dropout(input, p, training, inplace, 3, "dropout3d")
    out = _feature_dropout(input.unsqueeze(0), p, training, False, input.ndim - 1, "dropout3d").squeeze(0)
    return _out(input, out, inplace) if training and p > 0.0 else input
