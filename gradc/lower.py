"""The lowering pipeline: `lower(graph, spec) -> Program`, every stage from a traced graph to a
runnable program, in the order they run.

    from gradc.lower import lower, Spec
    graph, spec = step.trace(x, y)        # what gradc.compile(fn) records for fn(x, y)
    prog = lower(graph, spec)              # the Program step.lower(x, y) returns
    prog(x, y)

`graph` is a gradc.ir.Graph (it is transformed in place: lower a copy to keep the original);
`spec` is a gradc.lower.Spec (see gradc.spec). The stages (STAGES), each recorded in order in
`prog.stages` with its time and what it did:

  autodiff   spec.gradients: gradients of returned outputs with respect to inputs, appended to
             the graph, seeded by new cotangent inputs (a compiled forward whose backward runs
             when the caller calls backward(); a function that calls backward() itself was
             differentiated while it was traced)
  simplify   dead code, common subexpressions, constant folding, identities, to a fixed point
  recompute  what the forward keeps for the backward: a min-cut that recomputes cheap values
  split      with gradients: the joint graph becomes a forward and a backward graph; each runs
             the stages below (the backward first) and becomes its own Program
  amp        what mixed precision left in the graph (float16 values, casts). autocast inserts the
             casts while tracing (one policy for eager and compiled code); the passes honour them:
             simplify merges repeated weight casts, recompute never re-casts a weight, fusion keeps
             float16 sums out of groups
  fusion     row-local nodes grouped into one loop (NumPy) or kernel (CUDA) each
  schedule   groups and the remaining ops as units in execution order
  memory     liveness, pooled buffers, in-place state updates, the planned peak
  codegen    the backend's source, from its templates
  load       the runnable Program; it imports its module (NumPy) or compiles its kernels (CUDA) on
             the first call, so lowering needs no GPU

A graph lowered before with the same settings by the same gradc code is read back from the
lowered-program cache (gradc.runtime.lowered) instead: its stages are then that lowering's record,
each marked `cached` and timed 0.

Layering: this module imports the passes, the code generators and gradc.runtime, never the
other way round. The runtime reaches the pipeline only as a function it is handed: a Program
keeps `prog.pipeline` (this `lower`) to regenerate its code when it is saved, and gradc.load
passes it to the artifact loader."""
import os
import time
from contextlib import contextmanager
from typing import NamedTuple

from . import dtypes as D
from .amp import autocast
from .codegen import c_backend, cuda_backend, numpy_backend
from .codegen.costs import unit_costs
from .errors import GradcError
from .grad_mode import no_grad
from .passes.autodiff import differentiate
from .passes.fusion import fuse as fuse_groups
from .passes.memory import plan_memory
from .passes.recompute import choose_saved
from .passes.schedule import schedule
from .passes.simplify import simplify
from .passes.split import saved_bytes, split
from .codegen.templates import use_bytecode_cache
from .runtime import lowered, tuning
from .runtime.template_cache import TemplateBytecodeCache
from .runtime.aot import Backward
from .runtime.program import Program
from .runtime.stats import Stats
from .spec import BACKENDS, Gradients, Spec  # noqa: F401  (re-exported: gradc.lower.Spec)
from .ir import Graph
from .tracer import Tracer

STAGES = ("autodiff", "simplify", "recompute", "split", "amp", "fusion", "schedule", "memory", "codegen", "load")
GRAPH_STAGES = STAGES[:4]   # run once on the whole graph; the others run per program

# Compiled templates are kept in the cache folder: a new process loads them instead of compiling.
use_bytecode_cache(TemplateBytecodeCache())


class Stage(NamedTuple):
    """One stage as it ran: its name, the part it ran on ("graph" before the split, "program",
    "forward" or "backward" after it), wall seconds, and what it did (or why it was skipped)."""
    name: str
    part: str
    seconds: float
    info: dict


@contextmanager
def _stage(log, name, part):
    info = {}
    start = time.perf_counter()
    yield info
    log.append(Stage(name, part, round(time.perf_counter() - start, 6), info))


def lower(graph, spec):
    """Run every stage on `graph` as `spec` asks and return the Program (see the module docs)."""
    if not isinstance(spec, Spec):
        raise GradcError(f"lower(graph, spec) takes a gradc.lower.Spec, got {type(spec).__name__}")
    spec.check(graph)
    start = time.perf_counter()
    key = _cache_key(graph, spec)
    if key is not None:
        entry = lowered.read(key)
        if entry is not None:
            prog = _from_entry(entry, spec, start)
            if prog is not None:
                return prog
    prog = _lower(graph, spec, start)
    if key is not None:
        lowered.write(key, _entry(prog))
    return prog


