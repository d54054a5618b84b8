"""The global random generator behind rand/randn/randint, dropout and parameter init, and the
generator= keyword of the random functions (a gradc.Generator drawn from instead)."""
import functools
from contextlib import contextmanager

import numpy as np

from . import dispatch
from .errors import TraceError

_initial = [int(np.random.SeedSequence().entropy % (1 << 63))]   # an unseeded process still has its seed
_gen = [np.random.default_rng(_initial[0])]


def manual_seed(seed):
    """Seed every gradc random draw (like torch.manual_seed)."""
    _initial[0] = int(seed)
    _gen[0] = np.random.default_rng(_initial[0])


def seed():
    """Seed the global generator from fresh entropy and return that seed (torch.seed)."""
    value = int(np.random.SeedSequence().entropy % (1 << 63))
    manual_seed(value)
    return value


def initial_seed():
    """The seed the global generator was last seeded with (torch.initial_seed)."""
    return _initial[0]


def generator():
    return _gen[0]


def get_rng_state():
    _not_traced("get_rng_state")
    return _gen[0].bit_generator.state


def set_rng_state(state):
    _not_traced("set_rng_state")
    _gen[0].bit_generator.state = state


def _not_traced(name):
    """The generator's state is read or set at the moment of the call: inside a trace that moment is
    once, while a compiled program draws afresh on each call, so such a call runs eagerly."""
    if dispatch.tracer() is not None:
        raise TraceError(f"{name}() inside a compiled function: the program would keep the generator state of "
                         "the moment it was traced; call it outside the compiled function")


@contextmanager
def drawing_from(generator):
    """Draws inside come from `generator` (a gradc.Generator; None: the global one). A draw from a
    Generator object runs eagerly: a compiled program draws from the global generator only."""
    if generator is None:
        yield
        return
    from . import dispatch
    from .errors import TraceError
    if not hasattr(generator, "numpy_generator"):
        raise TypeError(f"generator must be a gradc.Generator, got {type(generator).__name__}")
    if dispatch.tracer() is not None:
        raise TraceError("a random draw with generator= inside gradc.compile: a compiled program draws from "
                         "gradc's global generator only (seed it with gradc.manual_seed), or draw outside")
    previous = _gen[0]
    _gen[0] = generator.numpy_generator
    try:
        yield
    finally:
        _gen[0] = previous


def takes_generator(fn):
    """fn with PyTorch's keyword-only generator= argument."""
    @functools.wraps(fn)
    def wrapper(*args, generator=None, **kwargs):
        if generator is None:   # (the common call: no context manager)
            return fn(*args, **kwargs)
        with drawing_from(generator):
            return fn(*args, **kwargs)
    return wrapper


def sample(spec):
    """Draw the array a random-tensor spec describes: (kind, shape, dtype name, low, high), kind
    one of "rand", "randn", "randint", "randperm". Eager calls and compiled programs both draw
    through here, in the same order, so compiled randomness matches eager randomness."""
    import numpy as np
    from .dtypes import ALL
    kind, shape, dtype, low, high = spec
    g = _gen[0]
    np_dtype = ALL[dtype].np
    if kind == "rand":
        out = g.random(shape, dtype=np.float32) if dtype != "float64" else g.random(shape)
    elif kind == "randn":
        out = g.standard_normal(shape, dtype=np.float32) if dtype != "float64" else g.standard_normal(shape)
    elif kind == "randint":
        out = g.integers(low, high, size=shape)
    elif kind == "randperm":
        out = g.permutation(high)
    else:
        raise ValueError(f"unknown random kind {kind!r}")
    return np.asarray(out).astype(np_dtype, copy=False)
