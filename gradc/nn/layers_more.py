"""More layers with PyTorch's names, arguments, defaults, initialisation and state-dict keys:
Bilinear, EmbeddingBag, the lazy LazyLinear / LazyConv1d / LazyConv2d, LocalResponseNorm, LPPool1d
/ LPPool2d, AlphaDropout / FeatureAlphaDropout, RReLU, ChannelShuffle, FractionalMaxPool2d and
AdaptiveAvgPool3d."""
import math

from ..errors import ShapeError
from ..functions import arange, empty, where
from ..grad_mode import no_grad
from . import functional as F
from . import init
from .conv import Conv1d, Conv2d
from .layers import DropoutBase, Linear
from .module import Module, Parameter


class Bilinear(Module):
    """y = x1^T A x2 + b with weight A (out_features, in1_features, in2_features), both weight and
    bias drawn from U(-1/sqrt(in1_features), 1/sqrt(in1_features)) as in PyTorch."""

    def __init__(self, in1_features, in2_features, out_features, bias=True, device=None, dtype=None):
        super().__init__()
        self.in1_features, self.in2_features, self.out_features = in1_features, in2_features, out_features
        kw = dict(dtype=dtype, device=device)
        self.weight = Parameter(empty(out_features, in1_features, in2_features, **kw))
        self.bias = Parameter(empty(out_features, **kw)) if bias else None
        self.reset_parameters()

    def reset_parameters(self):
        bound = 1 / math.sqrt(self.weight.shape[1])
        init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input1, input2):
        return F.bilinear(input1, input2, self.weight, self.bias)

    def extra_repr(self):
        return (f"in1_features={self.in1_features}, in2_features={self.in2_features}, "
                f"out_features={self.out_features}, bias={self.bias is not None}")


class EmbeddingBag(Module):
    """Sums, means or maxima of bags of embeddings (weight (num_embeddings, embedding_dim) drawn
    from N(0, 1), the padding_idx row zeroed)."""

    def __init__(self, num_embeddings, embedding_dim, max_norm=None, norm_type=2.0, scale_grad_by_freq=False,
                 mode="mean", sparse=False, _weight=None, include_last_offset=False, padding_idx=None, device=None,
                 dtype=None):
        super().__init__()
        if max_norm is not None or scale_grad_by_freq or sparse:
            raise ValueError("EmbeddingBag: max_norm, scale_grad_by_freq and sparse gradients are not supported")
        if mode not in ("sum", "mean", "max"):
            raise ValueError(f"EmbeddingBag: mode must be 'sum', 'mean' or 'max', got {mode!r}")
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(f"EmbeddingBag: padding_idx {padding_idx} must be within num_embeddings "
                                 f"({num_embeddings})")
            padding_idx %= num_embeddings
        self.num_embeddings, self.embedding_dim, self.mode = num_embeddings, embedding_dim, mode
        self.max_norm, self.norm_type, self.scale_grad_by_freq, self.sparse = None, norm_type, False, False
        self.include_last_offset, self.padding_idx = include_last_offset, padding_idx
        if _weight is None:
            self.weight = Parameter(empty(num_embeddings, embedding_dim, dtype=dtype, device=device))
            self.reset_parameters()
        else:
            if tuple(_weight.shape) != (num_embeddings, embedding_dim):
                raise ValueError(f"EmbeddingBag: _weight has shape {tuple(_weight.shape)}, expected "
                                 f"{(num_embeddings, embedding_dim)}")
            self.weight = Parameter(_weight)

    def reset_parameters(self):
        init.normal_(self.weight)
        if self.padding_idx is not None:
            rows = arange(self.num_embeddings, device=self.weight.device).unsqueeze(1)
            with no_grad():
                self.weight.copy_(where(rows == self.padding_idx, 0.0, self.weight))

    def forward(self, input, offsets=None, per_sample_weights=None):
        return F.embedding_bag(input, self.weight, offsets, mode=self.mode, per_sample_weights=per_sample_weights,
                               include_last_offset=self.include_last_offset, padding_idx=self.padding_idx)

    def extra_repr(self):
        return f"{self.num_embeddings}, {self.embedding_dim}, mode={self.mode!r}" + (
            f", padding_idx={self.padding_idx}" if self.padding_idx is not None else "")


class _Lazy:
    """The lazy modules' shared step: on the first forward, build the module they become with the
    input's feature count, take over its parameters and class (as PyTorch's cls_to_become), then
    run it. Until then the module has no parameters (so create the optimizer after one forward,
    and load a state dict after it too)."""

    def has_uninitialized_params(self):
        return self.__dict__.get("_lazy_args") is not None

    def initialize_parameters(self, input):
        if not self.has_uninitialized_params():
            return
        args, kwargs = self._lazy_args
        built = self.cls_to_become(self._in_features(input), *args, **kwargs)
        keep = {k: self.__dict__[k] for k in ("_forward_hooks", "training")}
        self.__dict__.pop("_lazy_args")
        self.__dict__.update(built.__dict__)
        self.__dict__.update(keep)
        object.__setattr__(self, "__class__", self.cls_to_become)
        for name, p in list(self._parameters.items()):
            self.register_parameter(name, p)      # counts as a structure change for compiled callers

    def forward(self, input):
        self.initialize_parameters(input)
        return self.forward(input)


