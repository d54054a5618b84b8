"""nn.TransformerEncoderLayer and nn.TransformerEncoder with PyTorch's submodule names (self_attn,
linear1, dropout, linear2, norm1, norm2, dropout1, dropout2; layers.{i}), options and defaults,
built from MultiheadAttention, Linear, LayerNorm and Dropout."""
import copy

from ..errors import ShapeError
from ..functions import arange, where
from . import functional as F
from .attention import MultiheadAttention
from .layers import Dropout, LayerNorm, Linear, ModuleList
from .module import Module

_ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu}


def _activation(activation):
    if isinstance(activation, str):
        if activation not in _ACTIVATIONS:
            raise ValueError(f"TransformerEncoderLayer: activation should be 'relu' or 'gelu' (or a callable), "
                             f"not {activation!r}")
        return _ACTIVATIONS[activation]
    if not callable(activation):
        raise ValueError(f"TransformerEncoderLayer: activation must be a string or a callable, got {activation!r}")
    return activation


class TransformerEncoderLayer(Module):
    """Self-attention then a feed-forward block, each with dropout and a residual connection;
    post-norm by default, pre-norm with norm_first=True."""

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu", layer_norm_eps=1e-5,
                 batch_first=False, norm_first=False, bias=True, device=None, dtype=None):
        super().__init__()
        kw = dict(device=device, dtype=dtype)
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first, **kw)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, **kw)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, **kw)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.activation = _activation(activation)

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal):
        x = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask, need_weights=False,
                           is_causal=is_causal)[0]
        return self.dropout1(x)

    def _ff_block(self, x):
        return self.dropout2(self.linear2(self.dropout(self.activation(self.linear1(x)))))

    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal=False):
        x = src
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            return x + self._ff_block(self.norm2(x))
        x = self.norm1(x + self._sa_block(x, src_mask, src_key_padding_mask, is_causal))
        return self.norm2(x + self._ff_block(x))


class TransformerEncoder(Module):
    """num_layers copies of encoder_layer (layers.0, layers.1, ...) and an optional final norm."""

    def __init__(self, encoder_layer, num_layers, norm=None, enable_nested_tensor=True, mask_check=True):
        super().__init__()
        if not isinstance(encoder_layer, Module):
            raise ValueError("TransformerEncoder: encoder_layer must be a Module (e.g. a TransformerEncoderLayer)")
        self.layers = ModuleList([copy.deepcopy(encoder_layer) for _ in range(num_layers)])
        self.num_layers, self.norm = num_layers, norm
        # PyTorch's nested-tensor inference fast path (which may leave zeros at padded positions) has
        # no counterpart here: every position is computed, as PyTorch's regular path does
        self.enable_nested_tensor, self.mask_check = enable_nested_tensor, mask_check

    def forward(self, src, mask=None, src_key_padding_mask=None, is_causal=None):
        out = src
        for layer in self.layers:
            out = layer(out, src_mask=mask, src_key_padding_mask=src_key_padding_mask, is_causal=bool(is_causal))
        return self.norm(out) if self.norm is not None else out


def generate_square_subsequent_mask(sz, device=None, dtype=None):
    """A float (sz, sz) causal mask: 0 on and below the diagonal, -inf above (PyTorch's)."""
    if sz <= 0:
        raise ShapeError(f"generate_square_subsequent_mask: size must be positive, got {sz}")
    i = arange(sz, device=device)
    out = where(i.unsqueeze(1) >= i, 0.0, float("-inf"))
    return out if dtype is None else out.to(dtype)
