"""Custom autograd functions, as torch.autograd.Function: a subclass defines `forward(ctx, *args)`
(or `forward(*args)` with `setup_context(ctx, inputs, output)`) and `backward(ctx, *grads)`, and is
called as `Fn.apply(*args)`.

forward runs with grad mode off; each tensor result gets an autograd Node whose VJP calls the
user's backward. A function with several results keeps one Node per result, so backward runs once
per result that receives a gradient, with zeros for the others, and the input gradients add up
(backward is linear in the gradients it is given).

While gradc.compile traces, a call that needs no gradient (grad mode off, or no input requires
grad) traces its forward like any other code; one that does raises TraceError, so the compiled
call runs eagerly: the backward is the user's Python, which the compiler's autodiff cannot see."""
from . import autograd, dispatch
from .creation import zeros_like
from .errors import AutogradError, ShapeError, TraceError
from .tensor import Tensor


class FunctionCtx:
    """What forward leaves for backward: saved tensors, needs_input_grad, and any attribute."""

    def save_for_backward(self, *tensors):
        for t in tensors:
            if t is not None and not isinstance(t, Tensor):
                raise TypeError(f"save_for_backward: expected tensors or None, got {type(t).__name__}; "
                                "store other values as attributes of ctx (ctx.alpha = alpha)")
        self._saved = tuple(tensors)
        self._versions = tuple(None if t is None else t._version[0] for t in tensors)

    @property
    def saved_tensors(self):
        for i, (t, v) in enumerate(zip(getattr(self, "_saved", ()), getattr(self, "_versions", ()))):
            if t is not None and t._version[0] != v:
                raise AutogradError(f"saved tensor {i} of this autograd.Function (shape {tuple(t.shape)}) was "
                                    "modified in place after save_for_backward; clone it before changing it")
        return getattr(self, "_saved", ())

    def mark_dirty(self, *tensors):
        self._dirty = {id(t) for t in tensors}

    def mark_non_differentiable(self, *tensors):
        self._non_diff = {id(t) for t in tensors}

    def set_materialize_grads(self, value):
        self.materialize_grads = bool(value)


class _Backward:
    """The primitive-like record autograd's Node holds for result `index` of one apply."""
    saves, saves_for, view, diff = frozenset(), None, False, True

    def __init__(self, fn, ctx, index, results, slots, n_args):
        self.fn, self.ctx, self.index, self.results = fn, ctx, index, results
        self.slots, self.n_args = slots, n_args   # tensor input i is argument slots[i] of apply
        self.name, self.backward_name = fn.__name__, f"{fn.__name__}Backward"

    def vjp(self, _ctx, g):
        ctx = self.ctx
        used = ctx.__dict__.get("_used_by")
        if used is not None and used is not autograd.current_pass():
            raise AutogradError(f"trying to backward through the graph a second time ({self.fn.__name__}'s saved "
                                "tensors were freed by the first backward); pass retain_graph=True to the first "
                                "backward() if you need to call it twice")
        materialize = getattr(ctx, "materialize_grads", True)
        grads = [g if k == self.index else
                 (zeros_like(r) if materialize and isinstance(r, Tensor) else None)
                 for k, r in enumerate(self.results)]
        out = self.fn.backward(ctx, *grads)
        out = out if isinstance(out, tuple) else (out,)
        if len(out) > self.n_args and all(o is None for o in out[self.n_args:]):
            out = out[:self.n_args]   # PyTorch allows trailing Nones beyond the inputs
        if len(out) != self.n_args:
            raise AutogradError(f"{self.fn.__name__}.backward returned {len(out)} gradient(s), but forward took "
                                f"{self.n_args} argument(s); return one per argument (None for non-tensors)")
        picked = []
        for i, slot in enumerate(self.slots):
            gi = out[slot]
            if gi is not None and not isinstance(gi, Tensor):
                raise AutogradError(f"{self.fn.__name__}.backward returned a {type(gi).__name__} as gradient "
                                    f"{slot}; return a tensor or None")
            picked.append(gi)
        for slot, gi in enumerate(out):
            if slot not in self.slots and gi is not None:
                raise AutogradError(f"{self.fn.__name__}.backward returned a gradient for argument {slot}, which "
                                    "is not a tensor; return None there")
        for i, gi in enumerate(picked):
            shape = _ctx.shapes[i]
            if gi is not None and tuple(gi.shape) != tuple(shape):
                try:
                    autograd.sum_to(gi, shape)
                except (ShapeError, ValueError):
                    raise AutogradError(f"{self.fn.__name__}.backward returned a gradient of shape "
                                        f"{tuple(gi.shape)} for argument {self.slots[i]} of shape {tuple(shape)}") \
                        from None
        return tuple(picked)


