"""Convolutions as im2col + one matrix multiply (a BLAS call eagerly, a GEMM when compiled).

The input is viewed channels-last, (N, *spatial, C), and the im2col primitive copies every window
into (N, *out, *kernel, C) columns in one pass (one strided view of the padded input): the reshape
to the GEMM operand is free, and the weight is permuted to match (a small copy). The product is
window_matmul, whose gradient with respect to the columns comes window-offset-major, so its
transpose, col2im, adds each offset's contiguous block back with one strided add into one buffer.
The result is an (N, C_out, *out) view of channels-last memory; the next convolution's
channels-last view of it is contiguous again. A transposed convolution is the same two steps the
other way round: a GEMM of the input with the weight, then col2im of those columns."""
import math

from ..errors import ShapeError
from ..tensor import Tensor
from ..ops.movement import col2im, im2col, window_matmul
from .functional_pad import channels_last, ntuple, out_size


def _check(name, input, weight, groups, nd, transposed=False):
    if not isinstance(input, Tensor) or not isinstance(weight, Tensor):
        raise TypeError(f"{name}: input and weight must be Tensors")
    if weight.ndim != nd + 2:
        raise ShapeError(f"{name}: weight must have {nd + 2} dims (out_channels, in_channels/groups, kernel...), "
                         f"got shape {tuple(weight.shape)}")
    if input.ndim not in (nd + 1, nd + 2):
        raise ShapeError(f"{name}: expected a {nd + 2}-D (batched) or {nd + 1}-D (unbatched) input, "
                         f"got shape {tuple(input.shape)}")
    if groups < 1:
        raise ValueError(f"{name}: groups must be a positive integer, got {groups}")
    c = input.shape[-nd - 1]
    want = weight.shape[0] if transposed else weight.shape[1] * groups
    if c != want:
        role = "weight.shape[0]" if transposed else f"weight.shape[1] * groups = {weight.shape[1]} * {groups}"
        raise ShapeError(f"{name}: the input has {c} channels (input shape {tuple(input.shape)}) but the weight "
                         f"(shape {tuple(weight.shape)}) expects {want} ({role}); check in_channels and groups")
    if weight.shape[0] % groups:
        raise ShapeError(f"{name}: {weight.shape[0]} {'input' if transposed else 'output'} channels of the "
                         f"weight (shape {tuple(weight.shape)}) are not divisible by groups={groups}")


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



def _convnd(name, x, weight, bias, stride, pads, dilation, groups):
    """x (N, C, *spatial), weight (O, C/groups, *kernel): the batched, validated core of every conv."""
    nd = weight.ndim - 2
    n, c = x.shape[:2]
    o, cg = weight.shape[:2]
    kernel = weight.shape[2:]
    outs = tuple(out_size(name, L, kk, s, p[0], d, pad_right=p[1])
                 for L, kk, s, p, d in zip(x.shape[2:], kernel, stride, pads, dilation))
    to_last, from_last = channels_last(nd)
    cols = im2col(x.permute(to_last), 1, kernel, stride, dilation, pads)   # (N, *out, *kernel, C)
    k, m = math.prod(kernel), n * math.prod(outs)
    wl = weight.permute(to_last)  # (O, *kernel, C/groups): the columns' (kernel, C) order
    if groups == 1:
        out = window_matmul(cols, wl).permute(from_last)                  # (N, O, *out)
        if bias is not None:   # added to the (N, O, *out) view: it fuses with what follows (an activation)
            out = out + bias.to(out.dtype).reshape((o,) + (1,) * nd)
        return out
    elif cg == 1 and o == groups:
        # depthwise: a per-channel dot product over the window, elementwise work that fuses
        out = (cols.reshape(m, k, c) * wl.reshape(o, k).t()).sum(1)
    else:
        og = o // groups
        a = cols.reshape(m, k, groups, cg).permute(2, 0, 1, 3).reshape(groups, m, k * cg)
        b = wl.reshape(groups, og, k * cg).permute(0, 2, 1)            # (g, k*cg, og)
        out = a @ b                                                    # (g, m, og)
        if bias is not None:  # added per group, before the channels are interleaved
            out = out + bias.to(out.dtype).reshape(groups, 1, og)
        return out.permute(1, 0, 2).reshape((n,) + outs + (o,)).permute(from_last)
    if bias is not None:
        out = out + bias.to(out.dtype)
    return out.reshape((n,) + outs + (o,)).permute(from_last)


