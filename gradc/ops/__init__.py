"""The primitive op table (gradc.ops.OPS): one entry per primitive, each defined in the module of
its family. Importing this package registers them all; `frontend` publishes their names."""
from .primitive import ELEMENTWISE_KINDS, OPS, Ctx, Primitive, primitive  # noqa: F401
from . import elementwise, reduce, movement, index, linalg, sorting, attention, collective  # noqa: E402,F401  (registers the table)
from . import special, mathfns  # noqa: E402,F401  (more elementwise math: primitives, then composites)
