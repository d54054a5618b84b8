"""Scaled dot-product attention: the `sdpa` primitive (its own VJP, a block of queries at a time)
with boolean masks (True = may attend), additive float masks or causal masking; with dropout, a
composite of two batched matmuls around a softmax.
multi_head_attention_forward: PyTorch's functional multi-head attention, the body of
nn.MultiheadAttention."""
import math

from .. import dtypes as D
from ..errors import ShapeError
from ..functions import arange, cat, rand, where, zeros
from ..ops import OPS
from .functional_pad import pad


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                                 enable_gqa=False):
    """softmax(q k^T * scale + mask) v over (..., L, E) queries and (..., S, E) keys/values.
    A bool attn_mask marks with True the positions that may be attended (PyTorch's convention for
    this function); a float mask is added to the scores. is_causal masks out the future."""
    if query.ndim < 2 or key.ndim != query.ndim or value.ndim != query.ndim:
        raise ShapeError(f"scaled_dot_product_attention: query, key and value need the same rank >= 2, got "
                         f"{tuple(query.shape)}, {tuple(key.shape)}, {tuple(value.shape)}")
    if query.shape[-1] != key.shape[-1] or key.shape[-2] != value.shape[-2]:
        raise ShapeError(f"scaled_dot_product_attention: query {tuple(query.shape)} and key {tuple(key.shape)} need the same "
                         f"last dim, key and value {tuple(value.shape)} the same sequence length")
    if enable_gqa and query.ndim >= 3 and key.shape[-3] != query.shape[-3]:
        groups = query.shape[-3] // key.shape[-3]
        key = key.unsqueeze(-3).expand(key.shape[:-2] + (groups,) + key.shape[-2:]).reshape(
            key.shape[:-3] + (-1,) + key.shape[-2:])
        value = value.unsqueeze(-3).expand(value.shape[:-2] + (groups,) + value.shape[-2:]).reshape(
            value.shape[:-3] + (-1,) + value.shape[-2:])
    n_l, n_s = query.shape[-2], key.shape[-2]
    if n_s == 0:   # nothing to attend to: zeros (an empty sum of values), as torch gives
        return (query @ key.transpose(-2, -1)) @ value
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale
    if is_causal and attn_mask is not None:
        raise ShapeError("scaled_dot_product_attention: pass either attn_mask or is_causal=True, not both")
    if dropout_p == 0.0 and key.dtype is query.dtype and value.dtype is query.dtype:
        # One primitive with its own VJP: a block of queries at a time, the (L, S) scores never whole.
        if attn_mask is None:
            return OPS["sdpa"].bind(query, key, value, scale=float(scale), causal=bool(is_causal), mask=0)
        if attn_mask.ndim < 2:   # a (S,) mask broadcasts over the queries, as in PyTorch
            attn_mask = attn_mask.reshape((1,) * (2 - attn_mask.ndim) + tuple(attn_mask.shape))
        kind = 1 if attn_mask.dtype is D.bool_ else 2
        mask = attn_mask if kind == 1 else attn_mask.to(query.dtype)
        return OPS["sdpa"].bind(query, key, value, mask, scale=float(scale), causal=False, mask=kind)
    scores = (query @ key.transpose(-2, -1)) * scale
    if is_causal:
        if attn_mask is not None:
            raise ShapeError("scaled_dot_product_attention: pass either attn_mask or is_causal=True, not both")
        attn_mask = arange(n_l, device=query.device).unsqueeze(1) >= arange(n_s, device=query.device)
    if attn_mask is not None:
        if attn_mask.dtype is D.bool_:
            scores = where(attn_mask, scores, float("-inf"))
        else:
            scores = scores + attn_mask.to(scores.dtype)
    weights = scores.softmax(-1)
    if attn_mask is not None:   # a row that attends nowhere gives 0, as in the primitive above (and PyTorch)
        weights = where(scores.amax(-1, keepdim=True) == float("-inf"), 0.0, weights)
    if dropout_p > 0.0:
        keep = rand(weights.shape, device=weights.device) >= dropout_p
        weights = where(keep, weights * (1.0 / (1.0 - dropout_p)), 0.0)
    return weights @ value


def _additive(mask, dtype, name):
    """A mask as scores to add: bool True -> -inf, float as is."""
    if mask.dtype is D.bool_:
        return where(mask, float("-inf"), 0.0).to(dtype)
    if not mask.dtype.is_floating_point:
        raise ShapeError(f"multi_head_attention_forward: {name} must be bool or floating point, got {mask.dtype!r}")
    return mask.to(dtype)


