"""Reverse-mode autograd for eager tensors: grad mode, the recorded history (`Node`), and the
engine behind `Tensor.backward`. Each node applies its primitive's VJP from the op table, the same
rule the compiler's autodiff pass uses."""
import inspect
import itertools
import threading
import weakref

from .errors import AutogradError
from .ops import Ctx

_state = threading.local()


def is_grad_enabled():
    return getattr(_state, "enabled", True)


def _set_enabled(flag):
    _state.enabled = flag


class _GradMode:
    """Context manager and decorator that sets grad mode, restoring the old mode on exit."""
    mode = True

    def __new__(cls, fn=None):
        # `@gradc.no_grad` without parentheses decorates fn directly (as in PyTorch)
        self = super().__new__(cls)
        return self if fn is None else self(fn)

    def __enter__(self):
        self._prev = is_grad_enabled()
        _set_enabled(self.mode)
        return self

    def __exit__(self, *exc):
        _set_enabled(self._prev)
        return False

    def __call__(self, fn):
        import functools

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self._fresh():
                return fn(*args, **kwargs)
        return wrapper

    def _fresh(self):
        """A new context manager for one call of a decorated function."""
        return type(self)()


class no_grad(_GradMode):
    """Disable history recording: results keep no reference to their inputs."""
    mode = False


class enable_grad(_GradMode):
    mode = True


class set_grad_enabled(_GradMode):
    def __new__(cls, mode):
        return object.__new__(cls)

    def __init__(self, mode):
        self.mode = bool(mode)
        self._prev = is_grad_enabled()
        _set_enabled(self.mode)  # like PyTorch, also works as a plain function call

    def __enter__(self):
        return self

    def __call__(self, fn):
        _set_enabled(self._prev)  # as a decorator the mode applies to each call, not from now on
        return super().__call__(fn)

    def _fresh(self):
        return set_grad_enabled(self.mode)


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
        saves = prim.saves
        self.saved = tuple(a if i in saves else None for i, a in enumerate(args))
        self.versions = tuple(a._version[0] if i in saves else 0 for i, a in enumerate(args))
        self.out = out.detach() if "out" in saves else None
        self.out_version = out._version[0]
        self.shapes = tuple(a.shape for a in args)
        self.dtypes = tuple(a.dtype for a in args)
        self.needs = tuple(p is not None for p in self.parents)
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


def backward(tensor, gradient=None, retain_graph=False):
    from .tensor import Tensor, ones_like
    if not tensor.requires_grad:
        raise AutogradError("backward() on a tensor that does not require grad and has no grad_fn; "
                            "create the inputs with requires_grad=True (and not under gradc.no_grad())")
    if gradient is None:
        if tensor.numel() != 1:
            raise AutogradError(f"backward() without a gradient needs a scalar output, but the output has shape "
                                f"{tensor.shape}; reduce it first (e.g. loss.sum()) or pass gradient=")
        gradient = ones_like(tensor)
    elif not isinstance(gradient, Tensor):
        gradient = Tensor(gradient, dtype=tensor.dtype, device=tensor.device)
    if gradient.shape != tensor.shape:
        from .errors import ShapeError
        raise ShapeError(f"backward(): gradient has shape {gradient.shape} but the output has shape {tensor.shape}")
    with no_grad():
        gradient = gradient.detach().to(tensor.dtype)
        if tensor._grad_fn is None:  # a leaf
            _accumulate(tensor, gradient)
            run_post_backward_hooks([tensor])
            return
        root = tensor._grad_fn
        grads = {root: gradient}
        touched = []
        for node in _topological(root):
            g = grads.pop(node, None)
            if g is None:
                continue
            node._check_saved()
            ctx = Ctx(node.saved, node.out, node.shapes, node.dtypes, node.attrs, node.needs)
            for parent, gi, shape, dtype in zip(node.parents, node.prim.vjp(ctx, g), node.shapes, node.dtypes):
                if parent is None or gi is None:
                    continue
                gi = sum_to(gi, shape)
                if gi.dtype is not dtype:
                    gi = gi.to(dtype)
                if isinstance(parent, Node):
                    prev = grads.get(parent)
                    grads[parent] = gi if prev is None else prev + gi
                else:
                    _accumulate(parent, gi)
                    touched.append(parent)
            if not retain_graph:
                node.saved, node.out, node.freed = (), None, True
        run_post_backward_hooks(touched)


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
