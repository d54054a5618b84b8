"""Movement primitives: reshape, permute, expand, slice (and its transpose, pad), concat, and the
sliding windows of convolution and pooling: im2col (and its transpose, col2im), and the product
of windows with a weight (window_matmul).
Attributes are fully normalised by the frontend (no -1 sizes, no negative indices)."""
import numpy as np

from ..errors import ShapeError
from .frontend import shape_arg
from .linalg import matmul_p
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
def reshape(input, *dims, shape=None, size=None):
    # (reshape(shape=...) and view(size=...), as torch spells them)
    shape = list(shape_arg(dims if shape is None and size is None else (size if shape is None else shape,)))
    if shape.count(-1) > 1:
        raise ShapeError(f"reshape: only one dimension can be -1, got {tuple(shape)}")
    if -1 in shape:
        known = _prod(d for d in shape if d != -1)
        if known == 0 or _prod(input.shape) % known:
            raise ShapeError(f"reshape: cannot reshape a tensor of shape {tuple(input.shape)} into {tuple(shape)}")
        shape[shape.index(-1)] = _prod(input.shape) // known
    shape = tuple(shape)
    if len(shape) == input.ndim and shape == input.shape:   # (lengths first: sizes may be symbolic)
        return input
    return reshape_p.bind(input, shape=shape)


@permute_p.def_frontend("permute")
def permute(input, *order, dims=None):
    dims = tuple(normalize_axis("permute", d, input.ndim) for d in shape_arg(order if dims is None else (dims,)))
    if dims == tuple(range(input.ndim)):
        return input
    return permute_p.bind(input, perm=dims)


@expand_p.def_frontend("expand", "broadcast_to")
def expand(input, *dims, size=None):
    sizes = shape_arg(dims if size is None else (size,))
    if len(sizes) < input.ndim:
        raise ShapeError(f"expand: target {sizes} has fewer dims than the tensor's shape {tuple(input.shape)}")
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


