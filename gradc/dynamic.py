"""Dynamic dimensions: which sizes of a call are traced symbolic, and the program that serves them.

A dimension is dynamic when gradc.compile(..., dynamic=True) makes every dimension so, when
`gradc.mark_dynamic(x, dim)` marked it on the tensor, or (the default, dynamic=None) once a call
traced again only because that size changed, as torch.compile's automatic dynamic shapes do.
dynamic=False never makes one. Sizes 0 and 1 are always traced as they are.

One trace serves every size of a dynamic dimension (gradc.symint records what the function
assumed about it, as guards), and one lowering of it serves every size the passes' and code
generators' own guards admit (`DynamicProgram`): a new size costs buffers allocated for it, not a
trace, pass or build."""
import dataclasses
import logging
import weakref
from collections import OrderedDict

from .errors import ShapeError
from .lower import lower as lower_graph
from .runtime.wiring import Binding
from .shapes import normalize_axis
from .runtime.aot import Backward
from .runtime.stats import Stats
from .symint import Sizes, concrete
from .tensor import Tensor
from .tracer import user_location

log = logging.getLogger("gradc")
DYNAMIC = "dynamic (>= 2)"   # a dynamic size in a call signature
KEEP = 16             # lowered programs kept per trace (the most recently used sizes)
MARKED = {}           # id(tensor) -> (weak ref to it, the dims marked on it)


def mark_dynamic(x, dim):
    """Trace dimension(s) `dim` of `x` symbolic in the compiled calls it is passed to: one trace
    for every size (torch._dynamo.mark_dynamic's habit). A size of 0 or 1 is still traced as it is
    (a call with it gets a program of its own), as gradc.compile(dynamic=True) does."""
    if not isinstance(x, Tensor):
        raise TypeError(f"mark_dynamic expects a tensor, got {type(x).__name__}")
    dims = dim if isinstance(dim, (list, tuple)) else [dim]
    if x.ndim == 0:
        raise ShapeError("mark_dynamic: a 0-d tensor has no dimension to mark")
    marked = {normalize_axis("mark_dynamic", int(d), x.ndim) for d in dims}
    key = id(x)
    entry = MARKED.get(key)
    if entry is not None and entry[0]() is x:
        marked |= entry[1]

    def forget(ref):
        if MARKED.get(key, (None,))[0] is ref:
            del MARKED[key]
    MARKED[key] = (weakref.ref(x, forget), frozenset(marked))


def dynamic_dims(flat, everything, automatic):
    """(flat index, dim) of every dimension of a call's tensors that is traced symbolic: all for
    dynamic=True, else those marked and those automatic dynamic chose; sizes of 2 or more only."""
    out = set()
    for i, t in enumerate(flat):
        if type(t) is float:
            continue
        entry = MARKED.get(id(t))
        marked = entry[1] if entry is not None and entry[0]() is t else ()
        for d, n in enumerate(t.shape):
            if n >= 2 and (everything or d in marked or (i, d) in automatic):
                out.add((i, d))
    return frozenset(out)


def signature_shape(shape, i, dims):
    return tuple(DYNAMIC if (i, d) in dims else n for d, n in enumerate(shape))


def changed_sizes(old, new, flat):
    """The (flat index, dim) of the sizes that alone make call signature `new` differ from `old`
    (what automatic dynamic makes symbolic); empty when anything else differs too."""
    if len(old) != len(new):
        return set()
    index = [i for i, t in enumerate(flat) if type(t) is not float]
    out = set()
    for (k0, v0), (k1, v1) in zip(old, new):
        if k0 != k1:
            return set()
        if k0 != "tensors":
            if v0 != v1:
                return set()
            continue
        if len(v0) != len(v1):
            return set()
        for i, a, b in zip(index, v0, v1):
            if a[1:] != b[1:] or len(a[0]) != len(b[0]):
                return set()
            out |= {(i, d) for d, (m, n) in enumerate(zip(a[0], b[0])) if m != n and DYNAMIC not in (m, n)}
    return out


