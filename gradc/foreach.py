"""torch._foreach_*: one op over lists of tensors (what fused optimizers and EMA code call), as a
loop over the tensor ops. An argument that is a list or tuple gives one entry per tensor; any
other argument (a scalar, a tensor) is shared. The in-place forms return the list they changed,
the others a tuple of results, as PyTorch's."""
from .tensor import Tensor

_BINARY = ("add", "sub", "mul", "div", "pow", "maximum", "minimum", "clamp_min", "clamp_max", "lerp", "addcmul",
           "addcdiv")
_UNARY = ("sqrt", "rsqrt", "exp", "log", "neg", "abs", "sign", "reciprocal", "sigmoid", "tanh", "sin", "cos",
          "floor", "ceil", "round", "trunc", "frac", "expm1", "log1p", "erf", "erfc", "log2", "log10", "lgamma", "tan",
          "asin", "acos", "atan", "sinh", "cosh", "clone")


def _per_tensor(value, i):
    return value[i] if isinstance(value, (list, tuple)) else value


def _foreach(name, inplace):
    method = name + "_" if inplace else name

    def op(self, *args, **kwargs):
        tensors = list(self)
        if not all(isinstance(t, Tensor) for t in tensors):
            raise TypeError(f"_foreach_{method}: the first argument must be a list of tensors")
        for value in list(args) + list(kwargs.values()):
            if isinstance(value, (list, tuple)) and len(value) != len(tensors):
                raise ValueError(f"_foreach_{method}: a list argument has {len(value)} entries for {len(tensors)} "
                                 "tensors")
        out = [getattr(t, method)(*[_per_tensor(a, i) for a in args],
                                  **{k: _per_tensor(v, i) for k, v in kwargs.items()}) for i, t in enumerate(tensors)]
        return tensors if inplace else tuple(out)
    op.__name__ = f"_foreach_{method}"
    return op


def _norm(self, ord=2, dtype=None):
    return tuple(t.norm(ord) if dtype is None else t.to(dtype).norm(ord) for t in self)


def _copy_(self, src, non_blocking=False):
    return [t.copy_(s) for t, s in zip(self, src)]


def _zero_(self):
    return [t.zero_() for t in self]


def install(namespace):
    """Put every _foreach_* function into `namespace` (the gradc module)."""
    for name in _BINARY + _UNARY:
        for inplace in (False, True):
            if not hasattr(Tensor, name + "_" if inplace else name):
                continue
            fn = _foreach(name, inplace)
            namespace[fn.__name__] = fn
    namespace.update(_foreach_norm=_norm, _foreach_copy_=_copy_, _foreach_zero_=_zero_)
