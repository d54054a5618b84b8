"""Shape and dtype rules shared by several primitives."""
from ..errors import DTypeError, ShapeError


def broadcast_shapes(name, shapes):
    ndim = max(len(s) for s in shapes)
    out = []
    for i in range(-ndim, 0):
        dims = {s[i] for s in shapes if len(s) >= -i} - {1}
        if len(dims) > 1:
            shown = " and ".join(str(tuple(s)) for s in shapes)
            raise ShapeError(f"{name}: shapes {shown} cannot be broadcast together "
                             f"(dimension {i} differs); reshape or unsqueeze one operand so sizes match or are 1")
        out.append(dims.pop() if dims else 1)
    return tuple(out)


def elementwise_shape(name):
    return lambda shapes, **_: broadcast_shapes(name, shapes)


def same_dtype(name):
    def rule(dtypes, **_):
        if any(d is not dtypes[0] for d in dtypes[1:]):
            raise DTypeError(f"{name}: operand dtypes differ ({', '.join(map(repr, dtypes))}); cast one with .to(dtype)")
        return dtypes[0]
    return rule


def floating(name):
    def rule(dtypes, **_):
        d = same_dtype(name)(dtypes)
        if not d.is_floating_point:
            raise DTypeError(f"{name} needs a floating-point tensor, got {d!r}; convert with .float()")
        return d
    return rule


def normalize_axis(name, axis, ndim):
    if not -max(ndim, 1) <= axis < max(ndim, 1):
        raise ShapeError(f"{name}: dim {axis} is out of range for a tensor with {ndim} dimension(s) "
                         f"(valid: {-max(ndim, 1)}..{max(ndim, 1) - 1})")
    return axis % max(ndim, 1)
