"""Reverse-mode autograd for eager tensors: grad mode, the recorded history (`Node`), and the
engine behind `Tensor.backward`. Each node applies its primitive's VJP from the op table, the same
rule the compiler's autodiff pass uses."""
import contextlib
import inspect
import itertools
import weakref

from .errors import AutogradError, TraceError
from .grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled  # noqa: F401  (public here)
from .ops.primitive import Ctx
from .shapes import shape_or

class Node:
    """The history of one op result: which primitive made it, from what, and what its VJP needs.

    `parents[i]` is the producer Node of input i, the leaf tensor itself if it is a leaf that
    requires grad, or None when no gradient flows there."""
    __slots__ = ("prim", "attrs", "parents", "saved", "versions", "out", "out_version", "shapes", "dtypes",
                 "needs", "freed", "where", "hooks", "group", "label")

    def __init__(self, prim, attrs, args, out):
        self.prim, self.attrs, self.label = prim, attrs, None
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
        self.hooks = None  # the Tensor.register_hook hooks of the tensor this node made
        self.group = None  # the NodeGroup this node belongs to (a module's backward hooks)

    def unpack(self, create_graph=False):
        """(primitive, Ctx, parents) for this node's VJP. With create_graph the saved output gets
        this node back as its history (it is saved detached, to keep no cycle), so the gradient's
        own gradient reaches through it, as PyTorch's saved outputs do."""
        if not self.prim.diff:
            raise AutogradError(f"{self.prim.name} has no derivative, so no gradient flows back through it (it was "
                                "reached by differentiating a gradient taken with create_graph=True, or through a "
                                "collective); write that part with differentiable ops to get this gradient")
        if create_graph and not getattr(self.prim, "second_order", True):
            raise AutogradError("the gradient of a gradc.compile'd function's output cannot be differentiated again "
                                "(create_graph=True): its backward is a compiled program; call that function "
                                "eagerly where a second-order gradient is needed")
        self._check_saved()
        out = self.out
        if create_graph and out is not None:
            out = out.detach()
            out._grad_fn, out.requires_grad = self, True
        return self.prim, Ctx(self.saved, out, self.shapes, self.dtypes, self.attrs, self.needs), self.parents

    def name(self):
        if self.label:   # the public function that made it (gradc.backward_names): NllLossBackward0
            return self.label
        own = getattr(self.prim, "backward_name", None)   # (a custom autograd.Function's)
        if own:
            return own
        return "".join(w.capitalize() for w in self.prim.name.split("_")) + "Backward0"   # (PyTorch's names end in 0)

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
        f"{node.prim.name} (shape {tuple(t.shape)}, {t.dtype!r}) is at version {t._version[0]}, expected version {v}. "
        "Use the out-of-place form (x = x + y instead of x.add_(y)) or .clone() the tensor before changing it")


def sum_to(g, shape):
    """Sum a gradient over the dimensions that broadcasting added or stretched."""
    if len(g.shape) == len(shape) and g.shape == shape:   # (lengths first: sizes may be symbolic)
        return g
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, d in enumerate(shape) if d == 1 and g.shape[lead + i] != 1)
    if axes:
        g = g.sum(axes, keepdim=True)
    return g.reshape(shape)


class NodeGroup:
    """Nodes the backward walk takes as one unit, once every one of them has its whole gradient:
    `run(grads)` gets their gradients (None where none came) and returns the ones to go on with.
    A module's backward hooks see all of its outputs' (or inputs') gradients at once this way."""
    __slots__ = ("members", "run")

    def __init__(self, members, run):
        self.members, self.run = tuple(members), run
        for m in self.members:
            m.group = self

    @property
    def parents(self):
        return tuple(p for m in self.members for p in m.parents)


def _topological(*roots):
    """Nodes reachable from the roots, each after all the nodes it feeds (an explicit stack: deep
    graphs must not hit the recursion limit); a node of a NodeGroup stands for its whole group."""
    # A node counts as visited when it is expanded, not when it is pushed: marking at push time
    # lets a node that is still waiting on the stack be finished before a node that feeds it
    # (e.g. z in z - log(sum(exp(z)))), which drops part of its gradient.
    order, seen, stack = [], set(), [(root, False) for root in reversed(roots)]
    while stack:
        node, expanded = stack.pop()
        node = getattr(node, "group", None) or node
        if expanded:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        for p in node.parents:
            if isinstance(p, Node) and id(p.group or p) not in seen:
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
        if type(node) is NodeGroup:
            grads = [cot.pop(m, None) for m in node.members]
            if any(g is not None for g in grads):
                for m, g in zip(node.members, node.run(grads)):
                    if g is not None:
                        cot[m] = g
                visited += backprop(node.members, cot, expand, done)
            continue
        g = cot.pop(node, None)
        if g is None:
            continue
        if getattr(node, "hooks", None):
            g = run_hooks(node.hooks, g)
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
        if _ANOMALY["check_nan"]:
            _check_nan(node, prim, grads)
        for target, gi, shape, dtype in zip(targets, grads, ctx.shapes, ctx.dtypes):
            if target is None or gi is None:
                continue
            gi = sum_to(gi, shape)
            if gi.dtype is not dtype:
                gi = gi.to(dtype)
            prev = cot.get(target)
            cot[target] = gi if prev is None else prev + gi
    return visited


