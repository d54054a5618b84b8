"""gradc.compile: trace a function (or module) per call signature into a Program and run that.

A call's signature (argument shapes, dtypes, devices, requires_grad flags, Python values, grad
mode, autocast state, module training flags) selects a cached Program; a new signature traces
again, which is how Python control flow stays dynamic. Programs also carry guards on the state
they read (parameter shapes, `.grad` presence, optimizer hyper-parameters) and are re-traced when
those change."""
import contextlib
import functools
import logging
import os
import time
import warnings

import numpy as np

from . import autograd, debug
from . import dtypes as D
from .errors import DeviceError, GradcError, TraceError
from .nn.module import Module, structure_epoch
from .pytree import flatten, unflatten
from .trace import Binding, Tracer
from .runtime.program import Effect, Program, planned_peak

log = logging.getLogger("gradc")
_EAGER = "eager"
BACKENDS = ("auto", "numpy", "cuda")


class CompiledFunction:
    """What gradc.compile returns: call it like the original function."""

    def __init__(self, fn, backend="auto", amp=None, dynamic=False, fullgraph=False, dump=None, fuse=True,
                 cache_limit=8):
        if backend not in BACKENDS:
            raise GradcError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        if amp not in (None, "fp16"):
            raise GradcError(f"amp must be None or 'fp16', got {amp!r}")
        self.fn = fn
        self.backend = backend
        self.amp, self.dynamic, self.fullgraph, self.dump, self.fuse = amp, dynamic, fullgraph, dump, fuse
        if dynamic:
            warnings.warn("gradc.compile(dynamic=True): programs are specialised to shapes; each new input shape "
                          "traces once (cache_limit bounds how often)", stacklevel=3)
        self.cache_limit = cache_limit
        self.trace_count = 0
        self._programs = {}
        self._module_cache = None
        self._last_sig = None
        self._warned_limit = False
        try:
            functools.update_wrapper(self, fn)
        except AttributeError:
            pass

    @property
    def __name__(self):
        return getattr(self.fn, "__name__", type(self.fn).__name__)

    # ------------------------------------------------------------------ signatures
    def _signature(self, flat, spec):
        parts = [("grad mode", autograd.is_grad_enabled())]
        first = {}
        for i, t in enumerate(flat):
            parts.append((f"tensor argument {i}",
                          (t.shape, t.dtype.name, str(t.device), t.requires_grad, first.setdefault(id(t), i))))
        parts.append(("Python arguments", _spec_key(spec)))
        parts.append(("autocast", self._autocast_dtype()))
        modules = _modules_of(self.fn)
        if modules:
            parts += self._module_parts(modules)
        return tuple(parts)

    def _module_parts(self, modules):
        """Training flags and parameter/buffer identities of the modules the function reaches (the
        program binds them by identity: a replaced one must retrace). Walking the module trees is
        redone only when some module changed since the last call."""
        key = (structure_epoch(), tuple(map(id, modules)))
        if self._module_cache is None or self._module_cache[0] != key:
            parts = [("module training flags", tuple(m.training for o in modules for m in o.modules())),
                     ("module parameters and buffers", tuple(id(t) for o in modules for t in o.parameters()) +
                      tuple(id(t) for o in modules for t in o.buffers()))]
            self._module_cache = (key, parts)
        return self._module_cache[1]

    def _why_retrace(self, sig):
        if self._last_sig is None:
            return "first call"
        if len(sig) != len(self._last_sig):
            return "the number of tensor arguments changed"
        changed = [f"{a[0]}: {a[1]} -> {b[1]}" for a, b in zip(self._last_sig, sig) if a != b]
        return "; ".join(changed) or "guards failed (state such as parameter shapes, .grad or optimizer settings changed)"

    # ------------------------------------------------------------------ calling
    def __call__(self, *args, **kwargs):
        flat, spec = flatten((args, kwargs))
        sig = self._signature(flat, spec)
        entry = self._programs.get(sig)
        if entry == _EAGER:
            return self._run_eagerly(*args, **kwargs)
        for prog in entry or ():
            if prog.guards_hold(flat):
                if prog.one_shot:
                    entry.remove(prog)
                return unflatten(prog.out_spec, prog.call_flat(flat))
        if self.trace_count >= self.cache_limit:
            if not self._warned_limit:
                warnings.warn(f"gradc.compile({self.__name__}): traced {self.trace_count} times, the limit; running "
                              f"new signatures eagerly. Last change: {self._why_retrace(sig)}. Keep shapes stable, "
                              "or raise cache_limit", stacklevel=2)
                self._warned_limit = True
            return self._run_eagerly(*args, **kwargs)
        reason = self._why_retrace(sig)
        if self._last_sig is not None:
            log.info("gradc.compile(%s): retracing (%s)", self.__name__, reason)
        self._last_sig = sig
        try:
            prog = self._build(args, kwargs, flat, reason=reason)
        except TraceError as e:
            if self.fullgraph:
                raise
            warnings.warn(f"gradc.compile({self.__name__}): this call cannot be traced, running it eagerly "
                          f"(and every later call with the same signature). {e}", stacklevel=2)
            self._programs[sig] = _EAGER
            return self._run_eagerly(*args, **kwargs)
        if not prog.one_shot:
            self._programs.setdefault(sig, []).append(prog)
        return unflatten(prog.out_spec, prog.call_flat(flat))

    def lower(self, *args, **kwargs):
        """The Program for this call signature, without running it."""
        flat, _ = flatten((args, kwargs))
        return self._build(args, kwargs, flat, lowering=True)

    # ------------------------------------------------------------------ mixed precision
    def _amp_region(self):
        """amp="fp16" runs the function inside gradc.amp.autocast(); otherwise the caller's autocast
        state (if any) applies, as in eager mode."""
        from .amp import autocast
        return autocast() if self.amp == "fp16" else contextlib.nullcontext()

    def _autocast_dtype(self):
        from .amp import is_autocast_enabled
        return "float16" if self.amp == "fp16" or is_autocast_enabled() else None

    def _run_eagerly(self, *args, **kwargs):
        with self._amp_region():
            return self.fn(*args, **kwargs)

    # ------------------------------------------------------------------ tracing
    def _backend_for(self, flat, lowering):
        """"auto" runs where the inputs are; "cuda" needs CUDA inputs to run (any inputs to lower)."""
        on_cuda = any(t.device.type == "cuda" for t in flat)
        if self.backend == "auto":
            return "cuda" if on_cuda else "numpy"
        if self.backend == "cuda" and not lowering and not on_cuda and flat:
            raise DeviceError("gradc.compile(..., backend='cuda') got CPU tensors; move inputs and the model to "
                              "the GPU with .cuda(), or use backend='numpy' (lower() works with CPU inputs)")
        return self.backend

    def _flat_args(self, args, kwargs):
        return flatten((args, kwargs))[0]

    def _trace(self, args, kwargs, lowering=False):
        """Trace one call: (tracer, output spec, collected outputs/effects/guards). State the
        function touched is restored; optimizer state it created is rolled back when lowering."""
        tracer = Tracer()
        try:
            with tracer:
                for i, t in enumerate(self._flat_args(args, kwargs)):
                    if id(t) not in tracer.lifted:
                        tracer.lift(t, Binding("arg", i))
                with self._amp_region():
                    result = self.fn(*args, **kwargs)
                out_flat, out_spec = flatten(result)
                parts = _collect(tracer, out_flat)
        except BaseException:
            tracer.restore()
            tracer.rollback_optimizers()
            raise
        tracer.restore()
        if lowering:
            tracer.rollback_optimizers()
        return tracer, out_spec, parts

    def _build(self, args, kwargs, flat, lowering=False, reason="lower"):
        start = time.perf_counter()
        tracer, out_spec, parts = self._trace(args, kwargs, lowering)
        self.trace_count += 1
        traced_text = tracer.graph.to_text() if debug.level() >= 4 else None
        traced = time.perf_counter() - start
        prog = _make_program(tracer, out_spec, parts, self._backend_for(self._flat_args(args, kwargs), lowering),
                             self.fuse)
        prog.stats["trace_seconds"] = round(traced, 4)
        prog.stats["compile_seconds"] = round(time.perf_counter() - start, 4)
        debug.report(self.__name__, reason, prog, traced_text)
        _maybe_dump(prog, self.dump, self.__name__, self.trace_count)
        return prog


