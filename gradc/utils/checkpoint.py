"""Activation checkpointing, as torch.utils.checkpoint: a segment's intermediate values are freed
after its forward and computed again during backward, trading compute for memory.

`checkpoint(fn, *args)` runs fn once with history, notes the leaves that require grad it reached
(parameters, tensors it closed over), and keeps only its inputs and results. Backward runs fn
again on the saved inputs, with the random state fn started from (dropout draws the same masks,
preserve_rng_state=True), and hands the gradients to the inputs and those leaves, so hooks,
`backward(inputs=...)` and `autograd.grad` see them as without checkpointing. Both of PyTorch's
variants (use_reentrant True or False) give these gradients; this is the non-reentrant one, which
also works with autograd.grad.

Under gradc.compile the function is traced as it is: the compiled program's memory plan decides
what is kept, and values and gradients are the same. State the segment writes (BatchNorm's
running statistics) is written again where a traced backward reaches its results, as eager
backward's recomputation writes it again."""
from .. import autograd, dispatch
from ..errors import TraceError
from ..custom_function import Function
from ..random import get_rng_state, set_rng_state
from ..tensor import Tensor


def _leaves(outputs, inputs):
    """The tensors requiring grad at the leaves of the outputs' history, other than the inputs."""
    found, seen, skip = [], set(), {id(t) for t in inputs}
    stack = [o._grad_fn for o in outputs if isinstance(o, Tensor) and o._grad_fn is not None]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        for p in node.parents:
            if isinstance(p, autograd.Node):
                stack.append(p)
            elif isinstance(p, Tensor) and id(p) not in skip and id(p) not in seen:
                seen.add(id(p))
                found.append(p)
    return found


class _Recompute(Function):
    @staticmethod
    def forward(ctx, segment, *tensors):
        ctx.segment = segment
        return segment.results

    @staticmethod
    def backward(ctx, *grads):
        seg = ctx.segment
        args = list(seg.args)
        inputs = []
        for i, a in seg.tensor_slots:   # fresh leaves: the recomputed history stops at them
            args[i] = a.detach().requires_grad_(a.requires_grad)
            inputs.append(args[i])
        now = get_rng_state()
        if seg.rng is not None:
            set_rng_state(seg.rng)
        try:
            with autograd.enable_grad():
                out = seg.fn(*args, **seg.kwargs)
        finally:
            set_rng_state(now)
        outs = out if isinstance(out, tuple) else (out,)
        pairs = [(o, g) for o, g in zip(outs, grads) if isinstance(o, Tensor) and o.requires_grad and g is not None]
        targets = [t for t in inputs + seg.leaves if t.requires_grad]
        got = iter(autograd.grad([o for o, _ in pairs], targets, [g for _, g in pairs], allow_unused=True)
                   if pairs and targets else [None] * len(targets))
        found = [next(got) if t.requires_grad else None for t in inputs + seg.leaves]
        return (None,) + tuple(found)


class _Segment:
    __slots__ = ("fn", "args", "kwargs", "tensor_slots", "leaves", "rng", "results")


def checkpoint(function, *args, use_reentrant=None, context_fn=None, determinism_check="default", debug=False,
               preserve_rng_state=True, **kwargs):
    """function(*args, **kwargs), its intermediate values recomputed during backward (module docs)."""
    if context_fn is not None:
        raise TypeError("checkpoint(context_fn=...) is not supported by gradc; leave it out")
    tracer = dispatch.tracer()
    if tracer is not None and autograd.is_grad_enabled():
        return _traced(tracer, function, args, kwargs)
    if tracer is not None or not autograd.is_grad_enabled():
        return function(*args, **kwargs)
    seg = _Segment()
    seg.fn, seg.args, seg.kwargs = function, args, kwargs
    seg.tensor_slots = [(i, a) for i, a in enumerate(args) if isinstance(a, Tensor)]
    seg.rng = get_rng_state() if preserve_rng_state else None
    out = function(*args, **kwargs)
    outs = out if isinstance(out, tuple) else (out,)
    seg.leaves = _leaves(outs, [a for _, a in seg.tensor_slots])
    # only the results' values are kept: their history (the intermediate values) is dropped
    seg.results = tuple(o.detach() if isinstance(o, Tensor) else o for o in outs)
    if not any(isinstance(o, Tensor) and o.requires_grad for o in outs):
        return out
    results = _Recompute.apply(seg, *[a for _, a in seg.tensor_slots], *seg.leaves)
    return results if isinstance(out, tuple) else results[0]


def _traced(tracer, function, args, kwargs):
    """The segment under gradc.compile: traced once, and noted to run again when a traced backward
    reaches its results if it wrote state (its results then are dead: only the writes stay)."""
    def draws():
        return sum(b.kind == "random" for b in tracer.bindings)
    writes, drawn = tracer.writes, draws()
    out = function(*args, **kwargs)
    outs = out if isinstance(out, tuple) else (out,)
    results = {tracer.node_of(o) for o in outs if isinstance(o, Tensor) and o.requires_grad}
    if tracer.writes > writes and results:
        if draws() > drawn:
            raise TraceError(f"a checkpointed segment at {tracer.where()} both draws random numbers and updates state "
                             "(dropout and BatchNorm): eagerly backward replays its draws to update the state again, "
                             "which a compiled program cannot; checkpoint the two apart")
        tracer.replays.append((lambda: function(*args, **kwargs), results, tracer.where()))
    return out


def checkpoint_sequential(functions, segments, input, use_reentrant=None, **kwargs):
    """Run `functions` (an nn.Sequential or a list of modules) in order, in `segments` chunks; each
    chunk but the last is checkpointed (as PyTorch does)."""
    functions = list(functions.children()) if hasattr(functions, "children") else list(functions)
    size = max(1, len(functions) // max(1, segments))

    def run(start, end):
        def chunk(x):
            for f in functions[start:end]:
                x = f(x)
            return x
        return chunk
    end = 0
    for start in range(0, size * (segments - 1), size):
        end = start + size
        input = checkpoint(run(start, end), input, use_reentrant=use_reentrant, **kwargs)
    return run(end, len(functions))(input)
