"""Tracing: the op table records into an IR graph instead of executing.

While a `Tracer` is active, every primitive call on tensors lands in `Tracer.record`. Tensors the
function reads but did not create (arguments, parameters, buffers, `.grad`, optimizer state) are
lifted to graph inputs by identity; what the function leaves behind (new parameter values, new
`.grad`, new optimizer state) becomes graph outputs that the runtime writes back after each run."""
import gc
import os
import sys
import threading
import weakref

import numpy as np

from . import autograd
from . import dispatch
from . import dtypes as D
from .creation import ones, tensor
from .device import CPU, common_device
from .errors import AutogradError, DeviceError, GradcError, TraceError
from .internal import internal
from .ir import Graph
from .shapes import Size
from .passes.autodiff import differentiate
from .runtime.wiring import Binding
from .tensor import Tensor

_ident = threading.get_ident
_PKG_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_NUMPY_DIR = os.path.dirname(os.path.abspath(np.__file__)) + os.sep   # (a line in NumPy is not the user's either)


def user_location(skip_internal=True, files=None, frame=None):
    """file:line of the innermost frame outside gradc (the user's code that made the call), from
    the caller's frame or `frame` outwards; `files`: the table of the working directory (files_here())."""
    f = frame if frame is not None else sys._getframe(1)
    if files is None:
        files = files_here()
    while f is not None:
        fn = f.f_code.co_filename
        known = files.get(fn)
        if known is None:
            # the interpreter's own runners (python -m) are never the user's line
            kind = "frozen" if fn.startswith("<frozen ") else \
                ("gradc" if os.path.abspath(fn).startswith((_PKG_DIR, _NUMPY_DIR)) else "user")
            known = files[fn] = (kind, _shown_path(fn))
        if known[0] == "user" or known[0] == "gradc" and not skip_internal:
            return f"{known[1]}:{f.f_lineno}"
        f = f.f_back
    return None


_FILES = {}   # working directory -> {code file name: ("frozen" | "gradc" | "user", the name shown)}


def files_here():
    cwd = os.getcwd()
    files = _FILES.get(cwd)
    if files is None:
        files = _FILES[cwd] = {}
    return files


def _shown_path(fn):
    try:
        rel = os.path.relpath(fn)
        return rel if not rel.startswith("..") else fn
    except ValueError:
        return fn


class _TracedHistory:
    """grad_fn of a traced result that requires grad (the history lives in the graph)."""

    def name(self):
        return "TracedBackward"

    def __repr__(self):
        return "<TracedBackward>"


_TRACED = _TracedHistory()


