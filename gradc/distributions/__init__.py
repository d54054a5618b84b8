"""torch.distributions: probability distributions with sampling, log_prob and entropy, built from
gradc ops so they differentiate (reparameterised samples and score-function estimators).

Draws come from gradc's generator (reproducible under gradc.manual_seed). Normal, Uniform, Laplace,
Exponential, Cauchy, Gumbel, HalfNormal, LogNormal, MultivariateNormal and transformed
distributions have rsample, and a compiled function draws afresh on every call; Gamma, Beta,
Dirichlet, StudentT, Poisson and Binomial draw through NumPy's samplers, eagerly (Gamma, Beta and
Dirichlet with rsample: the implicit reparameterisation gradient, see gamma_grad).
Parameters and log_prob's values are checked by default (validate_args, as in PyTorch), raising
DistributionError; a compiled function needs validate_args=False, since the check reads values
(otherwise it raises TraceError and the function runs eagerly)."""
from . import constraints
from .continuous import Exponential, Laplace, Normal, Uniform
from .discrete import Bernoulli, Categorical, OneHotCategorical
from .distribution import Distribution
from .gamma import Beta, Dirichlet, Gamma
from .independent import Independent
from .kl import kl_divergence, register_kl
from .more import Binomial, Cauchy, Geometric, Gumbel, HalfNormal, Poisson, StudentT
from .multivariate_normal import MultivariateNormal
from . import transforms
from .transformed import LogNormal, TransformedDistribution
from .utils import DistributionError, KLNotImplementedError

__all__ = ["Bernoulli", "Beta", "Binomial", "Categorical", "Cauchy", "Geometric", "Gumbel", "HalfNormal",
           "Poisson", "StudentT", "Dirichlet", "Distribution", "DistributionError", "Exponential",
           "Gamma", "Independent", "KLNotImplementedError", "Laplace", "LogNormal", "MultivariateNormal", "Normal",
           "OneHotCategorical", "TransformedDistribution", "Uniform", "constraints", "kl_divergence", "register_kl",
           "transforms"]
