"""Padding and sliding windows, the building blocks of convolution, pooling and resampling.

Everything here is a composite of public tensor ops (cat, strided slicing, integer-array
indexing), so eager autograd, tracing, autodiff, fusion and every backend cover it unchanged."""
import numpy as np

from ..composite import copying
from ..errors import ShapeError
from ..tensor import Tensor
from ..functions import cat, full, tensor


def channels_last(nd):
    """The permutation that makes (N, C, *spatial) channels-last, and its inverse."""
    return (0,) + tuple(range(2, nd + 2)) + (1,), (0, nd + 1) + tuple(range(1, nd + 1))


def ntuple(value, n, name, what="value"):
    """`value` as a tuple of n ints (an int is repeated), checking the length of a sequence."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return (int(value),) * n
    out = tuple(int(v) for v in value)
    if len(out) == 1 and n > 1:
        return out * n
    if len(out) != n:
        raise ShapeError(f"{name}: expected {n} values for {what}, got {tuple(value)}")
    return out


def _index_along(x, dim, idx):
    """x indexed along `dim` with the int64 positions `idx` (a NumPy array)."""
    key = (slice(None),) * dim + (tensor(np.asarray(idx, dtype=np.int64), device=x.device),)
    return x[key]


def _narrow(x, dim, start, stop, step=1):
    key = (slice(None),) * dim + (slice(start, stop, step),)
    return x[key]


def _pad_dim(x, dim, left, right, mode, value):
    n = x.shape[dim]
    if left < 0 or right < 0:  # negative padding crops first, in every mode (as in PyTorch)
        x = _narrow(x, dim, max(-left, 0), n - max(-right, 0))
        left, right, n = max(left, 0), max(right, 0), x.shape[dim]
    if left == 0 and right == 0:
        return x
    if mode == "constant":
        parts = []
        for width in (left, right):
            shape = list(x.shape)
            shape[dim] = width
            parts.append(full(tuple(shape), value, dtype=x.dtype, device=x.device) if width else None)
        return cat([p for p in (parts[0], x, parts[1]) if p is not None], dim)
    pos = np.arange(-left, n + right)
    if mode == "reflect":
        if left >= n or right >= n:
            raise ShapeError(f"pad: reflect padding ({left}, {right}) must be smaller than the size {n} of dim "
                             f"{dim} (input shape {tuple(x.shape)}); use mode='replicate' or pad less")
        pos = np.abs(pos)
        pos = np.where(pos > n - 1, 2 * (n - 1) - pos, pos)
    elif mode == "replicate":
        if n == 0:
            raise ShapeError(f"pad: cannot replicate-pad the empty dim {dim} of input shape {tuple(x.shape)}")
        pos = np.clip(pos, 0, n - 1)
    else:  # circular
        if left > n or right > n:
            raise ShapeError(f"pad: circular padding ({left}, {right}) cannot exceed the size {n} of dim {dim} "
                             f"(input shape {tuple(x.shape)})")
        pos = pos % n
    return _index_along(x, dim, pos)


@copying
def pad(input, pad, mode="constant", value=None):
    """PyTorch's F.pad: `pad` lists (left, right) pairs starting from the LAST dim, e.g. (1, 1, 2, 0)
    pads the last dim by 1 on both sides and the second-to-last by 2 before. Modes: 'constant'
    (fill with `value`, default 0), 'reflect', 'replicate', 'circular'; negative widths crop."""
    if not isinstance(input, Tensor):
        raise TypeError(f"pad: input must be a Tensor, got {type(input).__name__}")
    widths = tuple(int(p) for p in pad)
    if len(widths) % 2:
        raise ShapeError(f"pad: the pad tuple must have an even length (left, right pairs), got {tuple(pad)}")
    if len(widths) // 2 > input.ndim:
        raise ShapeError(f"pad: {len(widths) // 2} dims of padding for an input with {input.ndim} dims "
                         f"(shape {tuple(input.shape)})")
    if mode not in ("constant", "reflect", "replicate", "circular"):
        raise ValueError(f"pad: mode must be 'constant', 'reflect', 'replicate' or 'circular', got {mode!r}")
    if mode != "constant":
        if value not in (None, 0, 0.0):
            raise ValueError(f"pad: a fill value ({value}) is only used by mode='constant', not {mode!r}")
    value = 0 if value is None else value
    x = input
    for i in range(len(widths) // 2):
        x = _pad_dim(x, input.ndim - 1 - i, widths[2 * i], widths[2 * i + 1], mode, value)
    return x


def windows(x, dim, kernel, stride, dilation, out_len):
    """The `kernel` strided views of x along `dim` that a sliding window reads: view j holds, for
    every output position o, the element at o * stride + j * dilation. One slice per offset, so
    the backward pass is one strided write per offset (no per-window Python loop)."""
    span = stride * (out_len - 1) + 1
    return [_narrow(x, dim, j * dilation, j * dilation + span, stride) for j in range(kernel)]


def out_size(name, length, kernel, stride, padding, dilation, ceil_mode=False, pad_right=None):
    """Output length of a sliding window over `length` elements padded by `padding` on the left
    (and `pad_right` on the right, default the same), PyTorch's formula including ceil_mode's rule
    that the last window must start inside the input or the left padding."""
    right = padding if pad_right is None else pad_right
    eff = dilation * (kernel - 1) + 1
    room = length + padding + right - eff
    if room < 0:
        raise ShapeError(f"{name}: the window ({kernel} elements, dilation {dilation}, i.e. {eff} wide) is larger "
                         f"than the padded input ({length} + {padding + right} padding = {length + padding + right}); "
                         "use a smaller kernel or more padding")
    n = (-(-room // stride) if ceil_mode else room // stride) + 1
    if ceil_mode and (n - 1) * stride >= length + padding:
        n -= 1
    return n
