"""More of PyTorch's tensor surface, as composites of primitives (so autodiff, fusion and every
backend cover them): triangles and masks, gather/scatter with PyTorch's index layout, item
assignment as a functional index-put, reordering (roll, flip, repeat), products and running
sums, einsum, norms, NaN handling and PyTorch habits (new_zeros, normal_, format specs)."""
import builtins
import math

import numpy as np

from . import dtypes as D
from .composite import accumulate_in_float32, assign, cat, copying, gather_along, linear_index, put, safe_sqrt
from .creation import arange, full, ones, rand, tensor, zeros
from .errors import DTypeError, ShapeError
from .indexing import getitem
from .ops import OPS
from .ops.frontend import export, scalar, shape_arg, where
from .ops.movement import strided_slice
from .shapes import normalize_axis, prod
from .random import takes_generator
from .tensor import Tensor
from .return_types import return_type


def _dims(x, dims, name):
    dims = (dims,) if isinstance(dims, int) else tuple(dims)
    return tuple(normalize_axis(name, d, x.ndim) for d in dims)


# ---------------------------------------------------------------------- triangles and masks
def _triangle(x, diagonal, lower, name):
    if x.ndim < 2:
        raise ShapeError(f"{name}: needs a tensor of at least 2 dims, got shape {tuple(x.shape)}")
    n, m = x.shape[-2:]
    rows, cols = arange(n).reshape(n, 1), arange(m).reshape(1, m)
    keep = (cols - rows <= diagonal) if lower else (cols - rows >= diagonal)
    return where(keep, x, scalar(0, x.dtype, x.device))  # a zero of x's own dtype: bool stays bool


export("tril")(lambda input, diagonal=0: _triangle(input, diagonal, True, "tril"))
export("triu")(lambda input, diagonal=0: _triangle(input, diagonal, False, "triu"))
export("tril_", function=False)(lambda self, diagonal=0: assign(self, _triangle(self, diagonal, True, "tril"), "tril_"))
export("triu_", function=False)(lambda self, diagonal=0: assign(self, _triangle(self, diagonal, False, "triu"), "triu_"))


@export("masked_fill")
def masked_fill(input, mask, value):
    if not isinstance(mask, Tensor) or mask.dtype is not D.bool_:
        raise DTypeError("masked_fill: mask must be a bool tensor")
    if isinstance(value, Tensor):
        if value.numel() != 1:
            raise ShapeError(f"masked_fill: value must be a number or a one-element tensor, got shape {tuple(value.shape)}")
        value = value.reshape(()).to(input.dtype)
    elif not input.dtype.is_floating_point and isinstance(value, (bool, int, float)):
        # the result keeps input's dtype, as in PyTorch: 2.5 fills an int tensor with 2, 2 a bool one with True
        if isinstance(value, float) and not math.isfinite(value):
            raise DTypeError(f"masked_fill: {value} cannot be converted to {input.dtype!r}; fill a float tensor")
        value = scalar(bool(value) if input.dtype is D.bool_ else int(value), input.dtype, input.device)
    return where(mask, value, input)


export("masked_fill_", function=False)(lambda self, mask, value: assign(self, masked_fill(self, mask, value), "masked_fill_"))


@export("masked_select")
def masked_select(input, mask):
    """The elements of `input` where `mask` is true, as a 1-D tensor. Its length depends on the
    mask's values, so it runs eagerly only (a TraceError inside gradc.compile)."""
    shape = np.broadcast_shapes(input.shape, mask.shape)
    m = mask.expand(shape)._concrete("masked_select (its result's length depends on the mask's values)")
    flat = input.expand(shape).reshape(-1)
    idx = np.flatnonzero(m if isinstance(m, np.ndarray) else m.get())
    return OPS["gather"].bind(flat, tensor(idx, dtype=D.int64, device=input.device), axis=0)


# ---------------------------------------------------------------------- gather and scatter (PyTorch's layout)
def _check_index(input, dim, index, name):
    if isinstance(index, Tensor) and index.dtype is D.int32:   # PyTorch takes int32 indices too
        index = index.long()
    if not isinstance(index, Tensor) or index.dtype is not D.int64:
        raise DTypeError(f"{name}: index must be an int64 tensor, got "
                         f"{index.dtype if isinstance(index, Tensor) else type(index).__name__}; convert with .long()")
    if index.ndim != input.ndim:
        raise ShapeError(f"{name}: index has {index.ndim} dims but input has {input.ndim}; they must match")
    dim = normalize_axis(name, dim, input.ndim)
    if any(i > s for d, (i, s) in enumerate(zip(index.shape, input.shape)) if d != dim):
        raise ShapeError(f"{name}: index shape {tuple(index.shape)} is larger than input shape {tuple(input.shape)} outside dim {dim}")
    return dim, index


