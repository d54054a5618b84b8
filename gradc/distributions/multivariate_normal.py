"""MultivariateNormal, given exactly one of covariance_matrix, precision_matrix or scale_tril
(PyTorch's parametrisation). Everything goes through the lower-triangular scale L (Sigma = L L^T),
from a Cholesky factorisation written with tensor ops (gradc.distributions.linalg), so log_prob,
entropy and rsample differentiate and compile. Meant for event sizes up to tens."""
import math

from ..functions import broadcast_shapes, randn
from . import constraints
from .distribution import Distribution
from .linalg import checked_cholesky as cholesky, lower_inverse, solve_lower
from .utils import DistributionError


def _symmetric(m):
    return (m + m.transpose(-1, -2)) * 0.5


class MultivariateNormal(Distribution):
    arg_constraints = {"loc": constraints.real_vector, "covariance_matrix": constraints.positive_definite,
                       "precision_matrix": constraints.positive_definite, "scale_tril": constraints.lower_cholesky}
    support = constraints.real_vector
    has_rsample = True

    def __init__(self, loc, covariance_matrix=None, precision_matrix=None, scale_tril=None, validate_args=None):
        given = [(k, v) for k, v in (("covariance_matrix", covariance_matrix), ("precision_matrix", precision_matrix),
                                     ("scale_tril", scale_tril)) if v is not None]
        if len(given) != 1:
            raise DistributionError("MultivariateNormal: give exactly one of covariance_matrix, precision_matrix "
                                    f"or scale_tril (got {', '.join(k for k, _ in given) or 'none'})")
        if loc.ndim < 1:
            raise DistributionError("MultivariateNormal: loc must be at least one-dimensional (the event)")
        name, m = given[0]
        if m.ndim < 2 or m.shape[-1] != m.shape[-2] or m.shape[-1] != loc.shape[-1]:
            raise DistributionError(f"MultivariateNormal: {name} must be a batch of square matrices matching loc's "
                                    f"last dimension {loc.shape[-1]}, got shape {tuple(m.shape)}")
        batch = broadcast_shapes(m.shape[:-2], loc.shape[:-1])
        n = loc.shape[-1]
        self.loc = loc.expand(batch + (n,))
        setattr(self, name, m.expand(batch + (n, n)))
        super().__init__(batch, (n,), validate_args=validate_args)
        if name == "scale_tril":
            self._unbroadcasted_scale_tril = scale_tril
        elif name == "covariance_matrix":   # (symmetrised, so its gradient is symmetric, as torch's is)
            self._unbroadcasted_scale_tril = cholesky(_symmetric(covariance_matrix))
        else:   # Sigma = P^-1 = (L_P L_P^T)^-1 = L_P^-T L_P^-1, then its own Cholesky factor
            inv = lower_inverse(cholesky(_symmetric(precision_matrix)))
            self._unbroadcasted_scale_tril = cholesky(inv.transpose(-1, -2) @ inv)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(MultivariateNormal, _instance)
        shape = self._expand_shape(batch_shape)
        n = self._event_shape
        new.loc = self.loc.expand(shape + n)
        new._unbroadcasted_scale_tril = self._unbroadcasted_scale_tril
        for k in ("covariance_matrix", "precision_matrix", "scale_tril"):
            if k in self.__dict__:
                new.__dict__[k] = self.__dict__[k].expand(shape + n + n)
        Distribution.__init__(new, shape, n, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def __getattr__(self, name):   # the parametrisations not given, derived on first use
        if name == "scale_tril":
            value = self._unbroadcasted_scale_tril.expand(self._batch_shape + self._event_shape * 2)
        elif name == "covariance_matrix":
            lt = self._unbroadcasted_scale_tril
            value = (lt @ lt.transpose(-1, -2)).expand(self._batch_shape + self._event_shape * 2)
        elif name == "precision_matrix":
            inv = lower_inverse(self._unbroadcasted_scale_tril)
            value = (inv.transpose(-1, -2) @ inv).expand(self._batch_shape + self._event_shape * 2)
        else:
            raise AttributeError(f"'MultivariateNormal' object has no attribute {name!r}")
        self.__dict__[name] = value
        return value

    @property
    def mean(self):
        return self.loc

    @property
    def mode(self):
        return self.loc

    @property
    def variance(self):
        return (self._unbroadcasted_scale_tril ** 2).sum(-1).expand(self._batch_shape + self._event_shape)

    def rsample(self, sample_shape=()):
        shape = self._extended_shape(sample_shape)
        eps = randn(shape, dtype=self.loc.dtype, device=self.loc.device)
        return self.loc + (self._unbroadcasted_scale_tril @ eps.unsqueeze(-1)).squeeze(-1)

    def half_log_det(self):
        """log |L| = half the log-determinant of the covariance."""
        return self._unbroadcasted_scale_tril.diagonal(0, -2, -1).log().sum(-1)

    def mahalanobis(self, diff):
        """|L^-1 diff|^2 (diff broadcast against the batch)."""
        lt = self._unbroadcasted_scale_tril
        shape = broadcast_shapes(diff.shape[:-1], lt.shape[:-2])
        x = solve_lower(lt.expand(shape + lt.shape[-2:]), diff.expand(shape + diff.shape[-1:]))
        return (x ** 2).sum(-1)

    def log_prob(self, value):
        if self._validate_args:
            value = self._validate_sample(value)
        n = self._event_shape[0]
        m = self.mahalanobis(value - self.loc)
        return -0.5 * (n * math.log(2 * math.pi) + m) - self.half_log_det()

    def entropy(self):
        n = self._event_shape[0]
        h = 0.5 * n * (1.0 + math.log(2 * math.pi)) + self.half_log_det()
        return h.expand(self._batch_shape) if self._batch_shape else h
