"""Shape arithmetic shared by the frontend, the op table and the passes."""
from .errors import DimensionError, ShapeError
from .symint import SymInt


def broadcast_shapes(name, shapes):
    first = shapes[0]
    if all(len(s) == len(first) and s == first for s in shapes):   # (most calls: nothing to broadcast)
        return tuple(first)
    ndim = max(len(s) for s in shapes)
    out = []
    for i in range(-ndim, 0):
        size = 1
        for s in shapes:   # (compared with ==, not in a set: a symbolic size equals another by a guard)
            if len(s) >= -i and s[i] != 1:
                if size != 1 and s[i] != size:
                    shown = " and ".join(str(tuple(s)) for s in shapes)
                    raise ShapeError(f"{name}: shapes {shown} cannot be broadcast together (dimension {i} "
                                     "differs); reshape or unsqueeze one operand so sizes match or are 1")
                size = s[i] if size == 1 else size
        out.append(size)
    return tuple(out)


def normalize_axis(name, axis, ndim):
    if not -max(ndim, 1) <= axis < max(ndim, 1):
        raise DimensionError(f"{name}: dim {axis} is out of range for a tensor with {ndim} dimension(s) "
                             f"(valid: {-max(ndim, 1)}..{max(ndim, 1) - 1})")
    return axis % max(ndim, 1)


def prod(shape):
    n = 1
    for d in shape:
        n *= d if type(d) is int or isinstance(d, SymInt) else int(d)
    return n


class Size(tuple):
    """torch.Size: a tuple of dimension sizes (what Tensor.size() returns), with numel()."""
    __slots__ = ()

    def numel(self):
        return prod(self)

    def __repr__(self):
        return f"gradc.Size({list(self)})"

    def __getitem__(self, key):
        item = tuple.__getitem__(self, key)
        return Size(item) if isinstance(key, slice) else item

    # Sums and repeats stay sizes (x.shape + (1,), (1,) + x.shape, x.shape * 2), as torch.Size's do.
    def __add__(self, other):
        return Size(tuple.__add__(self, other)) if isinstance(other, tuple) else NotImplemented

    def __radd__(self, other):
        return Size(tuple.__add__(other, self)) if isinstance(other, tuple) else NotImplemented

    def __mul__(self, n):
        return Size(tuple.__mul__(self, n))

    __rmul__ = __mul__


def shape_or(x, otherwise):
    """x's shape as a plain tuple, for a message (a Size prints as gradc.Size([...])); `otherwise`
    for what has no shape."""
    return tuple(x.shape) if hasattr(x, "shape") else otherwise


class MemoryFormat:
    """torch.memory_format: how a tensor's elements lie in memory (`x.contiguous(memory_format=...)`,
    `model.to(memory_format=gradc.channels_last)`); values never depend on it."""
    __slots__ = ("name", "rank")

    def __init__(self, name, rank=None):
        self.name, self.rank = name, rank   # rank: the dims a channels-last layout needs

    def __repr__(self):
        return f"torch.{self.name}"


contiguous_format, preserve_format = MemoryFormat("contiguous_format"), MemoryFormat("preserve_format")
channels_last, channels_last_3d = MemoryFormat("channels_last", 4), MemoryFormat("channels_last_3d", 5)


class Layout:
    """torch.layout: gradc's tensors are all dense (torch.strided)."""
    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return f"torch.{self.name}"


strided = Layout("strided")