def _in_range(index, input, dim, name):
    """index, checked to lie in [0, size of dim) (PyTorch raises; a flat position would silently
    read or write another row's element), eagerly and when a compiled program runs."""
    return OPS["check_index"].bind(index, high=int(input.shape[dim]), ignore=None, what=f"{name}: index")


@export("gather")
def gather(input, dim, index):
    if input.ndim == 0 and isinstance(index, Tensor) and index.ndim == 0:   # a scalar from a scalar
        return gather(input.reshape(1), dim, index.reshape(1)).reshape(())
    dim, index = _check_index(input, dim, index, "gather")
    index = _in_range(index, input, dim, "gather")
    return OPS["gather"].bind(input.reshape(-1), linear_index(index, dim, input.shape), axis=0)


def _scatter_flat(input, dim, index, src, name):
    dim, index = _check_index(input, dim, index, name)
    index = _in_range(index, input, dim, name)
    if not isinstance(src, Tensor):
        src = full(index.shape, src, dtype=input.dtype, device=input.device)
    elif src.ndim != index.ndim or any(i > n for i, n in zip(index.shape, src.shape)):
        raise ShapeError(f"{name}: index of shape {tuple(index.shape)} is larger than src of shape "
                         f"{tuple(src.shape)}; src needs at least the index's size in every dim, as in PyTorch")
    src = strided_slice(src.to(input.dtype), [0] * index.ndim, list(index.shape), [1] * index.ndim)
    lin = linear_index(index, dim, input.shape).reshape(-1)
    return lin, src.reshape(-1)


@export("scatter_add")
def scatter_add(input, dim, index, src):
    lin, src = _scatter_flat(input, dim, index, src, "scatter_add")
    return input + OPS["scatter_add"].bind(src, lin, axis=0, size=input.numel()).reshape(input.shape)


@export("scatter")
def scatter(input, dim, index, src=None, value=None, reduce=None):
    """input with src (or value) written at index along dim; for a duplicate index the last write
    stays, as PyTorch's loop leaves it (its docs call the order unspecified)."""
    if reduce is not None:
        if reduce not in ("add", "sum", "multiply"):
            raise ValueError(f"scatter: reduce must be 'add', 'multiply' or None, got {reduce!r}; see scatter_reduce")
        if reduce == "multiply":
            if not isinstance(src, Tensor):   # (a number, given as src or as value)
                src = full(index.shape, value if src is None else src, dtype=input.dtype, device=input.device)
            return input.scatter_reduce(dim, index, src, "prod")
        return scatter_add(input, dim, index, src if src is not None else value)
    lin, src = _scatter_flat(input, dim, index, src if src is not None else value, "scatter")
    return put(input, lin, src)


export("scatter_", function=False)(lambda self, dim, index, src=None, value=None, reduce=None:
                                    assign(self, scatter(self, dim, index, src, value, reduce), "scatter_"))
export("scatter_add_", function=False)(lambda self, dim, index, src:
                                        assign(self, scatter_add(self, dim, index, src), "scatter_add_"))


# ---------------------------------------------------------------------- item assignment
@export("__setitem__", function=False)
def setitem(self, key, value):
    """x[key] = value as a functional index-put written back in place: differentiable, and traced
    as ordinary ops. The positions are found by indexing a tensor of flat positions with `key`."""
    masked = _masked_write(self, key, value)
    if masked is not None:
        return assign(self, masked, "__setitem__")
    positions = arange(self.numel(), device=self.device).reshape(self.shape)
    where_ = getitem(positions, key)
    if not isinstance(value, Tensor):
        value = full((), value, dtype=self.dtype, device=self.device)
    while value.ndim > where_.ndim and value.shape[0] == 1:   # PyTorch drops a value's leading 1s (a[0] = v[None])
        value = value.squeeze(0)
    value = value.to(self.dtype).expand(where_.shape) if value.shape != where_.shape else value.to(self.dtype)
    keys = key if isinstance(key, tuple) else (key,)
    unique = not any(isinstance(k, (Tensor, list, np.ndarray)) for k in keys)   # only index arrays repeat positions
    assign(self, put(self, where_.reshape(-1), value.reshape(-1), unique), "__setitem__")