_ANOMALY = {"enabled": False, "check_nan": False}


def _check_nan(node, prim, grads):
    for i, gi in enumerate(grads):
        if gi is not None and gi._data is not None and bool((gi._data != gi._data).any()):
            name = node.name() if isinstance(node, Node) else getattr(prim, "name", "a primitive")
            raise AutogradError(f"Function '{name}' returned nan values in its {i}th output (anomaly detection); "
                                "look for a log, division or sqrt of a value at its edge in the forward of that op")


class set_detect_anomaly:
    """Anomaly detection on (a call) or within a block (a context manager), as in PyTorch: a
    backward that produces NaN raises AutogradError naming the op whose gradient did."""

    def __init__(self, mode, check_nan=True):
        self._prev = dict(_ANOMALY)
        _ANOMALY["enabled"], _ANOMALY["check_nan"] = bool(mode), bool(mode) and bool(check_nan)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _ANOMALY.update(self._prev)
        return False


class detect_anomaly:
    """A block (or, as a decorator, a function) with anomaly detection on."""

    def __init__(self, check_nan=True):
        self.check_nan = check_nan

    def __enter__(self):
        self._mode = set_detect_anomaly(True, self.check_nan)
        return self

    def __exit__(self, *exc):
        return self._mode.__exit__(*exc)

    def __call__(self, fn):
        def wrapper(*args, **kwargs):
            with detect_anomaly(self.check_nan):
                return fn(*args, **kwargs)
        wrapper.__name__, wrapper.__doc__ = fn.__name__, fn.__doc__
        return wrapper


def is_anomaly_enabled():
    return _ANOMALY["enabled"]


def is_anomaly_check_nan_enabled():
    return _ANOMALY["check_nan"]


def backward_from(tensor, gradient, retain_graph=False, create_graph=False, inputs=None):
    """Eager backward from `tensor` with cotangent `gradient` (same shape and dtype, detached):
    gradients accumulate into the .grad of the leaves that require grad (only of `inputs`, when
    given). With create_graph the gradients keep their history (a Hessian-vector product)."""
    targets = None if inputs is None else {id(t) for t in inputs}
    watch = {} if inputs is None else {id(t._grad_fn): t for t in inputs if t._grad_fn is not None}
    with set_grad_enabled(bool(create_graph)), _new_pass():
        if tensor._grad_fn is None:  # a leaf
            _accumulate(tensor, run_hooks(tensor._hooks, gradient), create_graph)
            run_post_backward_hooks([tensor])
            return
        cot = _Watched(watch)
        cot[tensor._grad_fn] = gradient

        def release(node):
            if not (retain_graph or create_graph):
                _release(node)
        backprop(_topological(tensor._grad_fn), cot, lambda node: node.unpack(create_graph), release)
        leaves = [t for t in cot if not isinstance(t, Node) and (targets is None or id(t) in targets)]
        for leaf in leaves:
            _accumulate(leaf, run_hooks(leaf._hooks, cot[leaf]), create_graph)
        for key, g in cot.taken.items():  # non-leaf inputs= get their gradient in .grad, as PyTorch does
            _accumulate(watch[key], g, create_graph)
        run_post_backward_hooks(leaves)


def _release(node):
    """Free what a node saved for its backward; only a node that saved something refuses a second
    backward (PyTorch's rule: x + 1 can be differentiated again, x * y cannot). An autograd.Function's
    saved tensors belong to its ctx, shared by its outputs' nodes: the ctx remembers the backward pass
    that used them, and refuses a later one."""
    held = getattr(node.prim, "saved_attrs", ())   # saved values a prim keeps in its attributes
    had = node.out is not None or any(t is not None for t in node.saved) or bool(held)
    node.saved, node.out, node.freed = (), None, node.freed or had
    if held:
        node.attrs = dict(node.attrs, **{k: () for k in held})
    ctx = getattr(node.prim, "ctx", None)
    if ctx is not None and any(t is not None for t in getattr(ctx, "_saved", ())):
        ctx._used_by = _PASS[0]


_PASS = [None]   # the backward pass running now (a fresh object per backward() / autograd.grad)


def current_pass():
    return _PASS[0]


@contextlib.contextmanager
def _new_pass():   # (a backward inside a backward, checkpoint's recomputation, gives the outer one back)
    outer, _PASS[0] = _PASS[0], object()
    try:
        yield
    finally:
        _PASS[0] = outer