def _projections(query, key, value, e, in_proj_weight, in_proj_bias, separate, q_w, k_w, v_w):
    b = in_proj_bias
    bq, bk, bv = (None, None, None) if b is None else (b[:e], b[e:2 * e], b[2 * e:])
    if not separate:
        w = in_proj_weight
        if query is key and key is value:  # self-attention: one matmul for q, k and v
            qkv = _linear(query, w, b)
            return qkv[..., :e], qkv[..., e:2 * e], qkv[..., 2 * e:]
        q_w, k_w, v_w = w[:e], w[e:2 * e], w[2 * e:]
    elif q_w is None or k_w is None or v_w is None:
        raise ShapeError("multi_head_attention_forward: use_separate_proj_weight=True needs q_proj_weight, "
                         "k_proj_weight and v_proj_weight")
    return _linear(query, q_w, bq), _linear(key, k_w, bk), _linear(value, v_w, bv)


def _check_attn_mask(attn_mask, n, heads, n_l, n_s, dtype):
    attn_mask = _additive(attn_mask, dtype, "attn_mask")
    if attn_mask.ndim == 2:
        if attn_mask.shape != (n_l, n_s):
            raise ShapeError(f"MultiheadAttention: 2-D attn_mask must be {(n_l, n_s)}, got {tuple(attn_mask.shape)}")
        return attn_mask.unsqueeze(0)
    if attn_mask.ndim != 3 or attn_mask.shape != (n * heads, n_l, n_s):
        raise ShapeError(f"MultiheadAttention: attn_mask must be {(n_l, n_s)} or {(n * heads, n_l, n_s)}, "
                         f"got {tuple(attn_mask.shape)}")
    return attn_mask