def _modules_of(fn):
    """The nn.Modules a compiled callable reaches directly: itself, the instance of a bound method,
    and modules in its closure cells or in the globals its code names (read on every call, so a
    rebound name or a replaced parameter is seen)."""
    found = [obj for obj in (fn, getattr(fn, "__self__", None)) if isinstance(obj, Module)]
    for cell in getattr(fn, "__closure__", None) or ():
        try:
            value = cell.cell_contents
        except ValueError:  # an empty cell
            continue
        if isinstance(value, Module):
            found.append(value)
    code = getattr(fn, "__code__", None)
    if code is not None:
        glb = getattr(fn, "__globals__", {})
        found += [v for v in map(glb.get, code.co_names) if isinstance(v, Module)]
    unique = []
    for m in found:
        if all(m is not u for u in unique):
            unique.append(m)
    return unique


def _spec_key(spec):
    kind, body = spec
    if kind == "T":
        return "T"
    if kind == "V":
        try:
            hash(body)
            return ("V", type(body).__name__, body)
        except TypeError:
            return ("V", type(body).__name__, id(body))
    if kind is dict:
        return ("dict", tuple((k, _spec_key(v)) for k, v in body))
    return (getattr(kind, "__name__", str(kind)), tuple(_spec_key(v) for v in body))


