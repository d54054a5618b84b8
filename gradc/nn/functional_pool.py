"""Pooling as composites of strided slices, argmax and gather.

Max pooling stacks a window's elements on a last axis, takes the argmax (the FIRST maximum in
row-major window order, as PyTorch does) and gathers that one element, so the gradient goes to
exactly one input per window; amax's VJP would split it among ties. Average pooling is a sum of
strided slices, one dim at a time. Non-overlapping windows (kernel == stride, the common 2x2
case) take a reshape instead of slices, so their backward pass is a reshape too."""
import numpy as np

from ..errors import ShapeError
from ..tensor import Tensor
from ..functions import arange, stack, tensor
from .functional_pad import ntuple, out_size, pad, windows


def _batched(name, input, nd):
    if not isinstance(input, Tensor):
        raise TypeError(f"{name}: input must be a Tensor, got {type(input).__name__}")
    if input.ndim not in (nd + 1, nd + 2):
        raise ShapeError(f"{name}: expected a {nd + 2}-D (batched) or {nd + 1}-D (unbatched) input, "
                         f"got shape {input.shape}")
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


def _select_first_max(stacked):
    """stacked (..., K): the first maximum of each row and its position in the row. The value is a
    gather of one element per row, so only that element receives gradient."""
    lead, k = stacked.shape[:-1], stacked.shape[-1]
    flat = stacked.reshape(-1, k)
    idx = flat.argmax(1)
    rows = flat.shape[0]
    lin = arange(rows, device=stacked.device) * k + idx if k > 1 else idx
    return flat.reshape(-1)[lin].reshape(lead), idx.reshape(lead)


def _window_positions(sizes, k, s, p, d, outs):
    """Flat input position (h * W + w, unpadded) of every window element: (oh, ow, kh * kw)."""
    h = (np.arange(outs[0]) * s[0] - p[0])[:, None] + np.arange(k[0])[None, :] * d[0]   # (oh, kh)
    w = (np.arange(outs[1]) * s[1] - p[1])[:, None] + np.arange(k[1])[None, :] * d[1]   # (ow, kw)
    pos = h[:, None, :, None] * sizes[1] + w[None, :, None, :]                           # (oh, ow, kh, kw)
    return pos.reshape(outs[0], outs[1], k[0] * k[1])


def _indices(idx, positions):
    """Input positions of the selected elements: positions (oh, ow, K) looked up at idx (N, C, oh, ow)."""
    oh, ow, k = positions.shape
    table = tensor(positions.reshape(-1), device=idx.device)
    base = tensor((np.arange(oh * ow) * k).reshape(oh, ow), device=idx.device)
    return table[(idx + base).reshape(-1)].reshape(idx.shape)


def _max_pool2d(x, k, s, p, d, ceil_mode, return_indices, name="max_pool2d"):
    n, c, h, w = x.shape
    outs = [out_size(name, L, kk, ss, pp, dd, ceil_mode) for L, kk, ss, pp, dd in zip((h, w), k, s, p, d)]
    if k == s and d == (1, 1) and p == (0, 0):
        # non-overlapping windows: a reshape (the floor-mode remainder is cropped first)
        view = x[:, :, :outs[0] * k[0], :outs[1] * k[1]] if not ceil_mode or (
            outs[0] * k[0] <= h and outs[1] * k[1] <= w) else None
        if view is not None:
            blocks = view.reshape(n, c, outs[0], k[0], outs[1], k[1]).permute(0, 1, 2, 4, 3, 5)
            val, idx = _select_first_max(blocks.reshape(n, c, outs[0], outs[1], k[0] * k[1]))
            return (val, _indices(idx, _window_positions((h, w), k, s, p, d, outs))) if return_indices else val
    extra = [max(0, (o - 1) * ss + dd * (kk - 1) + 1 - (L + 2 * pp)) for o, ss, dd, kk, L, pp in
             zip(outs, s, d, k, (h, w), p)]
    if any(p) or any(extra):
        x = pad(x, (p[1], p[1] + extra[1], p[0], p[0] + extra[0]), value=float("-inf"))
    taps = [v for r in windows(x, 2, k[0], s[0], d[0], outs[0]) for v in windows(r, 3, k[1], s[1], d[1], outs[1])]
    val, idx = _select_first_max(stack(taps, -1))
    return (val, _indices(idx, _window_positions((h, w), k, s, p, d, outs))) if return_indices else val


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """Max over (kh, kw) windows of input (N, C, H, W); padding counts as -inf. With return_indices,
    also the flat position h * W + w of each maximum within its (H, W) plane."""
    unbatched = _batched("max_pool2d", input, 2)
    k, s, p, d = _args("max_pool2d", 2, kernel_size, stride, padding, dilation)
    x = input.unsqueeze(0) if unbatched else input
    out = _max_pool2d(x, k, s, p, d, ceil_mode, return_indices)
    if unbatched:
        return tuple(o.squeeze(0) for o in out) if return_indices else out.squeeze(0)
    return out


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    unbatched = _batched("max_pool1d", input, 1)
    k, s, p, d = _args("max_pool1d", 1, kernel_size, stride, padding, dilation)
    x = (input.unsqueeze(0) if unbatched else input).unsqueeze(2)
    out = _max_pool2d(x, (1,) + k, (1,) + s, (0,) + p, (1,) + d, ceil_mode, return_indices, "max_pool1d")
    outs = out if return_indices else (out,)
    outs = tuple(o.squeeze(2).squeeze(0) if unbatched else o.squeeze(2) for o in outs)
    return outs if return_indices else outs[0]


