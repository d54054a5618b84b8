"""torch._dynamo's names that training scripts call directly: reset, mark_dynamic, is_compiling,
disable, config (cache_size_limit or recompile_limit, suppress_errors, automatic_dynamic_shapes) and the old
optimize(backend) decorator."""
import sys as _sys
import types as _types

from .compile_config import config  # noqa: F401
from .compiled_module import CompiledModule as _CompiledModule
from .compiler import compile, disable, is_compiling, reset  # noqa: F401
from .dynamic import mark_dynamic  # noqa: F401


def optimize(backend="inductor", nopython=False, dynamic=None, disable=False):
    """torch._dynamo.optimize(backend)(fn): gradc.compile(fn, backend=backend, fullgraph=nopython)."""
    return lambda fn: compile(fn, backend=backend, fullgraph=nopython, dynamic=dynamic, disable=disable)


# torch._dynamo.eval_frame.OptimizedModule, which unwrapping helpers test compiled models against:
# the class gradc.compile(module) returns (importable by that path too)
eval_frame = _sys.modules[__name__ + ".eval_frame"] = _types.ModuleType(__name__ + ".eval_frame")
eval_frame.OptimizedModule = _CompiledModule
