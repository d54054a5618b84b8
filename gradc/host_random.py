"""Python's and NumPy's global random draws while a call is traced.

A draw made while tracing (`np.random.beta` for mixup, `random.random() < 0.5` for teacher forcing)
would be baked into the program as a constant: every later call would repeat the first call's
number. So while the tracing thread runs the user's function, the module-level functions of
`random` and `numpy.random` raise a TraceError, and the call runs eagerly (or, with
fullgraph=True, the error names the way out: draw with gradc, or outside the compiled function).
Other threads call the real functions. `np.random.default_rng(seed)` stays allowed (seeded, it is
deterministic); a `random.Random` or NumPy `Generator` object's draws are not covered: their
methods cannot be replaced."""
import contextlib
import random
import threading

import numpy as np

from .errors import TraceError

_PY = ("random", "uniform", "randint", "randrange", "choice", "choices", "shuffle", "sample", "gauss",
       "normalvariate", "lognormvariate", "expovariate", "vonmisesvariate", "gammavariate", "betavariate",
       "paretovariate", "weibullvariate", "triangular", "getrandbits", "randbytes", "binomialvariate")
_NP = tuple(n for n in getattr(np.random, "__all__", ()) if not isinstance(getattr(np.random, n, None), type)
            and callable(getattr(np.random, n, None))
            and n not in ("get_state", "set_state", "seed", "default_rng", "get_bit_generator", "set_bit_generator"))
_TARGETS = [(random, n) for n in _PY if hasattr(random, n)] + [(np.random, n) for n in _NP]
_lock = threading.Lock()
_active = {}   # thread id -> nesting depth of refusing_draws in that thread


def _refusing(module, name, real):
    label = f"{'numpy.random' if module is np.random else 'random'}.{name}()"

    def draw(*args, **kwargs):
        if threading.get_ident() in _active:
            raise TraceError(f"{label} was called while gradc.compile traced the function: its number would be "
                             "frozen into the program and repeated on every call. Draw with gradc (gradc.rand, "
                             "gradc.randint, torch-style), or outside the compiled function and pass it in")
        return real(*args, **kwargs)
    draw.__wrapped__, draw.__name__ = real, name
    return draw


@contextlib.contextmanager
def refusing_draws():
    """While the body runs in this thread, global random draws raise TraceError (see the module)."""
    me = threading.get_ident()
    with _lock:
        if not _active:
            for module, name in _TARGETS:
                real = getattr(module, name)
                if getattr(real, "__module__", None) != __name__:
                    setattr(module, name, _refusing(module, name, real))
        _active[me] = _active.get(me, 0) + 1
    try:
        yield
    finally:
        with _lock:
            _active[me] -= 1
            if not _active[me]:
                del _active[me]
            if not _active:
                for module, name in _TARGETS:
                    current = getattr(module, name)
                    if getattr(current, "__module__", None) == __name__:
                        setattr(module, name, current.__wrapped__)
