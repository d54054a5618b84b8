"""Pooling built on the basic pooling functions (gradc.nn.functional re-exports these): power-average
pooling (lp_pool1d/2d/3d, PyTorch's formula over avg_pool), 3-D adaptive average pooling (the
2-D one over the last two dims, then the 1-D one over depth) and fractional max pooling (2-D)."""
import numpy as np

from ..errors import ShapeError
from ..functions import cat, rand, relu, tensor
from .functional_pad import ntuple
from .functional_pool import adaptive_avg_pool1d, adaptive_avg_pool2d, avg_pool1d, avg_pool2d, avg_pool3d


def _lp_pool(name, nd, pool, input, norm_type, kernel_size, stride, ceil_mode):
    if input.ndim not in (nd + 1, nd + 2):
        raise ShapeError(f"{name}: expected a {nd + 2}-D (batched) or {nd + 1}-D (unbatched) input, got shape "
                         f"{tuple(input.shape)}")
    if norm_type == 0:
        raise ValueError(f"{name}: norm_type must be non-zero")
    kernel = ntuple(kernel_size, nd, name, "kernel_size")
    area = 1
    for k in kernel:
        area *= k
    stride = kernel if stride is None else stride
    out = pool(input ** norm_type, kernel, stride, 0, ceil_mode)
    return (out.sign() * relu(out.abs()) * float(area)) ** (1.0 / norm_type)


def lp_pool1d(input, norm_type, kernel_size, stride=None, ceil_mode=False):
    """(sum over each window of x ** p) ** (1 / p)."""
    return _lp_pool("lp_pool1d", 1, avg_pool1d, input, norm_type, kernel_size, stride, ceil_mode)


def lp_pool2d(input, norm_type, kernel_size, stride=None, ceil_mode=False):
    return _lp_pool("lp_pool2d", 2, avg_pool2d, input, norm_type, kernel_size, stride, ceil_mode)


def lp_pool3d(input, norm_type, kernel_size, stride=None, ceil_mode=False):
    return _lp_pool("lp_pool3d", 3, avg_pool3d, input, norm_type, kernel_size, stride, ceil_mode)


def adaptive_avg_pool3d(input, output_size):
    """Mean over PyTorch's adaptive windows of (D, H, W); an output size of None keeps that dim."""
    if input.ndim not in (4, 5):
        raise ShapeError(f"adaptive_avg_pool3d: expected a 5-D (N, C, D, H, W) or 4-D (C, D, H, W) input, got "
                         f"shape {tuple(input.shape)}")
    if isinstance(output_size, int) or output_size is None:
        output_size = (output_size,) * 3
    if len(output_size) != 3:
        raise ShapeError(f"adaptive_avg_pool3d: output_size must be an int or 3 sizes, got {output_size}")
    lead, (d, h, w) = tuple(input.shape[:-3]), tuple(input.shape[-3:])
    od, oh, ow = (s if o is None else int(o) for o, s in zip(output_size, (d, h, w)))
    if min(od, oh, ow) < 1:
        raise ShapeError(f"adaptive_avg_pool3d: output_size must be positive, got {output_size}")
    x = adaptive_avg_pool2d(input.reshape(-1, d, h, w), (oh, ow))             # (M, D, oh, ow)
    x = x.reshape(-1, d, oh * ow).transpose(1, 2)                             # (M, oh * ow, D)
    x = adaptive_avg_pool1d(x, od)                                            # (M, oh * ow, od)
    return x.transpose(1, 2).reshape(*lead, od, oh, ow)


def _fractional_starts(u, n_in, n_out, k):
    """PyTorch's pseudo-random window starts for one dim: floor((i + u) * alpha) - floor(u * alpha)
    with alpha = (n_in - k) / (n_out - 1), computed in the samples' dtype; the last window ends at
    the input's end. u: (N, C) samples in [0, 1); returns (N, C, n_out) int64 starts."""
    if n_out == 1:
        return (u * 0.0).unsqueeze(-1).long() + (n_in - k)
    alpha = float(np.array(n_in - k, dtype=u.dtype.np) / np.array(n_out - 1, dtype=u.dtype.np))
    i = tensor(np.arange(n_out - 1, dtype=u.dtype.np), device=u.device)
    first = ((i + u.unsqueeze(-1)) * alpha).floor() - (u * alpha).floor().unsqueeze(-1)
    last = (u * 0.0).unsqueeze(-1) + float(n_in - k)
    return cat([first, last], -1).long()


def fractional_max_pool2d(input, kernel_size, output_size=None, output_ratio=None, return_indices=False,
                          _random_samples=None):
    """Max over (kh, kw) windows placed at pseudo-random, increasing starts (Graham's fractional
    max-pooling, PyTorch's interval rule), one pair of samples in [0, 1) per (sample, channel):
    `_random_samples` (N, C, 2) (width's first), drawn uniformly when not given. Indices are
    flat positions in each (H, W) plane, as max_pool2d returns them."""
    name = "fractional_max_pool2d"
    if input.ndim not in (3, 4):
        raise ShapeError(f"{name}: expected a 4-D (N, C, H, W) or 3-D (C, H, W) input, got {tuple(input.shape)}")
    unbatched = input.ndim == 3
    x = input.unsqueeze(0) if unbatched else input
    n, c, h, w = x.shape
    kh, kw = ntuple(kernel_size, 2, name, "kernel_size")
    if output_size is None:
        if output_ratio is None:
            raise ValueError(f"{name}: give output_size or output_ratio")
        rh, rw = (output_ratio, output_ratio) if isinstance(output_ratio, (int, float)) else output_ratio
        if not (0 < rh < 1 and 0 < rw < 1):
            raise ValueError(f"{name}: output_ratio must be in (0, 1), got {output_ratio}")
        output_size = (int(h * rh), int(w * rw))
    oh, ow = ntuple(output_size, 2, name, "output_size")
    if oh + kh - 1 > h or ow + kw - 1 > w or min(oh, ow) < 1:
        raise ShapeError(f"{name}: output_size {(oh, ow)} with kernel {(kh, kw)} does not fit the input's "
                         f"{(h, w)}: need output + kernel - 1 <= input in each dim")
    if _random_samples is None:
        _random_samples = rand((n, c, 2), dtype=x.dtype, device=x.device)
    elif tuple(_random_samples.shape) != (n, c, 2):
        raise ShapeError(f"{name}: _random_samples must be {(n, c, 2)}, got {tuple(_random_samples.shape)}")
    rows = _fractional_starts(_random_samples[..., 1], h, oh, kh)                 # (N, C, oh)
    cols = _fractional_starts(_random_samples[..., 0], w, ow, kw)                 # (N, C, ow)
    dr = tensor(np.arange(kh), device=x.device)
    dc = tensor(np.arange(kw), device=x.device)
    r = (rows.unsqueeze(-1) + dr).reshape(n, c, oh, 1, kh, 1)
    q = (cols.unsqueeze(-1) + dc).reshape(n, c, 1, ow, 1, kw)
    flat_idx = (r * w + q).reshape(n, c, -1)                                      # (N, C, oh * ow * kh * kw)
    vals = x.reshape(n, c, h * w).gather(2, flat_idx).reshape(n, c, oh, ow, kh * kw)
    out = vals.amax(-1)
    if unbatched:
        out = out.squeeze(0)
    if not return_indices:
        return out
    pick = vals.argmax(-1, keepdim=True)
    idx = flat_idx.reshape(n, c, oh, ow, kh * kw).gather(4, pick).squeeze(-1)
    return out, (idx.squeeze(0) if unbatched else idx)
