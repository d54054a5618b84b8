"""Order statistics and running reductions with PyTorch's names, defaults and (values, indices)
named tuples: cummax / cummin, logcumsumexp, nansum / nanmean, median / nanmedian, kthvalue,
mode, quantile / nanquantile, std_mean / var_mean. Indices come from argsort or a log-depth scan;
values are gathered at them, so the gradient reaches the chosen elements as in PyTorch."""
import math

from . import dtypes as D
from .composite import cat, copying, gather_along
from .creation import arange, full, tensor
from .errors import DTypeError, ShapeError
from .ops.frontend import axes_arg, cast, export, scalar, where
from .shapes import normalize_axis
from .tensor import Tensor
from .return_types import return_type

cummax_result = return_type("cummax", ["values", "indices"])
cummin_result = return_type("cummin", ["values", "indices"])
median_result = return_type("median", ["values", "indices"])
nanmedian_result = return_type("nanmedian", ["values", "indices"])
kthvalue_result = return_type("kthvalue", ["values", "indices"])
mode_result = return_type("mode", ["values", "indices"])


def _positions(x, d):
    """0 .. n-1 along dim d of x, shaped to broadcast against x."""
    n = x.shape[d]
    return arange(n, device=x.device).reshape((1,) * d + (n,) + (1,) * (x.ndim - d - 1))


def _shifted(x, d, k):
    """x moved k places forward along d; the first k places hold their own entries (combining an entry
    with itself changes nothing for max and min; sums mask them)."""
    n = x.shape[d]
    return cat([x.narrow(d, 0, k), x.narrow(d, 0, n - k)], d)


def _scan(d, n, step, *state):
    """A Hillis-Steele scan: log2(n) rounds of `step(state, state shifted by k, valid)`."""
    k = 1
    while k < n:
        state = step(state, tuple(_shifted(s, d, k) for s in state), k)
        k *= 2
    return state


def _running_extreme(input, dim, largest, name, result):
    if input.ndim == 0:
        return result(input.reshape(()), tensor(0, device=input.device))
    d = normalize_axis(name, dim, input.ndim)
    key = input.detach()
    if key.dtype is D.bool_:
        key = cast(key, D.int64)
    nan = key != key if key.dtype.is_floating_point else None
    if nan is not None:
        key = where(nan, scalar(math.inf if largest else -math.inf, key.dtype, key.device), key)
    pos = _positions(key, d)
    idx = pos.expand(key.shape)

    def step(state, prev, k):
        v, i = state
        pv, pi = prev
        # the earlier candidate wins only when strictly better: ties keep the later index, as PyTorch's
        # cummax. Within the first k places `prev` is the entry itself, which never wins: no mask needed
        take = (pv > v) if largest else (pv < v)
        return (v.maximum(pv) if largest else v.minimum(pv)), where(take, pi, i)

    _, idx = _scan(d, key.shape[d], step, key, idx)
    if nan is not None:   # NaN wins from where it appears on, as in PyTorch: the latest NaN's index
        last_nan = _running_extreme(where(nan, idx * 0 + pos, -1), d, True, name, result).values
        idx = where(last_nan >= 0, last_nan, idx)
    return result(gather_along(input, d, idx), idx)


export("cummax")(lambda input, dim: _running_extreme(input, dim, True, "cummax", cummax_result))
export("cummin")(lambda input, dim: _running_extreme(input, dim, False, "cummin", cummin_result))


def _logaddexp(a, b):
    mx, mn = a.maximum(b), a.minimum(b)
    inf = mx == -math.inf
    return where(inf, mx, mx + ((where(inf, scalar(0, a.dtype, a.device), mn - mx)).exp()).log1p())


@export("logcumsumexp")
@copying
def logcumsumexp(input, dim):
    """log(cumsum(exp(input))) along dim, computed in log space (no overflow, no underflow to -inf)."""
    if not input.dtype.is_floating_point:
        raise DTypeError(f"logcumsumexp: needs a floating-point tensor, got {input.dtype!r}")
    if input.ndim == 0:
        return input.reshape(())
    d = normalize_axis("logcumsumexp", dim, input.ndim)
    pos = _positions(input, d)
    (out,) = _scan(d, input.shape[d], lambda s, p, k: (where(pos >= k, _logaddexp(s[0], p[0]), s[0]),), input)
    return out


# ---------------------------------------------------------------------- NaN-ignoring reductions
def _not_nan(x):
    return x == x


@export("nansum")
def nansum(input, dim=None, keepdim=False, dtype=None):
    x = input if dtype is None else cast(input, D.get_dtype(dtype))
    if x.dtype.is_floating_point:
        x = where(_not_nan(x), x, scalar(0, x.dtype, x.device))
    return x.sum(axes_arg(x, dim, "nansum"), keepdim)


