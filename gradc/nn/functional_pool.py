"""Pooling as composites of the im2col primitive (the windows, channels-last), argmax, masks and sums.

Max pooling takes the argmax over each window (the FIRST maximum in row-major window order, as
PyTorch does) and keeps that one element by a mask, so the gradient goes to exactly one input
per window (amax's VJP would split it among ties) and the backward is elementwise work plus one
col2im. Average pooling is a sum over the windows. max_unpool writes values back at indices."""
import math

import numpy as np

from ..errors import ShapeError
from ..tensor import Tensor
from ..dtypes import int64
from ..functions import arange, maximum, stack, tensor, where, zeros
from ..grad_mode import no_grad
from ..ops import OPS
from ..ops.movement import im2col
from .functional_pad import channels_last, ntuple, out_size
from ..shapes import shape_or


def _batched(name, input, nd):
    if not isinstance(input, Tensor):
        raise TypeError(f"{name}: input must be a Tensor, got {type(input).__name__}")
    if input.ndim not in (nd + 1, nd + 2):
        raise ShapeError(f"{name}: expected a {nd + 2}-D (batched) or {nd + 1}-D (unbatched) input, "
                         f"got shape {tuple(input.shape)}")
    return input.ndim == nd + 1


def _args(name, nd, kernel_size, stride, padding, dilation=1):
    k = ntuple(kernel_size, nd, name, "kernel_size")
    s = k if stride is None or (not isinstance(stride, int) and len(stride) == 0) else ntuple(stride, nd, name,
                                                                                              "stride")
    p = ntuple(padding, nd, name, "padding")
    d = ntuple(dilation, nd, name, "dilation")
    if min(k) < 1 or min(s) < 1 or min(d) < 1 or min(p) < 0:
        raise ValueError(f"{name}: kernel_size {k}, stride {s} and dilation {d} must be positive and padding {p} "
                         "non-negative")
    for kk, pp in zip(k, p):
        if pp > kk // 2:
            raise ShapeError(f"{name}: padding {p} must be at most half of the kernel size {k}")
    return k, s, p, d



def _windows(name, x, nd, k, s, p, d, ceil_mode, value):
    """x (N, C, *spatial) -> the channels-last windows (N, *out, *k, C) and the output sizes. Padding
    (and ceil_mode's extra windows) read `value`. Channels-last makes each window element a run of
    C contiguous values when x came from a convolution (a channels-last view), ~9x faster to copy
    than NCHW windows."""
    spatial = x.shape[2:]
    outs = tuple(out_size(name, L, kk, ss, pp, dd, ceil_mode) for L, kk, ss, pp, dd in zip(spatial, k, s, p, d))
    pads = [(pp, max(pp, (o - 1) * ss + dd * (kk - 1) + 1 - L - pp)) for o, ss, dd, kk, L, pp in
            zip(outs, s, d, k, spatial, p)]
    # (N, *out, *k, C), used as it is: merging the window axes is a copy when compiled
    return im2col(x.permute(channels_last(nd)[0]), 1, k, s, d, pads, value), outs


def _window_positions(sizes, k, s, p, d, outs):
    """Flat input position (within the unpadded spatial volume, row-major) of every window element:
    (*out, K)."""
    nd = len(sizes)
    pos = np.zeros(tuple(outs) + tuple(k), dtype=np.int64)
    for i in range(nd):
        along = (np.arange(outs[i]) * s[i] - p[i])[:, None] + np.arange(k[i])[None, :] * d[i]   # (out_i, k_i)
        shape = [1] * (2 * nd)
        shape[i], shape[nd + i] = outs[i], k[i]
        pos = pos + along.reshape(shape) * math.prod(sizes[i + 1:])
    return pos.reshape(tuple(outs) + (math.prod(k),))


