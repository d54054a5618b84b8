"""nn.MultiheadAttention with PyTorch's parameters (in_proj_weight / in_proj_bias, or q/k/v_proj_weight
when kdim or vdim differ from embed_dim; out_proj; bias_k / bias_v), initialisation and forward
semantics (attn_mask and key_padding_mask as bool, True = masked out, or additive float; returned
weights averaged over heads unless average_attn_weights=False)."""
import math

from .. import dtypes as D
from ..errors import ShapeError
from ..functions import cat, empty, where, zeros
from . import functional as F
from . import init
from .layers import Linear
from .module import Module, Parameter


def _additive(mask, dtype, name):
    """A mask as scores to add: bool True -> -inf, float as is."""
    if mask.dtype is D.bool_:
        return where(mask, float("-inf"), 0.0).to(dtype)
    if not mask.dtype.is_floating_point:
        raise ShapeError(f"MultiheadAttention: {name} must be bool or floating point, got {mask.dtype!r}")
    return mask.to(dtype)


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
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias, **kw)
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

    def _projections(self, query, key, value):
        e = self.embed_dim
        b = self.in_proj_bias
        bq, bk, bv = (None, None, None) if b is None else (b[:e], b[e:2 * e], b[2 * e:])
        if self._qkv_same_embed_dim:
            w = self.in_proj_weight
            if query is key and key is value:  # self-attention: one matmul for q, k and v
                qkv = F.linear(query, w, b)
                return qkv[..., :e], qkv[..., e:2 * e], qkv[..., 2 * e:]
            wq, wk, wv = w[:e], w[e:2 * e], w[2 * e:]
        else:
            wq, wk, wv = self.q_proj_weight, self.k_proj_weight, self.v_proj_weight
        return F.linear(query, wq, bq), F.linear(key, wk, bk), F.linear(value, wv, bv)

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True, is_causal=False):
        """Returns (attn_output, attn_weights or None). Inputs are (L, N, E) ((N, L, E) with
        batch_first) or unbatched (L, E); is_causal is a hint that attn_mask is causal, as in
        PyTorch (attn_mask is still required and applied)."""
        if is_causal and attn_mask is None:
            raise ShapeError("MultiheadAttention: is_causal=True needs the causal attn_mask too (as in PyTorch)")
        unbatched = query.ndim == 2
        if query.ndim not in (2, 3) or key.ndim != query.ndim or value.ndim != query.ndim:
            raise ShapeError(f"MultiheadAttention: query, key and value must all be 3-D (batched) or 2-D "
                             f"(unbatched), got {query.shape}, {key.shape}, {value.shape}")
        same_kv = key is value
        same_qkv = query is key and same_kv
        if unbatched:
            query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
            if key_padding_mask is not None:
                key_padding_mask = key_padding_mask.unsqueeze(0)
        elif self.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        if same_qkv:  # keep the identity, so self-attention takes the single fused projection
            key = value = query
        elif same_kv:
            value = key
        n_l, n, e = query.shape
        n_s = key.shape[0]
        if e != self.embed_dim or key.shape[-1] != self.kdim or value.shape[-1] != self.vdim:
            raise ShapeError(f"MultiheadAttention: expected query/key/value features {self.embed_dim}/{self.kdim}/"
                             f"{self.vdim}, got {e}/{key.shape[-1]}/{value.shape[-1]}")
        if key.shape[:2] != value.shape[:2] or key.shape[1] != n:
            raise ShapeError(f"MultiheadAttention: key {key.shape} and value {value.shape} must match each other "
                             f"and the query's batch ({n})")
        q, k, v = self._projections(query, key, value)
        heads, hd = self.num_heads, self.head_dim
        if attn_mask is not None:
            attn_mask = _additive(attn_mask, q.dtype, "attn_mask")
            if attn_mask.ndim == 2:
                if attn_mask.shape != (n_l, n_s):
                    raise ShapeError(f"MultiheadAttention: 2-D attn_mask must be {(n_l, n_s)}, got {attn_mask.shape}")
                attn_mask = attn_mask.unsqueeze(0)
            elif attn_mask.ndim != 3 or attn_mask.shape != (n * heads, n_l, n_s):
                raise ShapeError(f"MultiheadAttention: attn_mask must be {(n_l, n_s)} or {(n * heads, n_l, n_s)}, "
                                 f"got {attn_mask.shape}")
        if key_padding_mask is not None:
            if key_padding_mask.shape != (n, n_s):
                raise ShapeError(f"MultiheadAttention: key_padding_mask must be {(n, n_s)}, got "
                                 f"{key_padding_mask.shape}")
            key_padding_mask = _additive(key_padding_mask, q.dtype, "key_padding_mask")
        if self.bias_k is not None:
            k = cat([k, self.bias_k.expand(1, n, e)], 0)
            v = cat([v, self.bias_v.expand(1, n, e)], 0)
            attn_mask = F.pad(attn_mask, (0, 1)) if attn_mask is not None else None
            key_padding_mask = F.pad(key_padding_mask, (0, 1)) if key_padding_mask is not None else None
        # (L, N, E) -> (N * heads, L, head_dim), PyTorch's layout (batch-major, then head)
        q = q.reshape(n_l, n * heads, hd).transpose(0, 1)
        k = k.reshape(k.shape[0], n * heads, hd).transpose(0, 1)
        v = v.reshape(v.shape[0], n * heads, hd).transpose(0, 1)
        if self.add_zero_attn:
            k = cat([k, zeros(n * heads, 1, hd, dtype=k.dtype, device=k.device)], 1)
            v = cat([v, zeros(n * heads, 1, hd, dtype=v.dtype, device=v.device)], 1)
            attn_mask = F.pad(attn_mask, (0, 1)) if attn_mask is not None else None
            key_padding_mask = F.pad(key_padding_mask, (0, 1)) if key_padding_mask is not None else None
        s_total = k.shape[1]
        scores = (q * (1.0 / math.sqrt(hd))) @ k.transpose(1, 2)   # (N * heads, L, S)
        if attn_mask is not None:
            scores = scores + attn_mask
        if key_padding_mask is not None:
            kpm = key_padding_mask.reshape(n, 1, 1, s_total).expand(n, heads, 1, s_total).reshape(n * heads, 1,
                                                                                                     s_total)
            scores = scores + kpm
        weights = scores.softmax(-1)
        if self.dropout > 0.0 and self.training:
            weights = F.dropout(weights, self.dropout, True)
        out = (weights @ v).transpose(0, 1).reshape(n_l * n, e)
        out = self.out_proj(out).reshape(n_l, n, e)
        if unbatched:
            out = out.squeeze(1)
        elif self.batch_first:
            out = out.transpose(0, 1)
        if not need_weights:
            return out, None
        weights = weights.reshape(n, heads, n_l, s_total)
        if average_attn_weights:
            weights = weights.mean(1)
        return out, (weights.squeeze(0) if unbatched else weights)

    def extra_repr(self):
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}"
