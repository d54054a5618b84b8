"""The random draws PyTorch spells as functions of a tensor of parameters (bernoulli, normal,
poisson-free) and as in-place fills (bernoulli_, random_, exponential_, log_normal_, geometric_,
cauchy_), built on the one generator behind rand/randn, so compiled programs draw what eager code
draws under the same seed."""
import math

from . import dtypes as D
from .composite import assign
from .creation import arange, full, rand, randint, randn
from .errors import DTypeError, ShapeError, ValueRangeError
from .grad_mode import no_grad
from .ops.frontend import export, where
from .random import takes_generator
from .tensor import Tensor


def _float_dtype(t):
    return t.dtype if t.dtype.is_floating_point else D.default_float


def _check_std(std, name):
    if isinstance(std, (int, float)) and not std >= 0:
        raise ValueRangeError(f"{name}: std must be >= 0, got {std}")


def _uniform(t):
    return rand(t.shape, dtype=_float_dtype(t), device=t.device)


@export("bernoulli")
@takes_generator
def bernoulli(input, p=None):
    """0/1 draws with probabilities `input` (or the float p, with input's shape), in input's dtype."""
    with no_grad():
        probs = input if p is None else p
        if isinstance(probs, (int, float)):
            if not 0.0 <= probs <= 1.0:
                raise ValueRangeError(f"bernoulli: p must be in [0, 1], got p={probs}")
        elif probs._data is not None and ((probs._data < 0) | (probs._data > 1)).any():   # (eagerly: a check on values)
            raise ValueRangeError("bernoulli: every probability must be in [0, 1]")
        return (_uniform(input) < probs).to(input.dtype)


@export("bernoulli_", function=False)
@takes_generator
def bernoulli_(self, p=0.5):
    return assign(self, bernoulli(self, p), "bernoulli_")


@export("normal", method=False)
@takes_generator
def normal(mean, std=1.0, size=None, dtype=None, device=None, requires_grad=False):
    """Normal draws: with tensor mean and/or std, one per element of their broadcast shape
    (differentiable in both: mean + std * eps); with float mean and std, of the given size."""
    if isinstance(mean, Tensor) or isinstance(std, Tensor):
        if size is not None:
            raise ShapeError("normal: size is taken from the mean/std tensors; pass size only with float mean and std")
        like = mean if isinstance(mean, Tensor) else std
        other = std if like is mean else mean
        shape = like.shape if not isinstance(other, Tensor) else \
            tuple(max(a, b) for a, b in zip((1,) * (len(other.shape) - len(like.shape)) + like.shape,
                                             (1,) * (len(like.shape) - len(other.shape)) + other.shape))
        eps = randn(shape, dtype=_float_dtype(like), device=like.device)
        return mean + std * eps
    if size is None:
        raise ShapeError("normal(mean, std) with float mean and std needs size=, e.g. gradc.normal(0.0, 1.0, (3, 4))")
    _check_std(std, "normal")
    out = randn(size, dtype=dtype, device=device) * std + mean
    return out.requires_grad_() if requires_grad else out


@export("randint_like", method=False)
def randint_like(input, low=0, high=None, dtype=None, device=None, requires_grad=False):
    if high is None:
        low, high = 0, low
    return randint(low, high, input.shape, dtype=dtype or input.dtype, device=device or input.device,
                   requires_grad=requires_grad)


@export("random_", function=False)
@takes_generator
def random_(self, from_=0, to=None):
    """Whole numbers drawn uniformly from [from_, to - 1] (to=None: up to the largest value the dtype
    holds exactly: 2**24 for float32, 2**53 for float64, 2**63 - 1 for int64)."""
    if to is None:
        top = {D.float16: 2 ** 11, D.float32: 2 ** 24, D.float64: 2 ** 53}.get(self.dtype, 2 ** 63 - 1)
        from_, to = (0, from_) if from_ else (0, top)
    if to <= from_:
        raise ShapeError(f"random_: expects from < to, got from={from_}, to={to}")
    return assign(self, randint(from_, to, self.shape, device=self.device).to(self.dtype), "random_")