def _masked_write(self, key, value):
    """x[mask] = v for a bool mask over x's leading dims and a v that every selected element (or
    row) takes: where(mask, v, x), which needs no mask values, so it compiles (nanoGPT's top-k
    `logits[logits < v[:, [-1]]] = -inf`). None when v holds one value per selected element."""
    if not (isinstance(key, Tensor) and key.dtype is D.bool_ and 1 <= key.ndim <= self.ndim
            and tuple(key.shape) == tuple(self.shape[:key.ndim])):
        return None
    rest = tuple(self.shape[key.ndim:])
    if isinstance(value, Tensor):
        while value.ndim > len(rest) and value.shape[0] == 1:
            value = value.squeeze(0)
        if value.ndim > len(rest) or any(v not in (1, n) for v, n in zip(value.shape[::-1], rest[::-1])):
            return None
        value = value.to(self.dtype)
    elif isinstance(value, (bool, int, float)):
        value = full((), value, dtype=self.dtype, device=self.device)
    else:
        return None
    mask = key.reshape(tuple(key.shape) + (1,) * len(rest))
    return where(mask.to(self.device), value, self)


# ---------------------------------------------------------------------- reordering
@export("flip")
@copying
def flip(input, *order, dims=None):
    dims = dims if dims is not None else order[0] if len(order) == 1 else order   # flip(dims) or flip(0, 2), as in PyTorch
    if input.ndim == 0:
        _dims(input, dims, "flip")
        return input.clone()
    out = input
    for d in _dims(input, dims, "flip"):
        n = input.shape[d]
        out = OPS["gather"].bind(out, arange(n - 1, -1, -1, device=input.device), axis=d) if n > 1 else out
    return out


@export("roll")
@copying
def roll(input, shifts, dims=None):
    if dims is None:
        return roll(input.reshape(-1), shifts, 0).reshape(input.shape)
    shifts = (shifts,) if isinstance(shifts, int) else tuple(shifts)
    dims = _dims(input, dims, "roll")
    if len(shifts) != len(dims):
        raise ShapeError(f"roll: {len(shifts)} shifts for {len(dims)} dims")
    out = input
    for s, d in zip(shifts, dims):
        n = input.shape[d]
        s %= builtins.max(n, 1)
        if s:
            a, b = out.split([n - s, s], d)
            out = cat([b, a], d)
    return out


@export("repeat", function=False)
@copying
def repeat(self, *sizes):
    sizes = shape_arg(sizes)
    if len(sizes) < self.ndim:
        raise ShapeError(f"repeat: {len(sizes)} sizes for a tensor of {self.ndim} dims; give at least one per dim")
    x = self.reshape((1,) * (len(sizes) - self.ndim) + self.shape)
    inter = tuple(v for s, n in zip(sizes, x.shape) for v in (s, n))
    return x.reshape(tuple(v for n in x.shape for v in (1, n))).expand(inter).reshape(
        tuple(s * n for s, n in zip(sizes, x.shape)))


@export("unflatten")
def unflatten(input, dim, sizes):
    d = normalize_axis("unflatten", dim, input.ndim)
    return input.reshape(input.shape[:d] + tuple(sizes) + input.shape[d + 1:])


# ---------------------------------------------------------------------- products, sums, norms
@export("prod")
@copying
def prod_(input, dim=None, keepdim=False, dtype=None):
    """Product by pairwise halving (log2(n) elementwise multiplies): exact for integers, zeros
    need no special case, and the gradient is that of the multiplies."""
    x = input if dtype is None else input.to(dtype)
    if dtype is None and x.dtype.category < 2:
        x = x.long()   # bool and every integer multiply in int64, as in PyTorch
    if dim is None:
        x, d = x.reshape(-1), 0
    else:
        d = normalize_axis("prod", dim, x.ndim)
    x = x.movedim(d, -1) if x.ndim else x.reshape(1)
    while x.shape[-1] > 1:
        if x.shape[-1] % 2:
            x = cat([x, ones(x.shape[:-1] + (1,), dtype=x.dtype, device=x.device)], -1)
        x = x[..., 0::2] * x[..., 1::2]
    if x.shape[-1] == 0:
        x = ones(x.shape[:-1] + (1,), dtype=x.dtype, device=x.device)
    out = x.squeeze(-1)
    if dim is None:
        return out.reshape((1,) * input.ndim) if keepdim else out.reshape(())
    return out.unsqueeze(d) if keepdim and input.ndim else out


