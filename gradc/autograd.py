"""Reverse-mode autograd for eager tensors: grad mode, the recorded history (`Node`), and the
engine behind `Tensor.backward`. Each node applies its primitive's VJP from the op table, the same
rule the compiler's autodiff pass uses."""
import inspect
import itertools
import weakref

from .errors import AutogradError
from .grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled  # noqa: F401  (public here)
from .ops.primitive import Ctx

class Node:
    """The history of one op result: which primitive made it, from what, and what its VJP needs.

    `parents[i]` is the producer Node of input i, the leaf tensor itself if it is a leaf that
    requires grad, or None when no gradient flows there."""
    __slots__ = ("prim", "attrs", "parents", "saved", "versions", "out", "out_version", "shapes", "dtypes",
                 "needs", "freed", "where")

    def __init__(self, prim, attrs, args, out):
        self.prim, self.attrs = prim, attrs
        self.parents = tuple(a._grad_fn if a._grad_fn is not None else (a if a.requires_grad else None)
                             for a in args)
        needs = tuple(p is not None for p in self.parents)
        saves = prim.saves if prim.saves_for is None else prim.saves_for(needs)
        self.saved = tuple(a if i in saves else None for i, a in enumerate(args))
        self.versions = tuple(a._version[0] if i in saves else 0 for i, a in enumerate(args))
        self.out = out.detach() if "out" in saves else None
        self.out_version = out._version[0]
        self.shapes = tuple(a.shape for a in args)
        self.dtypes = tuple(a.dtype for a in args)
        self.needs = needs
        self.freed = False

    def name(self):
        return "".join(w.capitalize() for w in self.prim.name.split("_")) + "Backward"

    @property
    def next_functions(self):
        return tuple((p if isinstance(p, Node) else None, 0) for p in self.parents)

    def __repr__(self):
        return f"<{self.name()}>"

    def _check_saved(self):
        if self.freed:
            raise AutogradError(
                f"trying to backward through the graph a second time ({self.name()} already freed its saved "
                "tensors); pass retain_graph=True to the first backward() if you need to call it twice")
        for i, (t, v) in enumerate(zip(self.saved, self.versions)):
            if t is not None and t._version[0] != v:
                raise _modified_error(self, f"input {i}", t, v)
        if self.out is not None and self.out._version[0] != self.out_version:
            raise _modified_error(self, "output", self.out, self.out_version)


def _modified_error(node, which, t, v):
    return AutogradError(
        f"a tensor needed for gradient computation was modified by an in-place operation: the {which} of "
        f"{node.prim.name} (shape {t.shape}, {t.dtype!r}) is at version {t._version[0]}, expected version {v}. "
        "Use the out-of-place form (x = x + y instead of x.add_(y)) or .clone() the tensor before changing it")


def sum_to(g, shape):
    """Sum a gradient over the dimensions that broadcasting added or stretched."""
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, d in enumerate(shape) if d == 1 and g.shape[lead + i] != 1)
    if axes:
        g = g.sum(axes, keepdim=True)
    return g.reshape(shape)


def _topological(root):
    """Nodes reachable from root, each after all the nodes it feeds (an explicit stack: deep graphs
    must not hit the recursion limit)."""
    # A node counts as visited when it is expanded, not when it is pushed: marking at push time
    # lets a node that is still waiting on the stack be finished before a node that feeds it
    # (e.g. z in z - log(sum(exp(z)))), which drops part of its gradient.
    order, seen, stack = [], set(), [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        for p in node.parents:
            if isinstance(p, Node) and id(p) not in seen:
                stack.append((p, False))
    order.reverse()
    return order


def backprop(order, cot, expand, done=None):
    """The one backward walk, shared by eager autograd and the compiler's autodiff pass.

    For each node of `order` (reverse topological) that holds a cotangent in `cot`,
    `expand(node)` gives (primitive, Ctx, targets) or None to skip it; the VJP's gradients are
    summed back over broadcast dimensions, cast to the operand's dtype and accumulated into
    `cot[target]` (targets that are None get nothing). `done(node)` runs after each VJP.
    Returns the nodes whose VJP ran."""
    visited = []
    for node in order:
        g = cot.pop(node, None)
        if g is None:
            continue
        step = expand(node)
        if step is None:
            continue
        prim, ctx, targets = step
        try:
            grads = prim.vjp(ctx, g)
        finally:
            if done is not None:
                done(node)
        visited.append(node)
        for target, gi, shape, dtype in zip(targets, grads, ctx.shapes, ctx.dtypes):
            if target is None or gi is None:
                continue
            gi = sum_to(gi, shape)
            if gi.dtype is not dtype:
                gi = gi.to(dtype)
            prev = cot.get(target)
            cot[target] = gi if prev is None else prev + gi
    return visited


def backward_from(tensor, gradient, retain_graph=False):
    """Eager backward from `tensor` with cotangent `gradient` (same shape and dtype, detached):
    gradients accumulate into the .grad of the leaves that require grad."""
    with no_grad():
        if tensor._grad_fn is None:  # a leaf
            _accumulate(tensor, gradient)
            run_post_backward_hooks([tensor])
            return
        nodes = _topological(tensor._grad_fn)
        cot = {tensor._grad_fn: gradient}

        def expand(node):
            node._check_saved()
            return node.prim, Ctx(node.saved, node.out, node.shapes, node.dtypes, node.attrs, node.needs), node.parents

        def release(node):
            if not retain_graph:
                node.saved, node.out, node.freed = (), None, True
        backprop(nodes, cot, expand, release)
        leaves = [t for t in cot if not isinstance(t, Node)]  # what is left: the leaves' gradients
        for leaf in leaves:
            _accumulate(leaf, cot[leaf])
        run_post_backward_hooks(leaves)


def _accumulate(leaf, g):
    # The first gradient is copied: g may be the caller's `gradient` or the very array another leaf
    # receives (add's VJP passes g to both operands), and an in-place change of one leaf's .grad
    # (clipping, unscaling) must not change another's.
    leaf.grad = g.detach().clone() if leaf.grad is None else (leaf.grad + g).detach()


# ---------------------------------------------------------------------- post-backward hooks
_post_backward_hooks = {}  # key -> (callable that returns the hook or None, ids of the watched tensors)
_hook_keys = itertools.count()


class HookHandle:
    __slots__ = ("key",)

    def __init__(self, key):
        self.key = key

    def remove(self):
        _post_backward_hooks.pop(self.key, None)


def register_post_backward_hook(tensors, fn):
    """Call fn() each time a backward pass has finished that gave any of `tensors` a gradient: eager
    backward, and backward traced inside gradc.compile alike (there the hook's tensor ops become
    part of the compiled step). It runs under no_grad, once every gradient is in `.grad`;
    DistributedDataParallel averages gradients across ranks here. A bound method is held weakly
    (registering does not keep its object alive). Returns a handle whose remove() unregisters it."""
    key = next(_hook_keys)
    if inspect.ismethod(fn):
        ref = weakref.WeakMethod(fn)
    else:
        def ref():
            return fn
    _post_backward_hooks[key] = (ref, frozenset(id(t) for t in tensors))
    return HookHandle(key)


def run_post_backward_hooks(leaves):
    """Run the hooks that watch any of `leaves` (the tensors a backward pass just gave gradients)."""
    if not _post_backward_hooks:
        return
    ids = {id(t) for t in leaves}
    for key, (ref, watched) in list(_post_backward_hooks.items()):
        if watched.isdisjoint(ids):
            continue
        fn = ref()
        if fn is None:  # its object is gone
            _post_backward_hooks.pop(key, None)
            continue
        fn()