def _batched(input, nd, fn):
    if input.ndim == nd + 1:
        return fn(input.unsqueeze(0)).squeeze(0)
    return fn(input)


def _conv(name, nd, input, weight, bias, stride, padding, dilation, groups):
    _check(name, input, weight, groups, nd)
    stride, dilation = ntuple(stride, nd, name, "stride"), ntuple(dilation, nd, name, "dilation")
    if min(stride) < 1 or min(dilation) < 1:
        raise ValueError(f"{name}: stride {stride} and dilation {dilation} must be positive")
    pads = _paddings(name, padding, weight.shape[2:], stride, dilation)
    return _batched(input, nd, lambda x: _convnd(name, x, weight, bias, stride, pads, dilation, groups))


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """1-D convolution of input (N, C_in, L) with weight (C_out, C_in/groups, k)."""
    return _conv("conv1d", 1, input, weight, bias, stride, padding, dilation, groups)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution (cross-correlation, as in PyTorch) of input (N, C_in, H, W) with weight
    (C_out, C_in/groups, kh, kw); padding is an int, a pair, 'same' (stride 1 only) or 'valid'."""
    return _conv("conv2d", 2, input, weight, bias, stride, padding, dilation, groups)


def conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """3-D convolution of input (N, C_in, D, H, W) with weight (C_out, C_in/groups, kd, kh, kw)."""
    return _conv("conv3d", 3, input, weight, bias, stride, padding, dilation, groups)


def _conv_transposend(name, x, weight, bias, stride, padding, output_padding, groups, dilation):
    """The gradient of a convolution with respect to its input: a GEMM of the channels-last input
    with the weight gives each input position's contribution to its window, col2im adds them up
    (padding crops the result, output_padding extends its far side)."""
    nd = weight.ndim - 2
    cin, og = weight.shape[:2]
    kernel = weight.shape[2:]
    for s, d, op in zip(stride, dilation, output_padding):
        if op >= max(s, d):
            raise ValueError(f"{name}: output_padding {output_padding} must be smaller than either "
                             f"stride {stride} or dilation {dilation} in each dim")
    n, ins = x.shape[0], x.shape[2:]
    size = tuple((L - 1) * s - 2 * p + d * (kk - 1) + op + 1
                 for L, s, p, d, kk, op in zip(ins, stride, padding, dilation, kernel, output_padding))
    if min(size) < 1:
        raise ShapeError(f"{name}: input shape {tuple(x.shape)} with padding {padding} gives the non-positive output size "
                         f"{size}; use less padding")
    to_last, from_last = channels_last(nd)
    k, m, cg = math.prod(kernel), n * math.prod(ins), cin // groups
    xl = x.permute(to_last)
    wl = weight.permute(to_last)  # (C_in, *kernel, C_out/groups)
    if groups == 1:
        cols = xl.reshape(m, cin) @ wl.reshape(cin, k * og)
    else:
        a = xl.reshape(m, groups, cg).permute(1, 0, 2)                   # (g, m, cg)
        b = wl.reshape(groups, cg, k * og)                               # (g, cg, k*og)
        cols = (a @ b).reshape(groups, m, k, og).permute(1, 2, 0, 3).reshape(m, k * groups * og)
    cols = cols.reshape((n,) + tuple(ins) + tuple(kernel) + (groups * og,))
    pads = tuple((p, p - op) for p, op in zip(padding, output_padding))
    out = col2im(cols, 1, size, kernel, stride, dilation, pads)          # (N, *size, C_out)
    if bias is not None:
        out = out + bias.to(out.dtype)
    return out.permute(from_last)


def _conv_transpose(name, nd, input, weight, bias, stride, padding, output_padding, groups, dilation):
    _check(name, input, weight, groups, nd, transposed=True)
    args = [ntuple(v, nd, name, what) for v, what in
            ((stride, "stride"), (padding, "padding"), (output_padding, "output_padding"), (dilation, "dilation"))]
    if min(args[0]) < 1 or min(args[3]) < 1 or min(args[1]) < 0 or min(args[2]) < 0:
        raise ValueError(f"{name}: stride {args[0]} and dilation {args[3]} must be positive, padding "
                         f"{args[1]} and output_padding {args[2]} non-negative")
    return _batched(input, nd, lambda x: _conv_transposend(name, x, weight, bias, args[0], args[1], args[2], groups,
                                                           args[3]))


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """Transposed 1-D convolution of input (N, C_in, L) with weight (C_in, C_out/groups, k)."""
    return _conv_transpose("conv_transpose1d", 1, input, weight, bias, stride, padding, output_padding, groups,
                           dilation)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """Transposed 2-D convolution of input (N, C_in, H, W) with weight (C_in, C_out/groups, kh, kw);
    output size (H - 1) * stride - 2 * padding + dilation * (kh - 1) + output_padding + 1."""
    return _conv_transpose("conv_transpose2d", 2, input, weight, bias, stride, padding, output_padding, groups,
                           dilation)


def conv_transpose3d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """Transposed 3-D convolution of input (N, C_in, D, H, W) with weight (C_in, C_out/groups, kd, kh, kw)."""
    return _conv_transpose("conv_transpose3d", 3, input, weight, bias, stride, padding, output_padding, groups,
                           dilation)


def _fold_args(name, kernel_size, dilation, padding, stride):
    k = ntuple(kernel_size, 2, name, "kernel_size")
    d, p, s = (ntuple(v, 2, name, w) for v, w in ((dilation, "dilation"), (padding, "padding"), (stride, "stride")))
    return k, d, p, s


def unfold(input, kernel_size, dilation=1, padding=0, stride=1):
    """im2col of input (N, C, H, W): (N, C * kh * kw, L) columns, one per window, channel-major
    within a column (PyTorch's F.unfold layout)."""
    if input.ndim == 3:   # unbatched (C, H, W), as PyTorch takes it
        return unfold(input.unsqueeze(0), kernel_size, dilation, padding, stride).squeeze(0)
    if input.ndim != 4:
        raise ShapeError(f"unfold: expected a 3-D or 4-D input ((N,) C, H, W), got shape {tuple(input.shape)}")
    k, d, p, s = _fold_args("unfold", kernel_size, dilation, padding, stride)
    n, c, h, w = input.shape
    oh, ow = (out_size("unfold", L, kk, ss, pp, dd) for L, kk, ss, pp, dd in zip((h, w), k, s, p, d))
    cols = im2col(input, 2, k, s, d, [(v, v) for v in p])   # (N, C, oh, ow, kh, kw)
    return cols.permute(0, 1, 4, 5, 2, 3).reshape(n, c * k[0] * k[1], oh * ow)


def fold(input, output_size, kernel_size, dilation=1, padding=0, stride=1):
    """col2im, the transpose of unfold: (N, C * kh * kw, L) columns summed back into (N, C, H, W);
    overlapping windows add up."""
    if input.ndim == 2:   # unbatched (C * kh * kw, L)
        return fold(input.unsqueeze(0), output_size, kernel_size, dilation, padding, stride).squeeze(0)
    if input.ndim != 3:
        raise ShapeError(f"fold: expected a 2-D or 3-D input ((N,) C * kh * kw, L), got shape {tuple(input.shape)}")
    hw = ntuple(output_size, 2, "fold", "output_size")
    k, d, p, s = _fold_args("fold", kernel_size, dilation, padding, stride)
    n, ck, L = input.shape
    if ck % (k[0] * k[1]):
        raise ShapeError(f"fold: dim 1 of the input ({ck}) is not divisible by kh * kw = {k[0] * k[1]}")
    oh, ow = (out_size("fold", a, kk, ss, pp, dd) for a, kk, ss, pp, dd in zip(hw, k, s, p, d))
    if oh * ow != L:
        raise ShapeError(f"fold: {L} columns do not match the {oh} x {ow} windows of output_size {hw}")
    c = ck // (k[0] * k[1])
    cols = input.reshape(n, c, k[0], k[1], oh, ow).permute(0, 1, 4, 5, 2, 3)
    return col2im(cols, 2, hw, k, s, d, [(v, v) for v in p])


__all__ = ["conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "unfold", "fold"]