def _collect(tracer, out_flat):
    """After the function returned (tracer still active): outputs, state write-backs, new state."""
    graph = tracer.graph
    outputs = [tracer.node_of(t) for t in out_flat]
    effects, guards = [], []
    grad_tensors = []
    for t, _, _ in list(tracer.entry_grads.values()):
        if id(t) not in tracer.lifted:
            tracer.lift(t)  # only its .grad changed: it still needs a slot for the write
    slot_of = {nid: i for i, nid in enumerate(graph.inputs)}
    for t, nid, saved in list(tracer.lifted.values()):
        slot = slot_of[nid]
        if t._sym[1] != nid:
            effects.append(Effect("data", slot, len(outputs)))
            outputs.append(t._sym[1])
        old_grad = saved[3]
        if t.grad is old_grad:
            continue
        if tracer.bindings[slot].kind == "grad":
            raise TraceError("assigning .grad of a .grad tensor is not supported inside gradc.compile")
        if t.grad is None:
            effects.append(Effect("grad", slot, None))
        elif t.grad._sym is not None and t.grad._sym[0] is tracer:
            effects.append(Effect("grad", slot, len(outputs)))
            outputs.append(t.grad._sym[1])
            grad_tensors.append(t.grad)
        else:
            raise TraceError("a tensor created outside the compiled function was assigned to .grad inside it; "
                             "assign a value computed inside, or do it outside the compiled function")
        if old_grad is None and tracer.entry_grads[id(t)][2] is not None:
            # The first write assumed there was no gradient to accumulate into.
            guards.append(_grad_is_none(tracer.bindings, slot))
    aot = _differentiate_outputs(tracer, out_flat, outputs) if _needs_aot(tracer, out_flat) else None
    for t in tracer.escaped(keep=list(out_flat) + grad_tensors):
        effects.append(Effect("new", out=len(outputs), target=t))
        outputs.append(t._sym[1])
    for opt, groups in tracer.optimizer_settings():
        guards.append(_same_settings(opt, groups))
    graph.outputs = outputs
    return {"n_returned": len(out_flat), "effects": effects, "guards": guards,
            "one_shot": any(e.kind == "new" for e in effects), "aot": aot}


def _needs_aot(tracer, out_flat):
    """Returned tensors carry grad, and the function did not run backward itself: the caller
    may call backward on them later, so a backward program is built too."""
    return autograd.is_grad_enabled() and not tracer.freed and any(t.requires_grad for t in out_flat)


def _differentiate_outputs(tracer, out_flat, outputs):
    from .passes.autodiff import differentiate
    graph = tracer.graph
    grad_positions = [i for i, t in enumerate(out_flat) if t.requires_grad]
    slots = [i for i, nid in enumerate(graph.inputs)]
    wrt_slots = [s for s in slots if tracer.lifted_at(s) is not None and tracer.lifted_at(s)[2][1]]
    wrt = [graph.inputs[s] for s in wrt_slots]
    cots = [graph.add_input(f"cot{k}", out_flat[i].shape, out_flat[i].dtype.name) for k, i in enumerate(grad_positions)]
    from .amp import autocast
    # The backward program runs when the caller calls backward(), as eager backward outside an
    # autocast region does (autocast the forward only): it is built without autocast.
    with autograd.no_grad(), autocast(enabled=False):
        grads, _ = differentiate(tracer, [(outputs[i], c) for i, c in zip(grad_positions, cots)], wrt)
    return {"grad_positions": grad_positions, "wrt_slots": wrt_slots, "cots": cots,
            "grad_nodes": [grads.get(n) for n in wrt]}


def _grad_is_none(bindings, slot):
    b = bindings[slot]

    def guard(flat_args):
        t = flat_args[b.ref] if b.kind == "arg" else b.ref
        return t.grad is None
    return guard


def _same_settings(opt, groups):
    from .trace import _settings

    def guard(flat_args):
        return _settings(opt) == groups
    return guard


