"""Parameter initialisers (PyTorch's formulas), drawing from gradc's global generator."""
import math

import numpy as np

from ..autograd import no_grad
from ..random import generator


def _fill(tensor, values):
    with no_grad():
        tensor.copy_(values.astype(tensor.dtype.np))
    return tensor


def uniform_(tensor, a=0.0, b=1.0):
    return _fill(tensor, generator().uniform(a, b, size=tensor.shape))


def normal_(tensor, mean=0.0, std=1.0):
    return _fill(tensor, generator().normal(mean, std, size=tensor.shape))


def zeros_(tensor):
    return _fill(tensor, np.zeros(tensor.shape))


def ones_(tensor):
    return _fill(tensor, np.ones(tensor.shape))


def _fan_in(tensor):
    return tensor.shape[1] * int(np.prod(tensor.shape[2:])) if tensor.ndim >= 2 else tensor.shape[0]


def kaiming_uniform_(tensor, a=0.0):
    gain = math.sqrt(2.0 / (1 + a * a))
    bound = gain * math.sqrt(3.0 / _fan_in(tensor))
    return uniform_(tensor, -bound, bound)


def xavier_uniform_(tensor, gain=1.0):
    fan_in, fan_out = _fan_in(tensor), tensor.shape[0] * int(np.prod(tensor.shape[2:]))
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound)