def _accumulate(leaf, g, create_graph=False):
    # The first gradient is copied: g may be the caller's `gradient` or the very array another leaf
    # receives (add's VJP passes g to both operands), and an in-place change of one leaf's .grad
    # (clipping, unscaling) must not change another's.
    if not create_graph:
        g = g.detach()
    old = leaf._grad
    if old is None:
        leaf._grad = g.clone()
    elif _accumulates_in_place(old, g, create_graph):   # as PyTorch: a reference to .grad sees the sum
        old._data += g._data
        old._version[0] += 1
    else:
        leaf._grad = old + g


def _accumulates_in_place(old, g, create_graph):
    """Whether .grad can take the next gradient in its own memory: both real arrays of one layout,
    the old one writable and without history (with create_graph the sum keeps history instead)."""
    return (not create_graph and old._grad_fn is None and not old.requires_grad and old._data is not None
            and g._data is not None and old.shape == g.shape and old.dtype is g.dtype and old.device == g.device
            and getattr(old._data.flags, "writeable", True))


# ---------------------------------------------------------------------- tensor hooks
_RETAIN = -1  # retain_grad's hook: runs after the user's hooks, as in PyTorch
hooks_version = [0]  # changes with every hook added or removed: a compiled step that ran leaf hooks guards on it


def register_hook(t, fn):
    """Tensor.register_hook: fn(grad) runs each time the gradient with respect to t is computed;
    what it returns (if not None) replaces that gradient. A leaf's hooks run before the gradient is
    accumulated into .grad. Returns a handle whose remove() unregisters it."""
    if not t.requires_grad:
        raise AutogradError(f"register_hook on a tensor that does not require grad (shape {tuple(t.shape)}); "
                            "call .requires_grad_() on it first")
    return _add_hook(t, fn, next(_hook_keys))


def retain_grad(t):
    """Tensor.retain_grad: a non-leaf tensor keeps its gradient in .grad after backward."""
    if not t.requires_grad:
        raise AutogradError(f"retain_grad() on a tensor that does not require grad (shape {tuple(t.shape)})")
    if t._grad_fn is None:
        return  # a leaf keeps its .grad anyway
    ref = weakref.ref(t)

    def keep(g):
        x = ref()
        if x is not None:
            _accumulate(x, g, is_grad_enabled())
    _add_hook(t, keep, _RETAIN)


def retains_grad(t):
    return t._grad_fn is not None and _RETAIN in (t._grad_fn.hooks or {})


def _add_hook(t, fn, key):
    from . import dispatch
    if t._sym is not None or dispatch.tracer() is not None:
        raise TraceError("Tensor hooks (register_hook, retain_grad) cannot be added inside gradc.compile; add "
                         "them to the leaf tensors before calling the compiled function")
    if t._grad_fn is not None:
        if t._grad_fn.hooks is None:
            t._grad_fn.hooks = {}
        store = t._grad_fn.hooks
    else:
        if t._hooks is None:
            t._hooks = {}
        store = t._hooks
    store[key] = fn
    if _RETAIN in store:  # keep retain_grad last
        store[_RETAIN] = store.pop(_RETAIN)
    hooks_version[0] += 1
    return HookHandle(key, store)


def run_hooks(hooks, g):
    """g passed through the hooks of one tensor, in the order they were added."""
    for fn in list((hooks or {}).values()):
        new = fn(g)
        if new is not None:
            if getattr(new, "shape", None) != g.shape:
                raise AutogradError(f"a tensor hook returned a gradient of shape {shape_or(new, None)} for "
                                    f"a gradient of shape {tuple(g.shape)}; return None or a tensor of the same shape")
            g = new
    return g


# ---------------------------------------------------------------------- post-backward hooks
_post_backward_hooks = {}  # key -> (callable that returns the hook or None, ids of the watched tensors)
_hook_keys = itertools.count()


class HookHandle:
    """What registering a hook returns (torch.utils.hooks.RemovableHandle): remove() unregisters it."""
    __slots__ = ("key", "store")

    def __init__(self, key, store=None):
        self.key, self.store = key, _post_backward_hooks if store is None else store

    def remove(self):
        if self.store.pop(self.key, None) is not None:
            hooks_version[0] += 1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


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