class LazyLinear(_Lazy, Module):
    """Linear whose in_features is taken from the first input's last dim."""
    cls_to_become = Linear

    def __init__(self, out_features, bias=True, device=None, dtype=None):
        Module.__init__(self)
        self.in_features, self.out_features = 0, out_features
        self.register_parameter("weight", None)
        self.register_parameter("bias", None)
        object.__setattr__(self, "_lazy_args", ((out_features,), dict(bias=bias, device=device, dtype=dtype)))

    def _in_features(self, input):
        if input.ndim < 1:
            raise ShapeError("LazyLinear: the input needs at least one dim (its features)")
        return input.shape[-1]


class _LazyConv(_Lazy, Module):
    def __init__(self, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True,
                 padding_mode="zeros", device=None, dtype=None):
        Module.__init__(self)
        self.in_channels, self.out_channels = 0, out_channels
        self.register_parameter("weight", None)
        self.register_parameter("bias", None)
        object.__setattr__(self, "_lazy_args", ((out_channels, kernel_size, stride, padding, dilation, groups, bias,
                                                 padding_mode), dict(device=device, dtype=dtype)))

    def _in_features(self, input):
        nd = self.cls_to_become.nd
        if input.ndim not in (nd + 1, nd + 2):
            raise ShapeError(f"{type(self).__name__}: expected a {nd + 2}-D (batched) or {nd + 1}-D (unbatched) "
                             f"input, got shape {tuple(input.shape)}")
        return input.shape[0] if input.ndim == nd + 1 else input.shape[1]


class LazyConv1d(_LazyConv):
    cls_to_become = Conv1d


class LazyConv2d(_LazyConv):
    cls_to_become = Conv2d


class LocalResponseNorm(Module):
    def __init__(self, size, alpha=1e-4, beta=0.75, k=1.0):
        super().__init__()
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, input):
        return F.local_response_norm(input, self.size, self.alpha, self.beta, self.k)

    def extra_repr(self):
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"


class _LPPool(Module):
    def __init__(self, norm_type, kernel_size, stride=None, ceil_mode=False):
        super().__init__()
        self.norm_type, self.kernel_size, self.stride, self.ceil_mode = norm_type, kernel_size, stride, ceil_mode

    def extra_repr(self):
        return (f"norm_type={self.norm_type}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"ceil_mode={self.ceil_mode}")


class LPPool1d(_LPPool):
    def forward(self, input):
        return F.lp_pool1d(input, self.norm_type, self.kernel_size, self.stride, self.ceil_mode)


class LPPool2d(_LPPool):
    def forward(self, input):
        return F.lp_pool2d(input, self.norm_type, self.kernel_size, self.stride, self.ceil_mode)


class LPPool3d(_LPPool):
    def forward(self, input):
        return F.lp_pool3d(input, self.norm_type, self.kernel_size, self.stride, self.ceil_mode)


class AlphaDropout(DropoutBase):
    def forward(self, input):
        return F.alpha_dropout(input, self.p, self.training, self.inplace)


class FeatureAlphaDropout(DropoutBase):
    def forward(self, input):
        return F.feature_alpha_dropout(input, self.p, self.training, self.inplace)


class RReLU(Module):
    """Leaky ReLU with a random slope from U(lower, upper) per element in training, the mean slope
    (lower + upper) / 2 in eval."""

    def __init__(self, lower=1.0 / 8, upper=1.0 / 3, inplace=False):
        super().__init__()
        self.lower, self.upper, self.inplace = lower, upper, inplace

    def forward(self, input):
        return F.rrelu(input, self.lower, self.upper, self.training, self.inplace)

    def extra_repr(self):
        return f"lower={self.lower}, upper={self.upper}" + (", inplace=True" if self.inplace else "")


class ChannelShuffle(Module):
    def __init__(self, groups):
        super().__init__()
        self.groups = groups

    def forward(self, input):
        return F.channel_shuffle(input, self.groups)

    def extra_repr(self):
        return f"groups={self.groups}"


class FractionalMaxPool2d(Module):
    """Max pooling over pseudo-random windows (F.fractional_max_pool2d): give output_size or
    output_ratio; fresh samples each call unless _random_samples fixes them."""

    def __init__(self, kernel_size, output_size=None, output_ratio=None, return_indices=False,
                 _random_samples=None):
        super().__init__()
        if (output_size is None) == (output_ratio is None):
            raise ValueError("FractionalMaxPool2d requires specifying exactly one of output_size or output_ratio")
        if output_ratio is not None:
            ratios = (output_ratio, output_ratio) if isinstance(output_ratio, (int, float)) else tuple(output_ratio)
            if not all(0 < r < 1 for r in ratios):
                raise ValueError(f"FractionalMaxPool2d: output_ratio must be between 0 and 1, got {output_ratio}")
        self.kernel_size, self.output_size, self.output_ratio = kernel_size, output_size, output_ratio
        self.return_indices = return_indices
        self.register_buffer("_random_samples", _random_samples)

    def forward(self, input):
        return F.fractional_max_pool2d(input, self.kernel_size, self.output_size, self.output_ratio,
                                       self.return_indices, _random_samples=self._random_samples)


class AdaptiveAvgPool3d(Module):
    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, input):
        return F.adaptive_avg_pool3d(input, self.output_size)

    def extra_repr(self):
        return f"output_size={self.output_size}"
