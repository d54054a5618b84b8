"""More families with PyTorch's parametrisations and formulas: Cauchy, HalfNormal and Gumbel
(reparameterised: transforms of gradc's uniform or normal draws), StudentT (its chi-squared part
drawn through NumPy's gamma sampler, so sample() only, eagerly), and the counts Poisson, Geometric
and Binomial (Geometric from uniform draws; Poisson and Binomial through NumPy's samplers,
eagerly: traced, they raise TraceError)."""
import math

import numpy as np

from .. import dispatch
from .. import random as grandom
from ..errors import TraceError
from ..functions import arange, atan, digamma, erf, erfinv, finfo, lgamma, rand, randn, tensor, where, xlogy
from ..grad_mode import no_grad
from ..nn import functional as F
from . import constraints
from .binary import BinaryProbsOrLogits
from .continuous import LocScale
from .distribution import Distribution
from .gamma import Gamma
from .utils import LOG_SQRT_2PI, broadcast_all

EULER = 0.57721566490153286060


def _numpy_draw(who, draw, *params):
    if dispatch.tracer() is not None:
        raise TraceError(f"{who}.sample draws through NumPy's sampler, which reads the parameters' values and a "
                         "compiled program cannot replay; draw outside the compiled function")
    with no_grad():
        arrays = [p.detach().cpu().numpy().astype(np.float64) for p in params]
        return tensor(draw(grandom.generator(), *arrays), dtype=params[-1].dtype, device=params[-1].device)


class Cauchy(LocScale):
    @property
    def mean(self):
        return self.loc * float("nan")

    @property
    def variance(self):
        return self.loc * 0 + float("inf")

    def rsample(self, sample_shape=()):
        u = self._draw("rand", sample_shape)
        return self.loc + (math.pi * (u - 0.5)).tan() * self.scale

    def log_prob(self, value):
        if self._validate_args:
            value = self._validate_sample(value)
        return -math.log(math.pi) - self.scale.log() - (((value - self.loc) / self.scale) ** 2).log1p()

    def cdf(self, value):
        if self._validate_args:
            value = self._validate_sample(value)
        return atan((value - self.loc) / self.scale) / math.pi + 0.5

    def icdf(self, value):
        return (math.pi * (value - 0.5)).tan() * self.scale + self.loc

    def entropy(self):
        return math.log(4 * math.pi) + self.scale.log()


class Gumbel(LocScale):
    @property
    def mean(self):
        return self.loc + self.scale * EULER

    @property
    def stddev(self):
        return (math.pi / math.sqrt(6)) * self.scale

    @property
    def variance(self):
        return self.stddev ** 2

    def rsample(self, sample_shape=()):
        info = finfo(self.loc.dtype)
        u = self._draw("rand", sample_shape).clamp(min=info.tiny, max=1 - info.eps)
        return self.loc - self.scale * (-u.log()).log()

    def log_prob(self, value):
        if self._validate_args:
            value = self._validate_sample(value)
        z = (value - self.loc) / self.scale
        return -(self.scale.log() + z + (-z).exp())

    def cdf(self, value):
        return (-(-(value - self.loc) / self.scale).exp()).exp()

    def icdf(self, value):
        return self.loc - self.scale * (-value.log()).log()

    def entropy(self):
        return self.scale.log() + (1 + EULER)


class HalfNormal(Distribution):
    """|X| for X ~ Normal(0, scale)."""
    arg_constraints = {"scale": constraints.positive}
    support = constraints.nonnegative
    has_rsample = True

    def __init__(self, scale, validate_args=None):
        (self.scale,) = broadcast_all(scale)
        super().__init__(self.scale.shape, validate_args=validate_args)

    @property
    def mean(self):
        return self.scale * math.sqrt(2 / math.pi)

    @property
    def mode(self):
        return self.scale * 0

    @property
    def variance(self):
        return self.scale ** 2 * (1 - 2 / math.pi)

    def rsample(self, sample_shape=()):
        eps = randn(self._extended_shape(sample_shape), dtype=self.scale.dtype, device=self.scale.device)
        return (eps * self.scale).abs()

    def log_prob(self, value):
        if self._validate_args:
            value = self._validate_sample(value)
        lp = -(value ** 2) / (2 * self.scale ** 2) - self.scale.log() - LOG_SQRT_2PI + math.log(2)
        return where(value >= 0, lp, float("-inf"))

    def cdf(self, value):
        if self._validate_args:
            value = self._validate_sample(value)
        return erf(value / (self.scale * math.sqrt(2)))

    def icdf(self, prob):
        return erfinv(prob) * self.scale * math.sqrt(2)

    def entropy(self):
        return 0.5 + 0.5 * math.log(2 * math.pi) + self.scale.log() - math.log(2)