@export("movedim")
def movedim(input, source, destination):
    """Dims `source` (an int or a sequence) moved to positions `destination`, the others kept in order."""
    src, dst = _dims(input, source, "movedim"), _dims(input, destination, "movedim")
    if len(src) != len(dst):
        raise ShapeError(f"movedim: source {source} and destination {destination} must name as many dims")
    if len(set(src)) != len(src) or len(set(dst)) != len(dst):
        raise ShapeError(f"movedim: repeated dim in source {source} or destination {destination}")
    if input.ndim == 0:   # (dims 0 and -1 name the scalar itself: nothing moves)
        return input
    order = [None] * input.ndim
    for s, t in zip(src, dst):
        order[t] = s
    rest = iter(i for i in range(input.ndim) if i not in src)
    return input.permute([o if o is not None else next(rest) for o in order])


@export("cumsum")
@copying
def cumsum(input, dim, dtype=None):
    """Running sum along dim, in log2(n) rounds that each add the sums k places back (a Hillis-Steele
    scan): n log n work, and an inf or nan reaches only the places after it."""
    x = input if dtype is None else input.to(dtype)
    if dtype is None and x.dtype.category < 2:
        x = x.long()   # bool and every integer accumulate in int64, as in PyTorch
    d = normalize_axis("cumsum", dim, x.ndim)
    if x.ndim == 0:
        return x
    n, k = x.shape[d], 1
    while k < n:
        none_before = zeros(x.shape[:d] + (k,) + x.shape[d + 1:], dtype=x.dtype, device=x.device)
        x = x + cat([none_before, x[(slice(None),) * d + (slice(0, n - k),)]], d)   # (a slice keeps n symbolic)
        k *= 2
    return x


@export("logsumexp")
def logsumexp(input, dim, keepdim=False):
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    if input.ndim and any(input.shape[normalize_axis("logsumexp", d, input.ndim)] == 0 for d in dims):
        out = input.sum(dim, keepdim=True) - math.inf   # over no elements: log(0) = -inf, as in PyTorch
    else:
        m = input.amax(dim, keepdim=True).detach()
        m = where(m.abs() == math.inf, 0.0, m)  # rows of -inf stay -inf, not nan
        out = (input - m).exp().sum(dim, keepdim=True).log() + m
    return out if keepdim else out.squeeze(dim)


@export("norm")
@accumulate_in_float32
def norm(input, p="fro", dim=None, keepdim=False, dtype=None):
    x = input if dtype is None else input.to(dtype)
    if p in ("fro", 2, 2.0):
        return _root((x * x).sum(dim, keepdim), 2.0)
    if p in (math.inf, "inf"):
        return x.abs().amax(dim, keepdim)
    if p == -math.inf:
        return x.abs().amin(dim, keepdim)
    if p == 0:
        return (x != 0).to(x.dtype).sum(dim, keepdim)
    if p == 1:
        return x.abs().sum(dim, keepdim)
    if isinstance(p, (int, float)):
        return _root((x.abs() ** p).sum(dim, keepdim), float(p))
    raise ValueError(f"norm: unsupported p={p!r}; use 'fro', a number, inf or -inf")


def _root(total, p):
    """total ** (1 / p) whose gradient is 0 where total is 0 (PyTorch's subgradient of a norm at
    the zero vector), not the NaN that inf * 0 would give."""
    if p == 2.0:
        return safe_sqrt(total)
    zero = total == 0
    return where(zero, 0.0, where(zero, 1.0, total) ** (1.0 / p))


# ---------------------------------------------------------------------- elementwise math
export("isnan")(lambda input: input != input)
export("isinf")(lambda input: input.abs() == math.inf if input.dtype.is_floating_point else zeros(
    input.shape, dtype=D.bool_, device=input.device))
export("isfinite")(lambda input: (input.abs() < math.inf) if input.dtype.is_floating_point else ones(
    input.shape, dtype=D.bool_, device=input.device))
export("isposinf")(lambda input: input == math.inf)
export("isneginf")(lambda input: input == -math.inf)


