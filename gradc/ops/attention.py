"""Scaled dot-product attention as one primitive with its own VJP.

softmax(q k^T * scale + mask) v is computed a block of queries at a time, so the (Tq, Tk) score
matrix never exists whole: memory is one block of scores, and the backward recomputes each
block's probabilities from q and k (the flash-attention trade of compute for memory) instead of
saving them. Operands: q (..., Tq, E), k (..., Tk, E), v (..., Tk, Ev) and optionally a mask
broadcastable to (..., Tq, Tk); `mask` says which: 0 none, 1 bool (True attends), 2 additive (3 in
the gradient primitive: additive, and its gradient is wanted too: the scores' gradient, summed to
the mask's shape, for a learned bias such as T5's or ALiBi's)."""
import numpy as np

from ..errors import DTypeError, ShapeError
from ..shapes import broadcast_shapes, prod
from .primitive import primitive

NO_MASK, BOOL_MASK, ADD_MASK, ADD_MASK_GRAD = 0, 1, 2, 3
BLOCK_SCORES = 1 << 21   # scores per block (8 MiB of float32): big enough for BLAS, bounded memory


def _check(shapes, mask):
    if len(shapes) != (3 if mask == NO_MASK else 4):
        raise ShapeError(f"sdpa takes q, k, v{' and a mask' if mask else ''}, got {len(shapes)} operands")
    q, k, v = shapes[:3]
    if not (len(q) == len(k) == len(v) >= 2):
        raise ShapeError(f"scaled_dot_product_attention: query, key and value need the same rank >= 2, got "
                         f"{tuple(q)}, {tuple(k)}, {tuple(v)}")
    if q[-1] != k[-1] or k[-2] != v[-2]:
        raise ShapeError(f"scaled_dot_product_attention: query {tuple(q)} and key {tuple(k)} need the same last "
                         f"dim, key and value {tuple(v)} the same sequence length")
    batch = broadcast_shapes("scaled_dot_product_attention", [q[:-2], k[:-2], v[:-2]])
    if mask != NO_MASK:
        broadcast_shapes("scaled_dot_product_attention mask", [shapes[3], batch + (q[-2], k[-2])])
    return batch


def _sdpa_shape(shapes, scale, causal, mask):
    batch = _check(shapes, mask)
    return batch + (shapes[0][-2], shapes[2][-1])


def _sdpa_dtype(dtypes, scale, causal, mask):
    q = dtypes[0]
    if not q.is_floating_point or any(d is not q for d in dtypes[1:3]):
        raise DTypeError(f"scaled_dot_product_attention: query, key and value need one floating dtype, got "
                         f"{', '.join(map(repr, dtypes[:3]))}")
    return q


def _blocks(tq, tk, batch):
    step = max(1, BLOCK_SCORES // max(1, tk * max(1, prod(batch))))
    return [(s, min(tq, s + step)) for s in range(0, tq, step)]


def _scores(xp, q, k, mask_arr, scale, causal, mask, s, e):
    """Scores of queries s:e against the keys they may see (with causal masking, keys 0:e only: the
    blocks above the diagonal are never computed), masked, in the compute dtype."""
    kend = min(k.shape[-2], e) if causal else k.shape[-2]
    sc = xp.matmul(q[..., s:e, :], xp.swapaxes(k[..., :kend, :], -1, -2)) * q.dtype.type(scale)
    if causal:
        rows = xp.arange(s, e).reshape(-1, 1)
        sc = xp.where(rows >= xp.arange(kend).reshape(1, -1), sc, -xp.inf)
    if mask != NO_MASK:
        m = mask_arr[..., s:e, :] if mask_arr.shape[-2] != 1 else mask_arr
        sc = xp.where(m, sc, -xp.inf) if mask == BOOL_MASK else sc + m
    return sc, kend


def _softmax(xp, sc):
    m = sc.max(-1, keepdims=True)
    m = xp.where(xp.isfinite(m), m, 0)
    p = xp.exp(sc - m)
    total = p.sum(-1, keepdims=True)
    # a row that attends nowhere (all scores -inf: p is all 0) gives 0, as PyTorch 2's attention does
    return p / xp.where(total == 0, 1, total)


def _operands(xp, q, k, v, rest, mask):
    compute = np.float32 if q.dtype == np.float16 else q.dtype   # float16 accumulates in float32
    q, k, v = (a.astype(compute, copy=False) for a in (q, k, v))
    mask_arr = None
    if mask != NO_MASK:
        mask_arr = rest[0] if mask == BOOL_MASK else rest[0].astype(compute, copy=False)
        if mask_arr.shape[-2] not in (1, q.shape[-2]):
            raise ShapeError(f"scaled_dot_product_attention: mask {tuple(mask_arr.shape)} does not fit {q.shape[-2]} queries")
    return q, k, v, mask_arr


def _sdpa_kernel(xp, q, k, v, *rest, scale, causal, mask):
    dtype = q.dtype
    q, k, v, mask_arr = _operands(xp, q, k, v, rest, mask)
    batch = np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    out = xp.empty(batch + (q.shape[-2], v.shape[-1]), dtype=q.dtype)
    for s, e in _blocks(q.shape[-2], k.shape[-2], batch):
        sc, kend = _scores(xp, q, k, mask_arr, scale, causal, mask, s, e)
        out[..., s:e, :] = xp.matmul(_softmax(xp, sc), v[..., :kend, :])
    return out.astype(dtype, copy=False)


def _sum_to(xp, g, shape):
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(shape) if n == 1 and g.shape[lead + i] != 1)
    return g.sum(axis=axes, keepdims=True).reshape(shape) if axes else g


