"""Shape and dtype rules shared by several primitives."""
from ..errors import DTypeError
from ..shapes import broadcast_shapes, normalize_axis  # noqa: F401  (re-exported for the entries)


def elementwise_shape(name):
    return lambda shapes, **_: broadcast_shapes(name, shapes)


def same_dtype(name):
    def rule(dtypes, **_):
        if any(d is not dtypes[0] for d in dtypes[1:]):
            raise DTypeError(f"{name}: operand dtypes differ ({', '.join(map(repr, dtypes))}); cast one with .to(dtype)")
        return dtypes[0]
    return rule


def floating(name):
    same = same_dtype(name)

    def rule(dtypes, **_):
        d = same(dtypes)
        if not d.is_floating_point:
            raise DTypeError(f"{name} needs a floating-point tensor, got {d!r}; convert with .float()")
        return d
    return rule
