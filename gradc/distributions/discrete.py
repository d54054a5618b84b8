"""Bernoulli, Categorical and OneHotCategorical, given probs or logits (exactly one; the other is
derived on first use, as in PyTorch). Draws compare gradc's uniform draws with the probabilities
(the cumulative ones, for Categorical), so they are reproducible under gradc.manual_seed and a
compiled function draws afresh on every call."""
from ..functions import arange, broadcast_tensors, eye, finfo, rand, where
from ..grad_mode import no_grad
from ..nn import functional as F
from ..tensor import Tensor
from . import constraints
from .binary import BinaryProbsOrLogits, one_of
from .distribution import Distribution
from .utils import DistributionError, broadcast_all, lazy_property, logits_to_probs, probs_to_logits


class Bernoulli(BinaryProbsOrLogits):
    arg_constraints = {"probs": constraints.unit_interval, "logits": constraints.real}
    support = constraints.boolean
    has_enumerate_support = True

    def __init__(self, probs=None, logits=None, validate_args=None):
        (p,) = self._set_param("Bernoulli", probs, logits)
        super().__init__(p.shape, validate_args=validate_args)

    @property
    def param_shape(self):
        return self._param.shape

    @property
    def mean(self):
        return self.probs

    @property
    def mode(self):
        p = self.probs
        return where(p == 0.5, float("nan"), (p >= 0.5).to(p.dtype))

    @property
    def variance(self):
        return self.probs * (1 - self.probs)

    def sample(self, sample_shape=()):
        with no_grad():
            p = self.probs
            u = rand(self._extended_shape(sample_shape), dtype=p.dtype, device=p.device)
            return (u < p).to(p.dtype)

    def log_prob(self, value):
        if self._validate_args:
            value = self._validate_sample(value)
        logits, value = broadcast_all(self.logits, value)
        return -F.binary_cross_entropy_with_logits(logits, value, reduction="none")

    def entropy(self):
        return F.binary_cross_entropy_with_logits(self.logits, self.probs, reduction="none")

    def enumerate_support(self, expand=True):
        values = arange(2, dtype=self._param.dtype, device=self._param.device)
        values = values.reshape((-1,) + (1,) * len(self._batch_shape))
        return values.expand((2,) + self._batch_shape) if expand else values


class Categorical(Distribution):
    """Over {0, ..., K-1}, K = the size of the last dimension of probs or logits (probs need not sum
    to 1: they are normalised; logits are normalised to log-probabilities)."""
    arg_constraints = {"probs": constraints.simplex, "logits": constraints.independent(constraints.real, 1)}
    has_enumerate_support = True

    def __init__(self, probs=None, logits=None, validate_args=None):
        one_of(type(self).__name__, probs, logits)
        param = probs if probs is not None else logits
        if not isinstance(param, Tensor) or param.ndim < 1:
            raise DistributionError(f"{type(self).__name__}: probs or logits must be a tensor of at least one "
                                    "dimension (the categories are the last)")
        if probs is not None:
            self.probs = probs / probs.sum(-1, keepdim=True)
        else:
            self.logits = logits - logits.logsumexp(-1, keepdim=True)
        self._num_events = param.shape[-1]
        super().__init__(param.shape[:-1], validate_args=validate_args)

    @property
    def _param(self):
        return self.__dict__["probs"] if "probs" in self.__dict__ else self.__dict__["logits"]

    @lazy_property
    def logits(self):
        return probs_to_logits(self.probs)

    @lazy_property
    def probs(self):
        return logits_to_probs(self.logits)

    @property
    def param_shape(self):
        return self._param.shape

    @property
    def support(self):
        return constraints.integer_interval(0, self._num_events - 1)

    @property
    def mean(self):
        return self.probs[..., 0] * float("nan")

    @property
    def mode(self):
        return self.probs.argmax(-1)

    @property
    def variance(self):
        return self.probs[..., 0] * float("nan")

    def sample(self, sample_shape=()):
        with no_grad():
            p = self.probs
            cdf = p.cumsum(-1)
            u = rand(self._extended_shape(sample_shape) + (1,), dtype=p.dtype, device=p.device)
            # the first k with u < cdf[k]: P(k) = cdf[k] - cdf[k-1] = p[k] (clamped for a cdf that rounds below 1)
            return (cdf[..., :-1] <= u).sum(-1).clamp(max=self._num_events - 1)

    def log_prob(self, value):
        if self._validate_args:
            value = self._validate_sample(value)
        value = value.long().unsqueeze(-1)
        value, log_pmf = broadcast_tensors(value, self.logits)
        return log_pmf.gather(-1, value[..., :1]).squeeze(-1)

    def entropy(self):
        logits = self.logits.clamp(min=finfo(self.logits.dtype).min)
        return -(logits * self.probs).sum(-1)

    def enumerate_support(self, expand=True):
        values = arange(self._num_events, device=self._param.device).reshape((-1,) + (1,) * len(self._batch_shape))
        return values.expand((self._num_events,) + self._batch_shape) if expand else values


class OneHotCategorical(Distribution):
    """A Categorical whose samples are one-hot vectors of length K (event shape (K,))."""
    arg_constraints = {"probs": constraints.simplex, "logits": constraints.independent(constraints.real, 1)}
    support = constraints.one_hot
    has_enumerate_support = True

    def __init__(self, probs=None, logits=None, validate_args=None):
        self._categorical = Categorical(probs, logits, validate_args=validate_args)
        super().__init__(self._categorical.batch_shape, self._categorical.param_shape[-1:],
                         validate_args=False)
        if validate_args is not None:
            self._validate_args = validate_args
        else:
            del self.__dict__["_validate"]

    @property
    def probs(self):
        return self._categorical.probs

    @property
    def logits(self):
        return self._categorical.logits

    @property
    def param_shape(self):
        return self._categorical.param_shape

    @property
    def mean(self):
        return self.probs

    @property
    def mode(self):
        p = self.probs
        return F.one_hot(p.argmax(-1), p.shape[-1]).to(p.dtype)

    @property
    def variance(self):
        return self.probs * (1 - self.probs)

    def sample(self, sample_shape=()):
        p = self.probs
        return F.one_hot(self._categorical.sample(sample_shape), p.shape[-1]).to(p.dtype)

    def log_prob(self, value):
        if self._validate_args:
            value = self._validate_sample(value)
        return self._categorical.log_prob(value.argmax(-1))

    def entropy(self):
        return self._categorical.entropy()

    def enumerate_support(self, expand=True):
        n = self._event_shape[0]
        values = eye(n, dtype=self.probs.dtype, device=self.probs.device)
        values = values.reshape((n,) + (1,) * len(self._batch_shape) + (n,))
        return values.expand((n,) + self._batch_shape + (n,)) if expand else values
