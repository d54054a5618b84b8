"""Every public op as a function: the op table's frontends, the composites and the creation
functions, published from their registrations (gradc.ops.frontend.install), which also makes
them Tensor methods. `gradc.*` re-exports this namespace; the user library (nn, optim, amp,
utils, distributed) imports its ops from here."""
from . import eager  # noqa: F401  (the base interpreter: installed before any op runs)
from . import composite, creation, ops, tensor_habits, tensor_ops  # noqa: F401  (register the frontends)
from . import tensor_index, tensor_layout, tensor_products, tensor_stacking, tensor_stats  # noqa: F401  (layout, stacking, indexing, products, statistics)
from . import tensor_aliases  # noqa: F401  (dtype queries, other spellings, *_scatter)
from . import random_fill  # noqa: F401  (bernoulli, normal, random_ and the other random fills)
from .ops.frontend import install
from .tensor import Tensor

__all__ = install(Tensor, globals())