@export("nan_to_num")
def nan_to_num(input, nan=0.0, posinf=None, neginf=None):
    if not input.dtype.is_floating_point:
        return input
    big = float(np.finfo(input.dtype.np).max)
    out = where(input != input, nan, input)
    out = where(out == math.inf, big if posinf is None else posinf, out)
    return where(out == -math.inf, -big if neginf is None else neginf, out)


@export("allclose")
def allclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False):
    return bool(np.allclose(input.detach().numpy(), np.asarray(other.detach().numpy() if isinstance(other, Tensor)
                                                                 else other), rtol=rtol, atol=atol, equal_nan=equal_nan))


@export("isclose")
def isclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False):
    # the tolerance applies to finite values only; infinities are close only when equal, as PyTorch's
    if input.dtype is D.bool_ and (not isinstance(other, Tensor) or other.dtype is D.bool_):
        return input == other   # (bools are close when equal; they have no difference to measure)
    near = (input - other).abs() <= atol + rtol * (other.abs() if isinstance(other, Tensor) else abs(other))
    finite = input.isfinite() & (other.isfinite() if isinstance(other, Tensor) else math.isfinite(other))
    close = (near & finite) | (input == other)
    if equal_nan:
        close = close | ((input != input) & (other != other))
    return close


@export("equal")
def equal(input, other):
    return input.shape == other.shape and bool(np.array_equal(input.detach().numpy(), other.detach().numpy()))


# ---------------------------------------------------------------------- linear algebra
@export("bmm")
def bmm(input, mat2):
    if input.ndim != 3 or mat2.ndim != 3 or input.shape[0] != mat2.shape[0]:
        raise ShapeError(f"bmm needs two 3-D tensors with the same batch size, got {tuple(input.shape)} and {tuple(mat2.shape)}")
    return input @ mat2


export("outer", "ger")(lambda input, vec2: input.reshape(-1, 1) * vec2.reshape(1, -1))
@export("dot")
def dot(input, other):
    if input.ndim != 1 or other.ndim != 1 or input.shape != other.shape:
        raise ShapeError(f"dot: expects two 1-D tensors of one size, got shapes {tuple(input.shape)} and {tuple(other.shape)}; "
                         "use matmul (@) or (a * b).sum() for others")
    product = input * other
    return product.sum(dtype=product.dtype)   # (an int32 dot stays int32, as torch's)