def _sum_windows(x, dim, k, s, out_len):
    """Sum over windows of k elements with stride s along dim."""
    if k == s and x.shape[dim] >= out_len * k:
        key = (slice(None),) * dim + (slice(0, out_len * k),)
        y = x[key]
        return y.reshape(y.shape[:dim] + (out_len, k) + y.shape[dim + 1:]).sum(dim + 1)
    total = None
    for v in windows(x, dim, k, s, 1, out_len):
        total = v if total is None else total + v
    return total


def _counts(L, k, s, p, out_len, include_pad):
    """Per-window element counts, PyTorch's rule: clipped to the padded input, and also to the
    input itself unless padding counts."""
    start = np.arange(out_len) * s
    stop = np.minimum(start + k, L + 2 * p)
    if include_pad:
        return stop - start
    return np.minimum(stop, L + p) - np.maximum(start, p)


def _avg_pool2d(x, k, s, p, ceil_mode, count_include_pad, divisor_override, name="avg_pool2d"):
    n, c, h, w = x.shape
    outs = [out_size(name, L, kk, ss, pp, 1, ceil_mode) for L, kk, ss, pp in zip((h, w), k, s, p)]
    extra = [max(0, (o - 1) * ss + kk - (L + 2 * pp)) for o, ss, kk, L, pp in zip(outs, s, k, (h, w), p)]
    if any(p) or any(extra):
        x = pad(x, (p[1], p[1] + extra[1], p[0], p[0] + extra[0]))
    total = _sum_windows(_sum_windows(x, 3, k[1], s[1], outs[1]), 2, k[0], s[0], outs[0])
    if divisor_override is not None:
        if divisor_override == 0:
            raise ValueError(f"{name}: divisor_override must not be zero")
        return total / float(divisor_override)
    ch = _counts(h, k[0], s[0], p[0], outs[0], count_include_pad)
    cw = _counts(w, k[1], s[1], p[1], outs[1], count_include_pad)
    div = np.outer(ch, cw)
    if (div == div.flat[0]).all():
        return total / float(div.flat[0])
    return total / tensor(div.astype(x.dtype.np), device=x.device)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """Mean over (kh, kw) windows of input (N, C, H, W); zero padding counts towards the divisor
    when count_include_pad (PyTorch's default); divisor_override replaces the divisor."""
    unbatched = _batched("avg_pool2d", input, 2)
    k, s, p, _ = _args("avg_pool2d", 2, kernel_size, stride, padding)
    x = input.unsqueeze(0) if unbatched else input
    out = _avg_pool2d(x, k, s, p, ceil_mode, count_include_pad, divisor_override)
    return out.squeeze(0) if unbatched else out


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    unbatched = _batched("avg_pool1d", input, 1)
    k, s, p, _ = _args("avg_pool1d", 1, kernel_size, stride, padding)
    x = (input.unsqueeze(0) if unbatched else input).unsqueeze(2)
    out = _avg_pool2d(x, (1,) + k, (1,) + s, (0,) + p, ceil_mode, count_include_pad, None, "avg_pool1d").squeeze(2)
    return out.squeeze(0) if unbatched else out


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
        return _sum_windows(x, dim, L // o, L // o, o) / float(L // o)
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


def _adaptive_max2d(x, outs, return_indices):
    n, c, h, w = x.shape
    (hs, he), (ws, we) = _bounds(h, outs[0]), _bounds(w, outs[1])
    kh, kw = int((he - hs).max()), int((we - ws).max())
    # Every window padded to the largest by repeating its first element: a repeat can tie with
    # the true maximum only where that first element is the maximum, so the first maximum stays.
    rows = hs[:, None] + np.arange(kh)[None, :]
    rows = np.where(rows < he[:, None], rows, hs[:, None])
    cols = ws[:, None] + np.arange(kw)[None, :]
    cols = np.where(cols < we[:, None], cols, ws[:, None])
    pos = (rows[:, None, :, None] * w + cols[None, :, None, :]).reshape(outs[0], outs[1], kh * kw)
    gathered = x.reshape(n, c, h * w)[:, :, tensor(pos.reshape(-1), device=x.device)]
    val, idx = _select_first_max(gathered.reshape(n, c, outs[0], outs[1], kh * kw))
    return (val, _indices(idx, pos)) if return_indices else val


def adaptive_max_pool2d(input, output_size, return_indices=False):
    unbatched = _batched("adaptive_max_pool2d", input, 2)
    outs = _adaptive_sizes("adaptive_max_pool2d", output_size, input.shape[-2:])
    out = _adaptive_max2d(input.unsqueeze(0) if unbatched else input, outs, return_indices)
    if unbatched:
        return tuple(o.squeeze(0) for o in out) if return_indices else out.squeeze(0)
    return out


def adaptive_max_pool1d(input, output_size, return_indices=False):
    unbatched = _batched("adaptive_max_pool1d", input, 1)
    (o,) = _adaptive_sizes("adaptive_max_pool1d", output_size, input.shape[-1:])
    x = (input.unsqueeze(0) if unbatched else input).unsqueeze(2)
    out = _adaptive_max2d(x, (1, o), return_indices)
    outs = tuple(t.squeeze(2).squeeze(0) if unbatched else t.squeeze(2) for t in (out if return_indices else (out,)))
    return outs if return_indices else outs[0]