def _fill(self, name, draw):
    if not self.dtype.is_floating_point:
        raise DTypeError(f"{name} fills floating-point tensors, got {self.dtype!r}")
    with no_grad():
        return assign(self, draw(_uniform(self)).to(self.dtype), name)


@export("exponential_", function=False)
@takes_generator
def exponential_(self, lambd=1.0):
    if not lambd > 0:
        raise ValueRangeError(f"exponential_: lambd must be > 0, got {lambd}")
    return _fill(self, "exponential_", lambda u: -(1.0 - u).log() / lambd)


@export("log_normal_", function=False)
@takes_generator
def log_normal_(self, mean=1.0, std=2.0):
    return assign(self, (randn(self.shape, dtype=self.dtype, device=self.device) * std + mean).exp(), "log_normal_")


@export("geometric_", function=False)
@takes_generator
def geometric_(self, p):
    """The number of trials up to the first success (1, 2, ...), success probability p."""
    if not 0 < p <= 1:
        raise ShapeError(f"geometric_: expects 0 < p <= 1, got p={p}")
    if p == 1:
        return assign(self, full(self.shape, 1, dtype=self.dtype, device=self.device), "geometric_")
    with no_grad():
        u = _uniform(self)
        return assign(self, ((1.0 - u).log() / math.log1p(-p)).floor().clamp(min=0.0).to(self.dtype) + 1,
                      "geometric_")


@export("cauchy_", function=False)
@takes_generator
def cauchy_(self, median=0.0, sigma=1.0):
    return _fill(self, "cauchy_", lambda u: median + sigma * (math.pi * (u - 0.5)).tan())


@export("fill_diagonal_", function=False)
def fill_diagonal_(self, fill_value, wrap=False):
    """The main diagonal (all dims equal, or the first min(rows, cols) of a 2-D tensor; with wrap a
    tall matrix's diagonal restarts every cols + 1 rows, as in PyTorch) set to fill_value."""
    if self.ndim < 2 or (self.ndim > 2 and len(set(self.shape)) != 1):
        raise ShapeError(f"fill_diagonal_: expects a 2-D tensor or one whose dims are all equal, got shape {tuple(self.shape)}")
    if self.ndim == 2:
        rows, cols = self.shape
        r = arange(rows, device=self.device).unsqueeze(1)
        c = arange(cols, device=self.device).unsqueeze(0)
        period = cols + 1
        on = (r % period == c) & ((r < cols) if not wrap else (r % period < cols))
    else:
        idx = [arange(n, device=self.device).reshape((n,) + (1,) * (self.ndim - 1 - k)) for k, n in enumerate(self.shape)]
        on = idx[0] == idx[1]
        for t in idx[2:]:
            on = on & (idx[0] == t)
    return assign(self, where(on, full((), fill_value, dtype=self.dtype, device=self.device), self), "fill_diagonal_")


@export("get_device", function=False)
def get_device(self):
    """-1 for a CPU tensor, the GPU's index for a CUDA tensor (as in PyTorch)."""
    return -1 if self.device.type == "cpu" else (self.device.index or 0)


@export("normal_", function=False)
@takes_generator
def normal_(self, mean=0.0, std=1.0):
    if not std >= 0:
        raise ValueRangeError(f"normal_: std must be >= 0, got {std}")
    return assign(self, randn(self.shape, dtype=self.dtype, device=self.device) * std + mean, "normal_")


@export("uniform_", function=False)
@takes_generator
def uniform_(self, a=0.0, b=1.0):
    if a > b:
        raise ValueRangeError(f"uniform_: the range [{a}, {b}) is empty: from must not exceed to")
    return assign(self, rand(self.shape, dtype=self.dtype, device=self.device) * (b - a) + a, "uniform_")
