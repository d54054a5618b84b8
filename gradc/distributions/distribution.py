"""The Distribution base class (torch.distributions.Distribution): batch and event shapes,
sample / rsample, log_prob, entropy, moments, expand, and argument validation that raises
DistributionError naming the parameter and the constraint it breaks."""
import math

from .. import dispatch
from ..errors import TraceError
from ..grad_mode import no_grad
from ..ops.index import DISTRIBUTION_CHECK, check_values
from ..shapes import Size
from ..tensor import Tensor
from . import constraints
from .utils import DistributionError, as_shape

_DEFAULT_VALIDATE = [True]


class Distribution:
    has_rsample = False
    has_enumerate_support = False
    arg_constraints = {}
    support = None

    @staticmethod
    def set_default_validate_args(value):
        """Whether distributions check their parameters and samples by default (True, as in PyTorch)."""
        if value not in (True, False):
            raise DistributionError(f"set_default_validate_args expects True or False, got {value!r}")
        _DEFAULT_VALIDATE[0] = value

    def __init__(self, batch_shape=(), event_shape=(), validate_args=None):
        self._batch_shape, self._event_shape = tuple(batch_shape), tuple(event_shape)
        if validate_args is not None:
            self._validate_args = bool(validate_args)
        if self._validate_args:
            for name, constraint in self.arg_constraints.items():
                if isinstance(constraint, type(constraints.dependent)):
                    continue   # checked by the subclass
                if name not in self.__dict__ and not isinstance(getattr(type(self), name, None), property):
                    continue   # not given (probs when logits were): derived, on first use, from a valid one
                checked = self._check(constraint, getattr(self, name), f"parameter {name}")
                if name in self.__dict__:   # (traced: the checked value carries the check into the program)
                    self.__dict__[name] = checked
                elif dispatch.tracer() is not None:
                    raise TraceError(f"{type(self).__name__}(validate_args=True) checks its parameter {name}, which "
                                     "it computes, so a compiled program cannot keep the check; pass "
                                     "validate_args=False to compile it")
        super().__init__()

    @property
    def _validate_args(self):
        return self.__dict__.get("_validate", _DEFAULT_VALIDATE[0])

    @_validate_args.setter
    def _validate_args(self, value):
        self.__dict__["_validate"] = value

    def _check(self, constraint, value, what):
        """`value`, checked against `constraint`: at once eagerly, and when the program runs if traced
        (the value returned carries the check; a bad value raises DistributionError either way)."""
        if not isinstance(value, Tensor):
            return value
        ok = constraint.check(value)
        message = (f"{type(self).__name__}: expected {what} ({type(value).__name__} of shape {tuple(value.shape)}) "
                   f"to satisfy the constraint {constraint!r}, but found invalid values")
        if dispatch.tracer() is not None:
            return check_values((~ok).any(), DISTRIBUTION_CHECK + message, value)
        if not bool(ok.all()):
            raise DistributionError(f"{message}:\n{value}")
        return value

    @property
    def batch_shape(self):
        return Size(self._batch_shape)   # (a torch.Size, as PyTorch gives it)

    @property
    def event_shape(self):
        return Size(self._event_shape)

    def expand(self, batch_shape, _instance=None):
        """A view of this distribution with a larger batch shape: each tensor parameter (an entry of
        arg_constraints) expanded with its event dims kept, a wrapped distribution expanded, other
        attributes shared. Families with other state define their own."""
        new = self._get_checked_instance(type(self), _instance)
        shape = self._expand_shape(batch_shape)
        n = len(self._batch_shape)
        for k, v in self.__dict__.items():
            if isinstance(v, Distribution):   # a wrapped distribution of the same batch (Beta's Dirichlet)
                v = v.expand(shape + tuple(v.batch_shape[n:]))
            elif k in self.arg_constraints and isinstance(v, Tensor):
                v = v.expand(shape + tuple(v.shape[n:]))
            new.__dict__[k] = v
        Distribution.__init__(new, shape, self._event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def _get_checked_instance(self, cls, _instance=None):
        if _instance is None and type(self).__init__ != cls.__init__:
            raise NotImplementedError(f"subclass {type(self).__name__} of {cls.__name__} that defines a custom "
                                      "__init__ must also define expand()")
        return self.__new__(type(self)) if _instance is None else _instance

    def _expand_shape(self, batch_shape):
        batch_shape = as_shape(batch_shape, f"{type(self).__name__}.expand")
        return tuple(batch_shape)

    @property
    def mean(self):
        raise NotImplementedError(f"{type(self).__name__} has no mean")

    @property
    def mode(self):
        raise NotImplementedError(f"{type(self).__name__} has no mode")

    @property
    def variance(self):
        raise NotImplementedError(f"{type(self).__name__} has no variance")

    @property
    def stddev(self):
        return self.variance.sqrt()

    def sample(self, sample_shape=()):
        """Draws without gradient (rsample under no_grad, where there is one)."""
        with no_grad():
            return self.rsample(sample_shape)

    def rsample(self, sample_shape=()):
        raise DistributionError(f"{type(self).__name__} has no reparameterised sampler (rsample); use sample() "
                                "(no gradient flows through it)")

    def sample_n(self, n):
        return self.sample((n,))

    def log_prob(self, value):
        raise NotImplementedError(f"{type(self).__name__} does not implement log_prob")

    def cdf(self, value):
        raise NotImplementedError(f"{type(self).__name__} does not implement cdf")

    def icdf(self, value):
        raise NotImplementedError(f"{type(self).__name__} does not implement icdf")

    def enumerate_support(self, expand=True):
        raise NotImplementedError(f"{type(self).__name__} does not implement enumerate_support")

    def entropy(self):
        raise NotImplementedError(f"{type(self).__name__} does not implement entropy")

    def perplexity(self):
        return self.entropy().exp()

    def _extended_shape(self, sample_shape=()):
        return as_shape(sample_shape, f"{type(self).__name__}.sample") + self._batch_shape + self._event_shape

    def _validate_sample(self, value):
        """A value given to log_prob/cdf: a tensor whose trailing dimensions fit the event shape and
        broadcast with the batch shape, inside the support."""
        if not isinstance(value, Tensor):
            raise DistributionError(f"{type(self).__name__}.log_prob: the value must be a tensor, got "
                                    f"{type(value).__name__}")
        n = len(self._event_shape)
        shape = tuple(value.shape)
        if len(shape) < n or shape[len(shape) - n:] != self._event_shape:
            raise DistributionError(f"{type(self).__name__}: the value's shape {shape} does not end in the event "
                                    f"shape {self._event_shape}")
        actual, expected = shape[:len(shape) - n], self._batch_shape
        for a, b in zip(reversed(actual), reversed(expected)):
            if a != 1 and b != 1 and a != b:
                raise DistributionError(f"{type(self).__name__}: a value of shape {shape} does not broadcast with "
                                        f"the batch shape {expected} and event shape {self._event_shape}")
        support = self.support
        return value if support is None else self._check(support, value, "value (log_prob's argument)")

    def __repr__(self):   # (PyTorch's: a one-element parameter by value, a larger one by size)
        shown = [f"{k}: {v if not isinstance(v, Tensor) or v.numel() == 1 else v.size()}"
                 for k, v in ((k, self.__dict__[k]) for k in self.arg_constraints if k in self.__dict__)]
        return f"{type(self).__name__}({', '.join(shown)})"


def numel(shape):
    return math.prod(shape)
