"""F.interpolate: resampling one spatial dim at a time (every mode here is separable). Each output
position reads a few input positions (1 for nearest, 2 for linear, 4 for cubic) through a gather
and mixes them with constant weights, with PyTorch's source-index rules, so values and gradients
match PyTorch's upsampling kernels."""
import math

import numpy as np

from ..composite import copying
from ..errors import DTypeError, ShapeError
from ..tensor import Tensor
from ..functions import tensor
from .functional_pool import adaptive_avg_pool1d, adaptive_avg_pool2d
from .functional_pool_more import adaptive_avg_pool3d

_LINEAR = {"linear": 1, "bilinear": 2, "trilinear": 3}
_MODES = ("nearest", "nearest-exact", "linear", "bilinear", "trilinear", "bicubic", "area")
_CUBIC_A = -0.75


def _output_sizes(input, size, scale_factor, recompute_scale_factor):
    nd = input.ndim - 2
    if (size is None) == (scale_factor is None):
        raise ValueError("interpolate: give exactly one of size and scale_factor")
    if size is not None:
        sizes = (size,) * nd if isinstance(size, (int, np.integer)) else tuple(size)
        if len(sizes) != nd:
            raise ShapeError(f"interpolate: size {size} has {len(sizes)} entries for the {nd} spatial dims of "
                             f"input shape {tuple(input.shape)}")
        return tuple(int(s) for s in sizes), (None,) * nd
    scales = (scale_factor,) * nd if isinstance(scale_factor, (int, float)) else tuple(scale_factor)
    if len(scales) != nd:
        raise ShapeError(f"interpolate: scale_factor {scale_factor} has {len(scales)} entries for the {nd} "
                         f"spatial dims of input shape {tuple(input.shape)}")
    sizes = tuple(int(math.floor(float(n) * float(s))) for n, s in zip(input.shape[2:], scales))
    return sizes, ((None,) * nd if recompute_scale_factor else tuple(float(s) for s in scales))