class StudentT(Distribution):
    arg_constraints = {"df": constraints.positive, "loc": constraints.real, "scale": constraints.positive}
    support = constraints.real

    def __init__(self, df, loc=0.0, scale=1.0, validate_args=None):
        self.df, self.loc, self.scale = broadcast_all(df, loc, scale)
        super().__init__(self.df.shape, validate_args=validate_args)

    @property
    def mean(self):
        return where(self.df > 1, self.loc, float("nan"))

    @property
    def mode(self):
        return self.loc

    @property
    def variance(self):
        v = self.scale ** 2 * self.df / (self.df - 2).clamp(min=1e-300)
        return where(self.df > 2, v, where(self.df > 1, float("inf"), float("nan")))

    def sample(self, sample_shape=()):
        shape = self._extended_shape(sample_shape)
        with no_grad():
            chi2 = Gamma(0.5 * self.df, 0.5 * self.df * 0 + 0.5, validate_args=False).sample(sample_shape)
            x = randn(shape, dtype=self.df.dtype, device=self.df.device)
            return self.loc + self.scale * x * (chi2 / self.df).rsqrt()

    def log_prob(self, value):
        if self._validate_args:
            value = self._validate_sample(value)
        y = (value - self.loc) / self.scale
        z = self.scale.log() + 0.5 * self.df.log() + 0.5 * math.log(math.pi) + lgamma(0.5 * self.df) - \
            lgamma(0.5 * (self.df + 1.0))
        return -0.5 * (self.df + 1.0) * (y ** 2 / self.df).log1p() - z

    def entropy(self):
        lbeta = lgamma(0.5 * self.df) + math.lgamma(0.5) - lgamma(0.5 * (self.df + 1))
        return self.scale.log() + 0.5 * (self.df + 1) * (digamma(0.5 * (self.df + 1)) - digamma(0.5 * self.df)) \
            + 0.5 * self.df.log() + lbeta


class Poisson(Distribution):
    arg_constraints = {"rate": constraints.nonnegative}
    support = constraints.nonnegative_integer

    def __init__(self, rate, validate_args=None):
        (self.rate,) = broadcast_all(rate)
        super().__init__(self.rate.shape, validate_args=validate_args)

    @property
    def mean(self):
        return self.rate

    @property
    def mode(self):
        return self.rate.floor()

    @property
    def variance(self):
        return self.rate

    def sample(self, sample_shape=()):
        shape = self._extended_shape(sample_shape)
        return _numpy_draw("Poisson", lambda g, r: g.poisson(np.broadcast_to(r, shape)).astype(np.float64), self.rate)

    def log_prob(self, value):
        if self._validate_args:
            value = self._validate_sample(value)
        rate, value = broadcast_all(self.rate, value)
        return xlogy(value, rate) - rate - lgamma(value + 1)


class Geometric(BinaryProbsOrLogits):
    """The number of failures before the first success (support 0, 1, 2, ...)."""
    arg_constraints = {"probs": constraints.interval(0.0, 1.0), "logits": constraints.real}
    support = constraints.nonnegative_integer

    def __init__(self, probs=None, logits=None, validate_args=None):
        (p,) = self._set_param("Geometric", probs, logits)
        super().__init__(p.shape, validate_args=validate_args)

    @property
    def mean(self):
        return 1.0 / self.probs - 1.0

    @property
    def mode(self):
        return self.probs * 0

    @property
    def variance(self):
        return (1.0 / self.probs - 1.0) / self.probs

    def sample(self, sample_shape=()):
        with no_grad():
            p = self.probs
            u = rand(self._extended_shape(sample_shape), dtype=p.dtype, device=p.device).clamp(min=finfo(p.dtype).tiny)
            return (u.log() / (-p).log1p()).floor()

    def log_prob(self, value):
        if self._validate_args:
            value = self._validate_sample(value)
        value, probs = broadcast_all(value, self.probs)
        probs = where((probs == 1) & (value == 0), 0.0, probs)
        return value * (-probs).log1p() + self.probs.log()

    def entropy(self):
        return F.binary_cross_entropy_with_logits(self.logits, self.probs, reduction="none") / self.probs


class Binomial(BinaryProbsOrLogits):
    arg_constraints = {"total_count": constraints.nonnegative_integer, "probs": constraints.unit_interval,
                       "logits": constraints.real}
    has_enumerate_support = True

    def __init__(self, total_count=1, probs=None, logits=None, validate_args=None):
        p, self.total_count = self._set_param("Binomial", probs, logits, total_count)
        self.total_count = self.total_count.to(p.dtype)
        super().__init__(p.shape, validate_args=validate_args)

    @property
    def support(self):
        return constraints.integer_interval(0, self.total_count)

    @property
    def mean(self):
        return self.total_count * self.probs

    @property
    def mode(self):
        return ((self.total_count + 1) * self.probs).floor().clamp(max=self.total_count)

    @property
    def variance(self):
        return self.total_count * self.probs * (1 - self.probs)

    def sample(self, sample_shape=()):
        shape = self._extended_shape(sample_shape)
        return _numpy_draw("Binomial", lambda g, n, p: g.binomial(np.broadcast_to(n, shape).astype(np.int64),
                                                                  np.broadcast_to(p, shape)).astype(np.float64),
                           self.total_count, self.probs)

    def log_prob(self, value):
        if self._validate_args:
            value = self._validate_sample(value)
        n, logits = self.total_count, self.logits
        clamp_by_zero = (logits.clamp(min=0) + logits - logits.clamp(max=0)) / 2
        normalize = n * clamp_by_zero + n * (-logits.abs()).exp().log1p() - lgamma(n + 1)
        return value * logits - lgamma(value + 1) - lgamma(n - value + 1) - normalize

    def entropy(self):
        n = int(float(self.total_count.max()))
        if float(self.total_count.min()) != n:
            raise NotImplementedError("Binomial.entropy needs one total_count for the whole batch (as in PyTorch)")
        lp = self.log_prob(self.enumerate_support(False))
        return -(lp.exp() * lp).sum(0)

    def enumerate_support(self, expand=True):
        n = int(float(self.total_count.max()))
        if float(self.total_count.min()) != n:
            raise NotImplementedError("Binomial.enumerate_support needs one total_count for the whole batch")
        values = arange(1 + n, dtype=self._param.dtype, device=self._param.device)
        values = values.reshape((-1,) + (1,) * len(self._batch_shape))
        return values.expand((1 + n,) + self._batch_shape) if expand else values