class Function:
    """Base class of custom autograd functions (see the module docs)."""

    def __init__(self, *args, **kwargs):
        raise TypeError(f"{type(self).__name__}: call {type(self).__name__}.apply(...), not the class itself "
                        "(forward and backward are static methods)")

    @staticmethod
    def forward(ctx, *args, **kwargs):
        raise NotImplementedError("an autograd.Function subclass must define forward")

    @staticmethod
    def backward(ctx, *grads):
        raise NotImplementedError("an autograd.Function subclass must define backward to be differentiated")

    @classmethod
    def apply(cls, *args, **kwargs):
        slots = [i for i, a in enumerate(args) if isinstance(a, Tensor)]
        needs = tuple(isinstance(a, Tensor) and a.requires_grad for a in args)
        differentiate = autograd.is_grad_enabled() and any(needs)
        if differentiate and dispatch.tracer() is not None:
            raise TraceError(f"{cls.__name__}.apply needs its own backward, which gradc.compile cannot trace (it is "
                             "Python code the compiler's autodiff does not see); call it outside the compiled "
                             "function, or write its backward with differentiable gradc ops instead")
        ctx = FunctionCtx()
        ctx.needs_input_grad = needs
        with autograd.no_grad():
            if "setup_context" in _own(cls):
                output = cls.forward(*args, **kwargs)
                cls.setup_context(ctx, args, output)
            else:
                output = cls.forward(ctx, *args, **kwargs)
        if not differentiate:
            return output
        single = not isinstance(output, tuple)
        results = (output,) if single else output
        inputs = [args[i] for i in slots]
        dirty, non_diff = getattr(ctx, "_dirty", set()), getattr(ctx, "_non_diff", set())
        wrapped = []
        for k, r in enumerate(results):
            if not isinstance(r, Tensor) or id(r) in non_diff or not r.dtype.is_floating_point:
                wrapped.append(r)
                continue
            if id(r) in dirty:   # an input modified in place: its history is now this function
                if r._grad_fn is None and r.requires_grad:
                    raise AutogradError(f"{cls.__name__}: a leaf tensor that requires grad was modified in place "
                                        "(mark_dirty); clone it before passing it in")
            elif any(r is a for a in args) or r._grad_fn is not None or r.requires_grad:
                r = r.detach()   # an input returned as it is: a new tensor sharing its memory
            r._grad_fn = autograd.Node(_Backward(cls, ctx, k, results, slots, len(args)), {}, inputs, r)
            r.requires_grad = True
            wrapped.append(r)
        return wrapped[0] if single else tuple(wrapped)


def _own(cls):
    """The methods a Function subclass defines itself or inherits from a class other than Function."""
    return {name for c in cls.__mro__ if c is not Function and c is not object for name in vars(c)}


def once_differentiable(backward):
    """Decorate a backward that is not itself differentiable: it runs with grad mode off."""
    def wrapper(ctx, *grads):
        with autograd.no_grad():
            return backward(ctx, *grads)
    wrapper.__name__, wrapper.__doc__ = backward.__name__, backward.__doc__
    return wrapper