def _scale(n_in, n_out, scale, align_corners):
    """PyTorch's area_pixel_compute_scale: source step per output step."""
    if align_corners:
        return (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
    return 1.0 / scale if scale is not None and scale > 0 else n_in / n_out


def _source(n_in, n_out, scale, align_corners, cubic=False):
    dst = np.arange(n_out, dtype=np.float64)
    s = _scale(n_in, n_out, scale, align_corners)
    if align_corners:
        return dst * s
    src = s * (dst + 0.5) - 0.5
    return src if cubic else np.maximum(src, 0.0)


def _taps(mode, n_in, n_out, scale, align_corners):
    """(indices (taps, n_out), weights (taps, n_out) or None) of one dim."""
    if mode in ("nearest", "nearest-exact"):
        # computed in float32, as PyTorch's nearest kernels do, so rounding at window edges agrees
        s = np.float32(1.0 / scale if scale is not None and scale > 0 else n_in / n_out)
        dst = np.arange(n_out, dtype=np.float32)
        if mode == "nearest-exact":
            dst = dst + np.float32(0.5)
        idx = np.minimum(np.floor(dst * s).astype(np.int64), n_in - 1)
        if n_out == n_in:
            idx = np.arange(n_out)
        elif n_out == 2 * n_in and mode == "nearest":  # PyTorch's shortcut, whatever the scale factor
            idx = np.arange(n_out) // 2
        return idx[None, :], None
    if mode == "bicubic":
        real = _source(n_in, n_out, scale, align_corners, cubic=True)
        base = np.floor(real)
        t = real - base
        a = _CUBIC_A
        w = np.stack([((a * (t + 1) - 5 * a) * (t + 1) + 8 * a) * (t + 1) - 4 * a,
                      ((a + 2) * t - (a + 3)) * t * t + 1,
                      ((a + 2) * (1 - t) - (a + 3)) * (1 - t) * (1 - t) + 1,
                      ((a * (2 - t) - 5 * a) * (2 - t) + 8 * a) * (2 - t) - 4 * a])
        idx = np.clip(base.astype(np.int64)[None, :] + np.arange(-1, 3)[:, None], 0, n_in - 1)
        return idx, w
    if n_out == n_in:
        return np.arange(n_out)[None, :], None
    real = _source(n_in, n_out, scale, align_corners)
    i0 = real.astype(np.int64)
    i1 = i0 + (i0 < n_in - 1)
    lam = np.clip(real - i0, 0.0, 1.0)
    return np.stack([i0, i1]), np.stack([1.0 - lam, lam])


def _resample_dim(x, dim, idx, weights):
    n_in, n_out = x.shape[dim], idx.shape[1]
    trailing = (1,) * (x.ndim - dim - 1)
    if weights is None:
        k = n_out // n_in if n_in else 0
        if k >= 1 and n_out == k * n_in and np.array_equal(idx[0], np.arange(n_out) // k):
            # an integer upscale repeats each element k times: a broadcast, not a gather
            y = x.unsqueeze(dim + 1)
            y = y.expand(y.shape[:dim + 1] + (k,) + y.shape[dim + 2:])
            return y.reshape(x.shape[:dim] + (n_out,) + x.shape[dim + 1:])
        return x[(slice(None),) * dim + (tensor(idx[0], device=x.device),)]
    out = None
    for i, w in zip(idx, weights):
        if not np.any(w):
            continue
        tap = x[(slice(None),) * dim + (tensor(i, device=x.device),)]
        term = tap * tensor(w.astype(x.dtype.np).reshape((n_out,) + trailing), device=x.device)
        out = term if out is None else out + term
    return out if out is not None else x[(slice(None),) * dim + (tensor(idx[0], device=x.device),)] * 0.0


@copying
def interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None,
                recompute_scale_factor=None, antialias=False):
    """Resize the spatial dims of input (N, C, *spatial) to `size` or by `scale_factor`, with
    PyTorch's modes and source-index rules: 'nearest', 'nearest-exact', 'linear' (3-D input),
    'bilinear' (4-D), 'trilinear' (5-D), 'bicubic' (4-D, A = -0.75) and 'area' (adaptive average)."""
    if not isinstance(input, Tensor):
        raise TypeError(f"interpolate: input must be a Tensor, got {type(input).__name__}")
    if mode not in _MODES:
        raise ValueError(f"interpolate: mode must be one of {_MODES}, got {mode!r}")
    if antialias:
        raise ValueError("interpolate: antialias=True is not supported; resample with antialias=False, or "
                         "blur first (e.g. avg_pool2d) when downsampling")
    nd = input.ndim - 2
    if nd < 1:
        raise ShapeError(f"interpolate: expected an input (N, C, *spatial) with at least 3 dims, got {tuple(input.shape)}")
    if mode not in ("nearest", "nearest-exact") and not input.dtype.is_floating_point:
        raise DTypeError(f"interpolate: mode {mode!r} is not implemented for {input.dtype!r} input, as in torch; "
                         "convert with .float() first (and round back after)")
    want = _LINEAR.get(mode, 2 if mode == "bicubic" else None)
    if want is not None and nd != want:
        raise ShapeError(f"interpolate: mode {mode!r} needs a {want + 2}-D input, got shape {tuple(input.shape)}")
    if align_corners is not None and mode not in ("linear", "bilinear", "trilinear", "bicubic"):
        raise ValueError(f"interpolate: align_corners only applies to linear and cubic modes, not {mode!r}")
    sizes, scales = _output_sizes(input, size, scale_factor, recompute_scale_factor)
    if min(sizes) < 1:
        raise ShapeError(f"interpolate: output size {sizes} must be positive (input shape {tuple(input.shape)})")
    if mode == "area":
        if nd == 1:
            return adaptive_avg_pool1d(input, sizes)
        if nd == 2:
            return adaptive_avg_pool2d(input, sizes)
        if nd == 3:
            return adaptive_avg_pool3d(input, sizes)
        raise ShapeError(f"interpolate: mode 'area' supports 3-D, 4-D and 5-D inputs, got shape {tuple(input.shape)}")
    x = input
    for i in range(nd):
        dim = 2 + i
        idx, w = _taps(mode, x.shape[dim], sizes[i], scales[i], bool(align_corners))
        x = _resample_dim(x, dim, idx, w)
    return x