def _lower(graph, spec, start):
    log = []
    with _stage(log, "autodiff", "graph") as info:
        if spec.gradients is None:
            info["skipped"] = "no gradients requested"
            cots = grad_nodes = None
        else:
            cots, grad_nodes = autodiff(graph, spec.gradients)
            info.update(cotangents=len(cots), gradients=sum(g is not None for g in grad_nodes))
    # With gradients, simplify and recompute see the joint graph (gradients as extra outputs), so
    # the min-cut decides which activations the forward program hands to the backward program.
    n_out = len(graph.outputs)
    if grad_nodes is not None:
        graph.outputs = graph.outputs + [g for g in grad_nodes if g is not None]
    stats = _optimize(graph, spec.optimize, log)
    if grad_nodes is not None:
        it = iter(graph.outputs[n_out:])
        grad_nodes = [next(it) if g is not None else None for g in grad_nodes]
        graph.outputs = graph.outputs[:n_out]

    if grad_nodes is None:
        log.append(Stage("split", "graph", 0.0, {"skipped": "no gradients: one program"}))
        prog = _program(graph, spec, stats, log, "program", None, start)
    else:
        with _stage(log, "split", "graph") as info:
            fwd, bwd, saved = split(graph, n_out, grad_nodes, cots)
            info.update(forward_nodes=len(fwd), backward_nodes=len(bwd), saved=len(saved))
        bspec = Spec(backend=spec.backend, fuse=spec.fuse, optimize=False, block_bytes=spec.block_bytes,
                     n_returned=len(bwd.outputs))
        bprog = _program(bwd, bspec, {}, log, "backward", None, None)
        n_fwd = len(fwd.outputs)
        wiring = {"saved_outputs": list(range(n_fwd - len(saved), n_fwd)),
                  "grad_outputs": list(spec.gradients.outputs), "wrt_slots": list(spec.gradients.wrt),
                  "has_grad": [g is not None for g in grad_nodes],
                  "cot_specs": [(graph.node(c)["shape"], D.ALL[graph.node(c)["dtype"]].np) for c in cots]}
        # What the forward keeps for the backward: the arrays it hands to the backward program.
        stats.update(saved_activation_bytes=saved_bytes(graph, saved), backward=bprog.stats)
        prog = _program(fwd, spec, stats, log, "forward", Backward(bprog, wiring), start)
    return prog


# ---------------------------------------------------------------------------------------------- the cache
def _cache_key(graph, spec):
    """The lowered-program cache key of this graph and spec, or None when the cache is off or the
    sizes are symbolic (what such a lowering assumed about them lives in its Sizes, not on disk)."""
    if not lowered.enabled() or graph.symbols():
        return None
    block = spec.block_bytes
    if block is None and spec.backend != "cuda":
        block = tuning.block_bytes()
    grads = None if spec.gradients is None else [list(spec.gradients.outputs), list(spec.gradients.wrt)]
    settings = {"backend": spec.backend, "fuse": spec.fuse, "optimize": spec.optimize, "block": block,
                "effects": [[e.kind, e.slot, e.out] for e in spec.effects], "n_returned": spec.n_returned,
                "gradients": grads, "cc": [os.environ.get(k) for k in ("CC", "PATH", "GRADC_CFLAGS")] if spec.backend == "c" else None}
    return lowered.key(graph.hash(), settings)


def _entry(prog):
    """What lowering produced for `prog` (and its backward program), as JSON-able data."""
    entry = {"ir": prog.ir.to_dict(), "source": prog.own_source, "stats": dict(prog.stats),
             "kernels": [list(k) for k in prog.lowered["kernels"]], "copy_out": sorted(prog.lowered["copy_out"]),
             "inplace_state": sorted(prog.lowered["inplace_state"].items()),
             "stages": [[s.name, s.part, s.seconds, s.info] for s in prog.stages], "backward": None}
    if prog.backward is not None:
        wiring = dict(prog.backward.wiring, cot_specs=[[list(shape), D.from_numpy_dtype(dt).name]
                                                       for shape, dt in prog.backward.wiring["cot_specs"]])
        entry["backward"] = {"program": _entry(prog.backward.program), "wiring": wiring}
    return entry


