"""torch.distributions: probability distributions with sampling, log_prob and entropy, built from
gradc ops so they differentiate (reparameterised samples and score-function estimators).

Draws come from gradc's generator (reproducible under gradc.manual_seed). Normal, Uniform, Laplace,
Exponential, Cauchy, Gumbel, HalfNormal, LogNormal, MultivariateNormal and transformed
distributions have rsample, and a compiled function draws afresh on every call; Gamma, Beta,
Dirichlet, StudentT, Poisson and Binomial draw through NumPy's samplers, eagerly (Gamma, Beta and
Dirichlet with rsample: the implicit reparameterisation gradient, see gamma_grad).
Parameters and log_prob's values are checked by default (validate_args, as in PyTorch), raising
DistributionError; in a compiled function the check is part of the program and raises the same
error when it runs (a parameter a distribution computes itself, which the program cannot carry the
check on, still needs validate_args=False to compile)."""
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


def _torch_module_paths():
    """PyTorch keeps each distribution in a module of its own (`from torch.distributions.categorical
    import Categorical`): the same paths import here, as modules holding that class."""
    import sys
    import types
    for cls in (Bernoulli, Beta, Binomial, Categorical, Cauchy, Dirichlet, Exponential, Gamma, Geometric, Gumbel,
                HalfNormal, Independent, Laplace, LogNormal, MultivariateNormal, Normal, OneHotCategorical, Poisson,
                StudentT, TransformedDistribution, Uniform, Distribution):
        snake = "".join(f"_{c.lower()}" if c.isupper() and i else c.lower() for i, c in enumerate(cls.__name__))
        name = {"student_t": "studentT"}.get(snake, snake)
        if f"{__name__}.{name}" in sys.modules:   # a module of gradc's own has that name already
            continue
        module = types.ModuleType(f"{__name__}.{name}", f"torch.distributions.{name}: {cls.__name__}")
        setattr(module, cls.__name__, cls)
        sys.modules[module.__name__] = module
        globals()[name] = module


_torch_module_paths()
