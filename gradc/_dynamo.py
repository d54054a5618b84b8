"""torch._dynamo's names that training scripts call directly: reset, mark_dynamic, is_compiling and
disable, which are gradc.compiler's and gradc.mark_dynamic."""
from .compiler import disable, is_compiling, reset  # noqa: F401
from .dynamic import mark_dynamic  # noqa: F401
