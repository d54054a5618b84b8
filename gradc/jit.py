"""gradc.jit: the torch.jit names that models and scripts call, so code written for TorchScript runs.

gradc has no TorchScript. `script` gives back what it is handed: the function or module runs as
the Python it is, which computes what its TorchScript form would (gradc.compile is how gradc
compiles it). `trace` compiles with gradc.compile and runs the example inputs through it, as
torch.jit.trace runs them; unlike a TorchScript trace, the compiled function still follows the
Python control flow of every later call (each new branch or shape is traced again), so it cannot
silently replay the example's path. The decorators (`ignore`, `unused`, `export`) mark nothing
gradc needs marked and give back what they decorate."""
import typing
import warnings

import numpy as np

from .compiler import compile as _compile
from .pytree import flatten
from .random import get_rng_state, set_rng_state

Final = typing.Final


def script(obj, optimize=None, _frames_up=0, _rcb=None, example_inputs=None):
    """torch.jit.script: `obj` itself (see the module docstring)."""
    return obj


def trace(func, example_inputs=None, optimize=None, check_trace=True, check_inputs=None, check_tolerance=1e-5,
          strict=True, _force_outplace=False, _module_class=None, _compilation_unit=None,
          example_kwarg_inputs=None, _store_inputs=True):
    """torch.jit.trace: `func` (a function or module) compiled, traced on `example_inputs` (a tensor
    or a tuple of them) or `example_kwarg_inputs` (a dict). With check_trace, the compiled results
    for the example inputs and every entry of `check_inputs` are compared with eager ones (random
    draws replayed), warning where they differ by more than check_tolerance, as torch's check does.
    optimize, strict and the underscored arguments steer TorchScript's own trace: gradc has none of
    it, so they are taken in torch's signature and change nothing."""
    compiled = _compile(func)
    cases = [example_inputs] + list(check_inputs or [])
    for case in cases if check_trace else cases[:1]:
        args = () if case is None else case if isinstance(case, tuple) else (case,)
        kwargs = example_kwarg_inputs if case is example_inputs and example_kwarg_inputs else {}
        state = get_rng_state()
        got = compiled(*args, **kwargs)
        if check_trace:
            set_rng_state(state)
            _check(got, func(*args, **kwargs), check_tolerance)
    return compiled


def _check(got, want, tolerance):
    for i, (a, b) in enumerate(zip(flatten(got)[0], flatten(want)[0])):
        a, b = a.detach().cpu().numpy(), b.detach().cpu().numpy()
        if a.shape != b.shape or not np.allclose(a, b, rtol=tolerance, atol=tolerance, equal_nan=True):
            warnings.warn(f"gradc.jit.trace: output {i} of the traced function does not match the eager "
                          f"result on the check inputs (tolerance {tolerance})", stacklevel=3)


def ignore(drop=False, **kwargs):
    """torch.jit.ignore, as @ignore or @ignore(drop=True): the function itself."""
    return drop if callable(drop) else (lambda fn: fn)


def unused(fn):
    return fn


def export(fn):
    return fn


def is_scripting():
    """False: gradc never runs code as TorchScript (the branch for eager Python is the one taken)."""
    return False


def is_tracing():
    """False: gradc.jit.trace compiles with gradc.compile, whose tracing is not TorchScript's."""
    return False


def annotate(the_type, the_value):
    return the_value