def _make_program(tracer, out_spec, parts, backend, fuse):
    graph, aot = tracer.graph, parts["aot"]
    if aot is None:
        return _generate(graph, tracer.bindings, parts, out_spec, fuse, backend=backend)
    from .passes.pipeline import optimize
    from .runtime.aot import split
    # Optimise the joint graph first (gradients as extra outputs), so that the min-cut decides
    # which activations the forward program hands to the backward program.
    n_fwd, grads = len(graph.outputs), [g for g in aot["grad_nodes"] if g is not None]
    graph.outputs = graph.outputs + grads
    joint_stats = optimize(graph)
    it = iter(graph.outputs[n_fwd:])
    aot["grad_nodes"] = [next(it) if g is not None else None for g in aot["grad_nodes"]]
    graph.outputs = graph.outputs[:n_fwd]
    fwd, bwd, saved = split(graph, len(graph.outputs), aot["grad_nodes"], aot["cots"])
    n_out = len(fwd.outputs)
    backward = _generate(bwd, [], {"effects": [], "n_returned": len(bwd.outputs), "guards": [], "one_shot": False},
                         None, fuse, backend=backend)
    prog = _generate(fwd, tracer.bindings, parts, out_spec, fuse, backend=backend)
    prog.backward = (backward, {
        "saved_outputs": list(range(n_out - len(saved), n_out)), "grad_outputs": aot["grad_positions"],
        "wrt_slots": aot["wrt_slots"], "has_grad": [g is not None for g in aot["grad_nodes"]],
        "cot_specs": [(graph.node(c)["shape"], D.ALL[graph.node(c)["dtype"]].np) for c in aot["cots"]]})
    prog.stats["backward"] = backward.stats
    # What the forward keeps for the backward: the arrays it hands to the backward program.
    prog.stats["saved_activation_bytes"] = sum(
        int(np.prod(graph.node(n)["shape"], dtype=np.int64)) * D.ALL[graph.node(n)["dtype"]].itemsize for n in set(saved))
    prog.stats["saved_activation_bytes_without_recompute"] = joint_stats.get("saved_activation_bytes_without_recompute")
    return prog


def _generate(graph, bindings, parts, out_spec, fuse=True, optimize_graph=True, block_bytes=None, backend="numpy"):
    """Passes and code generation for one traced graph: returns a runnable Program. With
    optimize_graph=False the graph is taken as already simplified (e.g. loaded from an artifact);
    fusion, scheduling, memory planning and codegen are deterministic functions of the graph."""
    from .codegen import numpy_backend
    from .passes.fusion import fuse as fuse_groups
    from .passes.memory import plan_memory
    from .passes.pipeline import optimize
    from .passes.schedule import schedule
    from .runtime import tuning
    stats = optimize(graph) if optimize_graph else {"traced_nodes": len(graph.verify())}
    groups = fuse_groups(graph) if fuse else {}
    units = schedule(graph)
    state_slots = {e.out: e.slot for e in parts["effects"] if e.kind == "data"}
    plan = plan_memory(graph, units, state_slots)
    # An artifact passes the block size it was generated with, so its code regenerates byte for byte.
    block = tuning.block_bytes() if block_bytes is None else int(block_bytes)
    kernels, scratch_bytes = [], 0
    if backend == "cuda":
        from .codegen import cuda_backend
        kernels_src, host_src, kernels, copy_out = cuda_backend.generate(graph, units, plan)
        source = {"kernels.cu": kernels_src, "host.py": host_src}
    else:
        module_src, copy_out, scratch_bytes = numpy_backend.generate(graph, units, plan, block)
        source = {"program.py": module_src}
    fused = [g for g in groups.values() if len(g["members"]) > 1]
    stats.update(backend=backend, nodes=len(graph), op_nodes=len(graph.op_nodes()), inputs=len(graph.inputs),
                 outputs=len(graph.outputs), kernels=len(units), fused_groups=len(fused),
                 fused_ops=sum(len(g["members"]) for g in fused), buffers=len(plan.buffers),
                 buffer_bytes=plan.nbytes(), scratch_bytes=scratch_bytes,
                 inplace_state_updates=len(plan.inplace_state),
                 planned_peak_bytes=planned_peak(graph, units, plan) + scratch_bytes, graph_hash=graph.hash()[:16])
    prog = Program(graph, bindings, parts["effects"], parts["n_returned"], out_spec, backend, source, stats,
                   guards=parts["guards"], one_shot=parts["one_shot"])
    prog.set_plan(copy_out, plan.inplace_state)
    prog._kernels = kernels
    return prog


def _maybe_dump(prog, option, name, n):
    target = option or os.environ.get("GRADC_DUMP")
    if target:
        safe = "".join(c if c.isalnum() or c in "_-" else "_" for c in str(name))
        prog.dump(os.path.join(target, f"{safe}_{n}"))


def compile(fn=None, *, backend="auto", amp=None, dynamic=False, fullgraph=False, dump=None, fuse=True,
            cache_limit=8):
    """Compile `fn` (a function or nn.Module). Usable as @gradc.compile or @gradc.compile(...)."""
    if fn is None:
        return lambda f: CompiledFunction(f, backend, amp, dynamic, fullgraph, dump, fuse, cache_limit)
    return CompiledFunction(fn, backend, amp, dynamic, fullgraph, dump, fuse, cache_limit)
