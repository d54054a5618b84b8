"""torch.autograd.functional (gradc.autograd.functional): vjp, jvp, vhp, hvp, jacobian and
hessian of a function of tensors, built on autograd.grad.

jacobian takes one backward per output element (reverse mode) or one forward product per input
element (forward mode, as the double-backward trick: a jvp is the vjp of a vjp); gradc has no
vmap, so vectorize=True computes the same rows one after the other. A product with respect to an
input the output does not depend on is zeros (strict=True raises instead), as in PyTorch."""
from . import autograd
from .creation import zeros_like
from .errors import AutogradError
from .tensor import Tensor
from .shapes import shape_or


def _as_tuple(x, what, fn):
    single = isinstance(x, Tensor)
    items = (x,) if single else tuple(x) if isinstance(x, (tuple, list)) else None
    if items is None or not all(isinstance(t, Tensor) for t in items):
        raise TypeError(f"autograd.functional.{fn}: {what} must be a tensor or a tuple of tensors, got "
                        f"{type(x).__name__}")
    return single, items


def _prepare(inputs, create_graph):
    """Inputs that require grad, with history to the originals only when create_graph."""
    return tuple(t.view_as(t) if create_graph and t.requires_grad else t.detach().requires_grad_(True)
                 for t in inputs)


def _grads(outputs, inputs, grad_outputs, create_graph, strict, fn):
    """autograd.grad that allows unused inputs (zeros, or an error with strict) and outputs without history."""
    live = [(o, g) for o, g in zip(outputs, grad_outputs) if o.requires_grad]
    if not live:
        got = (None,) * len(inputs)
    else:
        got = autograd.grad([o for o, _ in live], inputs, [g for _, g in live], retain_graph=True,
                            create_graph=create_graph, allow_unused=True)
    out = []
    for i, (g, x) in enumerate(zip(got, inputs)):
        if g is None:
            if strict:
                raise AutogradError(f"autograd.functional.{fn}: the output does not depend on input {i} "
                                    "(strict=True); pass strict=False to get zeros")
            g = zeros_like(x)
        out.append(g)
    return tuple(out)


def _check_v(v, like, fn):
    _, v = _as_tuple(v, "v", fn)
    if len(v) != len(like) or any(tuple(a.shape) != tuple(b.shape) for a, b in zip(v, like)):
        raise AutogradError(f"autograd.functional.{fn}: v has shapes {[tuple(a.shape) for a in v]}, expected "
                            f"{[tuple(b.shape) for b in like]}")
    return v


def _one(single, items):
    return items[0] if single else tuple(items)


def _detached(items, create_graph):
    return tuple(t if create_graph else t.detach() for t in items)


def vjp(func, inputs, v=None, create_graph=False, strict=False):
    """(func(*inputs), v^T J): the product of v with the Jacobian, by one backward."""
    single_in, inputs = _as_tuple(inputs, "inputs", "vjp")
    with autograd.enable_grad():
        inputs = _prepare(inputs, create_graph)
        single_out, outputs = _as_tuple(func(*inputs), "the output of func", "vjp")
        if v is None:
            if any(o.numel() != 1 for o in outputs):
                raise AutogradError("autograd.functional.vjp: v can be omitted only for a function with one "
                                    "element per output")
            v = tuple(o.detach().new_ones(o.shape) for o in outputs)
        v = _check_v(v, outputs, "vjp")
        grads = _grads(outputs, inputs, v, create_graph, strict, "vjp")
    return _one(single_out, _detached(outputs, create_graph)), _one(single_in, _detached(grads, create_graph))


def jvp(func, inputs, v=None, create_graph=False, strict=False):
    """(func(*inputs), J v): the Jacobian times v, as the vjp of a vjp (the double-backward trick)."""
    single_in, inputs = _as_tuple(inputs, "inputs", "jvp")
    with autograd.enable_grad():
        inputs = _prepare(inputs, create_graph)
        if v is None:
            if any(x.numel() != 1 for x in inputs):
                raise AutogradError("autograd.functional.jvp: v can be omitted only for one-element inputs")
            v = tuple(x.detach().new_ones(x.shape) for x in inputs)
        v = _check_v(v, inputs, "jvp")
        single_out, outputs = _as_tuple(func(*inputs), "the output of func", "jvp")
        # u is a dummy cotangent: g(u) = u^T J is linear in u, so d<g(u), v>/du = J v
        us = tuple(o.detach().new_zeros(o.shape).requires_grad_(True) for o in outputs)
        g = _grads(outputs, inputs, us, True, strict, "jvp")
        pairs = [(gi, vi) for gi, vi in zip(g, v) if gi.requires_grad]
        jv = _grads([gi for gi, _ in pairs], us, [vi for _, vi in pairs], create_graph, strict, "jvp") if pairs \
            else tuple(zeros_like(o) for o in outputs)
    return _one(single_out, _detached(outputs, create_graph)), _one(single_out, _detached(jv, create_graph))


