"""Gamma, Beta and Dirichlet (PyTorch's parametrisations; log_prob, entropy and moments through
lgamma/digamma, so they differentiate). Their draws come from gradc's generator (reproducible under
gradc.manual_seed) through NumPy's gamma sampler, and rsample attaches the implicit
reparameterisation gradient of each Gamma draw (gamma_grad); Dirichlet and Beta draws are
normalised Gamma draws, differentiated through that normalisation (an unbiased pathwise gradient,
though per draw not PyTorch's, which differentiates the Beta marginals). A draw reads the
parameters' values, so it runs eagerly: traced, it raises TraceError (the compiled function then
runs eagerly), while log_prob and entropy compile."""
import numpy as np

from .. import dispatch
from .. import random as grandom
from ..errors import TraceError
from ..functions import digamma, finfo, lgamma, stack, tensor, where, xlogy
from ..grad_mode import no_grad
from ..nn import functional as F
from . import constraints
from .distribution import Distribution
from .gamma_grad import reparameterised
from .utils import DistributionError, all_last, broadcast_all


def _standard_gamma(who, concentration, shape):
    """Gamma(concentration, 1) draws of `shape` (concentration broadcast to it), in its dtype."""
    if dispatch.tracer() is not None:
        raise TraceError(f"{who}.sample draws through NumPy's gamma sampler, which reads the parameters' values "
                         "and a compiled program cannot replay; draw outside the compiled function (its log_prob "
                         "and entropy compile)")
    with no_grad():
        c = np.broadcast_to(concentration.detach().cpu().numpy().astype(np.float64), shape)
        draws = grandom.generator().standard_gamma(c)
        out = tensor(draws, dtype=concentration.dtype, device=concentration.device)
    return out.clamp(min=finfo(out.dtype).tiny)


def _standard_gamma_rsample(who, concentration, shape):
    """Gamma(concentration, 1) draws with the implicit-reparameterisation gradient."""
    x = _standard_gamma(who, concentration, shape)
    return reparameterised(x, concentration.expand(shape))


class Gamma(Distribution):
    has_rsample = True
    arg_constraints = {"concentration": constraints.positive, "rate": constraints.positive}
    support = constraints.nonnegative

    def __init__(self, concentration, rate, validate_args=None):
        self.concentration, self.rate = broadcast_all(concentration, rate)
        super().__init__(self.concentration.shape, validate_args=validate_args)

    @property
    def mean(self):
        return self.concentration / self.rate

    @property
    def mode(self):
        return ((self.concentration - 1) / self.rate).clamp(min=0)

    @property
    def variance(self):
        return self.concentration / self.rate ** 2

    def sample(self, sample_shape=()):
        shape = self._extended_shape(sample_shape)
        with no_grad():
            return (_standard_gamma("Gamma", self.concentration, shape) / self.rate).clamp(
                min=finfo(self.rate.dtype).tiny)

    def rsample(self, sample_shape=()):
        shape = self._extended_shape(sample_shape)
        x = _standard_gamma_rsample("Gamma", self.concentration, shape) / self.rate
        return x.clamp(min=finfo(x.dtype).tiny)

    def log_prob(self, value):
        if self._validate_args:
            value = self._validate_sample(value)
        c, r = self.concentration, self.rate
        return xlogy(c, r) + xlogy(c - 1, value) - r * value - lgamma(c)

    def entropy(self):
        c = self.concentration
        return c - self.rate.log() + lgamma(c) + (1.0 - c) * digamma(c)


class Dirichlet(Distribution):
    """Over the probability simplex of the last dimension of concentration (event shape (K,))."""
    has_rsample = True
    arg_constraints = {"concentration": constraints.independent(constraints.positive, 1)}
    support = constraints.simplex

    def __init__(self, concentration, validate_args=None):
        if concentration.ndim < 1:
            raise DistributionError("Dirichlet: concentration must have at least one dimension (the K categories)")
        self.concentration = concentration
        super().__init__(concentration.shape[:-1], concentration.shape[-1:], validate_args=validate_args)

    @property
    def mean(self):
        return self.concentration / self.concentration.sum(-1, keepdim=True)

    @property
    def mode(self):
        cm1 = (self.concentration - 1).clamp(min=0)
        mode = cm1 / cm1.sum(-1, keepdim=True)
        all_below_one = all_last(self.concentration < 1, keepdim=True)   # the mode is then a corner
        corner = F.one_hot(mode.argmax(-1), cm1.shape[-1]).to(mode.dtype)
        return where(all_below_one, corner, mode)

    @property
    def variance(self):
        c = self.concentration
        c0 = c.sum(-1, keepdim=True)
        return c * (c0 - c) / (c0 ** 2 * (c0 + 1))

    def sample(self, sample_shape=()):
        shape = self._extended_shape(sample_shape)
        with no_grad():
            g = _standard_gamma("Dirichlet", self.concentration, shape)
            x = g / g.sum(-1, keepdim=True)
            return x.clamp(min=finfo(x.dtype).tiny, max=1 - finfo(x.dtype).eps)

    def rsample(self, sample_shape=()):
        g = _standard_gamma_rsample("Dirichlet", self.concentration, self._extended_shape(sample_shape))
        x = g / g.sum(-1, keepdim=True)
        return x.clamp(min=finfo(x.dtype).tiny, max=1 - finfo(x.dtype).eps)

    def log_prob(self, value):
        if self._validate_args:
            value = self._validate_sample(value)
        c = self.concentration
        return xlogy(c - 1.0, value).sum(-1) + lgamma(c.sum(-1)) - lgamma(c).sum(-1)

    def entropy(self):
        c = self.concentration
        k, a0 = c.shape[-1], c.sum(-1)
        return lgamma(c).sum(-1) - lgamma(a0) - (k - a0) * digamma(a0) - ((c - 1.0) * digamma(c)).sum(-1)


class Beta(Distribution):
    """Beta(concentration1, concentration0) on [0, 1]: the first coordinate of a Dirichlet."""
    has_rsample = True
    arg_constraints = {"concentration1": constraints.positive, "concentration0": constraints.positive}
    support = constraints.unit_interval

    def __init__(self, concentration1, concentration0, validate_args=None):
        c1, c0 = broadcast_all(concentration1, concentration0)
        self._dirichlet = Dirichlet(stack([c1, c0], -1), validate_args=validate_args)
        super().__init__(self._dirichlet.batch_shape, validate_args=validate_args)

    @property
    def concentration1(self):
        return self._dirichlet.concentration[..., 0]

    @property
    def concentration0(self):
        return self._dirichlet.concentration[..., 1]

    @property
    def mean(self):
        return self.concentration1 / (self.concentration1 + self.concentration0)

    @property
    def mode(self):
        return self._dirichlet.mode[..., 0]

    @property
    def variance(self):
        total = self.concentration1 + self.concentration0
        return self.concentration1 * self.concentration0 / (total ** 2 * (total + 1))

    def sample(self, sample_shape=()):
        return self._dirichlet.sample(sample_shape)[..., 0]

    def rsample(self, sample_shape=()):
        return self._dirichlet.rsample(sample_shape)[..., 0]

    def log_prob(self, value):
        if self._validate_args:
            value = self._validate_sample(value)
        return self._dirichlet.log_prob(stack([value, 1.0 - value], -1))

    def entropy(self):
        return self._dirichlet.entropy()