def _bound(prog, lsizes, values, bindings, out_spec):
    """The Program lowered for symbolic sizes `lsizes`, run at these sizes."""
    stats = concrete(dict(prog.stats), lsizes, values)   # (the figures at these sizes)
    fields = dict(sizes=dict(values), bindings=bindings, out_spec=out_spec)
    if prog.backward is not None:
        bprog, wiring = prog.backward
        bprog = _bound(bprog, lsizes, values, bprog.bindings, bprog.out_spec)
        fields["backward"] = Backward(bprog, dict(wiring, cot_specs=concrete(wiring["cot_specs"], lsizes, values)))
        stats["backward"] = bprog.stats
    return prog.replace(stats=Stats(stats), **fields)


def failure_site(error):
    """file:line of the innermost frame of the user's code in an exception's traceback."""
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return (user_location(frame=tb.tb_frame) if tb is not None else None) or "an unknown line"


class DynamicProgram:
    """The program of a trace with symbolic sizes: what gradc.compile caches for its signature.
    Its guards are the trace's size guards (gradc.symint.Sizes) and then those of the program
    for the call's sizes.

    The trace is lowered with its sizes still symbolic: the passes and the code generators see
    size expressions, and what they assume about a size (a buffer that fits, a loop that runs
    more than one block) becomes a guard of the lowered program, as the trace's assumptions are
    guards of the trace. So one lowering serves every size its guards admit; a new size only
    binds the sizes (buffers allocated for them). A size that breaks a lowering guard is lowered
    again, symbolic again; a trace whose lowering cannot stay symbolic (a table made from a size)
    is lowered for each set of sizes instead."""

    def __init__(self, graph, spec, sizes):
        self.graph, self.spec, self.sizes = graph, spec, sizes
        self.one_shot = spec.one_shot
        self._lowered = OrderedDict()   # sizes -> Program, most recently used last
        self._generic = []              # [(lowering Sizes, Program for symbolic sizes)]
        self.symbolic = True            # False once a lowering for symbolic sizes failed: one per size then

    def program(self, values):
        key = tuple(sorted(values.items()))
        prog = self._lowered.get(key)
        if prog is None:
            prog = self._lowered[key] = self._lower(values)
            if len(self._lowered) > KEEP:
                self._lowered.popitem(last=False)
        else:
            self._lowered.move_to_end(key)
        return prog

    def _lower(self, values):
        sizes = self.sizes
        shown = ", ".join(f"{label} = {values[s]}" for s, (_, _, label) in sizes.symbols.items())
        bindings = [Binding(b.kind, concrete(b.ref, sizes, values), b.owner) if b.kind == "random" else b
                    for b in self.spec.bindings]
        out_spec = concrete(self.spec.out_spec, sizes, values)
        for lsizes, prog in self._generic:
            if lsizes.hold(values):
                return _bound(prog, lsizes, values, bindings, out_spec)
        if self.symbolic:
            log.info("gradc.compile: lowering the dynamic trace for symbolic sizes (first %s)", shown)
            lsizes = Sizes(lambda: None)
            lsizes.structural = True   # (the passes key dicts by shapes: by expression, for every size)
            for name, entry in sizes.symbols.items():
                lsizes.symbols[name], lsizes.hints[name] = entry, values[name]
            try:
                prog = lower_graph(self.graph.rebound(sizes, values, lsizes), self.spec)
            except Exception as e:   # (a stage that cannot take a symbolic size: lowered per size from now on)
                log.info("gradc.compile: the trace is lowered for each set of sizes (%s: %s)", type(e).__name__, e)
                self.symbolic = False
            else:
                self._generic.append((lsizes, prog))
                del self._generic[:-KEEP]   # (the most recent, as for programs per size)
                return _bound(prog, lsizes, values, bindings, out_spec)
            finally:
                lsizes.open = False
        log.info("gradc.compile: lowering the dynamic trace for %s", shown)
        spec = dataclasses.replace(self.spec, bindings=bindings, out_spec=out_spec)
        return lower_graph(self.graph.with_sizes(sizes, values), spec)

    def guards_hold(self, flat):
        values = self.sizes.values(flat)
        if not self.sizes.hold(values):
            return False
        return self.program(values).guards_hold(flat)

    def call_tree(self, flat):   # (looked up again, not kept from guards_hold: calls may come from threads)
        return self.program(self.sizes.values(flat)).call_tree(flat)

    def guard_failures(self, flat):
        if flat is None:
            return []
        values = self.sizes.values(flat)
        return self.sizes.failures(values) or self.program(values).guard_failures(flat)
