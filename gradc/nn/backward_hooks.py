"""Module backward hooks (register_full_backward_hook, register_full_backward_pre_hook), as
PyTorch runs them: each call of a hooked module passes its tensor arguments and its tensor outputs
through identity nodes, grouped so that the backward walk reaches all of a side's gradients at
once (gradc.autograd.NodeGroup). The pre-hooks see grad_output and may replace it; the hooks see
(grad_input, grad_output) once the gradients with respect to the arguments are known and may
replace grad_input. When no argument needs a gradient, the hooks run with grad_input all None as
soon as grad_output is known."""
from .. import autograd, dispatch
from ..errors import AutogradError, TraceError
from ..creation import zeros_like
from ..tensor import Tensor


class _Identity:
    """The primitive of a hook's identity node: the gradient passes through unchanged."""
    saves, saves_for, view, diff, second_order = frozenset(), None, False, True, True
    name, backward_name = "backward_hook", "BackwardHookFunctionBackward"

    def vjp(self, _ctx, g):
        return (g,)


_IDENTITY = _Identity()


def _through_identity(tensors):
    """Each tensor that requires grad as a new tensor sharing its memory behind an identity node;
    returns (the tensors, the identity nodes, the position of each node in `tensors`)."""
    out, nodes, where = [], [], []
    for i, t in enumerate(tensors):
        if isinstance(t, Tensor) and t.requires_grad:
            alias = t.detach()
            alias._grad_fn = autograd.Node(_IDENTITY, {}, [t], alias)
            alias.requires_grad = True
            nodes.append(alias._grad_fn)
            where.append(i)
            t = alias
        out.append(t)
    return out, nodes, where


def _replaced(what, new, old, module):
    new = tuple(new) if isinstance(new, (tuple, list)) else (new,)
    if len(new) != len(old):
        raise AutogradError(f"a backward hook of {type(module).__name__} returned {len(new)} {what} gradient(s) for "
                            f"{len(old)}; return None or one per {what} tensor")
    for n, o in zip(new, old):
        if n is not None and o is not None and tuple(n.shape) != tuple(o.shape):
            raise AutogradError(f"a backward hook of {type(module).__name__} returned a {what} gradient of shape "
                                f"{tuple(n.shape)} for one of shape {tuple(o.shape)}")
    return new


def call_with_backward_hooks(module, forward, args, pre_hooks, hooks):
    """forward(*args) with the module's backward hooks attached to this call's gradients. As in
    PyTorch, grad_output has one entry per element of the output (None for non-tensors and for
    outputs no gradient reached) and grad_input one per argument (None for non-tensors, zeros for
    a tensor no gradient reached)."""
    if not autograd.is_grad_enabled():
        return forward(*args)
    if dispatch.tracer() is not None:
        raise TraceError(f"{type(module).__name__} has backward hooks (register_full_backward_hook), which run "
                         "Python code during backward that gradc.compile cannot trace; remove them, or run this "
                         "call without gradc.compile")
    args, in_nodes, in_where = _through_identity(args)
    out = forward(*args)
    single = isinstance(out, Tensor)
    if not (single or isinstance(out, (tuple, list))):
        return out
    outs, out_nodes, out_where = _through_identity([out] if single else out)
    if not out_nodes:
        return out
    state = {}

    def run_hooks(grad_input):
        for hook in hooks:
            res = hook(module, grad_input, state["grad_output"])
            if res is not None:
                grad_input = _replaced("input", res, grad_input, module)
        return grad_input

    def outputs_done(grads):
        grad_output = _placed(grads, out_where, [None] * len(outs))
        for hook in pre_hooks:
            res = hook(module, grad_output)
            if res is not None:
                grad_output = _replaced("output", res, grad_output, module)
        state["grad_output"] = grad_output
        if not in_nodes:   # nothing flows to the arguments: the hooks see grad_output now
            run_hooks((None,) * len(args))
        return [grad_output[k] for k in out_where]

    def inputs_done(grads):
        grads = [zeros_like(args[k]) if g is None else g for k, g in zip(in_where, grads)]
        grad_input = run_hooks(_placed(grads, in_where, [zeros_like(a) if isinstance(a, Tensor) else None
                                                           for a in args]))
        return [grad_input[k] for k in in_where]

    autograd.NodeGroup(out_nodes, outputs_done)
    if in_nodes:
        autograd.NodeGroup(in_nodes, inputs_done)
    if single:
        return outs[0]
    return type(out)(*outs) if hasattr(out, "_fields") else type(out)(outs)   # (a namedtuple takes fields)


def _placed(grads, where, base):
    """`base` with the gradients of the tensors at positions `where` put in, as a tuple."""
    for k, g in zip(where, grads):
        base[k] = g
    return tuple(base)
