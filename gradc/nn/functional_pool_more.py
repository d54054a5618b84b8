"""Pooling built on the basic pooling functions (gradc.nn.functional re-exports these): power-average
pooling (lp_pool1d/2d/3d, PyTorch's formula over avg_pool) and 3-D adaptive average pooling (the
2-D one over the last two dims, then the 1-D one over depth)."""
from ..errors import ShapeError
from ..functions import relu
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
