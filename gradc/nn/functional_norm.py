"""Normalisations as composites: batch, instance, group and RMS norm, and F.normalize.

Running statistics are written in place under no_grad (`copy_`), which the compiler records as
state and writes back after each run, so a compiled training step updates them as eager does.
The momentum may be a 0-d tensor (BatchNorm's cumulative average, 1 / num_batches_tracked,
computed without reading the counter's value in Python, so it traces)."""
import numpy as np

from ..composite import accumulate_in_float32
from ..errors import ShapeError
from ..grad_mode import no_grad
from ..tensor import Tensor
from ..shapes import shape_or


def _channel_shape(x):
    return (1, x.shape[1]) + (1,) * (x.ndim - 2)


def _affine(out, weight, bias, shape):
    if weight is not None:
        out = out * weight.reshape(shape)
    if bias is not None:
        out = out + bias.reshape(shape)
    return out


def _update(running, value, momentum):
    """running <- (1 - momentum) * running + momentum * value, in place and without history."""
    with no_grad():
        running.copy_(running * (1.0 - momentum) + value.detach().to(running.dtype) * momentum)


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    """Normalise over every dim but the channel dim (1). Training uses the batch's mean and biased
    variance and moves the running mean and UNBIASED running variance towards them by `momentum`;
    otherwise the running statistics normalise."""
    if not isinstance(input, Tensor) or input.ndim < 2:
        raise ShapeError(f"batch_norm: expected an input (N, C, ...) with at least 2 dims, got "
                         f"{shape_or(input, type(input).__name__)}")
    c = input.shape[1]
    for name, t in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight),
                    ("bias", bias)):
        if t is not None and tuple(t.shape) != (c,):
            raise ShapeError(f"batch_norm: {name} has shape {tuple(t.shape)} but the input (shape {tuple(input.shape)}) "
                             f"has {c} channels")
    shape = _channel_shape(input)
    axes = (0,) + tuple(range(2, input.ndim))
    if training and input.numel() == 0:   # an empty batch (a detector with no proposals): empty, stats kept, as torch
        return _affine(input * 1.0, weight, bias, shape)
    if training:
        n = input.numel() // c if c else 0
        if n <= 1:
            raise ShapeError(f"batch_norm: expected more than 1 value per channel when training, got input "
                             f"shape {tuple(input.shape)}; use a larger batch or eval mode")
        mean = input.mean(axes, keepdim=True)
        centered = input - mean
        var = (centered * centered).mean(axes, keepdim=True)
        if running_mean is not None:
            _update(running_mean, mean.reshape(c), momentum)
        if running_var is not None:
            _update(running_var, var.reshape(c) * (n / (n - 1)), momentum)
        out = centered * (var + eps).rsqrt()
    else:
        if running_mean is None or running_var is None:
            raise ShapeError("batch_norm: running_mean and running_var are needed when training=False")
        inv = (running_var.reshape(shape) + eps).rsqrt()
        out = (input - running_mean.reshape(shape)) * inv
    return _affine(out, weight, bias, shape)


def instance_norm(input, running_mean=None, running_var=None, weight=None, bias=None, use_input_stats=True,
                  momentum=0.1, eps=1e-5):
    """Normalise each (sample, channel) over its spatial dims; running statistics, when given, are
    the batch average of the per-instance statistics (as PyTorch keeps them)."""
    if not isinstance(input, Tensor) or input.ndim < 3:
        raise ShapeError(f"instance_norm: expected an input (N, C, *spatial), got "
                         f"{shape_or(input, type(input).__name__)}")
    shape = _channel_shape(input)
    axes = tuple(range(2, input.ndim))
    if use_input_stats:
        n = int(np.prod(input.shape[2:]))
        if n <= 1:
            raise ShapeError(f"instance_norm: expected more than 1 spatial element per channel, got input shape "
                             f"{tuple(input.shape)}")
        mean = input.mean(axes, keepdim=True)
        centered = input - mean
        var = (centered * centered).mean(axes, keepdim=True)
        if running_mean is not None:
            _update(running_mean, mean.mean(0).reshape(-1), momentum)
        if running_var is not None:
            _update(running_var, (var * (n / (n - 1))).mean(0).reshape(-1), momentum)
        out = centered * (var + eps).rsqrt()
    else:
        if running_mean is None or running_var is None:
            raise ShapeError("instance_norm: running statistics are needed when use_input_stats=False")
        out = (input - running_mean.reshape(shape)) * (running_var.reshape(shape) + eps).rsqrt()
    return _affine(out, weight, bias, shape)


def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5):
    """Normalise each sample's channels in num_groups groups (over the group's channels and all
    spatial positions), then scale and shift per channel."""
    if not isinstance(input, Tensor) or input.ndim < 2:
        raise ShapeError(f"group_norm: expected an input (N, C, ...), got {shape_or(input, input)}")
    n, c = input.shape[:2]
    if num_groups < 1 or c % num_groups:
        raise ShapeError(f"group_norm: {c} channels (input shape {tuple(input.shape)}) are not divisible into "
                         f"{num_groups} groups")
    if input.numel() == 0:   # an empty batch: nothing to normalise (reshape(n, g, -1) cannot infer -1 of 0)
        return _affine(input * 1.0, weight, bias, _channel_shape(input))
    x = input.reshape(n, num_groups, -1)
    mean = x.mean(2, keepdim=True)
    centered = x - mean
    var = (centered * centered).mean(2, keepdim=True)
    out = (centered * (var + eps).rsqrt()).reshape(input.shape)
    return _affine(out, weight, bias, _channel_shape(input))


def rms_norm(input, normalized_shape, weight=None, eps=None):
    """x / sqrt(mean(x^2) + eps) over the trailing `normalized_shape` dims, times weight; eps=None
    means the dtype's machine epsilon (torch.finfo(dtype).eps)."""
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if tuple(input.shape[input.ndim - len(shape):]) != shape:
        raise ShapeError(f"rms_norm: normalized_shape {shape} does not match the trailing dims of input "
                         f"{tuple(input.shape)}")
    if eps is None:
        eps = float(np.finfo(input.dtype.np).eps)
    out = _rms_normalized(input, tuple(range(input.ndim - len(shape), input.ndim)), eps)
    return out * weight if weight is not None else out


@accumulate_in_float32   # (a float16 square overflows from 256 on)
def _rms_normalized(input, axes, eps):
    return input * ((input * input).mean(axes, keepdim=True) + eps).rsqrt()


def normalize(input, p=2.0, dim=1, eps=1e-12):
    """input / max(||input||_p over dim, eps)."""
    return input / input.norm(p, dim, keepdim=True).clamp(min=eps)   # (norm's gradient at 0 is 0)
