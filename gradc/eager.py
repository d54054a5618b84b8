"""Eager execution: the base interpreter of the dispatch stack.

A primitive call runs the entry's eager kernel on the operands' arrays and, when grad mode is on
and an operand requires grad, records an autograd Node. Constants, random draws, in-place writes,
device copies and backward are answered here too; the tracer answers the same calls while a
function is traced."""
import sys

import numpy as np

from . import autograd
from . import dtypes as D
from . import dispatch
from .device import CPU, common_device, device as _device
from .errors import AutogradError, ShapeError
from .random import sample
from .tensor import Tensor


def _refresh_view(t):
    """A view whose base was written in place after the view was taken holds the new values; as
    PyTorch regenerates its grad_fn, its history becomes the same view ops replayed on the base
    as it is now (the write's history included), so gradients through it see the write."""
    node, _, base, ops = t._view_of
    if node is not t._grad_fn or not t.device.xp.may_share_memory(t._data, base._data):
        return   # written in place itself since (its own history), or a view op that had to copy (old values)
    fresh = base
    for prim, attrs in ops:
        fresh = prim.bind(fresh, **attrs)
    t._grad_fn, t.requires_grad, t._view_of = fresh._grad_fn, fresh.requires_grad, fresh._view_of


class Eager(dispatch.Mode):
    def bind(self, prim, args, attrs):
        dev = common_device(prim.name, args)
        shape, dtype = prim.infer([a.shape for a in args], [a.dtype for a in args], attrs)
        xp = np if dev is CPU else dev.xp
        if dtype is D.float16 or (args and args[0].dtype is D.float16):   # operands share a dtype, casts take it first
            # float16 overflows to inf by design under mixed precision (GradScaler skips such steps):
            # NumPy's overflow and invalid-value warnings would only alarm the user, as PyTorch never does
            with np.errstate(over="ignore", invalid="ignore"):
                data = prim.eager(xp, *[a._data for a in args], **attrs)
        else:
            data = prim.eager(xp, *[a._data for a in args], **attrs)
        if type(data) is not np.ndarray and xp is np:
            data = np.asarray(data)
        out = Tensor._wrap(data, dtype, dev)
        grad_mode = autograd.is_grad_enabled()
        if prim.view:
            out._version = args[0]._version  # views share their base's version counter
        # A float result of a primitive without a derivative is recorded too, so that backward
        # reaching it says so instead of passing no gradient (a VJP run with create_graph=True).
        if grad_mode:
            for a in args:
                seen = getattr(a, "_view_of", None)
                if seen is not None and a._version[0] != seen[1]:
                    _refresh_view(a)
        if dtype.is_floating_point and grad_mode and any(a.requires_grad for a in args):
            out._grad_fn = autograd.Node(prim, attrs, args, out)
            out.requires_grad = True
        if prim.view and grad_mode:
            # (its node, the version then, the tensor it views, the view ops from there): an in-place op
            # on it with history writes through to that base (gradc.composite.assign)
            seen = getattr(args[0], "_view_of", None)
            if seen is not None and seen[0] is args[0]._grad_fn:
                out._view_of = (out._grad_fn, out._version[0], seen[2], seen[3] + ((prim, attrs),))
            else:
                out._view_of = (out._grad_fn, out._version[0], args[0], ((prim, attrs),))
        return out

    def constant(self, data, dtype, dev):
        return Tensor._wrap(data if dev is CPU else dev.xp.asarray(data), dtype, dev)

    def random(self, spec, dtype, dev):
        return self.constant(sample(spec), dtype, dev)

    def assign(self, target, result, what):
        """Make `target` hold `result` (same shape and dtype): the mechanism of every in-place op."""
        grad_mode = autograd.is_grad_enabled()
        recording = grad_mode and result.requires_grad
        if (grad_mode and target._grad_fn is not None and getattr(target._grad_fn.prim, "view", False)
                and getattr(target._data, "base", None) is not None and sys.getrefcount(target._data.base) > 2):
            # (views of tensors with history write through to them in gradc.composite.assign; what comes
            # here is a view of a leaf) the leaf's history would not see the write. When
            # nothing but this view holds the memory (2: its .base and getrefcount's argument), as for a
            # conv's channels-last result, no other tensor can see the write: it is the view's own value.
            raise AutogradError(f"{what} on a view ({target._grad_fn.prim.name} result) of a leaf tensor that requires "
                                "grad, as in PyTorch; make the change under `with gradc.no_grad():`, or write into "
                                "a .clone() of the view")
        try:
            target._data[...] = result._data
        except ValueError as e:  # e.g. the read-only result of expand()
            raise AutogradError(f"{what}: this tensor cannot be written in place ({e}); use .clone() first") from None
        target._version[0] += 1
        if recording:
            target._grad_fn, target.requires_grad = result._grad_fn, True
        elif grad_mode and target.requires_grad:
            # the new value does not depend on the old one (fill_, zero_, copy_ of a constant): keeping
            # the old history would send gradient through values that are gone
            target._grad_fn, target.requires_grad = None, False
        return target

    def to_device(self, t, dev):
        """Copy to another device; autograd sees the copy as identity."""
        src = t._data if t.device is CPU else t._data.get()
        out = self.constant(src, t.dtype, dev)
        if t.requires_grad and autograd.is_grad_enabled():
            out._grad_fn = autograd.Node(_device_copy, {"device": str(t.device)}, (t,), out)
            out.requires_grad = True
        return out

    def backward(self, tensor, gradient, retain_graph, create_graph=False, inputs=None):
        if not tensor.requires_grad:
            raise AutogradError("backward() on a tensor that does not require grad and has no grad_fn; "
                                "create the inputs with requires_grad=True (and not under gradc.no_grad())")
        if gradient is None:
            if tensor.numel() != 1:
                raise AutogradError(f"backward() without a gradient needs a scalar output, but the output has shape "
                                    f"{tuple(tensor.shape)}; reduce it first (e.g. loss.sum()) or pass gradient=")
            gradient = self.constant(np.ones(tensor.shape, dtype=tensor.dtype.np), tensor.dtype, tensor.device)
        elif not isinstance(gradient, Tensor):
            gradient = self.constant(np.asarray(gradient, dtype=tensor.dtype.np), tensor.dtype, tensor.device)
        if gradient.shape != tensor.shape:
            raise ShapeError(f"backward(): gradient has shape {tuple(gradient.shape)} but the output has shape {tuple(tensor.shape)}")
        if inputs is not None:
            if not inputs:
                raise AutogradError("backward(inputs=...) got an empty sequence; pass the tensors to accumulate into")
            for t in inputs:
                if not t.requires_grad:
                    raise AutogradError(f"backward(inputs=...): an input (shape {tuple(t.shape)}) does not require grad")
        if not create_graph:
            with autograd.no_grad():
                gradient = gradient.detach().to(tensor.dtype)
        autograd.backward_from(tensor, gradient, retain_graph, create_graph, inputs)


class _DeviceCopy:
    """Autograd's record of a device transfer: its VJP moves the gradient back."""
    name, saves, saves_for, view = "to_device", frozenset(), None, False

    @staticmethod
    def vjp(ctx, g):
        return (dispatch.interpreter().to_device(g, _device(ctx.attrs["device"])),)


_device_copy = _DeviceCopy()
dispatch.set_base(Eager())