@export("nanmean")
def nanmean(input, dim=None, keepdim=False, dtype=None):
    x = input if dtype is None else cast(input, D.get_dtype(dtype))
    if not x.dtype.is_floating_point:
        raise DTypeError(f"nanmean: needs a floating-point tensor, got {x.dtype!r}; call .float() first")
    axes = axes_arg(x, dim, "nanmean")
    ok = _not_nan(x)
    return nansum(x, axes, keepdim) / cast(ok, x.dtype).sum(axes, keepdim)


# ---------------------------------------------------------------------- order statistics
def _pick(input, d, order, rank, keepdim, result):
    """(values, indices) at sorted position `rank` (a tensor broadcasting over input's other dims)."""
    idx = gather_along(order, d, rank)
    values = gather_along(input, d, idx)
    if not keepdim:
        values, idx = values.squeeze(d), idx.squeeze(d)
    return result(values, idx)


def _reduced_rank(x, d, rank):
    shape = list(x.shape)
    shape[d] = 1
    return rank.expand(shape) if isinstance(rank, Tensor) else full(shape, rank, dtype=D.int64, device=x.device)


def _median(input, dim, keepdim, ignore_nan, result, name):
    if input.numel() == 0:
        if dim is None and input.dtype.is_floating_point:   # PyTorch: the median of nothing is NaN
            return full((), math.nan, dtype=input.dtype, device=input.device)
        raise ShapeError(f"{name}: cannot take the median of an empty tensor (shape {tuple(input.shape)}) along a dim")
    if dim is None:
        flat = input.reshape(-1)
        return _median(flat, 0, False, ignore_nan, result, name).values
    if input.ndim == 0:
        return result(input.reshape(()), tensor(0, device=input.device))
    d = normalize_axis(name, dim, input.ndim)
    n = input.shape[d]
    order = input.detach().argsort(d)           # NaNs sort last
    if input.dtype.is_floating_point:
        nans = cast(input.detach() != input.detach(), D.int64).sum(d, keepdim=True)
        rank = (n - nans - 1) // 2 if ignore_nan else where(nans > 0, n - nans, (n - 1) // 2)
        rank = rank.clamp(min=0)
    else:
        rank = (n - 1) // 2
    return _pick(input, d, order, _reduced_rank(input, d, rank), keepdim, result)


export("median")(lambda input, dim=None, keepdim=False: _median(input, dim, keepdim, False, median_result, "median"))
export("nanmedian")(lambda input, dim=None, keepdim=False:
                    _median(input, dim, keepdim, True, nanmedian_result, "nanmedian"))


@export("kthvalue")
def kthvalue(input, k, dim=-1, keepdim=False):
    """The k-th smallest value (k from 1) along dim and its index."""
    x = input.reshape(1) if input.ndim == 0 else input
    d = normalize_axis("kthvalue", dim, x.ndim)
    if not 1 <= k <= x.shape[d]:
        raise ShapeError(f"kthvalue: k={k} is out of range for dim {d} of size {x.shape[d]} (valid: 1..{x.shape[d]})")
    out = _pick(x, d, x.detach().argsort(d), _reduced_rank(x, d, k - 1), keepdim or input.ndim == 0, kthvalue_result)
    return kthvalue_result(out.values.reshape(()), out.indices.reshape(())) if input.ndim == 0 else out


@export("mode")
def mode(input, dim=-1, keepdim=False):
    """The most frequent value along dim (the smallest of equally frequent ones) and the last index
    where it occurs, as PyTorch: runs of equal values in sorted order, measured with a running max."""
    x = input.reshape(1) if input.ndim == 0 else input
    d = normalize_axis("mode", dim, x.ndim)
    n = x.shape[d]
    order = x.detach().argsort(d)
    s = gather_along(x.detach(), d, order)
    pos = _positions(s, d).expand(s.shape)
    if n > 1:
        new = cat([full(tuple(1 if i == d else m for i, m in enumerate(s.shape)), True, dtype=D.bool_,
                        device=s.device), s.narrow(d, 1, n - 1) != s.narrow(d, 0, n - 1)], d)
        starts = where(new, pos, scalar(0, D.int64, s.device))
        (group_start,) = _scan(d, n, lambda st, p, k: (st[0].maximum(p[0]),), starts)
        run = pos - group_start
    else:
        run = pos * 0
    best = run.argmax(d, keepdim=True)      # the first longest run ends at the smallest such value
    out = _pick(x, d, order, best, keepdim or input.ndim == 0, mode_result)
    return mode_result(out.values.reshape(()), out.indices.reshape(())) if input.ndim == 0 else out


