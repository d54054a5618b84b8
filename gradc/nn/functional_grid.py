"""affine_grid and grid_sample (the spatial-transformer pair) as composites: the grid is the base
coordinates times theta; sampling unnormalises each coordinate, applies the padding mode (zeros,
border: clamp, reflection: fold back), and gathers the 2 ** d corner values of each output point
from the flattened input, weighted (bilinear / trilinear) or the nearest one. Gradients flow to
the input through the gather and to the grid through the weights, as in PyTorch."""
import itertools

import numpy as np

from ..composite import gather_along
from ..creation import linspace_values
from ..errors import DTypeError, ShapeError
from ..functions import cat, stack, tensor, where
from ..tensor import Tensor

_MODES = ("bilinear", "nearest")
_PADDING = ("zeros", "border", "reflection")


def _base(n, align_corners, dtype):
    """PyTorch's normalised pixel positions along one dim: -1 .. 1 through the corner pixels'
    centres (align_corners) or their outer edges; a single pixel sits at 0."""
    if n <= 1:
        return np.zeros(max(n, 0), dtype)
    v = linspace_values(-1, 1, n, dtype)
    if not align_corners:   # PyTorch's range * (n - 1) / n, each step rounded in the dtype
        wide = np.float32 if dtype == np.float16 else dtype
        v = ((v.astype(wide) * wide(n - 1)).astype(dtype).astype(wide) / wide(n)).astype(dtype)
    return v


def affine_grid(theta, size, align_corners=None):
    """The sampling grid (N, H, W, 2) (or (N, D, H, W, 3)) of the affine maps theta (N, 2, 3)
    (or (N, 3, 4)) for an output of `size` (N, C, H, W) (or (N, C, D, H, W)); x (width) first."""
    align_corners = bool(align_corners)
    if not isinstance(theta, Tensor) or not theta.dtype.is_floating_point:
        raise DTypeError("affine_grid: theta must be a floating-point tensor")
    size = tuple(int(s) for s in size)
    if len(size) not in (4, 5):
        raise ShapeError(f"affine_grid: size must be (N, C, H, W) or (N, C, D, H, W), got {size}")
    nd = len(size) - 2
    if tuple(theta.shape) != (size[0], nd, nd + 1):
        raise ShapeError(f"affine_grid: for size {size}, theta must have shape {(size[0], nd, nd + 1)}, got "
                         f"{tuple(theta.shape)}")
    if min(size[2:]) <= 0:
        raise ShapeError(f"affine_grid: the spatial sizes must be positive, got {size}")
    spatial = size[2:]
    axes = [_base(n, align_corners, theta.dtype.np.type) for n in reversed(spatial)]      # x, y(, z): a constant
    mesh = np.meshgrid(*reversed(axes), indexing="ij")                  # in spatial order (z,) y, x
    base = np.stack(list(reversed(mesh)) + [np.ones(spatial)], -1).reshape(1, -1, nd + 1)
    base = tensor(base.astype(theta.dtype.np), device=theta.device)     # (1, prod(spatial), nd + 1)
    grid = base @ theta.transpose(1, 2)                                      # (N, prod(spatial), nd)
    return grid.reshape(size[0], *spatial, nd)


def _unnormalise(coord, n, align_corners):
    if align_corners:
        return (coord + 1.0) * (0.5 * (n - 1))
    return ((coord + 1.0) * n - 1.0) * 0.5


def _reflect(x, twice_low, twice_high):
    if twice_low == twice_high:
        return x * 0.0
    low, span = twice_low / 2.0, (twice_high - twice_low) / 2.0
    x = (x - low).abs()
    flips = (x / span).floor().detach()
    extra = x - flips * span
    even = (flips - 2.0 * (flips * 0.5).floor()) == 0
    return where(even, extra + low, span - extra + low)


