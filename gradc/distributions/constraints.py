"""Constraints: the set a parameter or a sample lives in (torch.distributions.constraints). Each
`check(value)` gives a bool tensor over the batch (event dimensions reduced), which
`validate_args` reads to reject bad parameters and samples outside the support."""
from ..functions import isfinite
from .linalg import cholesky_pivots
from .utils import all_last

__all__ = ["Constraint", "boolean", "dependent", "greater_than", "greater_than_eq", "half_open_interval",
           "independent", "integer_interval", "interval", "less_than", "lower_cholesky", "nonnegative",
           "nonnegative_integer", "one_hot", "positive", "positive_definite", "real", "real_vector", "simplex",
           "unit_interval", "positive_integer"]


class Constraint:
    is_discrete = False
    event_dim = 0

    def check(self, value):
        raise NotImplementedError

    def __repr__(self):
        return type(self).__name__.lstrip("_") + "()"


class _Dependent(Constraint):
    """Depends on other parameters (Uniform's bounds): checked by the distribution itself."""

    def __init__(self, is_discrete=False, event_dim=0):
        self.is_discrete, self.event_dim = is_discrete, event_dim

    def check(self, value):
        raise ValueError("a dependent constraint cannot be checked on its own")


class _Real(Constraint):
    def check(self, value):
        return value == value   # not nan


class _Boolean(Constraint):
    is_discrete = True

    def check(self, value):
        return (value == 0) | (value == 1)


class _IntegerInterval(Constraint):
    is_discrete = True

    def __init__(self, lower, upper):
        self.lower_bound, self.upper_bound = lower, upper

    def check(self, value):
        ok = (value % 1 == 0) & (self.lower_bound <= value)
        return ok & (value <= self.upper_bound) if self.upper_bound is not None else ok

    def __repr__(self):
        return f"IntegerInterval(lower_bound={self.lower_bound}, upper_bound={self.upper_bound})"


class _Interval(Constraint):
    def __init__(self, lower, upper, lower_open=False, upper_open=False):
        self.lower_bound, self.upper_bound = lower, upper
        self.lower_open, self.upper_open = lower_open, upper_open

    def check(self, value):
        ok = value == value
        if self.lower_bound is not None:
            ok = ok & ((value > self.lower_bound) if self.lower_open else (value >= self.lower_bound))
        if self.upper_bound is not None:
            ok = ok & ((value < self.upper_bound) if self.upper_open else (value <= self.upper_bound))
        return ok

    def __repr__(self):
        return (f"{type(self).__name__.lstrip('_')}(lower_bound={self.lower_bound}, "
                f"upper_bound={self.upper_bound})")


class _GreaterThan(_Interval):
    def __init__(self, lower):
        super().__init__(lower, None, lower_open=True)


class _GreaterThanEq(_Interval):
    def __init__(self, lower):
        super().__init__(lower, None)


class _LessThan(_Interval):
    def __init__(self, upper):
        super().__init__(None, upper, upper_open=True)


class _IndependentConstraint(Constraint):
    def __init__(self, base, reinterpreted_batch_ndims):
        self.base_constraint, self.reinterpreted_batch_ndims = base, reinterpreted_batch_ndims
        self.is_discrete = base.is_discrete
        self.event_dim = base.event_dim + reinterpreted_batch_ndims

    def check(self, value):
        ok = self.base_constraint.check(value)
        n = self.reinterpreted_batch_ndims
        return all_last(ok.reshape(ok.shape[:len(ok.shape) - n] + (-1,))) if n else ok

    def __repr__(self):
        return f"IndependentConstraint({self.base_constraint!r}, {self.reinterpreted_batch_ndims})"


class _Simplex(Constraint):
    event_dim = 1

    def check(self, value):
        return all_last(value >= 0) & ((value.sum(-1) - 1).abs() < 1e-6)


class _OneHot(Constraint):
    is_discrete = True
    event_dim = 1

    def check(self, value):
        return all_last((value == 0) | (value == 1)) & (value.sum(-1) == 1)


class _LowerCholesky(Constraint):
    event_dim = 2

    def check(self, value):
        lower = all_last((value.tril() == value).reshape(value.shape[:-2] + (-1,)))
        return lower & all_last(value.diagonal(0, -2, -1) > 0)


class _PositiveDefinite(Constraint):
    """Symmetric, and a Cholesky factorisation exists (all its pivots positive)."""
    event_dim = 2

    def check(self, value):
        close = (value - value.transpose(-1, -2)).abs() <= 1e-6 * (1 + value.abs())
        sym = all_last(close.reshape(value.shape[:-2] + (-1,)))
        pivots = cholesky_pivots(value)
        return sym & all_last(pivots > 0) & all_last(isfinite(pivots))


dependent = _Dependent()
real = _Real()
real_vector = _IndependentConstraint(real, 1)
boolean = _Boolean()
nonnegative_integer = _IntegerInterval(0, None)
positive_integer = _IntegerInterval(1, None)
integer_interval = _IntegerInterval
interval = _Interval
half_open_interval = lambda lower, upper: _Interval(lower, upper, upper_open=True)   # noqa: E731
greater_than = _GreaterThan
greater_than_eq = _GreaterThanEq
less_than = _LessThan
independent = _IndependentConstraint
positive = _GreaterThan(0.0)
nonnegative = _GreaterThanEq(0.0)
unit_interval = _Interval(0.0, 1.0)
simplex = _Simplex()
one_hot = _OneHot()
lower_cholesky = _LowerCholesky()
positive_definite = _PositiveDefinite()