# ---------------------------------------------------------------------- quantiles
def _quantile(input, q, dim, keepdim, interpolation, ignore_nan, name):
    if interpolation not in ("linear", "lower", "higher", "midpoint", "nearest"):
        raise ValueError(f"{name}: interpolation must be 'linear', 'lower', 'higher', 'midpoint' or 'nearest', "
                         f"got {interpolation!r}")
    if not input.dtype.is_floating_point:
        raise DTypeError(f"{name}: needs a floating-point input, got {input.dtype!r}; call .float() first")
    scalar_q = not isinstance(q, Tensor)
    qt = tensor(float(q), dtype=input.dtype, device=input.device) if scalar_q else cast(q, input.dtype)
    if qt.ndim > 1:
        raise ShapeError(f"{name}: q must be a number or a 0-D or 1-D tensor, got shape {tuple(qt.shape)}")
    qvals = [float(q)] if scalar_q else (qt.reshape(-1).tolist() if qt._data is not None else [])
    if any(not 0 <= v <= 1 for v in qvals):
        raise ShapeError(f"{name}: q values must be in [0, 1], got {q}")
    if input.numel() == 0:
        raise ShapeError(f"{name}: input tensor is empty (shape {tuple(input.shape)})")
    x = input.reshape(-1) if dim is None else (input.reshape(1) if input.ndim == 0 else input)
    d = 0 if dim is None else normalize_axis(name, dim, x.ndim)
    xm = x.movedim(d, -1).unsqueeze(0)                  # (1, ..., n)
    n = xm.shape[-1]
    s = gather_along(xm, xm.ndim - 1, xm.detach().argsort(-1))  # sorted, NaNs last
    nans = cast(s.detach() != s.detach(), D.int64).sum(-1, keepdim=True)
    qq = qt.reshape((-1,) + (1,) * (xm.ndim - 1))         # (nq, 1, ..., 1)
    count = cast(n - nans, s.dtype) if ignore_nan else scalar(float(n), s.dtype, s.device)
    ranks = qq * (count - 1).clamp(min=0)
    if interpolation == "lower":
        ranks = ranks.floor()
    elif interpolation == "higher":
        ranks = ranks.ceil()
    elif interpolation == "nearest":
        ranks = ranks.round()
    lo_r, hi_r = ranks.floor(), ranks.ceil()
    nq = qq.shape[0]
    big = s.expand((nq,) + s.shape[1:])
    lo_i = cast(lo_r, D.int64).expand(big.shape[:-1] + (1,))
    hi_i = cast(hi_r, D.int64).expand(big.shape[:-1] + (1,))
    lo, hi = gather_along(big, big.ndim - 1, lo_i), gather_along(big, big.ndim - 1, hi_i)
    if interpolation == "midpoint":
        out = lo + (hi - lo) * 0.5
    elif interpolation == "linear":
        out = lo + (hi - lo) * (ranks - lo_r).expand(lo.shape)
    else:   # lower, higher and nearest picked a whole rank above
        out = lo
    nan = scalar(math.nan, s.dtype, s.device)
    out = where((nans.expand(out.shape) > 0) if not ignore_nan else (nans.expand(out.shape) >= n), nan, out)
    out = out.squeeze(-1)                                   # (nq, ...rest of x without d)
    if keepdim:
        out = out.unsqueeze(d + 1) if dim is not None else out.reshape((nq,) + (1,) * input.ndim)
    return out.squeeze(0) if scalar_q or qt.ndim == 0 else out


export("quantile")(lambda input, q, dim=None, keepdim=False, interpolation="linear":
                   _quantile(input, q, dim, keepdim, interpolation, False, "quantile"))
export("nanquantile")(lambda input, q, dim=None, keepdim=False, interpolation="linear":
                      _quantile(input, q, dim, keepdim, interpolation, True, "nanquantile"))


# ---------------------------------------------------------------------- spread and centre together
def _with_mean(spread, input, dim, unbiased, keepdim, correction, name):
    if isinstance(unbiased, (list, tuple)) or isinstance(unbiased, int) and not isinstance(unbiased, bool):
        raise DTypeError(f"{name}: unbiased must be a bool, got {unbiased!r}; pass dims as dim=")
    if isinstance(dim, bool):   # std_mean(input, unbiased)
        dim, unbiased = None, dim
    axes = axes_arg(input, dim, name)
    return spread(input, axes, unbiased, keepdim, correction=correction), input.mean(axes, keepdim)


@export("std_mean", method=False)
def std_mean(input, dim=None, unbiased=True, keepdim=False, correction=None):
    """(std, mean) over dim, as torch.std_mean."""
    return _with_mean(lambda x, *a, **k: x.std(*a, **k), input, dim, unbiased, keepdim, correction, "std_mean")


@export("var_mean", method=False)
def var_mean(input, dim=None, unbiased=True, keepdim=False, correction=None):
    """(var, mean) over dim, as torch.var_mean."""
    return _with_mean(lambda x, *a, **k: x.var(*a, **k), input, dim, unbiased, keepdim, correction, "var_mean")
