"""Scaled dot-product attention: the `sdpa` primitive (its own VJP, a block of queries at a time)
with boolean masks (True = may attend), additive float masks or causal masking; with dropout, a
composite of two batched matmuls around a softmax."""
import math

from .. import dtypes as D
from ..errors import ShapeError
from ..functions import arange, rand, where
from ..ops import OPS


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                                 enable_gqa=False):
    """softmax(q k^T * scale + mask) v over (..., L, E) queries and (..., S, E) keys/values.
    A bool attn_mask marks with True the positions that may be attended (PyTorch's convention for
    this function); a float mask is added to the scores. is_causal masks out the future."""
    if query.ndim < 2 or key.ndim != query.ndim or value.ndim != query.ndim:
        raise ShapeError(f"scaled_dot_product_attention: query, key and value need the same rank >= 2, got "
                         f"{query.shape}, {key.shape}, {value.shape}")
    if query.shape[-1] != key.shape[-1] or key.shape[-2] != value.shape[-2]:
        raise ShapeError(f"scaled_dot_product_attention: query {query.shape} and key {key.shape} need the same "
                         f"last dim, key and value {value.shape} the same sequence length")
    if enable_gqa and query.ndim >= 3 and key.shape[-3] != query.shape[-3]:
        groups = query.shape[-3] // key.shape[-3]
        key = key.unsqueeze(-3).expand(key.shape[:-2] + (groups,) + key.shape[-2:]).reshape(
            key.shape[:-3] + (-1,) + key.shape[-2:])
        value = value.unsqueeze(-3).expand(value.shape[:-2] + (groups,) + value.shape[-2:]).reshape(
            value.shape[:-3] + (-1,) + value.shape[-2:])
    n_l, n_s = query.shape[-2], key.shape[-2]
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
    if dropout_p > 0.0:
        keep = rand(weights.shape, device=weights.device) >= dropout_p
        weights = where(keep, weights * (1.0 / (1.0 - dropout_p)), 0.0)
    return weights @ value