def _indices(idx, positions):
    """Input positions of the selected elements: positions (*out, K) looked up at idx (N, C, *out)."""
    k = positions.shape[-1]
    table = tensor(positions.reshape(-1), device=idx.device)
    base = tensor((np.arange(positions.size // k) * k).reshape(positions.shape[:-1]), device=idx.device)
    return table[(idx + base).reshape(-1)].reshape(idx.shape)


SCAN_WINDOW = 16   # windows up to this many elements find their maximum by a scan over the offsets


def _first_hot(parts):
    """One mask per tensor of `parts` (two or more, equally shaped): where it holds the first
    maximum among them (PyTorch's choice among ties; a NaN wins, the first NaN stays). Float and
    bool work only, which fuses into one kernel when compiled (an int64 position does not)."""
    best = parts[0]
    for c in parts[1:]:
        best = maximum(best, c)               # NaN propagates
    hot, found = [], None
    for c in parts:
        h = (c == best) | (c != c)            # c is NaN only where best is
        h = h if found is None else h & ~found
        found = h if found is None else found | h
        hot.append(h)
    return hot


def _first_max(cols, axis, want_index=True, nk=1):
    """The first maximum over the `nk` window axes from `axis` (PyTorch's choice among ties; NaN
    wins) and its flat position in the window (None unless want_index). The value is a masked
    sum, so its gradient goes to that one element (amax would split it among ties) with
    elementwise work only: no scatter. Small windows scan their offsets with elementwise compares
    (fused when compiled; an argmax over a short, strided axis is ~4x slower)."""
    win = cols.shape[axis:axis + nk]
    k, rest = math.prod(win), cols.shape[:axis] + cols.shape[axis + nk:]
    if k > SCAN_WINDOW:
        cols = cols.reshape(cols.shape[:axis] + (k,) + cols.shape[axis + nk:])
        idx = cols.argmax(axis)
        pos = arange(k, device=cols.device).reshape((k,) + (1,) * (cols.ndim - axis - 1))
        return where(idx.unsqueeze(axis) == pos, cols, 0).sum(axis), idx
    if k == 1:
        return cols.reshape(rest), zeros(rest, dtype=int64, device=cols.device) if want_index else None
    offsets = [()]
    for n in win:
        offsets = [o + (j,) for o in offsets for j in range(n)]
    with no_grad():
        hot = _first_hot([cols[(slice(None),) * axis + off] for off in offsets])
        idx = sum((where(h, j, 0) for j, h in enumerate(hot[1:], 1)), zeros(rest, dtype=int64,
                                                                         device=cols.device)) if want_index else None
        hot = stack(hot, axis).reshape(cols.shape)
    return where(hot, cols, 0).sum(tuple(range(axis, axis + nk))), idx


def _max_pool(name, nd, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices):
    unbatched = _batched(name, input, nd)
    k, s, p, d = _args(name, nd, kernel_size, stride, padding, dilation)
    x = input.unsqueeze(0) if unbatched else input
    cols, outs = _windows(name, x, nd, k, s, p, d, ceil_mode, float("-inf"))
    back = channels_last(nd)[1]
    val, idx = _first_max(cols, nd + 1, return_indices, nd)                  # (N, *out, C)
    out = (val.permute(back), _indices(idx.permute(back), _window_positions(x.shape[2:], k, s, p, d, outs))) \
        if return_indices else (val.permute(back),)
    out = tuple(o.squeeze(0) for o in out) if unbatched else out
    return out if return_indices else out[0]


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    return _max_pool("max_pool1d", 1, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """Max over (kh, kw) windows of input (N, C, H, W); padding counts as -inf. With return_indices,
    also the flat position h * W + w of each maximum within its (H, W) plane."""
    return _max_pool("max_pool2d", 2, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def max_pool3d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """Max over (kd, kh, kw) windows of input (N, C, D, H, W); indices are flat in the (D, H, W) volume."""
    return _max_pool("max_pool3d", 3, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def _with_indices(name, nd):
    """F.max_pool<n>d_with_indices: (values, indices), as PyTorch's (whatever return_indices says)."""
    def pool(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=True):
        return _max_pool(name, nd, input, kernel_size, stride, padding, dilation, ceil_mode, True)
    pool.__name__ = f"{name}_with_indices"
    return pool


max_pool1d_with_indices = _with_indices("max_pool1d", 1)
max_pool2d_with_indices = _with_indices("max_pool2d", 2)
max_pool3d_with_indices = _with_indices("max_pool3d", 3)


def _counts(L, k, s, p, out_len, include_pad):
    """Per-window element counts, PyTorch's rule: clipped to the padded input, and also to the
    input itself unless padding counts."""
    start = np.arange(out_len) * s
    stop = np.minimum(start + k, L + 2 * p)
    if include_pad:
        return stop - start
    return np.minimum(stop, L + p) - np.maximum(start, p)


def _avg_pool(name, nd, input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
    unbatched = _batched(name, input, nd)
    k, s, p, _ = _args(name, nd, kernel_size, stride, padding)
    x = input.unsqueeze(0) if unbatched else input
    cols, outs = _windows(name, x, nd, k, s, p, (1,) * nd, ceil_mode, 0.0)
    total = cols.sum(tuple(range(nd + 1, 2 * nd + 1))).permute(channels_last(nd)[1])    # (N, C, *out)
    if divisor_override is not None:
        if divisor_override == 0:
            raise ValueError(f"{name}: divisor_override must not be zero")
        out = total / float(divisor_override)
    else:
        div = np.ones((), dtype=np.int64)
        for L, kk, ss, pp, o in zip(x.shape[2:], k, s, p, outs):
            div = np.multiply.outer(div, _counts(L, kk, ss, pp, o, count_include_pad))
        out = total / (float(div.flat[0]) if (div == div.flat[0]).all() else
                       tensor(div.astype(x.dtype.np), device=x.device))
    return out.squeeze(0) if unbatched else out


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    return _avg_pool("avg_pool1d", 1, input, kernel_size, stride, padding, ceil_mode, count_include_pad, None)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """Mean over (kh, kw) windows of input (N, C, H, W); zero padding counts towards the divisor
    when count_include_pad (PyTorch's default); divisor_override replaces the divisor."""
    return _avg_pool("avg_pool2d", 2, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override)


def avg_pool3d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """Mean over (kd, kh, kw) windows of input (N, C, D, H, W)."""
    return _avg_pool("avg_pool3d", 3, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override)


def _unpool_size(name, input, k, s, p, output_size):
    nd = len(k)
    default = [(input.shape[input.ndim - nd + i] - 1) * s[i] + k[i] - 2 * p[i] for i in range(nd)]
    if output_size is None:
        return tuple(default)
    size = tuple(int(v) for v in output_size)
    size = size[-nd:] if len(size) in (nd + 1, nd + 2) else size
    if len(size) != nd:
        raise ShapeError(f"{name}: output_size {tuple(output_size)} must have {nd} spatial sizes (or include the "
                         f"batch and channel dims)")
    for i in range(nd):
        if not default[i] - s[i] < size[i] < default[i] + s[i]:
            raise ShapeError(f"{name}: output_size {size} is out of range: dim {i} must lie strictly between "
                             f"{default[i] - s[i]} and {default[i] + s[i]} for input shape {tuple(input.shape)}")
    return size


def _max_unpool(name, nd, input, indices, kernel_size, stride, padding, output_size):
    unbatched = _batched(name, input, nd)
    if not isinstance(indices, Tensor) or tuple(indices.shape) != tuple(input.shape):
        raise ShapeError(f"{name}: indices must be a tensor of the input's shape {tuple(input.shape)}, got "
                         f"{shape_or(indices, type(indices).__name__)}")
    k, s, p, _ = _args(name, nd, kernel_size, stride, padding)
    size = _unpool_size(name, input, k, s, p, output_size)
    x, idx = (input.unsqueeze(0), indices.unsqueeze(0)) if unbatched else (input, indices)
    n, c = x.shape[:2]
    flat = zeros((n, c, math.prod(size)), dtype=x.dtype, device=x.device)
    # checked on every run (eagerly and compiled): an index outside the output is a named error
    # (the text is the message's start in compiled programs too)
    idx = OPS["check_index"].bind(idx.reshape(n, c, -1), high=math.prod(size), ignore=None,
                                  what=f"{name}: indices into output planes of {size} = {math.prod(size)} elements "
                                       f"(pass the pooled input's size as output_size):")
    # An index that several windows chose (overlapping pooling) receives their common value, and
    # each of them the whole gradient there, as PyTorch's backward gathers it. The scatter gives the
    # values and the last writer's gradient; a zero-valued correction (a scatter_add's gradient less
    # the scatter's) gives the others theirs. Where a value is inf the correction would be inf - inf:
    # it is left out there, and the scatter's own gradient remains.
    src = x.reshape(n, c, -1)
    put, added = flat.scatter(2, idx, src), flat.scatter_add(2, idx, src)
    extra = (added - added.detach()) - (put - put.detach())
    out = (put + where(extra == 0, extra, 0.0)).reshape((n, c) + size)
    return out.squeeze(0) if unbatched else out


def max_unpool1d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """The partial inverse of max_pool1d: input values placed at their indices, zeros elsewhere."""
    return _max_unpool("max_unpool1d", 1, input, indices, kernel_size, stride, padding, output_size)


def max_unpool2d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """The partial inverse of max_pool2d (indices flat in each H x W plane): zeros elsewhere; the
    output is (H - 1) * stride - 2 * padding + kernel_size per dim unless output_size says."""
    return _max_unpool("max_unpool2d", 2, input, indices, kernel_size, stride, padding, output_size)


def max_unpool3d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    return _max_unpool("max_unpool3d", 3, input, indices, kernel_size, stride, padding, output_size)


def _sum_windows(x, dim, k, out_len):
    """Sum over out_len consecutive windows of k elements along dim (a reshape)."""
    key = (slice(None),) * dim + (slice(0, out_len * k),)
    y = x[key]
    return y.reshape(y.shape[:dim] + (out_len, k) + y.shape[dim + 1:]).sum(dim + 1)


# ---------------------------------------------------------------------------- adaptive pooling
def _adaptive_sizes(name, output_size, spatial):
    nd = len(spatial)
    if isinstance(output_size, (int, np.integer)) or output_size is None:
        output_size = (output_size,) * nd
    out = tuple(spatial[i] if v is None else int(v) for i, v in enumerate(output_size))
    if len(out) != nd or min(out) < 1:
        raise ShapeError(f"{name}: output_size must be {nd} positive sizes (or None to keep one), got {output_size}")
    return out


def _bounds(L, o):
    """PyTorch's adaptive windows: [floor(i * L / o), ceil((i + 1) * L / o))."""
    i = np.arange(o)
    return (i * L) // o, -((-(i + 1) * L) // o)


def _adaptive_avg_dim(x, dim, o):
    L = x.shape[dim]
    if L % o == 0:
        return _sum_windows(x, dim, L // o, o) / float(L // o)
    parts = []
    for a, b in zip(*_bounds(L, o)):
        key = (slice(None),) * dim + (slice(int(a), int(b)),)
        parts.append(x[key].sum(dim) / float(b - a))
    return stack(parts, dim)


def adaptive_avg_pool2d(input, output_size):
    """Mean over PyTorch's adaptive windows, one spatial dim at a time (the mean over a rectangle
    is the mean of row means)."""
    _batched("adaptive_avg_pool2d", input, 2)
    oh, ow = _adaptive_sizes("adaptive_avg_pool2d", output_size, input.shape[-2:])
    d = input.ndim
    return _adaptive_avg_dim(_adaptive_avg_dim(input, d - 1, ow), d - 2, oh)


def adaptive_avg_pool1d(input, output_size):
    _batched("adaptive_avg_pool1d", input, 1)
    (o,) = _adaptive_sizes("adaptive_avg_pool1d", output_size, input.shape[-1:])
    return _adaptive_avg_dim(input, input.ndim - 1, o)


def _adaptive_max(x, outs, return_indices):
    """x (N, C, *spatial) -> the first maximum over each of PyTorch's adaptive windows."""
    n, c, spatial = x.shape[0], x.shape[1], tuple(x.shape[2:])
    nd, pos = len(spatial), np.zeros((1,) * (2 * len(spatial)), dtype=np.int64)
    for d, (size, o) in enumerate(zip(spatial, outs)):
        # Every window padded to the largest by repeating its first element: a repeat can tie with
        # the true maximum only where that first element is the maximum, so the first maximum stays.
        start, end = _bounds(size, o)
        k = int((end - start).max())
        taps = start[:, None] + np.arange(k)[None, :]
        taps = np.where(taps < end[:, None], taps, start[:, None])
        shape = [1] * (2 * nd)
        shape[d], shape[nd + d] = o, k
        pos = pos * size + taps.reshape(shape)      # flat position in the (*spatial) plane
    win = pos.shape[nd:]
    pos = pos.reshape(tuple(outs) + (math.prod(win),))
    gathered = x.reshape(n, c, math.prod(spatial))[:, :, tensor(pos.reshape(-1), device=x.device)]
    val, idx = _first_max(gathered.reshape((n, c) + tuple(outs) + (pos.shape[-1],)), 2 + nd)
    return (val, _indices(idx, pos)) if return_indices else val


def _adaptive_max_pool(name, nd, input, output_size, return_indices):
    unbatched = _batched(name, input, nd)
    outs = _adaptive_sizes(name, output_size, input.shape[-nd:])
    out = _adaptive_max(input.unsqueeze(0) if unbatched else input, outs, return_indices)
    if unbatched:
        return tuple(o.squeeze(0) for o in out) if return_indices else out.squeeze(0)
    return out


def adaptive_max_pool2d(input, output_size, return_indices=False):
    return _adaptive_max_pool("adaptive_max_pool2d", 2, input, output_size, return_indices)


def adaptive_max_pool1d(input, output_size, return_indices=False):
    return _adaptive_max_pool("adaptive_max_pool1d", 1, input, output_size, return_indices)


def adaptive_max_pool3d(input, output_size, return_indices=False):
    return _adaptive_max_pool("adaptive_max_pool3d", 3, input, output_size, return_indices)