class Tracer(dispatch.Mode):
    """The tracing interpreter: pushed on the dispatch stack while a function is traced."""

    def __init__(self, graph=None):
        self.graph = graph if graph is not None else Graph()
        self.bindings = []        # one per graph input
        self.lifted = {}          # id(tensor) -> (tensor, input node, saved fields)
        self.grad_owner = {}      # id(grad tensor) -> the tensor whose .grad it is
        self.entry_grads = {}     # id(tensor) -> (tensor, .grad at entry, first value assigned)
        self.created = []         # weak refs to the symbolic tensors made (a WeakSet costs more per op)
        self.views = {}           # id(view) -> (weak ref to it, weak refs to every tensor over the same memory)
        self.bases = {}           # id(tensor that is no view) -> (weak ref to it, that list for its views)
        self.freed = set()
        self.leaf_write = None    # where a leaf that requires grad was first written in place outside autograd
        self.hooked = {}  # id -> leaf a traced backward accumulated into: its hooks are baked into the trace
        self.optimizers = []
        self.where_override = None
        self._files = None        # the working directory's table of code files (user_location)
        self.numbers = []         # the inputs that hold float arguments
        self.aliases = {}         # id(tensor) -> weak refs to the tensors sharing its storage through detach()
        self.sizes = None         # the symbolic sizes of dynamic dimensions (gradc.symint.Sizes), if any
        self.undo = []            # how to take back Python state this trace wrote (if it is abandoned)
        self.writes = 0           # in-place writes of tensors from outside the call (assign)
        self.replays = []         # checkpointed segments that wrote state: (run again, result nodes, where)

    # ------------------------------------------------------------------ activation
    def __enter__(self):
        self._files = files_here()   # (one getcwd per trace, not one per recorded op)
        self.thread = _ident()
        dispatch.push(self)
        return self

    def __exit__(self, *exc):
        dispatch.pop(self)
        return False

    def where(self):
        return self.where_override or user_location(files=self._files)

    # ------------------------------------------------------------------ symbolic tensors
    def sym(self, nid, requires_grad=False, device=None):
        d = self.graph.node(nid)
        t = object.__new__(Tensor)
        t._data, t._sym = None, (self, nid)
        t.shape, t.dtype, t.device = Size(d["shape"]), D.ALL[d["dtype"]], device or CPU
        t.requires_grad, t._grad, t._version, t._hooks = bool(requires_grad), None, [0], None
        t._grad_fn = _TRACED if requires_grad else None
        self.created.append(weakref.ref(t))
        return t

    def node_of(self, t):
        if t._sym is not None:
            if t._sym[0] is not self:
                raise TraceError("a tensor from another trace was used here; do not keep tensors across "
                                 "compiled calls in Python state")
            return t._sym[1]
        return self.lift(t)

    def lift(self, t, binding=None, shape=None):
        """Make a concrete tensor a graph input; it stays symbolic until the trace ends. `shape`: its
        shape with symbolic sizes (gradc.symint), for an argument whose dimensions are dynamic."""
        if binding is None:
            owner = self.grad_owner.get(id(t))
            if owner is not None and owner._grad is t and (id(owner) in self.lifted or owner._data is not None):
                # bound by slot: the run reads owner.grad afresh each call (the owner is an input too)
                slot = self.node_of(owner) if id(owner) not in self.lifted else self.lifted[id(owner)][1]
                binding = Binding("grad", None, self.graph.inputs.index(slot))
            else:
                binding = Binding("state", t)
        nid = self.graph.add_input(f"in{len(self.graph.inputs)}", shape or t.shape, t.dtype.name)
        self.bindings.append(binding)
        entry = self.entry_grads.get(id(t))
        saved = (t._data, t.requires_grad, t._grad_fn, t.grad if entry is None else entry[1], t._version, t.shape)
        self.lifted[id(t)] = (t, nid, saved)
        t._data, t._sym = None, (self, nid)
        if shape is not None:
            t.shape = Size(shape)
        if t.grad is not None:
            self.grad_owner[id(t.grad)] = t
        return nid

    def entry_value(self, t):
        """What a tensor lifted into the graph held when the program starts (its input node), or None."""
        lifted = self.lifted.get(id(t))
        return self.sym(lifted[1], device=t.device) if lifted is not None and lifted[0] is t else None

    def lifted_at(self, slot):
        """(tensor, node, saved fields) of the tensor lifted into input `slot` (None for inputs
        that are no tensor of the caller's, e.g. random draws)."""
        nid = self.graph.inputs[slot]
        return next((v for v in self.lifted.values() if v[1] == nid), None)

    def note_grad(self, t, value):
        """`.grad` of t is being assigned: remember what it held when the function was entered (a
        tensor made inside the call has no earlier value, and nothing outside to write back to)."""
        if t._sym is not None and t._sym[0] is self and id(t) not in self.lifted:
            return
        if id(t) not in self.entry_grads:
            lifted = self.lifted.get(id(t))
            # Only whether a value was assigned is kept: holding the (traced) tensor itself would keep
            # it alive, and `escaped` would take it for new state (a one-shot program, retraced per call).
            self.entry_grads[id(t)] = (t, lifted[2][3] if lifted else t._grad, None if value is None else True)

    def restore(self):
        """Give every lifted tensor back its concrete value and attributes."""
        for t, old, _ in self.entry_grads.values():
            t._grad = old
        for t, _, (data, rg, gf, grad, version, shape) in self.lifted.values():
            t._data, t._sym, t.requires_grad, t._grad_fn, t._grad, t._version = data, None, rg, gf, grad, version
            t.shape = shape
        if self.sizes is not None:
            self.sizes.open = False

    # ------------------------------------------------------------------ recording
    def bind(self, prim, args, attrs):
        if self.thread != _ident():   # another thread's op: run as it would without this trace
            return self.below.bind(prim, args, attrs)
        # gradc's own primitives run none of the user's code while recorded: the read hook is off
        return _record_internally(self, prim, args, attrs) if prim.closed else self.record(prim, args, attrs)

    def record(self, prim, args, attrs):
        where = self.where()
        dev = common_device(prim.name, args, where)
        ids = [self.node_of(a) for a in args]
        try:
            shape, dtype = prim.infer([a.shape for a in args], [a.dtype for a in args], attrs)
        except GradcError as e:
            raise type(e)(f"{e} (at {where})") from None
        grad_on = autograd.is_grad_enabled() and prim.diff
        edges = [grad_on and a.requires_grad for a in args]
        nid = self.graph.add(prim.name, ids, shape, dtype.name, attrs, where, edges)
        out = self.sym(nid, requires_grad=any(edges) and dtype.is_floating_point, device=dev)
        if prim.view:
            self.share_memory(args[0], out)
        return out

    def number(self, binding, name, dev=None):
        """A Python float argument as a program input: a 0-d float64 tensor (gradc.traced_float)."""
        nid = self.graph.add_input(name, (), "float64")
        self.bindings.append(binding)
        t = self.sym(nid, device=dev)
        self.numbers.append(t)
        return t

    def random(self, spec, dtype, dev):
        """Random draws made while tracing: a program input bound to a fresh draw per call."""
        nid = self.graph.add_input(f"in{len(self.graph.inputs)}", spec[1], spec[2], where=self.where())
        self.bindings.append(Binding("random", spec))
        return self.sym(nid, device=dev)

    def constant(self, data, dtype, dev):
        nid = self.graph.add_const(np.asarray(data, dtype=dtype.np), where=self.where())
        return self.sym(nid, device=dev)

    def fill(self, shape, value, dtype, dev, kind="fill"):
        """A constant whose shape or value holds symbolic sizes, made concrete per size (Graph.with_sizes):
        uniform (kind "fill"), or np.arange(*value) (kind "arange")."""
        nid = self.graph.add("const", shape=shape, dtype=dtype.name, attrs={kind: value}, where=self.where())
        return self.sym(nid, device=dev)

    def assign(self, target, result, what):
        """An in-place op: `target` now holds `result`'s value."""
        if self.is_view(target):
            # Eagerly the write lands in the memory the view shares. Nothing can see that when no other
            # tensor over it is alive (a conv's channels-last result, say): then it is the view's own value.
            seen = {id(r()) for r in self.aliases.get(id(target), ())} | {id(target)}
            if any(r() is not None and id(r()) not in seen for r in self.views[id(target)][1]):
                raise TraceError(f"in-place change of a view (the result of reshape/slice/transpose/expand) at "
                                 f"{self.where()} whose base tensor is still in use is not supported inside "
                                 "gradc.compile; use an out-of-place op (y = y + 1) or .clone() the view first")
        else:
            entry = self.bases.get(id(target))
            if entry is not None and entry[0]() is target and any(r() is not None for r in entry[1][1:]):
                raise TraceError(f"in-place change at {self.where()} of a tensor that a live view (reshape/slice/"
                                 "transpose/expand result) shares memory with is not supported inside gradc.compile: "
                                 "eagerly the view would see the change; make the view after the change, or use an "
                                 "out-of-place op (y = y + 1)")
        if target._sym is None or id(target) in self.lifted:
            self.writes += 1
        if target._sym is None:
            self.lift(target)
        if self.leaf_write is None and not autograd.is_grad_enabled() and target.requires_grad and target._grad_fn is None:
            self.leaf_write = self.where()
        target._sym = (self, self.node_of(result))
        if autograd.is_grad_enabled():   # as eagerly: under no_grad a tensor keeps requires_grad and its history
            target.requires_grad = result.requires_grad
            target._grad_fn = result._grad_fn if result.requires_grad else None
        group = [r() for r in self.aliases.get(id(target), ())]
        if any(other is target for other in group):  # (not a dead tensor's reused id)
            for other in group:
                if other is not None and other is not target:
                    # eagerly they share storage (p.data.add_(...) updates p), so they see the write
                    if other._sym is None:
                        self.lift(other)
                    other._sym = target._sym
        return target

    def is_view(self, t):
        entry = self.views.get(id(t))
        return entry is not None and entry[0]() is t

    def own_memory(self, t):
        """`t` was made by a view op but holds a copy (clone): it shares no memory."""
        if self.is_view(t):
            memory = self.views.pop(id(t))[1]
            memory[:] = [r for r in memory if r() is not t]

    def share_memory(self, base, out):
        """`out` is a view of `base` (or detached from it): they share memory."""
        if self.is_view(base):
            memory = self.views[id(base)][1]
        else:  # one list per base, so that views of one tensor see each other
            entry = self.bases.get(id(base))
            if entry is None or entry[0]() is not base:
                entry = self.bases[id(base)] = (weakref.ref(base), [weakref.ref(base)])
            memory = entry[1]
        memory.append(weakref.ref(out))
        self.views[id(out)] = (weakref.ref(out), memory)

    def detach(self, t):
        out = self.sym(self.node_of(t), device=t.device)
        group = self.aliases.get(id(t))
        if group is None or not any(r() is t for r in group):
            group = self.aliases[id(t)] = [weakref.ref(t)]
        group.append(weakref.ref(out))  # weak: a detached tensor kept alive would look like new state
        self.aliases[id(out)] = group
        if self.is_view(t):
            self.share_memory(t, out)
        return out

    def to_device(self, t, dev):
        raise DeviceError(f"moving a tensor to {dev} inside a compiled function (at {self.where()}) is not "
                          "supported; move inputs and the model before calling it")

    def concretize(self, t, what):
        raise TraceError(
            f"{what} needs the value of a traced tensor at {self.where()}, but gradc.compile traces shapes, not "
            "values. Use gradc.where(cond, a, b) instead of a Python branch on a tensor, keep item()/numpy() "
            "outside the compiled function")

    # ------------------------------------------------------------------ autograd at trace time
    def backward(self, out, gradient=None, retain_graph=False, create_graph=False, inputs=None):
        if create_graph:
            raise TraceError(f"backward(create_graph=True) inside gradc.compile is not supported (at {self.where()}); "
                             "compute higher-order gradients eagerly")
        if not out.requires_grad:
            raise AutogradError("backward() on a tensor that does not require grad; create the inputs with "
                                f"requires_grad=True (at {self.where()})")
        if gradient is None:
            if out.numel() != 1:
                raise AutogradError(f"backward() without a gradient needs a scalar output, got shape {tuple(out.shape)} "
                                    f"(at {self.where()}); reduce it first or pass gradient=")
            seed = ones(out.shape, dtype=out.dtype)
        else:
            seed = gradient if isinstance(gradient, Tensor) else tensor(gradient, dtype=out.dtype)
        # a leaf's gradient is with respect to the value it holds now (an update under no_grad may have replaced it)
        leaves = [(t, self.node_of(t)) for t, _, saved in self.lifted.values() if saved[1] and saved[2] is None]
        self.hooked.update((id(t), t) for t, _ in leaves)   # (hooks added inside the call are traced anyway)
        # and leaves made inside the traced call (gradc.tensor(..., requires_grad=True) there)
        leaves += [(t, t._sym[1]) for t in (r() for r in self.created) if t is not None and t.requires_grad
                   and t._grad_fn is None and t._sym is not None and t._sym[0] is self]
        if inputs is not None:
            chosen = {id(t) for t in inputs}
            if any(t._sym is not None and t._sym[0] is self for t in inputs):
                raise TraceError(f"backward(inputs=...) inside gradc.compile takes leaf tensors made outside it (at "
                                 f"{self.where()}); pass parameters or inputs that require grad")
            leaves = [(t, nid) for t, nid in leaves if id(t) in chosen]
        wrt = [nid for _, nid in leaves]
        with autograd.no_grad():
            grads, visited = differentiate(self, [(self.node_of(out), self.node_of(seed))], wrt)
            if visited & self.freed:
                raise AutogradError("trying to backward through the graph a second time inside a compiled "
                                    f"function (at {self.where()}); pass retain_graph=True to the first backward")
            self.freed |= visited
            for replay in [r for r in self.replays if r[1] & visited]:   # (gradc.utils.checkpoint)
                self.replays.remove(replay)
                replay[0]()
            for t, nid in leaves:
                g = grads.get(nid)
                if g is not None:
                    g = autograd.run_hooks(t._hooks, self.sym(g, device=t.device))
                    t.grad = g if t.grad is None else t.grad + g
            autograd.run_post_backward_hooks([t for t, nid in leaves if nid in grads])

    def watch_optimizer(self, opt):
        """An optimizer steps during tracing: remember its state (to roll back if the trace is not
        run) and its hyper-parameters (a guard: changing lr later must retrace, not go stale)."""
        if all(o is not opt for o, _, _ in self.optimizers):
            state = {p: dict(st) for p, st in opt.state.items()}
            flats = [(f, dict(f.state)) for fl in getattr(opt, "_flats", {}).values() for f in fl]  # (flat=True)
            self.optimizers.append((opt, (state, flats), settings_of(opt)))

    def rollback_optimizers(self):
        for opt, (state, flats), _ in self.optimizers:
            opt.state = state
            for f, st in flats:
                f.state = st

    def created_state(self):
        """Optimizer state tensors the traced steps made (as real tensors, see Optimizer.step)."""
        made = []
        for opt, (state, flats), _ in self.optimizers:
            made += [t for p, k, t in state_tensors(opt) if state.get(p, {}).get(k) is not t]
            made += [t for f, st in flats for k, t in f.state.items() if st.get(k) is not t]
        return made

    def optimizer_settings(self):
        return [(opt, settings) for opt, _, settings in self.optimizers]

    def hook_guards(self):
        """A traced backward ran the leaves' Tensor hooks into the program: a guard that they are
        still the same hooks (cheap while no hook anywhere changed)."""
        if not self.hooked:
            return []
        leaves = [weakref.ref(t) for t in self.hooked.values()]

        def hooks():
            return [list((r()._hooks or {}).values()) if r() is not None else None for r in leaves]
        seen, traced = [autograd.hooks_version[0]], hooks()

        def guard(flat_args):
            if autograd.hooks_version[0] == seen[0]:
                return True
            same = hooks() == traced
            if same:
                seen[0] = autograd.hooks_version[0]
            return same
        guard.explain = lambda: ["a Tensor.register_hook hook was added to or removed from a tensor the traced "
                                 "backward reaches"]
        return [guard]

    # ------------------------------------------------------------------ finishing
    def escaped(self, keep):
        """Symbolic tensors still reachable after the function returned, other than `keep`: new state
        the function stored somewhere (e.g. optimizer moments created on the first step)."""
        keep_ids = {id(k) for k in keep} | set(self.lifted) | {id(t) for t in self.numbers}

        def alive():   # in node order (a detached or re-read tensor is made after later nodes)
            found = [t for t in (r() for r in self.created)
                     if t is not None and t._sym is not None and t._sym[0] is self and id(t) not in keep_ids]
            return sorted(found, key=lambda t: t._sym[1])
        gc.collect(1)   # the young generations hold what the trace made; a full collection only to confirm
        found = alive()
        # New optimizer state (moments made on the first step) is reachable for certain: a full
        # collection, which costs tens of milliseconds, only confirms anything else.
        held = {id(t) for opt, _, _ in self.optimizers for _, _, t in state_tensors(opt)}
        if all(id(t) in held for t in found):
            return found
        gc.collect()
        return alive()


_record_internally = internal(Tracer.record)


def state_tensors(opt):
    """(parameter, key, tensor) for every tensor in an optimizer's state."""
    return [(p, k, t) for p, st in opt.state.items() for k, t in st.items() if isinstance(t, Tensor)]


def settings_of(opt):
    """What a compiled step assumes about an optimizer: its options (for those that are program
    inputs, only the zeroness of the ones a traced update branched on; their current values are
    copied into the input tensors here), and the identity of the flat buffers its parameters live
    in (flat=True)."""
    flats = tuple(id(f.param) for fl in getattr(opt, "_flats", {}).values() for f in fl)
    sync = getattr(opt, "sync_hyper_inputs", None)
    groups = sync() if sync is not None else [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]
    return groups + [flats]
