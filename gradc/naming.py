"""Readable names for the inputs of a traced program: what each one is, as a person would say it.

  x, batch[0]             a tensor argument, by its Python parameter name (and position inside it)
  fc1.weight, model.0.bias a parameter or buffer of a module the function reaches (no prefix when the
                          compiled callable is that module or a method of it)
  exp_avg of fc1.weight   optimizer state, by its key and the parameter it belongs to
  parameter 2 of param group 0  a parameter only an optimizer reaches (or its name in named_parameters())
  lr of param group 0     an optimizer hyper-parameter that is a program input
  grad of fc1.weight      the .grad of another input
  random draw 3           a fresh random draw per call

The names appear in the IR's text, DOT and JSON forms (the `name` attribute of input nodes) and in
messages about inputs, and as comments in generated code. They are display text: a name with
anything but letters, digits, `_ . [ ]` and spaces in it is replaced by its kind and slot
(`state 3`), so they can never carry code."""
import re

from .recompile import leaf_paths
from .tensor import Tensor

_UNSAFE = re.compile(r"[^A-Za-z0-9_.\[\] ]")
MAX_LEN = 128   # (gradc.runtime.artifact_graph accepts these names up to this length)


def clean(text, fallback):
    """`text` when it holds only the characters a name may hold, else `fallback` (a name with anything
    else in it, e.g. a parameter registered as "w('x')", is not shown at all: not even a mangled
    form of it reaches the IR or a generated comment)."""
    text = str(text).strip()
    ok = text and len(text) <= MAX_LEN and not _UNSAFE.search(text) and (text[0].isalnum() or text[0] == "_")
    return text if ok else fallback


def state_labels(roots, optimizers):
    """{id(tensor): name} of the parameters, buffers and optimizer state reachable from `roots`
    ((prefix, module) pairs, most specific first) and `optimizers`."""
    known = {}
    for prefix, module in roots:
        for n, t in list(module.named_parameters()) + list(module.named_buffers()):
            known.setdefault(id(t), f"{prefix}.{n}" if prefix else n)
    for opt in optimizers:
        for gi, group in enumerate(opt.param_groups):
            given = group.get("param_names")   # (an optimizer made from named_parameters())
            for i, p in enumerate(group["params"]):
                # a parameter no module the function reaches holds is named as the optimizer knows it
                pname = known.setdefault(id(p), given[i] if given else f"parameter {i} of param group {gi}")
                for key, value in opt.state.get(p, {}).items():
                    if isinstance(value, Tensor):
                        known.setdefault(id(value), f"{key} of {pname}")
        names = getattr(opt, "input_names", None)
        for tid, name in (names() if names is not None else {}).items():
            known.setdefault(tid, name)
    return known


def input_names(fn, spec, bindings, roots=(), optimizers=()):
    """[name per input slot] for a trace of `fn` called with pytree `spec` ((args, kwargs))."""
    paths = leaf_paths(fn, spec)
    known = state_labels(roots, optimizers)
    names = []
    for slot, b in enumerate(bindings):
        kind = {"arg": "argument", "number": "argument", "state": "state", "grad": "grad"}.get(b.kind, "random draw")
        if b.kind in ("arg", "number"):
            name = paths[b.ref] if b.ref < len(paths) else ""
        elif b.kind == "state":
            name = known.get(id(b.ref), "")
        elif b.kind == "grad":
            name = f"grad of {names[b.owner]}" if b.owner < len(names) else ""
        else:
            name = ""
        names.append(clean(name, f"{kind} {slot}"))
    return names