def _sdpa_grad_kernel(xp, q, k, v, *rest, scale, causal, mask):
    """(dq, dk, dv) packed into one flat array; `rest` is [mask,] out, g."""
    dtype, shapes = q.dtype, (q.shape, k.shape, v.shape)
    *mask_part, out, g = rest
    q, k, v, mask_arr = _operands(xp, q, k, v, mask_part, mask)
    out, g = out.astype(q.dtype, copy=False), g.astype(q.dtype, copy=False)
    batch = g.shape[:-2]
    dq = xp.empty(batch + q.shape[-2:], dtype=q.dtype)
    dk = xp.zeros(batch + k.shape[-2:], dtype=q.dtype)
    dv = xp.zeros(batch + v.shape[-2:], dtype=q.dtype)
    dm = xp.zeros(mask_arr.shape, dtype=q.dtype) if mask == ADD_MASK_GRAD else None
    for s, e in _blocks(q.shape[-2], k.shape[-2], batch):
        sc, kend = _scores(xp, q, k, mask_arr, scale, causal, mask, s, e)
        p = _softmax(xp, sc)
        gb = g[..., s:e, :]
        dv[..., :kend, :] += xp.matmul(xp.swapaxes(p, -1, -2), gb)
        dp = xp.matmul(gb, xp.swapaxes(v[..., :kend, :], -1, -2))
        ds = p * (dp - (gb * out[..., s:e, :]).sum(-1, keepdims=True))
        ds = xp.where(p > 0, ds, 0)    # masked positions (p = 0, maybe nan rows) give none
        if dm is not None:   # the mask is added to the scores: its gradient is theirs
            if dm.shape[-2] == 1:
                dm += _sum_to(xp, ds, dm.shape)
            else:
                dm[..., s:e, :] += _sum_to(xp, ds, dm.shape[:-2] + (e - s, dm.shape[-1]))
        ds = ds * q.dtype.type(scale)
        dq[..., s:e, :] = xp.matmul(ds, k[..., :kend, :])
        dk[..., :kend, :] += xp.matmul(xp.swapaxes(ds, -1, -2), q[..., s:e, :])
    parts = [_sum_to(xp, d, shape).astype(dtype, copy=False).reshape(-1) for d, shape in zip((dq, dk, dv), shapes)]
    if dm is not None:
        parts.append(dm.astype(mask_part[0].dtype, copy=False).reshape(-1))
    return xp.concatenate(parts)


sdpa_p = primitive("sdpa", "attention", None, _sdpa_shape, _sdpa_dtype, _sdpa_kernel, saves=(0, 1, 2, 3, "out"))


def _grad_shape(shapes, scale, causal, mask):
    _check(shapes[:-2], mask)
    return (sum(prod(s) for s in shapes[:4 if mask == ADD_MASK_GRAD else 3]),)


sdpa_grad_p = primitive("sdpa_grad", "attention", None, _grad_shape,
                        lambda dtypes, scale, causal, mask: dtypes[0], _sdpa_grad_kernel, diff=False)


@sdpa_p.def_vjp
def _sdpa_vjp(ctx, g):
    ins = [x for x in ctx.inputs if x is not None]
    attrs = ctx.attrs
    if attrs["mask"] == ADD_MASK and ctx.needs[3]:
        attrs = dict(attrs, mask=ADD_MASK_GRAD)
    flat = sdpa_grad_p.bind(*ins, ctx.out, g, **attrs)
    grads, offset = [], 0
    for shape in ctx.shapes[:4 if attrs["mask"] == ADD_MASK_GRAD else 3]:
        n = prod(shape)
        grads.append(flat[offset:offset + n].reshape(shape))
        offset += n
    return tuple(grads) + ((None,) if len(grads) < len(ctx.shapes) else ())