# ---------------------------------------------------------------------- sliding windows
# im2col reads every window of a run of `len(kernel)` spatial axes starting at `axis`:
# x (*lead, *spatial, *trail) -> (*lead, *out, *kernel, *trail), the element of window o at offset
# j being the padded input's o * stride + j * dilation. The padding (lo, hi) per axis is filled with
# `value` (0, or -inf for max pooling); a negative hi leaves the input's last -hi elements unread.
# col2im is its transpose: window values added back at their positions (overlaps sum), the padding
# cropped. One strided view and one copy forward; one strided add per kernel offset into a single
# buffer backward (never a full-size temporary per offset).
def _window_outs(name, spatial, kernel, stride, dilation, pads):
    outs = []
    for n, k, s, d, (lo, hi) in zip(spatial, kernel, stride, dilation, pads):
        if min(k, s, d) < 1 or lo < 0:
            raise ShapeError(f"{name}: kernel {tuple(kernel)}, stride {tuple(stride)} and dilation {tuple(dilation)} "
                             f"must be positive and the leading padding {tuple(p[0] for p in pads)} non-negative")
        room = n + lo + hi - d * (k - 1) - 1
        if room < 0:
            raise ShapeError(f"{name}: a window of {k} elements (dilation {d}, {d * (k - 1) + 1} wide) does not fit "
                             f"the padded extent {n} + {lo} + {hi}; use a smaller kernel or more padding")
        outs.append(room // s + 1)
    return tuple(outs)


def _im2col_shape(shapes, axis, kernel, stride, dilation, pads, value):
    x, nd = tuple(shapes[0]), len(kernel)
    if not 0 <= axis <= len(x) - nd or not (len(stride) == len(dilation) == len(pads) == nd):
        raise ShapeError(f"im2col: {nd} window axes from axis {axis} do not fit shape {x}")
    outs = _window_outs("im2col", x[axis:axis + nd], kernel, stride, dilation, pads)
    return x[:axis] + outs + tuple(kernel) + x[axis + nd:]


def _col2im_shape(shapes, axis, kernel, stride, dilation, pads, spatial):
    c, nd = tuple(shapes[0]), len(kernel)
    outs = _window_outs("col2im", spatial, kernel, stride, dilation, pads)
    if len(c) < axis + 2 * nd or c[axis:axis + 2 * nd] != outs + tuple(kernel):
        raise ShapeError(f"col2im: columns of shape {c} do not hold the {outs} windows of {tuple(kernel)} elements "
                         f"at axis {axis} that spatial size {tuple(spatial)} gives")
    return c[:axis] + tuple(spatial) + c[axis + 2 * nd:]


def _padded(xp, shape, axis, pads, dtype, value):
    """A buffer for the padded spatial axes, filled with `value` (hi < 0 needs no room: those
    elements are never read)."""
    full = list(shape)
    for i, (lo, hi) in enumerate(pads):
        full[axis + i] += lo + max(hi, 0)
    inner = tuple(slice(None) for _ in range(axis)) + tuple(slice(lo, lo + shape[axis + i])
                                                            for i, (lo, _) in enumerate(pads))
    return xp.full(tuple(full), value, dtype=dtype), inner


def _im2col_kernel(xp, x, axis, kernel, stride, dilation, pads, value, out=None):
    nd = len(kernel)
    if any(lo or hi > 0 for lo, hi in pads):
        buf, inner = _padded(xp, x.shape, axis, pads, x.dtype, value)
        buf[inner] = x
        x = buf
    outs = _window_outs("im2col", x.shape[axis:axis + nd], kernel, stride, dilation,
                        [(0, min(hi, 0)) for _, hi in pads])
    shape = x.shape[:axis] + outs + tuple(kernel) + x.shape[axis + nd:]
    if xp is np and _prod(x.shape[axis + nd:]) > 1:   # one value per position: a copy per offset (below) is ~4x faster
        if not x.flags.c_contiguous and _prod(kernel) > _prod(stride):
            # overlapping windows read each element several times: from a strided view (a
            # channels-last view of channels-first memory) a contiguous copy first is ~25% faster
            x = np.ascontiguousarray(x)
        # one strided view of every window, copied once (~2x faster than a copy per offset)
        st = x.strides
        strides = (st[:axis] + tuple(st[axis + i] * stride[i] for i in range(nd))
                   + tuple(st[axis + i] * dilation[i] for i in range(nd)) + st[axis + nd:])
        view = np.lib.stride_tricks.as_strided(x, shape, strides, writeable=False)
        if out is None:
            return np.ascontiguousarray(view)
        np.copyto(out, view)   # a planned buffer (compiled): no fresh pages to fault in per call
        return out
    out = xp.empty(shape, dtype=x.dtype) if out is None else out
    lead = (slice(None),) * axis
    for key, offset in _window_keys(lead, kernel, stride, dilation, outs):
        out[lead + (slice(None),) * nd + offset] = x[key]
    return out


def _col2im_kernel(xp, cols, axis, kernel, stride, dilation, pads, spatial, out=None):
    nd = len(kernel)
    outs = cols.shape[axis:axis + nd]
    shape = cols.shape[:axis] + tuple(spatial) + cols.shape[axis + 2 * nd:]
    if xp is np and tuple(stride) == tuple(kernel) and all(d == 1 for d in dilation) \
            and all(lo == 0 and hi <= 0 for lo, hi in pads):
        return _col2im_tiles(cols, axis, kernel, outs, shape, out)
    if out is not None and not any(lo or hi > 0 for lo, hi in pads):
        buf, inner = out, None   # no padding to crop: sum straight into the planned buffer
        buf[...] = 0
    else:
        buf, inner = _padded(xp, shape, axis, pads, cols.dtype, 0)
    lead = (slice(None),) * axis
    for key, offset in _window_keys(lead, kernel, stride, dilation, outs):
        buf[key] += cols[lead + (slice(None),) * nd + offset]
    if inner is None:
        return buf
    if out is None:
        return buf[inner]
    out[...] = buf[inner]
    return out


def _col2im_tiles(cols, axis, kernel, outs, shape, out):
    """col2im of windows that tile the input (stride == kernel, no dilation or padding): nothing
    overlaps, so the sum is one permuted copy into the covered region (~3x faster than an add per
    offset); a tail past the last window is zero."""
    nd = len(kernel)
    buf = np.empty(shape, cols.dtype) if out is None else out
    covered = (slice(None),) * axis + tuple(slice(0, o * k) for o, k in zip(outs, kernel))
    if any(o * k < n for o, k, n in zip(outs, kernel, shape[axis:axis + nd])):
        buf[...] = 0
    region = buf[covered]
    st = region.strides
    split = np.lib.stride_tricks.as_strided(
        region, region.shape[:axis] + tuple(v for o, k in zip(outs, kernel) for v in (o, k)) + region.shape[axis + nd:],
        st[:axis] + tuple(v for i, k in enumerate(kernel) for v in (st[axis + i] * k, st[axis + i])) + st[axis + nd:])
    order = tuple(range(axis)) + tuple(v for i in range(nd) for v in (axis + i, axis + nd + i)) + \
        tuple(range(axis + 2 * nd, cols.ndim))
    np.copyto(split, cols.transpose(order))
    return buf


def _window_keys(lead, kernel, stride, dilation, outs):
    """(the strided slice of the padded input that kernel offset j reads in every window, j)."""
    offsets = [()]
    for k in kernel:
        offsets = [o + (j,) for o in offsets for j in range(k)]
    return [(lead + tuple(slice(j * d, j * d + s * (o - 1) + 1, s) for j, d, s, o in zip(off, dilation, stride, outs)),
             off) for off in offsets]


im2col_p = primitive("im2col", "movement", 1, _im2col_shape, _first_dtype, _im2col_kernel)
col2im_p = primitive("col2im", "movement", 1, _col2im_shape, _first_dtype, _col2im_kernel)


@im2col_p.def_vjp
def _im2col_vjp(ctx, g):
    a = ctx.attrs
    spatial = tuple(ctx.shapes[0][a["axis"]:a["axis"] + len(a["kernel"])])
    return (col2im_p.bind(g, axis=a["axis"], kernel=a["kernel"], stride=a["stride"], dilation=a["dilation"],
                          pads=a["pads"], spatial=spatial),)


col2im_p.def_vjp(lambda ctx, g: (im2col_p.bind(g, value=0.0, **{k: v for k, v in ctx.attrs.items() if k != "spatial"}),))


def _window_attrs(nd, kernel, stride, dilation, pads):
    one = (1,) * nd
    return dict(kernel=tuple(int(k) for k in kernel), stride=tuple(int(s) for s in (stride or one)),
                dilation=tuple(int(d) for d in (dilation or one)),
                pads=tuple((int(lo), int(hi)) for lo, hi in (pads or ((0, 0),) * nd)))


def im2col(input, axis, kernel, stride=None, dilation=None, pads=None, value=0.0):
    """The windows of `input` over the spatial axes axis .. axis + len(kernel) - 1, as a new
    (*lead, *out, *kernel, *trail) tensor; `pads` are (lo, hi) per axis, filled with `value`."""
    return im2col_p.bind(input, axis=int(axis), value=float(value),
                         **_window_attrs(len(kernel), kernel, stride, dilation, pads))


def col2im(input, axis, size, kernel, stride=None, dilation=None, pads=None):
    """The transpose of im2col: (*lead, *out, *kernel, *trail) window values summed into
    (*lead, *size, *trail)."""
    return col2im_p.bind(input, axis=int(axis), spatial=tuple(int(n) for n in size),
                         **_window_attrs(len(kernel), kernel, stride, dilation, pads))


# ---------------------------------------------------------------------- windows times a weight
# window_matmul(cols, w): cols (*lead, *window, C) times w (O, *window, C), summed over the window
# and C: (*lead, O). Its value is one GEMM of the (M, K * C) columns (a free reshape of im2col's
# output). It is a primitive for its gradient with respect to the columns: K products g @ w_k of
# (M, C) each, laid out window-offset-major, (K, M, C), and returned as a permuted view. col2im
# (im2col's VJP) then adds each offset's contiguous (N, *out, C) block into its strided place:
# runs of out_w * C values per add instead of C (the column-major gradient g @ w of a plain matmul
# makes col2im ~2x slower than this whole path for a 3x3 convolution).
def _window_matmul_split(a, w):
    r = len(w) - 1
    return tuple(a[:len(a) - r]), tuple(w[1:-1]), w[0], w[-1]


def _window_matmul_shape(shapes):
    a, w = tuple(shapes[0]), tuple(shapes[1])
    if len(w) < 2 or len(a) < len(w) or a[len(a) - len(w) + 1:] != w[1:]:
        raise ShapeError(f"window_matmul: the trailing dims of the columns (shape {a}) must be the weight's "
                         f"window and channels {w[1:]} (weight shape {w})")
    return a[:len(a) - len(w) + 1] + (w[0],)


def _window_matmul_kernel(xp, a, w, out=None):
    lead, win, o, c = _window_matmul_split(a.shape, w.shape)
    m, kc = _prod(lead), _prod(win) * c
    flat = None if out is None else out.reshape(m, o)   # a planned buffer is contiguous: a view of it
    res = matmul_p.eager(xp, a.reshape(m, kc), w.reshape(o, kc).T, out=flat)
    return res.reshape(lead + (o,)) if out is None else out


window_matmul_p = primitive("window_matmul", "matmul", 2, _window_matmul_shape, same_dtype("window_matmul"),
                            _window_matmul_kernel, saves=(0, 1), amp="fp16")


@window_matmul_p.def_vjp
def _window_matmul_vjp(ctx, g):
    a, w = ctx.inputs
    lead, win, o, c = _window_matmul_split(a.shape, w.shape)
    m, k, nl = _prod(lead), _prod(win), len(lead)
    ga = gw = None
    if ctx.needs[0]:
        g2 = g.reshape(m, o)
        if k == 1:
            ga = (g2 @ w.reshape(o, c)).reshape(a.shape)
        else:   # (K, M, C): one product per window offset, then viewed in the columns' order
            per = g2 @ w.reshape(o, k, c).permute(1, 0, 2)   # g2 broadcast: one copy of g serves every product
            nw = len(win)
            ga = per.reshape(win + lead + (c,)).permute(tuple(range(nw, nw + nl)) + tuple(range(nw)) + (nw + nl,))
        if ctx.needs[1]:
            gw = (g2.t() @ a.reshape(m, k * c)).reshape(w.shape)
    elif ctx.needs[1] and nl > 1:
        # Only the weight's gradient (a first convolution): g is most often a channels-last view
        # of channels-first memory, so it is read in that order, (lead0, O, rest) @ (lead0, rest,
        # K * C) summed over lead0, with no transposing copy of g into (M, O).
        gl = g.permute((0, nl) + tuple(range(1, nl))).reshape(lead[0], o, m // lead[0])
        gw = (gl @ a.reshape(lead[0], m // lead[0], k * c)).sum(0).reshape(w.shape)
    elif ctx.needs[1]:
        gw = (g.reshape(m, o).t() @ a.reshape(m, k * c)).reshape(w.shape)
    return ga, gw


def window_matmul(cols, weight):
    """cols (*lead, *window, C) times weight (O, *window, C), summed over the window and C:
    (*lead, O). The convolution's product of im2col's columns with its channels-last weight."""
    return window_matmul_p.bind(cols, weight)
