"""Parameter initialisers (PyTorch's formulas), drawing from gradc's global generator. Each fills
its tensor in place without recording history and returns it."""
import math
import warnings

import numpy as np

from ..grad_mode import no_grad
from ..random import generator, takes_generator


def _fill(tensor, values):
    with no_grad():
        tensor.copy_(np.asarray(values).astype(tensor.dtype.np))
    return tensor


@takes_generator
def uniform_(tensor, a=0.0, b=1.0):
    return _fill(tensor, generator().uniform(a, b, size=tensor.shape))


@takes_generator
def normal_(tensor, mean=0.0, std=1.0):
    return _fill(tensor, generator().normal(mean, std, size=tensor.shape))


def constant_(tensor, val):
    return _fill(tensor, np.full(tensor.shape, val))


def zeros_(tensor):
    return constant_(tensor, 0.0)


def ones_(tensor):
    return constant_(tensor, 1.0)


def eye_(tensor):
    if tensor.ndim != 2:
        raise ValueError(f"eye_: only 2-D tensors are supported, got shape {tuple(tensor.shape)}")
    return _fill(tensor, np.eye(*tensor.shape))


def dirac_(tensor, groups=1):
    """The identity of a convolution (3-, 4- or 5-D weight): 1 at the kernel's centre where output
    channel d of each of `groups` groups meets input channel d, 0 elsewhere."""
    if tensor.ndim not in (3, 4, 5):
        raise ValueError(f"dirac_: only 3, 4 and 5-D tensors are supported, got shape {tuple(tensor.shape)}")
    out_per = tensor.shape[0] // groups
    if tensor.shape[0] % groups:
        raise ValueError(f"dirac_: dim 0 ({tensor.shape[0]}) must be divisible by groups ({groups})")
    values = np.zeros(tensor.shape)
    centre = tuple(n // 2 for n in tensor.shape[2:])
    for g in range(groups):
        for d in range(min(out_per, tensor.shape[1])):
            values[(g * out_per + d, d) + centre] = 1.0
    return _fill(tensor, values)


@takes_generator
def sparse_(tensor, sparsity, std=0.01):
    """A 2-D weight drawn from N(0, std) with ceil(sparsity * rows) entries of each column zeroed."""
    if tensor.ndim != 2:
        raise ValueError(f"sparse_: only 2-D tensors are supported, got shape {tuple(tensor.shape)}")
    rows, cols = tensor.shape
    values = generator().normal(0.0, std, size=(rows, cols))
    for c in range(cols):
        values[generator().permutation(rows)[:math.ceil(sparsity * rows)], c] = 0.0
    return _fill(tensor, values)


def _fans(tensor, name):
    if tensor.ndim < 2:
        raise ValueError(f"{name}: fan in and fan out cannot be computed for a tensor with fewer than 2 dims "
                         f"(shape {tuple(tensor.shape)})")
    receptive = int(np.prod(tensor.shape[2:]))
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def _calculate_fan_in_and_fan_out(tensor):
    """(fan_in, fan_out) of a weight: the private helper custom layers call from reset_parameters."""
    return _fans(tensor, "_calculate_fan_in_and_fan_out")


def _calculate_correct_fan(tensor, mode):
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    return _fans(tensor, "_calculate_correct_fan")[0 if mode == "fan_in" else 1]


def calculate_gain(nonlinearity, param=None):
    """The recommended gain for a nonlinearity (PyTorch's table)."""
    if nonlinearity in ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
                        "conv_transpose3d", "sigmoid"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, (int, float)) and not isinstance(param, bool):
            slope = param
        else:
            raise ValueError(f"calculate_gain: negative_slope {param!r} is not a valid number")
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}")


def _kaiming_std(tensor, a, mode, nonlinearity, name):
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"{name}: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = _fans(tensor, name)
    fan = fan_in if mode == "fan_in" else fan_out
    if fan == 0:
        raise ValueError(f"{name}: cannot initialise a tensor with a zero-sized fan ({mode}, shape {tuple(tensor.shape)})")
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def _empty(tensor):
    if tensor.numel() == 0:   # (nn.Linear(0, n)): nothing to fill, as torch warns
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=3)
        return True
    return False


@takes_generator
def kaiming_uniform_(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu"):
    if _empty(tensor):
        return tensor
    bound = math.sqrt(3.0) * _kaiming_std(tensor, a, mode, nonlinearity, "kaiming_uniform_")
    return uniform_(tensor, -bound, bound)


@takes_generator
def kaiming_normal_(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu"):
    if _empty(tensor):
        return tensor
    return normal_(tensor, 0.0, _kaiming_std(tensor, a, mode, nonlinearity, "kaiming_normal_"))


@takes_generator
def xavier_uniform_(tensor, gain=1.0):
    fan_in, fan_out = _fans(tensor, "xavier_uniform_")
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound)


@takes_generator
def xavier_normal_(tensor, gain=1.0):
    fan_in, fan_out = _fans(tensor, "xavier_normal_")
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)))


@takes_generator
def trunc_normal_(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0):
    """Normal(mean, std) restricted to [a, b] (absolute bounds, as in PyTorch): out-of-range draws
    are drawn again, which samples the truncated distribution exactly."""
    if not a < b:
        raise ValueError(f"trunc_normal_: need a < b, got a={a}, b={b}")
    gen = generator()
    out = gen.normal(mean, std, size=tensor.shape)
    bad = (out < a) | (out > b)
    for _ in range(1000):
        if not bad.any():
            break
        out[bad] = gen.normal(mean, std, size=int(bad.sum()))
        bad = (out < a) | (out > b)
    else:  # [a, b] far in a tail: fall back to clipping what is still out of range
        out = np.clip(out, a, b)
    return _fill(tensor, out)


@takes_generator
def orthogonal_(tensor, gain=1.0):
    """A (semi-)orthogonal matrix from the QR decomposition of a normal draw, with the signs of
    R's diagonal folded in so the result is uniformly distributed; extra dims are flattened."""
    if tensor.ndim < 2:
        raise ValueError(f"orthogonal_: only tensors with 2 or more dims are supported, got shape {tuple(tensor.shape)}")
    rows = tensor.shape[0]
    cols = tensor.numel() // rows if rows else 0
    flat = generator().normal(0.0, 1.0, size=(rows, cols))
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    q = q * np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return _fill(tensor, (gain * q).reshape(tensor.shape))