def _source(coord, n, padding_mode, align_corners):
    x = _unnormalise(coord, n, align_corners)
    if padding_mode == "border":
        x = x.clamp(0.0, float(n - 1))
    elif padding_mode == "reflection":
        x = _reflect(x, 0.0, 2.0 * (n - 1)) if align_corners else _reflect(x, -1.0, 2.0 * n - 1.0)
        x = x.clamp(0.0, float(n - 1))
    return x


def grid_sample(input, grid, mode="bilinear", padding_mode="zeros", align_corners=None):
    """Sample input (N, C, H, W) at grid (N, Ho, Wo, 2) of normalised (x, y) in [-1, 1] (5-D:
    (N, C, D, H, W) at (N, Do, Ho, Wo, 3), 'bilinear' meaning trilinear, as in PyTorch)."""
    if mode not in _MODES:
        raise ValueError(f"grid_sample: mode must be one of {_MODES} (bicubic is not supported), got {mode!r}")
    if padding_mode not in _PADDING:
        raise ValueError(f"grid_sample: padding_mode must be one of {_PADDING}, got {padding_mode!r}")
    align_corners = bool(align_corners)
    if input.ndim not in (4, 5):
        raise ShapeError(f"grid_sample: input must be (N, C, H, W) or (N, C, D, H, W), got {tuple(input.shape)}")
    nd = input.ndim - 2
    if grid.ndim != input.ndim or grid.shape[0] != input.shape[0] or grid.shape[-1] != nd:
        raise ShapeError(f"grid_sample: for input {tuple(input.shape)} the grid must be (N, *out, {nd}) with "
                         f"N = {input.shape[0]} and {nd}-D out, got {tuple(grid.shape)}")
    if grid.dtype is not input.dtype:
        raise DTypeError(f"grid_sample: grid ({grid.dtype!r}) and input ({input.dtype!r}) must have one dtype")
    n, c = input.shape[:2]
    spatial = tuple(input.shape[2:])                       # (H, W) or (D, H, W)
    out_spatial = tuple(grid.shape[1:-1])
    flat = input.reshape(n, c, -1)
    g = grid.reshape(n, -1, nd)
    # coordinate k of the grid addresses spatial dim nd - 1 - k (x is the width)
    src = [_source(g[..., nd - 1 - d], spatial[d], padding_mode, align_corners) for d in range(nd)]
    strides = [int(np.prod(spatial[d + 1:])) for d in range(nd)]

    def corner(idx_per_dim):
        """(flat indices (N, P) clamped into the input, inside-the-input mask (N, P))."""
        inside = None
        flat_idx = None
        for d, i in enumerate(idx_per_dim):
            ok = (i >= 0) & (i <= spatial[d] - 1)
            inside = ok if inside is None else inside & ok
            term = i.clamp(0, spatial[d] - 1) * strides[d]
            flat_idx = term if flat_idx is None else flat_idx + term
        return flat_idx.long(), inside

    def gather(flat_idx):
        return gather_along(flat, 2, flat_idx.unsqueeze(1).expand(n, c, flat_idx.shape[1]))   # clamped: in range

    if mode == "nearest":
        idx, inside = corner([s.round().detach() for s in src])
        out = where(inside.unsqueeze(1), gather(idx), 0.0)
    else:
        # all 2 ** d corners in one gather: (N, C, corners * P) values, weighted and summed
        lo = [s.floor().detach() for s in src]
        frac = [s - f for s, f in zip(src, lo)]
        idxs, weights = [], []
        for bits in itertools.product((0, 1), repeat=nd):
            w = None
            for d, bit in enumerate(bits):
                wd = frac[d] if bit else 1.0 - frac[d]
                w = wd if w is None else w * wd
            idx, inside = corner([lo[d] + float(bit) for d, bit in enumerate(bits)])
            idxs.append(idx)
            weights.append(where(inside, w, 0.0))
        k, p = len(idxs), idxs[0].shape[1]
        vals = gather(cat(idxs, 1)).reshape(n, c, k, p)
        out = (vals * stack(weights, 1).unsqueeze(1)).sum(2)
    return out.reshape(n, c, *out_spatial)