def _from_entry(entry, spec, start, part_spec=None):
    """The Program an entry describes, bound to this trace's spec; None if the entry does not fit it."""
    try:
        ir = Graph.from_dict(entry["ir"])
        # the stages as they ran when this program was lowered; none of them ran now
        stages = tuple(Stage(n, p, 0.0, dict(i, cached=True)) for n, p, s, i in entry["stages"])
        backward = None
        if entry["backward"] is not None:
            b = entry["backward"]
            bspec = Spec(backend=spec.backend, fuse=spec.fuse, optimize=False, block_bytes=spec.block_bytes)
            wiring = dict(b["wiring"], cot_specs=[(tuple(shape), D.ALL[dt].np) for shape, dt in b["wiring"]["cot_specs"]])
            backward = Backward(_from_entry(b["program"], bspec, None), wiring)
        stats = dict(entry["stats"])
        if backward is not None:   # the backward program's own figures, as a fresh lowering links them
            stats["backward"] = backward.program.stats
    except (KeyError, TypeError, ValueError, GradcError):
        return None
    if start is not None:
        if spec.trace_seconds is not None:
            stats.update(trace_seconds=round(spec.trace_seconds, 4),
                         compile_seconds=round(spec.trace_seconds + time.perf_counter() - start, 4))
    return Program(ir, spec.bindings, spec.effects, spec.returned(ir), spec.out_spec, spec.backend, entry["source"],
                   Stats(stats), guards=spec.guards, one_shot=spec.one_shot, backward=backward,
                   kernels=[tuple(k) for k in entry["kernels"]], copy_out=entry["copy_out"],
                   inplace_state={int(k): int(v) for k, v in entry["inplace_state"]}, stages=stages, spec=spec,
                   pipeline=lower)


def autodiff(graph, gradients):
    """The autodiff stage: append to `graph` the gradients of its outputs at `gradients.outputs`
    with respect to the inputs at slots `gradients.wrt`, seeded by new inputs `cot<k>` (one per
    differentiated output, with its shape and dtype). The VJP rules of the op table run under a
    tracer over the graph, without grad mode or autocast (a backward that runs when the caller
    calls backward() runs outside any autocast region, as eager backward does).

    Returns (cotangent input nodes, gradient node per wrt slot or None where no gradient flows)."""
    outs = [graph.outputs[i] for i in gradients.outputs]
    wrt = [graph.inputs[s] for s in gradients.wrt]
    cots = [graph.add_input(f"cot{k}", graph.node(o)["shape"], graph.node(o)["dtype"]) for k, o in enumerate(outs)]
    with Tracer(graph) as tracer, no_grad(), autocast(enabled=False):
        grads, _ = differentiate(tracer, list(zip(outs, cots)), wrt)
    if tracer.bindings:
        raise GradcError("the autodiff stage read a tensor that is not part of the graph (it became a new "
                         "input); VJP rules must build gradients from their inputs and constants only")
    return cots, [grads.get(n) for n in wrt]


def _optimize(graph, optimize, log):
    """simplify and recompute; returns the statistics they contribute to the Program's."""
    with _stage(log, "simplify", "graph") as info:
        graph.verify()
        stats = {"traced_nodes": len(graph)}
        if optimize:
            stats["simplify"] = simplify(graph)
            info.update(stats["simplify"], nodes_before=stats["traced_nodes"], nodes_after=len(graph))
        else:
            info["skipped"] = "the graph is already optimised"
    with _stage(log, "recompute", "graph") as info:
        if optimize:
            before, after = choose_saved(graph)
            graph.verify()
            stats.update(saved_activation_bytes=after, saved_activation_bytes_without_recompute=before)
            info.update(saved_bytes_before=before, saved_bytes_after=after)
        else:
            info["skipped"] = "the graph is already optimised"
    return stats


