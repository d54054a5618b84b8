"""What a traced call produced, gathered while its tracer is still active: the graph's outputs,
the writes the program makes to state on every run (effects: new data, .grad, requires_grad,
tensors it created), the autodiff request of a forward whose backward runs later, and the guards
on state the trace assumed (no gradient to accumulate into, optimizer settings, requires_grad)."""
from .errors import TraceError
from .guards import same_requires_grad
from .runtime.wiring import Effect
from .spec import Gradients


def collect(tracer, out_flat):
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
        if t.requires_grad is not saved[1] and tracer.bindings[slot].kind == "state":
            effects.append(Effect("requires_grad", slot, target=t.requires_grad))   # set_requires_grad(netD, False)
        if t._sym[1] != nid:
            effects.append(Effect("data", slot, len(outputs)))
            outputs.append(t._sym[1])
        old_grad = saved[3]
        if t.grad is old_grad and (t.grad is not None or id(t) not in tracer.entry_grads):
            continue   # (a .grad set to None that was None: replayed, a later call may find one)
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
            guards.append(_grad_is_none(tracer.bindings, slot, graph.node(nid)["attrs"]))
    stored = {}   # graph output -> a tensor the call made and stored in Python state (MoE's self.aux_loss)
    for t in tracer.escaped(keep=list(out_flat) + grad_tensors):
        effects.append(Effect("new", out=len(outputs), target=t))
        stored[len(outputs)] = t
        outputs.append(t._sym[1])
    gradients = _gradients(tracer, out_flat, stored) if _needs_aot(tracer, out_flat, stored) else None
    guards += [_same_settings(opt, groups) for opt, groups in tracer.optimizer_settings()] + tracer.hook_guards()
    guards.append(same_requires_grad([(t, saved[1], graph.node(nid)["attrs"]) for t, nid, saved in tracer.lifted.values()
                                      if tracer.bindings[slot_of[nid]].kind == "state"]))
    graph.outputs = outputs
    return {"n_returned": len(out_flat), "effects": effects, "guards": guards,
            "one_shot": any(e.kind == "new" for e in effects), "gradients": gradients}


def _needs_aot(tracer, out_flat, stored):
    """Returned (or stored) tensors carry grad, and the function did not run backward itself: the
    caller may call backward on them later, so a backward program is built too."""
    # (not the grad mode outside: an output made under enable_grad() inside a no_grad call needs it too)
    return not tracer.freed and any(t.requires_grad for t in (*out_flat, *stored.values()))


def _gradients(tracer, out_flat, stored):
    """The autodiff request of a compiled forward with an eager backward: the returned and stored
    outputs that require grad, with respect to every input lifted from a tensor that required grad."""
    if tracer.leaf_write is not None:
        # the backward program differentiates with respect to the inputs' values at entry; what was
        # computed from the written value would send its gradient nowhere
        raise TraceError(f"a tensor that requires grad is changed in place under no_grad at {tracer.leaf_write} "
                         "(an Embedding's max_norm, a manual renormalisation) and the result's gradient is left for "
                         "a later backward(); gradc.compile cannot route that gradient to it. Call backward() inside "
                         "the compiled function, or make the change outside it")
    if tracer.replays:
        raise TraceError(f"a checkpointed segment at {tracer.replays[0][2]} updates state (BatchNorm's running "
                         "statistics), which eagerly happens a second time when backward() recomputes it, and the "
                         "result's gradient is left for a later backward(); call backward() inside the compiled "
                         "function, or do not checkpoint that segment")
    slots = range(len(tracer.graph.inputs))
    wrt = [s for s in slots if tracer.lifted_at(s) is not None and tracer.lifted_at(s)[2][1]]
    outs = [i for i, t in enumerate(out_flat) if t.requires_grad] + [i for i, t in stored.items() if t.requires_grad]
    return Gradients(outputs=tuple(outs), wrt=tuple(wrt))


def _grad_is_none(bindings, slot, attrs):
    b = bindings[slot]

    def guard(flat_args):
        t = flat_args[b.ref] if b.kind == "arg" else b.ref
        return t.grad is None
    guard.explain = lambda: [f"{attrs.get('name', 'an input')}.grad: None when traced, a tensor now (the "
                             "program assumed no gradient to accumulate into)"]
    return guard


def _same_settings(opt, groups):
    """The optimizer's settings, and the very state tensors the program reads and writes (one that
    load_state_dict or a reset replaced would otherwise be left behind, silently)."""
    from .recompile import settings_changes, state_changes
    from .tracer import settings_of, state_tensors
    held = state_tensors(opt)

    def guard(flat_args):
        return settings_of(opt) == groups and all(opt.state.get(p, {}).get(k) is t for p, k, t in held)
    guard.explain = lambda: settings_changes(type(opt).__name__, groups, settings_of(opt)) \
        if settings_of(opt) != groups else state_changes(opt, held)
    return guard