@export("einsum", method=False)
def einsum(equation, *operands):
    """Einstein summation, lowered to permute / reshape / matmul (and sums over indices that only
    one operand has), so it runs on BLAS and differentiates through those ops."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    eq = equation.replace(" ", "")
    lhs, arrow, out = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(operands):
        raise ShapeError(f"einsum: {equation!r} names {len(terms)} operands, got {len(operands)}")
    for t, x in zip(terms, operands):
        if len(t.replace("...", "")) > x.ndim or "..." not in t and len(t) != x.ndim:
            raise ShapeError(f"einsum: {equation!r} gives the subscripts {t!r} to an operand of shape "
                             f"{tuple(x.shape)}; give one letter per dimension")
    if not (eq.replace(",", "").replace("->", "").replace(".", "")).isalpha():
        raise ShapeError(f"einsum: {equation!r}: subscripts are letters (a-z, A-Z), ',', '->' and '...'")
    terms = [_expand_ellipsis(t, x, "einsum") for t, x in zip(terms, operands)]
    for t, x in zip(terms, operands):
        for c in set(t):
            sizes = [n for letter, n in zip(t, x.shape) if letter == c]   # (a list: a set would hash a symbolic size)
            if any(n != sizes[0] for n in sizes[1:]):
                raise ShapeError(f"einsum: {equation!r} repeats {c!r} in one operand over dims of sizes "
                                 f"{sorted(set(sizes))} (shape {tuple(x.shape)}); a repeated letter takes a diagonal")
    if arrow and not set(out.replace("...", "")) <= set(lhs):
        raise ShapeError(f"einsum: {equation!r}: the output names {sorted(set(out.replace('...', '')) - set(lhs))}, "
                         "which no operand has")
    if not arrow:   # implicit output: the ellipsis dims (broadcast), then the letters named once, sorted
        letters = "".join(terms)
        dots = sorted({c for c in letters if c >= _ELLIPSIS_BASE})
        out = "".join(dots + sorted(c for c in set(letters) if letters.count(c) == 1 and c < _ELLIPSIS_BASE))
    else:
        out = _expand_ellipsis(out, None, "einsum", width=max((x.ndim - len(t.replace("...", ""))
                                                                for t, x in zip(lhs.split(","), operands)), default=0))
    xs = [_diagonal(x, t) for x, t in zip(operands, terms)]
    terms = ["".join(dict.fromkeys(t)) for t in terms]
    x, t = xs[0], terms[0]
    for k in range(1, len(xs)):
        later = set("".join(terms[k + 1:]))  # letters a later operand still needs
        x, t = _contract(x, t, xs[k], terms[k], set(out) | later)
    # sum what the output does not name, then order as the output asks
    drop = [i for i, c in enumerate(t) if c not in out]
    if drop:
        x = x.sum(drop)
        t = "".join(c for c in t if c in out)
    return x.permute([t.index(c) for c in out]) if t != out else x


_ELLIPSIS_BASE = chr(0x1000)   # the dims "..." stands for get letters no equation can spell


def _expand_ellipsis(term, x, name, width=None):
    if "..." not in term:
        return term
    n = (x.ndim - len(term.replace("...", ""))) if x is not None else width
    return term.replace("...", "".join(chr(0x1000 + i) for i in range(64 - n, 64)))   # right-aligned


def _diagonal(x, term):
    """An operand whose term repeats a letter (e.g. 'bii'): its diagonal over those dims, the letter
    left where it first appears (so the dims follow the term with repeats dropped: 'bi')."""
    for c in dict.fromkeys(term):
        while term.count(c) > 1:
            i = term.index(c)
            j = term.index(c, i + 1)
            idx = arange(x.shape[i], device=x.device)
            x = x.movedim((i, j), (0, 1))[idx, idx].movedim(0, i)
            term = term[:j] + term[j + 1:]
    return x


def _contract(x, t, y, u, keep):
    """Contract two operands over the letters they share that `keep` does not name."""
    for c in [c for c in t if c not in u and c not in keep]:   # summed in one operand only
        x, t = x.sum(t.index(c)), t.replace(c, "")
    for c in [c for c in u if c not in t and c not in keep]:
        y, u = y.sum(u.index(c)), u.replace(c, "")
    batch = [c for c in t if c in u and c in keep]
    contract = [c for c in t if c in u and c not in keep]
    left = [c for c in t if c not in u]
    right = [c for c in u if c not in t]
    sx, sy = dict(zip(t, x.shape)), dict(zip(u, y.shape))
    for c in batch + contract:
        if sx[c] != sy[c] and 1 in (sx[c], sy[c]):   # a size-1 dim broadcasts, as in PyTorch
            if sx[c] == 1:
                x, sx[c] = x.expand(tuple(sy[c] if d == c else s for d, s in zip(t, x.shape))), sy[c]
            else:
                y, sy[c] = y.expand(tuple(sx[c] if d == c else s for d, s in zip(u, y.shape))), sx[c]
        if sx[c] != sy[c]:
            raise ShapeError(f"einsum: index {c!r} has size {sx[c]} in one operand and {sy[c]} in another")
    size = sx | sy
    n = lambda cs: prod(size[c] for c in cs)  # noqa: E731
    a = x.permute([t.index(c) for c in batch + left + contract]).reshape(
        [size[c] for c in batch] + [n(left), n(contract)])
    b = y.permute([u.index(c) for c in batch + contract + right]).reshape(
        [size[c] for c in batch] + [n(contract), n(right)])
    r = (a @ b).reshape([size[c] for c in batch + left + right])
    return r, "".join(batch + left + right)


# ---------------------------------------------------------------------- PyTorch habits
def _new(self, fill, size, dtype, device, requires_grad):
    return full(shape_arg(size), fill, dtype=dtype or self.dtype, device=device or self.device,
                requires_grad=requires_grad)


export("new_zeros", function=False)(lambda self, *size, dtype=None, device=None, requires_grad=False:
                                     _new(self, 0, size, dtype, device, requires_grad))
export("new_ones", function=False)(lambda self, *size, dtype=None, device=None, requires_grad=False:
                                    _new(self, 1, size, dtype, device, requires_grad))
export("new_empty", function=False)(lambda self, *size, dtype=None, device=None, requires_grad=False:
                                     _new(self, 0, size, dtype, device, requires_grad))
export("new_full", function=False)(lambda self, size, fill_value, dtype=None, device=None, requires_grad=False:
                                    _new(self, fill_value, (size,), dtype, device, requires_grad))
export("new_tensor", function=False)(lambda self, data, dtype=None, device=None, requires_grad=False:
                                      tensor(data, dtype=dtype or self.dtype, device=device or self.device,
                                             requires_grad=requires_grad))


@export("__format__", function=False)
def format_(self, spec):
    """f"{loss:.4f}" on a one-element tensor formats its value, as in PyTorch."""
    if self.numel() == 1 and (spec or self.ndim == 0) and (self._data is not None or spec):
        return format(self.item(), spec)   # (traced: item() names the way out)
    if spec:
        raise TypeError(f"unsupported format string {spec!r} for a tensor of shape {tuple(self.shape)}")
    return repr(self)


export("is_tensor", method=False)(lambda obj: isinstance(obj, Tensor))
export("is_floating_point")(lambda input: input.dtype.is_floating_point)


# ---------------------------------------------------------------------- sorting and sampling
sort_result = return_type("sort", ["values", "indices"])
topk_result = return_type("topk", ["values", "indices"])


@export("sort")
def sort(input, dim=-1, descending=False, stable=False):
    indices = input.argsort(dim, descending)
    return sort_result(gather_along(input, normalize_axis("sort", dim, input.ndim), indices) if input.ndim else input,
                       indices)


@export("topk")
def topk(input, k, dim=-1, largest=True, sorted=True):
    """The k largest (or smallest) values along dim and their indices, in order."""
    if input.ndim == 0:
        return topk_result(input, input.argsort())
    d = normalize_axis("topk", dim, input.ndim)
    if not 0 <= k <= input.shape[d]:
        raise ShapeError(f"topk: k={k} is out of range for dim {d} of size {input.shape[d]}")
    stops = list(input.shape)
    stops[d] = k
    indices = strided_slice(input.argsort(d, descending=largest), [0] * input.ndim, stops, [1] * input.ndim)
    return topk_result(gather_along(input, d, indices), indices)


export("msort")(lambda input: sort(input, 0).values)


@export("multinomial")
@takes_generator
def multinomial(input, num_samples, replacement=False):
    """Category indices drawn with probabilities proportional to the rows of `input`, from gradc's
    generator (gradc.manual_seed) or generator=. With replacement: inverse-CDF sampling of uniform draws;
    without: the Gumbel-top-k trick (the k largest of log p + Gumbel noise), which draws without
    replacement from the same distribution. The draws are program inputs when compiled."""
    if input.ndim not in (1, 2):
        raise ShapeError(f"multinomial: input must be 1-D or 2-D, got shape {tuple(input.shape)}")
    if not input.dtype.is_floating_point:
        raise DTypeError(f"multinomial: probabilities must be floating point, got {input.dtype!r}; use .float()")
    p = input if input.ndim == 2 else input.unsqueeze(0)
    n_cat = p.shape[1]
    if not replacement and num_samples > n_cat:
        raise ValueError(f"multinomial: cannot draw {num_samples} samples without replacement from {n_cat} categories")
    if num_samples <= 0:
        raise ValueError(f"multinomial: num_samples must be positive, got {num_samples}")
    p = p.detach().to(D.float64 if p.dtype is D.float64 else D.float32)
    if p._data is not None:
        data = p._data if p.device.type == "cpu" else p._data.get()
        if (data < 0).any() or not np.isfinite(data).all() or (data.sum(1) <= 0).any():
            raise ValueError("multinomial: probabilities must be finite, non-negative and have a positive sum")
    if replacement:
        cdf = cumsum(p / p.sum(1, keepdim=True), 1)
        u = rand(p.shape[0], num_samples, dtype=p.dtype, device=p.device)
        idx = (cdf.unsqueeze(1) < u.unsqueeze(2)).long().sum(2)
        idx = where(idx > n_cat - 1, n_cat - 1, idx)
    else:
        u = rand(p.shape, dtype=p.dtype, device=p.device)
        # a zero probability is never drawn: its key is -inf (log of 1 where p is 0, so no log(0) is taken)
        keys = where(p > 0, where(p > 0, p, 1.0).log(), float("-inf")) - (-(u.clamp(min=1e-30)).log()).log()
        idx = topk(keys, num_samples, 1).indices
    return idx if input.ndim == 2 else idx.squeeze(0)
