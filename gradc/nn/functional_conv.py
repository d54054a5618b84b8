"""Convolutions as im2col composites: one strided slice of the padded input per kernel offset,
stacked into a column matrix, then one matrix multiply (a BLAS call eagerly, a GEMM when compiled).

The input is made channels-last before slicing, so each tap is a run of C contiguous values and
the stacked columns come out contiguous in (N, H_out, W_out, kh*kw, C) order: the reshape to the
GEMM operand is free, and the weight is permuted to match (a small copy). The result is an (N, C_out, H_out, W_out) view of channels-last memory;
the next convolution's channels-last view of it is contiguous again."""
import numpy as np

from ..errors import ShapeError
from ..tensor import Tensor
from ..functions import stack, tensor, zeros
from .functional_pad import ntuple, out_size, pad, windows


def _check(name, input, weight, groups, nd, transposed=False):
    if not isinstance(input, Tensor) or not isinstance(weight, Tensor):
        raise TypeError(f"{name}: input and weight must be Tensors")
    if weight.ndim != nd + 2:
        raise ShapeError(f"{name}: weight must have {nd + 2} dims (out_channels, in_channels/groups, kernel...), "
                         f"got shape {weight.shape}")
    if input.ndim not in (nd + 1, nd + 2):
        raise ShapeError(f"{name}: expected a {nd + 2}-D (batched) or {nd + 1}-D (unbatched) input, "
                         f"got shape {input.shape}")
    if groups < 1:
        raise ValueError(f"{name}: groups must be a positive integer, got {groups}")
    c = input.shape[-nd - 1]
    want = weight.shape[0] if transposed else weight.shape[1] * groups
    if c != want:
        role = "weight.shape[0]" if transposed else f"weight.shape[1] * groups = {weight.shape[1]} * {groups}"
        raise ShapeError(f"{name}: the input has {c} channels (input shape {input.shape}) but the weight "
                         f"(shape {weight.shape}) expects {want} ({role}); check in_channels and groups")
    if weight.shape[0] % groups:
        raise ShapeError(f"{name}: {weight.shape[0]} {'input' if transposed else 'output'} channels of the "
                         f"weight (shape {weight.shape}) are not divisible by groups={groups}")


