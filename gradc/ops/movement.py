"""Movement primitives: reshape, permute, expand, slice (and its transpose, pad), concat.
Attributes are fully normalised by the frontend (no -1 sizes, no negative indices)."""
from ..errors import ShapeError
from .frontend import shape_arg
from .primitive import primitive
from .rules import normalize_axis, same_dtype


def _prod(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def _reshape_shape(shapes, shape):
    if _prod(shapes[0]) != _prod(shape):
        raise ShapeError(f"reshape: cannot reshape a tensor of shape {tuple(shapes[0])} "
                         f"({_prod(shapes[0])} elements) into {tuple(shape)} ({_prod(shape)} elements)")
    return shape


def _permute_shape(shapes, perm):
    if sorted(perm) != list(range(len(shapes[0]))):
        raise ShapeError(f"permute: {tuple(perm)} is not a permutation of the {len(shapes[0])} dims of shape {tuple(shapes[0])}")
    return tuple(shapes[0][p] for p in perm)


def _expand_shape(shapes, shape):
    src = shapes[0]
    if len(src) != len(shape) or any(s != d and s != 1 for s, d in zip(src, shape)):
        raise ShapeError(f"expand: shape {tuple(src)} cannot be expanded to {tuple(shape)} "
                         "(only dimensions of size 1 can grow)")
    return shape


def _first_dtype(dtypes, **_):
    return dtypes[0]


reshape_p = primitive("reshape", "movement", 1, _reshape_shape, _first_dtype,
                      lambda xp, x, shape: xp.reshape(x, shape), view=True)
permute_p = primitive("permute", "movement", 1, _permute_shape, _first_dtype,
                      lambda xp, x, perm: xp.transpose(x, perm), view=True)
expand_p = primitive("expand", "movement", 1, _expand_shape, _first_dtype,
                     lambda xp, x, shape: xp.broadcast_to(x, shape), view=True)

reshape_p.def_vjp(lambda ctx, g: (g.reshape(ctx.shapes[0]),))


@permute_p.def_vjp
def _permute_vjp(ctx, g):
    perm = ctx.attrs["perm"]
    return (g.permute(sorted(range(len(perm)), key=perm.__getitem__)),)


@expand_p.def_vjp
def _expand_vjp(ctx, g):
    src = ctx.shapes[0]
    axes = tuple(i for i, (s, d) in enumerate(zip(src, ctx.attrs["shape"])) if s != d)
    return (g.sum(axes, keepdim=True) if axes else g,)


def _slice_len(start, stop, step):
    return max(0, (stop - start + step - 1) // step)


def _slice_shape(shapes, starts, stops, steps):
    return tuple(_slice_len(a, b, c) for a, b, c in zip(starts, stops, steps))


def _slices(starts, stops, steps):
    return tuple(slice(a, b, c) for a, b, c in zip(starts, stops, steps))


def _pad_kernel(xp, x, shape, starts, stops, steps):
    out = xp.zeros(shape, dtype=x.dtype)
    out[_slices(starts, stops, steps)] = x
    return out


def _pad_shape(shapes, shape, starts, stops, steps):
    if _slice_shape(None, starts, stops, steps) != tuple(shapes[0]):
        raise ShapeError(f"pad: operand shape {tuple(shapes[0])} does not fit the slice of {tuple(shape)}")
    return shape


slice_p = primitive("slice", "movement", 1, _slice_shape, _first_dtype,
                    lambda xp, x, starts, stops, steps: x[_slices(starts, stops, steps)], view=True)
pad_p = primitive("pad", "movement", 1, _pad_shape, _first_dtype, _pad_kernel)

slice_p.def_vjp(lambda ctx, g: (pad_p.bind(g, shape=tuple(ctx.shapes[0]), **ctx.attrs),))
pad_p.def_vjp(lambda ctx, g: (slice_p.bind(g, **{k: v for k, v in ctx.attrs.items() if k != "shape"}),))


def _concat_shape(shapes, axis):
    first = shapes[0]
    for s in shapes[1:]:
        if len(s) != len(first) or any(a != b for i, (a, b) in enumerate(zip(s, first)) if i != axis):
            raise ShapeError(f"cat: shapes {', '.join(str(tuple(t)) for t in shapes)} differ outside dim {axis}")
    return tuple(sum(s[axis] for s in shapes) if i == axis else d for i, d in enumerate(first))


concat_p = primitive("concat", "movement", None, _concat_shape, same_dtype("cat"),
                     lambda xp, *xs, axis: xp.concatenate(xs, axis=axis))


@concat_p.def_vjp
def _concat_vjp(ctx, g):
    axis, grads, offset = ctx.attrs["axis"], [], 0
    for shape, need in zip(ctx.shapes, ctx.needs):
        n = shape[axis]
        if need:
            starts = [0] * g.ndim
            stops = list(g.shape)
            starts[axis], stops[axis] = offset, offset + n
            grads.append(slice_p.bind(g, starts=tuple(starts), stops=tuple(stops), steps=(1,) * g.ndim))
        else:
            grads.append(None)
        offset += n
    return tuple(grads)


# ---------------------------------------------------------------------- public names
@reshape_p.def_frontend("reshape", "view")
def reshape(input, *shape):
    shape = list(shape_arg(shape))
    if shape.count(-1) > 1:
        raise ShapeError(f"reshape: only one dimension can be -1, got {tuple(shape)}")
    if -1 in shape:
        known = _prod(d for d in shape if d != -1)
        if known == 0 or _prod(input.shape) % known:
            raise ShapeError(f"reshape: cannot reshape a tensor of shape {input.shape} into {tuple(shape)}")
        shape[shape.index(-1)] = _prod(input.shape) // known
    shape = tuple(shape)
    if shape == input.shape:
        return input
    return reshape_p.bind(input, shape=shape)


@permute_p.def_frontend("permute")
def permute(input, *dims):
    dims = tuple(normalize_axis("permute", d, input.ndim) for d in shape_arg(dims))
    if dims == tuple(range(input.ndim)):
        return input
    return permute_p.bind(input, perm=dims)


@expand_p.def_frontend("expand", "broadcast_to")
def expand(input, *sizes):
    sizes = shape_arg(sizes)
    if len(sizes) < input.ndim:
        raise ShapeError(f"expand: target {sizes} has fewer dims than the tensor's shape {input.shape}")
    lead = len(sizes) - input.ndim
    x = reshape(input, (1,) * lead + input.shape) if lead else input
    shape = tuple(x.shape[i] if s == -1 else s for i, s in enumerate(sizes))
    if shape == x.shape:
        return x
    return expand_p.bind(x, shape=shape)


def strided_slice(input, starts, stops, steps):
    """input[start:stop:step] on every axis (the frontend of basic indexing and split)."""
    if all(a == 0 and b == n and c == 1 for a, b, c, n in zip(starts, stops, steps, input.shape)):
        return input
    return slice_p.bind(input, starts=tuple(starts), stops=tuple(stops), steps=tuple(steps))