def multi_head_attention_forward(query, key, value, embed_dim_to_check, num_heads, in_proj_weight, in_proj_bias,
                                 bias_k, bias_v, add_zero_attn, dropout_p, out_proj_weight, out_proj_bias,
                                 training=True, key_padding_mask=None, need_weights=True, attn_mask=None,
                                 use_separate_proj_weight=False, q_proj_weight=None, k_proj_weight=None,
                                 v_proj_weight=None, static_k=None, static_v=None, average_attn_weights=True,
                                 is_causal=False):
    """PyTorch's functional multi-head attention over (L, N, E) query and (S, N, E) key/value (or
    unbatched (L, E), (S, E)): projections (one fused matmul for self-attention), optional
    bias_k/bias_v and zero-attention rows, masks (bool True = masked out, or additive float), a
    softmax per head, dropout when training, the output projection. Returns (output, weights
    averaged over heads, or per head, or None)."""
    if is_causal and attn_mask is None:
        raise ShapeError("MultiheadAttention: is_causal=True needs the causal attn_mask too (as in PyTorch)")
    unbatched = query.ndim == 2
    if query.ndim not in (2, 3) or key.ndim != query.ndim or value.ndim != query.ndim:
        raise ShapeError(f"multi_head_attention_forward: query, key and value must all be 3-D (batched) or 2-D "
                         f"(unbatched), got {tuple(query.shape)}, {tuple(key.shape)}, {tuple(value.shape)}")
    same_kv, same_qkv = key is value, query is key and key is value
    if unbatched:
        query = query.unsqueeze(1)
        key = query if same_qkv else key.unsqueeze(1)
        value = key if same_kv else value.unsqueeze(1)
        if key_padding_mask is not None:
            key_padding_mask = key_padding_mask.unsqueeze(0)
    n_l, n, e = query.shape
    n_s = key.shape[0]
    if is_causal and key_padding_mask is None and not need_weights:
        # PyTorch then takes the hint for the mask: causal (top-left), whatever attn_mask holds
        attn_mask = arange(n_s, device=query.device) > arange(n_l, device=query.device).unsqueeze(1)
    if e != embed_dim_to_check:
        raise ShapeError(f"MultiheadAttention: expected query features {embed_dim_to_check}, got {e}")
    if key.shape[:2] != value.shape[:2] or key.shape[1] != n:
        raise ShapeError(f"MultiheadAttention: key {tuple(key.shape)} and value {tuple(value.shape)} must match each other "
                         f"and the query's batch ({n})")
    heads = num_heads
    if e % heads:
        raise ValueError(f"multi_head_attention_forward: embed_dim ({e}) must be divisible by num_heads ({heads})")
    hd = e // heads
    if use_separate_proj_weight and (k_proj_weight is not None and key.shape[-1] != k_proj_weight.shape[-1]
                                     or v_proj_weight is not None and value.shape[-1] != v_proj_weight.shape[-1]):
        raise ShapeError(f"MultiheadAttention: expected key/value features {k_proj_weight.shape[-1]}/"
                         f"{v_proj_weight.shape[-1]}, got {key.shape[-1]}/{value.shape[-1]}")
    if not use_separate_proj_weight and (key.shape[-1] != e or value.shape[-1] != e):
        raise ShapeError(f"MultiheadAttention: expected query/key/value features {e}/{e}/{e}, got "
                         f"{e}/{key.shape[-1]}/{value.shape[-1]}")
    q, k, v = _projections(query, key, value, e, in_proj_weight, in_proj_bias, use_separate_proj_weight,
                           q_proj_weight, k_proj_weight, v_proj_weight)
    if attn_mask is not None:
        attn_mask = _check_attn_mask(attn_mask, n, heads, n_l, n_s, q.dtype)
    if key_padding_mask is not None:
        if key_padding_mask.shape != (n, n_s):
            raise ShapeError(f"MultiheadAttention: key_padding_mask must be {(n, n_s)}, got "
                             f"{tuple(key_padding_mask.shape)}")
        key_padding_mask = _additive(key_padding_mask, q.dtype, "key_padding_mask")
    if bias_k is not None and bias_v is not None:
        if static_k is not None or static_v is not None:
            raise ShapeError("multi_head_attention_forward: bias_k/bias_v cannot be combined with static_k/static_v")
        k = cat([k, bias_k.expand(1, n, e)], 0)
        v = cat([v, bias_v.expand(1, n, e)], 0)
        attn_mask = pad(attn_mask, (0, 1)) if attn_mask is not None else None
        key_padding_mask = pad(key_padding_mask, (0, 1)) if key_padding_mask is not None else None
    elif (bias_k is None) != (bias_v is None):
        raise ShapeError("multi_head_attention_forward: give both bias_k and bias_v, or neither")
    # (L, N, E) -> (N * heads, L, head_dim), PyTorch's layout (batch-major, then head)
    q = q.reshape(n_l, n * heads, hd).transpose(0, 1)
    k = k.reshape(k.shape[0], n * heads, hd).transpose(0, 1) if static_k is None else static_k
    v = v.reshape(v.shape[0], n * heads, hd).transpose(0, 1) if static_v is None else static_v
    for name, t in (("static_k", static_k), ("static_v", static_v)):
        if t is not None and (t.ndim != 3 or t.shape[0] != n * heads or t.shape[2] != hd):
            raise ShapeError(f"multi_head_attention_forward: {name} must be ({n * heads}, S, {hd}), got {tuple(t.shape)}")
    if add_zero_attn:
        k = cat([k, zeros(n * heads, 1, hd, dtype=k.dtype, device=k.device)], 1)
        v = cat([v, zeros(n * heads, 1, hd, dtype=v.dtype, device=v.device)], 1)
        attn_mask = pad(attn_mask, (0, 1)) if attn_mask is not None else None
        key_padding_mask = pad(key_padding_mask, (0, 1)) if key_padding_mask is not None else None
    s_total = k.shape[1]
    scores = (q * (1.0 / math.sqrt(hd))) @ k.transpose(1, 2)   # (N * heads, L, S)
    if attn_mask is not None:
        scores = scores + attn_mask
    if key_padding_mask is not None:
        kpm = key_padding_mask.reshape(n, 1, 1, s_total).expand(n, heads, 1, s_total).reshape(n * heads, 1, s_total)
        scores = scores + kpm
    weights = scores.softmax(-1)
    if not need_weights and (attn_mask is not None or key_padding_mask is not None):
        # PyTorch computes this case with scaled_dot_product_attention, where a row that attends nowhere
        # gives 0 (as the primitive above); with need_weights its softmax gives NaN there, and so does this
        weights = where(scores.amax(-1, keepdim=True) == float("-inf"), 0.0, weights)
    if dropout_p > 0.0 and training:
        weights = weights * 0.0 if dropout_p >= 1.0 else _dropout(weights, dropout_p)
    out = (weights @ v).transpose(0, 1).reshape(n_l * n, e)
    out = _linear(out, out_proj_weight, out_proj_bias).reshape(n_l, n, e)
    if unbatched:
        out = out.squeeze(1)
    if not need_weights:
        return out, None
    weights = weights.reshape(n, heads, n_l, s_total)
    if average_attn_weights:
        weights = weights.mean(1)
    return out, (weights.squeeze(0) if unbatched else weights)


def _linear(input, weight, bias=None):
    """gradc.nn.functional.linear's formula (that module imports this one)."""
    if input.shape[-1] != weight.shape[-1]:
        raise ShapeError(f"MultiheadAttention: a projection of {weight.shape[-1]} features got an input of "
                         f"shape {tuple(input.shape)}")
    out = input @ weight.t()
    return out + bias.to(out.dtype) if bias is not None else out


def _dropout(x, p):
    """gradc.nn.functional.dropout's draw and scaling, for 0 < p < 1."""
    return where(rand(x.shape, device=x.device) >= p, x * (1.0 / (1.0 - p)), 0.0)
