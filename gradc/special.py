"""torch.special: the special functions under their SciPy-style names, from gradc's ops (so they
differentiate, fuse and compile like any op)."""
import math

from .functions import (digamma, erf, erfc, erfinv, exp2, expm1, lgamma, log1p, log_softmax, logit,  # noqa: F401
                        logsumexp, round, sigmoid, sinc, softmax, where, xlogy, zeros_like)

expit = sigmoid
gammaln = lgamma
psi = digamma


def xlog1py(input, other):
    """input * log1p(other), 0 where input is 0 (and other is not NaN)."""
    return where(input == 0, zeros_like(input * other), input * log1p(other))


def entr(input):
    """-x log x for x > 0, 0 at 0, -inf for x < 0."""
    return where(input > 0, -input * input.log(), where(input == 0, zeros_like(input), -math.inf * (input < 0)))


def ndtr(input):
    """The standard normal distribution function."""
    return 0.5 * (1 + erf(input * (1 / math.sqrt(2))))


def ndtri(input):
    """The inverse of ndtr."""
    return math.sqrt(2) * erfinv(2 * input - 1)


def log_ndtr(input):
    """log(ndtr(x)), through erfc so that the far left tail keeps its digits."""
    return (0.5 * erfc(-input * (1 / math.sqrt(2)))).log()