def _same_padding(name, kernel, stride, dilation):
    if any(s != 1 for s in stride):
        raise ValueError(f"{name}: padding='same' is only supported with stride 1, got stride {stride}")
    pads = []
    for k, d in zip(kernel, dilation):
        total = d * (k - 1)
        pads.append((total // 2, total - total // 2))  # the odd element goes on the right, as in PyTorch
    return pads


def _paddings(name, padding, kernel, stride, dilation):
    """Per spatial dim (left, right) padding from an int, a tuple, 'same' or 'valid'."""
    nd = len(kernel)
    if isinstance(padding, str):
        if padding == "valid":
            return [(0, 0)] * nd
        if padding == "same":
            return _same_padding(name, kernel, stride, dilation)
        raise ValueError(f"{name}: padding must be an int, a tuple, 'same' or 'valid', got {padding!r}")
    p = ntuple(padding, nd, name, "padding")
    if any(v < 0 for v in p):
        raise ValueError(f"{name}: padding must be non-negative, got {p}")
    return [(v, v) for v in p]


def _conv2d_nchw(x, weight, bias, stride, pads, dilation, groups):
    """x (N, C, H, W), weight (O, C/groups, kh, kw): the batched, validated core of every conv."""
    n, c, h, w = x.shape
    o, cg, kh, kw = weight.shape
    oh = out_size("conv2d", h, kh, stride[0], pads[0][0], dilation[0], pad_right=pads[0][1])
    ow = out_size("conv2d", w, kw, stride[1], pads[1][0], dilation[1], pad_right=pads[1][1])
    xl = x.permute(0, 2, 3, 1)  # channels-last: (N, H, W, C)
    if any(p for pair in pads for p in pair):
        xl = pad(xl, (0, 0, pads[1][0], pads[1][1], pads[0][0], pads[0][1]))  # cat makes it contiguous
    else:
        # One dense copy now makes every tap below a run of C contiguous values (a copy of the
        # input is ~10x cheaper than gathering the columns from a strided view).
        xl = xl.clone()
    rows = windows(xl, 1, kh, stride[0], dilation[0], oh)
    taps = [v for r in rows for v in windows(r, 2, kw, stride[1], dilation[1], ow)]  # each (N, oh, ow, C)
    k = kh * kw
    cols = stack(taps, 3) if k > 1 else taps[0].unsqueeze(3)  # (N, oh, ow, k, C)
    m = n * oh * ow
    wl = weight.permute(0, 2, 3, 1)  # (O, kh, kw, C/groups): the columns' (k, C) order
    if groups == 1:
        out = cols.reshape(m, k * c) @ wl.reshape(o, k * c).t()
    elif cg == 1 and o == groups:
        # depthwise: a per-channel dot product over the window, elementwise work that fuses
        out = (cols.reshape(m, k, c) * wl.reshape(o, k).t()).sum(1)
    else:
        og = o // groups
        a = cols.reshape(m, k, groups, cg).permute(2, 0, 1, 3).reshape(groups, m, k * cg)
        b = wl.reshape(groups, og, k * cg).permute(0, 2, 1)            # (g, k*cg, og)
        out = (a @ b).permute(1, 0, 2).reshape(m, o)
    if bias is not None:
        out = out + bias.to(out.dtype)
    return out.reshape(n, oh, ow, o).permute(0, 3, 1, 2)


def _batched(input, nd, fn):
    if input.ndim == nd + 1:
        return fn(input.unsqueeze(0)).squeeze(0)
    return fn(input)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution (cross-correlation, as in PyTorch) of input (N, C_in, H, W) with weight
    (C_out, C_in/groups, kh, kw); padding is an int, a pair, 'same' (stride 1 only) or 'valid'."""
    _check("conv2d", input, weight, groups, 2)
    stride, dilation = ntuple(stride, 2, "conv2d", "stride"), ntuple(dilation, 2, "conv2d", "dilation")
    if min(stride) < 1 or min(dilation) < 1:
        raise ValueError(f"conv2d: stride {stride} and dilation {dilation} must be positive")
    pads = _paddings("conv2d", padding, weight.shape[2:], stride, dilation)
    return _batched(input, 2, lambda x: _conv2d_nchw(x, weight, bias, stride, pads, dilation, groups))


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """1-D convolution of input (N, C_in, L) with weight (C_out, C_in/groups, k): conv2d over a
    height of one."""
    _check("conv1d", input, weight, groups, 1)
    stride, dilation = ntuple(stride, 1, "conv1d", "stride"), ntuple(dilation, 1, "conv1d", "dilation")
    if min(stride) < 1 or min(dilation) < 1:
        raise ValueError(f"conv1d: stride {stride} and dilation {dilation} must be positive")
    pads = _paddings("conv1d", padding, weight.shape[2:], stride, dilation)
    w2 = weight.unsqueeze(2)
    return _batched(input, 1, lambda x: _conv2d_nchw(x.unsqueeze(2), w2, bias, (1,) + stride, [(0, 0)] + pads,
                                                     (1,) + dilation, groups).squeeze(2))


def _dilate(x, dim, s):
    """Insert s - 1 zeros between neighbouring elements along `dim` (a stack with zeros, then a
    reshape that interleaves them, then a crop of the trailing zeros)."""
    if s == 1 or x.shape[dim] == 0:
        return x
    z = zeros(x.shape, dtype=x.dtype, device=x.device)
    y = stack([x] + [z] * (s - 1), dim + 1)
    y = y.reshape(x.shape[:dim] + (x.shape[dim] * s,) + x.shape[dim + 1:])
    key = (slice(None),) * dim + (slice(0, (x.shape[dim] - 1) * s + 1),)
    return y[key]


def _flip(w, dims):
    for d in dims:
        key = (slice(None),) * d + (tensor(np.arange(w.shape[d] - 1, -1, -1), device=w.device),)
        w = w[key]
    return w


def _conv_transpose2d_nchw(x, weight, bias, stride, padding, output_padding, groups, dilation):
    """The gradient of conv2d with respect to its input, computed as a direct convolution: the
    input dilated by the stride, padded by dilation * (k - 1) - padding (plus output_padding on the
    far side), convolved with the flipped kernel whose in/out channels are swapped per group."""
    cin, og, kh, kw = weight.shape
    cg = cin // groups
    for i, (s, d, op) in enumerate(zip(stride, dilation, output_padding)):
        if op >= max(s, d):
            raise ValueError(f"conv_transpose2d: output_padding {output_padding} must be smaller than either "
                             f"stride {stride} or dilation {dilation} in each dim")
    x = _dilate(_dilate(x, 2, stride[0]), 3, stride[1])
    w = weight.reshape(groups, cg, og, kh, kw).permute(0, 2, 1, 3, 4).reshape(groups * og, cg, kh, kw)
    w = _flip(w, (2, 3))
    widths = []
    for d, k, p, op in zip(dilation, (kh, kw), padding, output_padding):
        e = d * (k - 1) - p
        widths.append((e, e + op))
    # Negative widths (padding larger than the kernel's reach) crop; F.pad's constant mode does that.
    x = pad(x, (widths[1][0], widths[1][1], widths[0][0], widths[0][1]))
    return _conv2d_nchw(x, w, bias, (1, 1), [(0, 0), (0, 0)], dilation, groups)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """Transposed 2-D convolution of input (N, C_in, H, W) with weight (C_in, C_out/groups, kh, kw);
    output size (H - 1) * stride - 2 * padding + dilation * (kh - 1) + output_padding + 1."""
    _check("conv_transpose2d", input, weight, groups, 2, transposed=True)
    args = [ntuple(v, 2, "conv_transpose2d", what) for v, what in
            ((stride, "stride"), (padding, "padding"), (output_padding, "output_padding"), (dilation, "dilation"))]
    if min(args[0]) < 1 or min(args[3]) < 1 or min(args[1]) < 0 or min(args[2]) < 0:
        raise ValueError(f"conv_transpose2d: stride {args[0]} and dilation {args[3]} must be positive, padding "
                         f"{args[1]} and output_padding {args[2]} non-negative")
    return _batched(input, 2, lambda x: _conv_transpose2d_nchw(x, weight, bias, args[0], args[1], args[2], groups,
                                                               args[3]))


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """Transposed 1-D convolution of input (N, C_in, L) with weight (C_in, C_out/groups, k)."""
    _check("conv_transpose1d", input, weight, groups, 1, transposed=True)
    one = [ntuple(v, 1, "conv_transpose1d", what) for v, what in
           ((stride, "stride"), (padding, "padding"), (output_padding, "output_padding"), (dilation, "dilation"))]
    return _batched(input, 1, lambda x: conv_transpose2d(x.unsqueeze(2), weight.unsqueeze(2), bias,
                                                         (1,) + one[0], (0,) + one[1], (0,) + one[2], groups,
                                                         (1,) + one[3]).squeeze(2))


def unfold(input, kernel_size, dilation=1, padding=0, stride=1):
    """im2col of input (N, C, H, W): (N, C * kh * kw, L) columns, one per window, channel-major
    within a column (PyTorch's F.unfold layout)."""
    if input.ndim != 4:
        raise ShapeError(f"unfold: expected a 4-D input (N, C, H, W), got shape {input.shape}")
    k = ntuple(kernel_size, 2, "unfold", "kernel_size")
    d, p, s = (ntuple(v, 2, "unfold", w) for v, w in ((dilation, "dilation"), (padding, "padding"),
                                                       (stride, "stride")))
    n, c, h, w = input.shape
    oh, ow = (out_size("unfold", L, kk, ss, pp, dd) for L, kk, ss, pp, dd in zip((h, w), k, s, p, d))
    x = pad(input, (p[1], p[1], p[0], p[0])) if any(p) else input
    taps = [v for r in windows(x, 2, k[0], s[0], d[0], oh) for v in windows(r, 3, k[1], s[1], d[1], ow)]
    cols = stack(taps, 2)  # (N, C, kh*kw, oh, ow)
    return cols.reshape(n, c * k[0] * k[1], oh * ow)


def fold(input, output_size, kernel_size, dilation=1, padding=0, stride=1):
    """col2im, the transpose of unfold: (N, C * kh * kw, L) columns summed back into (N, C, H, W);
    overlapping windows add up. Each kernel offset's columns are placed by a dilation (zeros in
    between) and a padding, so the sum is a few dense adds."""
    if input.ndim != 3:
        raise ShapeError(f"fold: expected a 3-D input (N, C * kh * kw, L), got shape {input.shape}")
    hw = ntuple(output_size, 2, "fold", "output_size")
    k = ntuple(kernel_size, 2, "fold", "kernel_size")
    d, p, s = (ntuple(v, 2, "fold", w) for v, w in ((dilation, "dilation"), (padding, "padding"), (stride, "stride")))
    n, ck, L = input.shape
    if ck % (k[0] * k[1]):
        raise ShapeError(f"fold: dim 1 of the input ({ck}) is not divisible by kh * kw = {k[0] * k[1]}")
    oh, ow = (out_size("fold", a, kk, ss, pp, dd) for a, kk, ss, pp, dd in zip(hw, k, s, p, d))
    if oh * ow != L:
        raise ShapeError(f"fold: {L} columns do not match the {oh} x {ow} windows of output_size {hw}")
    c = ck // (k[0] * k[1])
    cols = input.reshape(n, c, k[0], k[1], oh, ow)
    hp, wp = hw[0] + 2 * p[0], hw[1] + 2 * p[1]
    total = None
    for i in range(k[0]):
        for j in range(k[1]):
            tap = _dilate(_dilate(cols[:, :, i, j], 2, s[0]), 3, s[1])
            top, left = i * d[0], j * d[1]
            tap = pad(tap, (left, wp - left - tap.shape[3], top, hp - top - tap.shape[2]))
            total = tap if total is None else total + tap
    return total[:, :, p[0]:p[0] + hw[0], p[1]:p[1] + hw[1]]


__all__ = ["conv1d", "conv2d", "conv_transpose1d", "conv_transpose2d", "unfold", "fold"]
