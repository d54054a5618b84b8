"""Collective primitives: work that every rank of a process group does together.

`all_reduce` combines a tensor across the ranks of the active process group (gradc.distributed).
Its eager kernel calls that group, so the same kernel serves eager mode and the generated code of
every backend. It has a side effect (it talks to the other ranks), so the simplify passes never
merge two of them or evaluate one at compile time; it is not differentiable (DDP applies it to
gradients once backward has finished). The reduction is the attribute `reduction`, an index into
REDUCE_OPS (a plain int, so every backend's templates render it as a literal)."""
from ..errors import DTypeError, GradcError
from .primitive import primitive

# The active process group ([group] or [None]): gradc.distributed sets it, the kernel below reads it.
GROUP = [None]

REDUCE_OPS = ("sum", "avg", "max", "min")


def reduction_code(op):
    """The `reduction` attribute for a reduction name ("sum", "avg", "max", "min")."""
    if op not in REDUCE_OPS:
        raise GradcError(f"all_reduce: unknown reduction {op!r}; use one of {', '.join(map(repr, REDUCE_OPS))}")
    return REDUCE_OPS.index(op)


def _name(reduction):
    if not isinstance(reduction, int) or isinstance(reduction, bool) or not 0 <= reduction < len(REDUCE_OPS):
        raise GradcError(f"all_reduce: reduction={reduction!r} is not an index into {REDUCE_OPS}")
    return REDUCE_OPS[reduction]


def _all_reduce_shape(shapes, reduction):
    _name(reduction)
    return shapes[0]


def _all_reduce_dtype(dtypes, reduction):
    d = dtypes[0]
    if d.category == 0:
        raise DTypeError("all_reduce of a bool tensor is not supported; convert it with .long() first")
    if _name(reduction) == "avg" and not d.is_floating_point:
        raise DTypeError(f"all_reduce(op='avg') needs a floating-point tensor, got {d!r}; reduce with op='sum' "
                         "and divide, or convert with .float() first")
    return d


def _all_reduce_kernel(xp, x, reduction):
    if GROUP[0] is None:
        raise GradcError("all_reduce: the process group is not initialised: call "
                         "gradc.distributed.init_process_group() first")
    return GROUP[0].all_reduce_array(x, _name(reduction))


all_reduce_p = primitive("all_reduce", "collective", 1, _all_reduce_shape, _all_reduce_dtype, _all_reduce_kernel,
                         diff=False)


def all_reduce(x, op="sum"):
    """x reduced over the ranks, as a new tensor (a graph node when traced)."""
    return all_reduce_p.bind(x, reduction=reduction_code(op))
