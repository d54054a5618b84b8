"""torch._dynamo's names that training scripts call directly: reset, mark_dynamic, is_compiling,
disable, config (cache_size_limit or recompile_limit, suppress_errors, automatic_dynamic_shapes) and the old
optimize(backend) decorator."""
from .compile_config import config  # noqa: F401
from .compiler import compile, disable, is_compiling, reset  # noqa: F401
from .dynamic import mark_dynamic  # noqa: F401


def optimize(backend="inductor", nopython=False, dynamic=None, disable=False):
    """torch._dynamo.optimize(backend)(fn): gradc.compile(fn, backend=backend, fullgraph=nopython)."""
    return lambda fn: compile(fn, backend=backend, fullgraph=nopython, dynamic=dynamic, disable=disable)