# ---------------------------------------------------------------------- torch.autograd.grad
class _Watched(dict):
    """The cotangents of one backward walk; remembers those of `watch` (non-leaf inputs of grad())
    when the walk takes them."""

    def __init__(self, watch):
        super().__init__()
        self.watch, self.taken = watch, {}

    def pop(self, key, *default):
        value = super().pop(key, *default)
        if id(key) in self.watch and value is not None:
            self.taken[id(key)] = value
        return value


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False, only_inputs=True,
         allow_unused=None, is_grads_batched=False, materialize_grads=False):
    """The gradients of `outputs` with respect to `inputs` (a tuple, one per input), as
    torch.autograd.grad: nothing is accumulated into .grad. With create_graph=True the gradients
    have history of their own, so a gradient penalty can be differentiated again (WGAN-GP).
    `only_inputs` is accepted as PyTorch accepts it (deprecated there, with no effect)."""
    from . import dispatch
    if dispatch.tracer() is not None:
        raise TraceError("gradc.autograd.grad inside gradc.compile is not supported; call loss.backward() in "
                         "the compiled function, or compute this gradient eagerly")
    if is_grads_batched:
        raise AutogradError("autograd.grad(is_grads_batched=True) is not supported; loop over the grad_outputs")
    single = not isinstance(outputs, (tuple, list))
    outputs = [outputs] if single else list(outputs)
    one_input = not isinstance(inputs, (tuple, list))
    inputs = [inputs] if one_input else list(inputs)
    if grad_outputs is None or not isinstance(grad_outputs, (tuple, list)):
        grad_outputs = [grad_outputs] * len(outputs) if grad_outputs is None else [grad_outputs]
    if len(grad_outputs) != len(outputs):
        raise AutogradError(f"autograd.grad: {len(grad_outputs)} grad_outputs for {len(outputs)} outputs")
    for t in inputs:
        if not t.requires_grad:
            raise AutogradError(f"autograd.grad: an input (shape {tuple(t.shape)}) does not require grad; create it "
                                "with requires_grad=True or call .requires_grad_()")
    retain = create_graph if retain_graph is None else retain_graph
    watch = {id(t._grad_fn) for t in inputs if t._grad_fn is not None}
    cot = _Watched(watch)
    roots = []
    for out, g in zip(outputs, grad_outputs):
        if not out.requires_grad:
            raise AutogradError(f"autograd.grad: an output (shape {tuple(out.shape)}) does not require grad and has no "
                                "grad_fn")
        if g is None:
            if out.numel() != 1:
                raise AutogradError(f"autograd.grad: grad_outputs is needed for an output of shape {tuple(out.shape)} "
                                    "(it can be implicit only for one-element outputs)")
            g = out.detach().new_ones(out.shape)
        key = out._grad_fn if out._grad_fn is not None else out
        cot[key] = g if key not in cot else cot[key] + g
        if out._grad_fn is not None:
            roots.append(out._grad_fn)

    def release(node):
        if not retain:
            _release(node)

    with set_grad_enabled(bool(create_graph)), _new_pass():
        backprop(_topological(*roots), cot, lambda node: node.unpack(create_graph), release)
        result = []
        for t in inputs:
            g = cot.taken.get(id(t._grad_fn)) if t._grad_fn is not None else dict.get(cot, t)
            if t._grad_fn is None and g is not None:
                g = run_hooks(t._hooks, g)
            result.append(g)
    for i, (t, g) in enumerate(zip(inputs, result)):
        if g is None:
            if materialize_grads:
                g = t.detach().new_zeros(t.shape)
            elif not allow_unused:
                raise AutogradError("autograd.grad: one of the differentiated tensors does not appear in the "
                                    "graph of the outputs; pass allow_unused=True to get None for it")
        elif not create_graph:
            g = g.detach()
        result[i] = g
    return tuple(result)


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False, inputs=None):
    """torch.autograd.backward: the gradients of several outputs accumulated in one backward pass
    (as if their weighted sum were differentiated: a graph they share is walked once)."""
    outs = [tensors] if not isinstance(tensors, (tuple, list)) else list(tensors)
    grads = [grad_tensors] * len(outs) if not isinstance(grad_tensors, (tuple, list)) else list(grad_tensors)
    if len(grads) != len(outs):
        raise AutogradError(f"autograd.backward: {len(grads)} grad_tensors for {len(outs)} tensors")
    if len(outs) == 1:
        return outs[0].backward(grads[0], retain_graph, create_graph, inputs)
    total = None
    for out, g in zip(outs, grads):
        if g is None and out.numel() != 1:
            raise AutogradError(f"autograd.backward: grad_tensors is needed for a tensor of shape {tuple(out.shape)}")
        term = (out * g).sum() if g is not None else out.sum()
        total = term if total is None else total + term
    return total.backward(None, retain_graph, create_graph, inputs)


def Variable(data, requires_grad=False, volatile=False):
    """torch.autograd.Variable, which PyTorch folded into Tensor: the tensor itself, with
    requires_grad set as asked."""
    if volatile:   # PyTorch's own behaviour: a warning, and no effect
        import warnings
        warnings.warn("volatile was removed and now has no effect; use `with gradc.no_grad():` instead",
                      UserWarning, stacklevel=2)
    if requires_grad:
        data.requires_grad_(True)
    return data