def _program(graph, spec, stats, log, part, backward, start):
    """amp, fusion, schedule, memory, codegen and load for one graph: its Program."""
    with _stage(log, "amp", part) as info:
        info.update(_mixed_precision(graph))
    with _stage(log, "fusion", part) as info:
        fusion = fuse_groups(graph) if spec.fuse else None
        info.update(fusion.stats() if fusion is not None else {"skipped": "fuse=False"})
    groups = fusion.groups if fusion is not None else {}
    with _stage(log, "schedule", part) as info:
        units = schedule(graph, groups, [graph.outputs[e.out] for e in spec.effects
                                         if e.kind == "data" and e.out is not None])
        info["units"] = len(units)
    with _stage(log, "memory", part) as info:
        # A state written through rows of another shape (rank >= 3) is updated in place on the CPU
        # backends; CUDA's host module aliases a state with the state's own shape only, so there such
        # a state keeps a buffer and a copy back.
        plan = plan_memory(graph, units, {e.out: e.slot for e in spec.effects if e.kind == "data"},
                           reshaped_state=spec.backend != "cuda")
        info.update(buffers=len(plan.buffers), buffer_bytes=plan.nbytes(), inplace_state=len(plan.inplace_state))
    with _stage(log, "codegen", part) as info:
        kernels, scratch_bytes = [], 0
        if spec.backend == "cuda":
            kernels_src, host_src, kernels, cuda_figures = cuda_backend.generate(graph, units, plan)
            source = {"kernels.cu": kernels_src, "host.py": host_src}
        elif spec.backend == "c":
            block = tuning.block_bytes() if spec.block_bytes is None else spec.block_bytes
            host_src, c_src, scratch_bytes, kernel_ir, declined = c_backend.generate(graph, units, plan, block)
            source = {"program.c": c_src, "host.py": host_src}
            kernels = [(k.name, k.ops) for k in kernel_ir]
            info.update(c_kernels=len(kernel_ir), numpy_groups=len(declined))
        else:
            # An artifact passes the block size it was generated with, so its code regenerates byte for byte.
            block = tuning.block_bytes() if spec.block_bytes is None else spec.block_bytes
            module_src, scratch_bytes = numpy_backend.generate(graph, units, plan, block)
            source = {"program.py": module_src}
        info.update(backend=spec.backend, files=sorted(source), bytes=sum(len(s) for s in source.values()))
    fused = [g for g in groups.values() if len(g["members"]) > 1]
    stats = dict(stats)
    stats.update(backend=spec.backend, nodes=len(graph), op_nodes=len(graph.op_nodes()), inputs=len(graph.inputs),
                 outputs=len(graph.outputs), kernels=len(units), fused_groups=len(fused),
                 fused_ops=sum(len(g["members"]) for g in fused), buffers=len(plan.buffers),
                 buffer_bytes=plan.nbytes(), scratch_bytes=scratch_bytes,
                 inplace_state_updates=len(plan.inplace_state),
                 planned_peak_bytes=plan.peak_bytes(graph, units) + scratch_bytes, graph_hash=graph.hash()[:16])
    # bytes each unit reads and writes per call (a C kernel's as its kernel IR counts them)
    stats["kernels_bytes"] = unit_costs(graph, units, kernel_ir if spec.backend == "c" else ())
    if spec.backend == "c":   # bytes each C kernel reads and writes per call (the kernel IR counts them)
        stats.update(c_kernels={k.name: {"ops": k.ops, "bytes_read": k.bytes_read, "bytes_written": k.bytes_written}
                                for k in kernel_ir},
                     numpy_groups={f"g{gid}": why for gid, why in declined},
                     global_bytes=sum(k.bytes_moved for k in kernel_ir))
    if spec.backend == "cuda":   # kernel launches and bytes moved in global memory per call
        stats.update(cuda_figures)
    how = {"cuda": "CUDA kernels compiled with NVRTC", "c": "C built by the system compiler, loaded with ctypes"}
    log.append(Stage("load", part, 0.0, {"when": "first call",
                                         "how": how.get(spec.backend, "module imported through the cache")}))
    if start is not None and spec.trace_seconds is not None:
        stats["trace_seconds"] = round(spec.trace_seconds, 4)
        stats["compile_seconds"] = round(spec.trace_seconds + time.perf_counter() - start, 4)
    return Program(graph, spec.bindings, spec.effects, spec.returned(graph), spec.out_spec, spec.backend, source,
                   Stats(stats), guards=spec.guards, one_shot=spec.one_shot, backward=backward, kernels=kernels,
                   copy_out=plan.copy_out(graph), inplace_state=plan.inplace_state, stages=tuple(log), spec=spec,
                   pipeline=lower)


def _mixed_precision(graph):
    nodes = graph.op_nodes()
    casts = [n for n in nodes if graph.node(n)["op"] == "cast"]
    return {"float16_values": sum(graph.node(n)["dtype"] == "float16" for n in nodes),
            "casts_to_float16": sum(graph.node(n)["dtype"] == "float16" for n in casts),
            "casts_from_float16": sum(graph.node(graph.args(n)[0])["dtype"] == "float16" for n in casts)}
