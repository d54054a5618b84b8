"""`gradc.mark_dynamic`: the habit of torch._dynamo.mark_dynamic, with gradc's current semantics.

gradc's programs are specialised to shapes: a call with a new size traces once more (bounded by
`cache_limit`), and the reason names the dimension (`x.shape[0]: 8 -> 32`). Symbolic sizes, one
trace for all sizes, are not built yet; marking a dimension says so once instead of failing or
pretending, and checks its arguments as the real function would."""
import warnings

from .errors import ShapeError
from .shapes import normalize_axis
from .tensor import Tensor

_warned = [False]


def mark_dynamic(x, dim):
    if not isinstance(x, Tensor):
        raise TypeError(f"mark_dynamic expects a tensor, got {type(x).__name__}")
    dims = dim if isinstance(dim, (list, tuple)) else [dim]
    if x.ndim == 0:
        raise ShapeError("mark_dynamic: a 0-d tensor has no dimension to mark")
    for d in dims:
        normalize_axis("mark_dynamic", int(d), x.ndim)
    if not _warned[0]:
        _warned[0] = True
        warnings.warn("gradc.mark_dynamic: programs are specialised to shapes; each new size of a marked "
                      "dimension traces once more (bounded by cache_limit)", stacklevel=2)