def _scalar_output(func, inputs, fn):
    out = func(*inputs)
    if not isinstance(out, Tensor) or out.numel() != 1:
        raise AutogradError(f"autograd.functional.{fn}: func must return a single-element tensor, got "
                            f"{shape_or(out, type(out).__name__)}")
    return out


def vhp(func, inputs, v=None, create_graph=False, strict=False):
    """(func(*inputs), v^T H) for a function with a one-element output."""
    single_in, inputs = _as_tuple(inputs, "inputs", "vhp")
    with autograd.enable_grad():
        inputs = _prepare(inputs, create_graph)
        out = _scalar_output(func, inputs, "vhp")
        v = _check_v(v if v is not None else tuple(x.detach().new_ones(x.shape) for x in inputs), inputs, "vhp")
        g = _grads([out], inputs, [out.detach().new_ones(out.shape)], True, strict, "vhp")
        pairs = [(gi, vi) for gi, vi in zip(g, v) if gi.requires_grad]
        hv = _grads([gi for gi, _ in pairs], inputs, [vi for _, vi in pairs], create_graph, strict, "vhp") if pairs \
            else tuple(zeros_like(x) for x in inputs)
    return _one(True, _detached((out,), create_graph)), _one(single_in, _detached(hv, create_graph))


def hvp(func, inputs, v=None, create_graph=False, strict=False):
    """(func(*inputs), H v): the Hessian is symmetric, so this is vhp."""
    return vhp(func, inputs, v, create_graph, strict)


def jacobian(func, inputs, create_graph=False, strict=False, vectorize=False, strategy="reverse-mode"):
    """The Jacobian of func at inputs: for each output and input, a tensor of shape
    output.shape + input.shape (a tensor for one of each, else tuples as PyTorch nests them)."""
    if strategy not in ("reverse-mode", "forward-mode"):
        raise ValueError(f"autograd.functional.jacobian: strategy must be 'reverse-mode' or 'forward-mode', got "
                         f"{strategy!r}")
    single_in, inputs = _as_tuple(inputs, "inputs", "jacobian")
    with autograd.enable_grad():
        inputs = _prepare(inputs, create_graph)
        single_out, outputs = _as_tuple(func(*inputs), "the output of func", "jacobian")
        blocks = [[None] * len(inputs) for _ in outputs]
        if strategy == "reverse-mode":   # one backward per output element: the rows
            for i, o in enumerate(outputs):
                flat = o.reshape(-1)
                rows = [_grads([flat[k]], inputs, [flat[k].detach().new_ones(())], create_graph, strict, "jacobian")
                        for k in range(flat.shape[0])]
                for j, x in enumerate(inputs):
                    block = _stack([r[j] for r in rows], tuple(x.shape), x)
                    blocks[i][j] = block.reshape(tuple(o.shape) + tuple(x.shape))
        else:   # one forward product per input element: the columns
            us = tuple(o.detach().new_zeros(o.shape).requires_grad_(True) for o in outputs)
            g = _grads(outputs, inputs, us, True, strict, "jacobian")
            for j, x in enumerate(inputs):
                cols = []
                for k in range(x.numel()):
                    e = x.detach().new_zeros(x.numel())
                    e[k] = 1.0
                    cols.append(_grads([g[j]], us, [e.reshape(x.shape)], create_graph, strict, "jacobian")
                                if g[j].requires_grad else tuple(zeros_like(o) for o in outputs))
                for i, o in enumerate(outputs):
                    block = _stack([c[i].reshape(-1) for c in cols], (o.numel(),), o, last=True)
                    blocks[i][j] = block.reshape(tuple(o.shape) + tuple(x.shape))
    blocks = [[b if create_graph else b.detach() for b in row] for row in blocks]
    rows = [row[0] if single_in else tuple(row) for row in blocks]
    return rows[0] if single_out else tuple(rows)


def _stack(parts, shape, like, last=False):
    from .functions import stack
    if not parts:
        return like.detach().new_zeros((0,) + shape if not last else shape + (0,))
    return stack([p.reshape(-1) for p in parts], -1 if last else 0)


def hessian(func, inputs, create_graph=False, strict=False, vectorize=False, outer_jacobian_strategy="reverse-mode"):
    """The Hessian of a function with a one-element output: jacobian of its gradient."""
    single_in, inputs = _as_tuple(inputs, "inputs", "hessian")

    def gradient(*xs):
        out = _scalar_output(func, xs, "hessian")
        return _grads([out], xs, [out.detach().new_ones(out.shape)], True, strict, "hessian")

    res = jacobian(gradient, inputs, create_graph, strict, vectorize, outer_jacobian_strategy)
    return res[0][0] if single_in else res
