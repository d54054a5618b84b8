"""nn.MultiheadAttention with PyTorch's parameters (in_proj_weight / in_proj_bias, or q/k/v_proj_weight
when kdim or vdim differ from embed_dim; out_proj; bias_k / bias_v), initialisation and forward
semantics (attn_mask and key_padding_mask as bool, True = masked out, or additive float; returned
weights averaged over heads unless average_attn_weights=False)."""
from ..errors import ShapeError
from ..functions import empty
from . import functional as F
from . import init
from .layers import Linear
from .module import Module, Parameter


class NonDynamicallyQuantizableLinear(Linear):
    """MultiheadAttention's out_proj: a Linear under PyTorch's class name (what its repr prints)."""


class MultiheadAttention(Module):
    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, add_bias_kv=False, add_zero_attn=False,
                 kdim=None, vdim=None, batch_first=False, device=None, dtype=None):
        super().__init__()
        if embed_dim <= 0 or num_heads <= 0:
            raise ValueError(f"MultiheadAttention: embed_dim ({embed_dim}) and num_heads ({num_heads}) must be positive")
        if embed_dim % num_heads:
            raise ValueError(f"MultiheadAttention: embed_dim ({embed_dim}) must be divisible by num_heads ({num_heads})")
        self.embed_dim, self.num_heads, self.dropout, self.batch_first = embed_dim, num_heads, dropout, batch_first
        self.kdim = kdim if kdim is not None else embed_dim
        self.vdim = vdim if vdim is not None else embed_dim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.head_dim = embed_dim // num_heads
        kw = dict(dtype=dtype, device=device)
        if self._qkv_same_embed_dim:
            self.in_proj_weight = Parameter(empty(3 * embed_dim, embed_dim, **kw))
            self.register_parameter("q_proj_weight", None)
            self.register_parameter("k_proj_weight", None)
            self.register_parameter("v_proj_weight", None)
        else:
            self.q_proj_weight = Parameter(empty(embed_dim, embed_dim, **kw))
            self.k_proj_weight = Parameter(empty(embed_dim, self.kdim, **kw))
            self.v_proj_weight = Parameter(empty(embed_dim, self.vdim, **kw))
            self.register_parameter("in_proj_weight", None)
        if bias:
            self.in_proj_bias = Parameter(empty(3 * embed_dim, **kw))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = NonDynamicallyQuantizableLinear(embed_dim, embed_dim, bias=bias, **kw)
        if add_bias_kv:
            self.bias_k = Parameter(empty(1, 1, embed_dim, **kw))
            self.bias_v = Parameter(empty(1, 1, embed_dim, **kw))
        else:
            self.bias_k = self.bias_v = None
        self.add_zero_attn = add_zero_attn
        self._reset_parameters()

    def _reset_parameters(self):
        if self._qkv_same_embed_dim:
            init.xavier_uniform_(self.in_proj_weight)
        else:
            init.xavier_uniform_(self.q_proj_weight)
            init.xavier_uniform_(self.k_proj_weight)
            init.xavier_uniform_(self.v_proj_weight)
        if self.in_proj_bias is not None:
            init.zeros_(self.in_proj_bias)
            init.zeros_(self.out_proj.bias)
        if self.bias_k is not None:
            init.xavier_normal_(self.bias_k)
            init.xavier_normal_(self.bias_v)

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True, is_causal=False):
        """Returns (attn_output, attn_weights or None). Inputs are (L, N, E) ((N, L, E) with
        batch_first) or unbatched (L, E); is_causal is a hint that attn_mask is causal, as in
        PyTorch (attn_mask is still required and applied)."""
        if query.ndim not in (2, 3) or key.ndim != query.ndim or value.ndim != query.ndim:
            raise ShapeError(f"MultiheadAttention: query, key and value must all be 3-D (batched) or 2-D "
                             f"(unbatched), got {tuple(query.shape)}, {tuple(key.shape)}, {tuple(value.shape)}")
        transpose = self.batch_first and query.ndim == 3
        if transpose:
            same_kv, same_qkv = key is value, query is key and key is value
            query = query.transpose(0, 1)
            # keep the identities, so self-attention takes the single fused projection
            key = query if same_qkv else key.transpose(0, 1)
            value = key if same_kv else value.transpose(0, 1)
        out, weights = F.multi_head_attention_forward(
            query, key, value, self.embed_dim, self.num_heads, self.in_proj_weight, self.in_proj_bias, self.bias_k,
            self.bias_v, self.add_zero_attn, self.dropout, self.out_proj.weight, self.out_proj.bias,
            training=self.training, key_padding_mask=key_padding_mask, need_weights=need_weights,
            attn_mask=attn_mask, use_separate_proj_weight=not self._qkv_same_embed_dim,
            q_proj_weight=self.q_proj_weight, k_proj_weight=self.k_proj_weight, v_proj_weight=self.v_proj_weight,
            average_attn_weights=average_attn_weights, is_causal=is_causal)
        return (out.transpose(0, 1) if transpose else out), weights



# ---------------------------------------------------------------------- torch.nn.attention's names
class SDPBackend:
    """The attention implementations PyTorch chooses among (torch.nn.attention.SDPBackend)."""
    ERROR, MATH, FLASH_ATTENTION, EFFICIENT_ATTENTION, CUDNN_ATTENTION, OVERRIDEABLE = range(-1, 5)


_BACKENDS = {v for k, v in vars(SDPBackend).items() if k.isupper()}


class sdpa_kernel:
    """with sdpa_kernel(SDPBackend.MATH): ...: which of PyTorch's attention kernels may run. gradc
    has one, a blocked exact attention that every choice permits (they differ only in speed and
    rounding), so the region changes no result; the choice is checked and kept in `backends`."""

    def __init__(self, backends, set_priority=False):
        chosen = list(backends) if isinstance(backends, (list, tuple)) else [backends]
        if not chosen or any(b not in _BACKENDS or b == SDPBackend.ERROR for b in chosen):
            raise ValueError(f"sdpa_kernel: expects SDPBackend members, got {backends!r}")
        self.backends, self.set_priority = chosen, bool(set_priority)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
