"""Why a compiled function traces again, in words a person can read: the argument by its Python
name and the part that changed (`x.shape[0]: 8 -> 32`, `lr: 0.1 -> 0.05`, `model.training: True ->
False`). Only computed when a call does trace again, never on the fast path."""
import inspect
import reprlib

from .pytree import is_dict

_short = reprlib.Repr()
_short.maxstring, _short.maxother = 40, 40


def parameter_names(fn):
    """The Python names of fn's positional parameters (a module: its forward's), and the name of
    *args if it has one."""
    target = getattr(fn, "forward", fn) if not inspect.isfunction(fn) and not inspect.ismethod(fn) else fn
    try:
        params = list(inspect.signature(target).parameters.values())
    except (TypeError, ValueError):
        return [], "args"
    names = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    star = next((p.name for p in params if p.kind is p.VAR_POSITIONAL), "args")
    return names, star


def _nodes(fn, spec):
    """(Python path, kind, body) of every node of a call's pytree spec ((args, kwargs)), parents first."""
    names, star = parameter_names(fn)

    def walk(node, path):
        kind, body = node
        yield path, kind, body
        if is_dict(kind):
            for k, v in body:
                yield from walk(v, f"{path}[{k!r}]")
        elif kind not in ("T", "N", "V"):
            for i, v in enumerate(body):
                yield from walk(v, f"{path}[{i}]")

    (_, args), (_, kwargs) = spec[1]
    for i, a in enumerate(args):
        yield from walk(a, names[i] if i < len(names) else f"{star}[{i - len(names)}]")
    for k, v in kwargs:
        yield from walk(v, k)


def leaves(fn, spec):
    """(names of the tensor leaves in order, {name: Python value} of the other leaves, {name: kind
    of container}) for a call's pytree spec. Float inputs ("N") take any value: nothing to report."""
    tensors, values, shapes = [], {}, {}
    for path, kind, body in _nodes(fn, spec):
        if kind == "T":
            tensors.append(path)
        elif kind == "V":
            values[path] = body
        elif is_dict(kind):
            shapes[path] = (getattr(kind, "__name__", "dict"), tuple(k for k, _ in body))
        elif kind != "N":
            shapes[path] = (getattr(kind, "__name__", str(kind)), len(body))
    return tensors, values, shapes


def leaf_paths(fn, spec):
    """The Python path of every leaf of a call's pytree spec (tensors and float inputs), in leaf order."""
    paths = {body: path for path, kind, body in _nodes(fn, spec) if kind in ("T", "N")}
    return [paths[i] for i in sorted(paths)]


def _tensor_changes(name, old, new):
    (s0, d0, k0, i0, rg0, a0), (s1, d1, k1, i1, rg1, a1) = old, new
    dev0, dev1 = (k0 if i0 is None else f"{k0}:{i0}"), (k1 if i1 is None else f"{k1}:{i1}")
    out = []
    if s0 != s1:
        if len(s0) == len(s1):
            out += [f"{name}.shape[{i}]: {a} -> {b}" for i, (a, b) in enumerate(zip(s0, s1)) if a != b]
        else:
            out.append(f"{name}.shape: {tuple(s0)} -> {tuple(s1)}")
    if d0 != d1:
        out.append(f"{name}.dtype: {d0} -> {d1}")
    if dev0 != dev1:
        out.append(f"{name}.device: {dev0} -> {dev1}")
    if rg0 != rg1:
        out.append(f"{name}.requires_grad: {rg0} -> {rg1}")
    if a0 != a1:
        out.append(f"{name}: which arguments are the same tensor changed (first seen at position {a0} -> {a1})")
    return out


def _differ(a, b):
    """Whether two Python argument values differ (a user object's == may raise on tensors inside)."""
    try:
        return type(a) is not type(b) or bool(a != b)
    except Exception:
        return True


def describe(fn, old, new, module_names=()):
    """The changes between two call signatures (see CompiledFunction._signature), one per part.
    `old`/`new` are (signature, pytree spec); `module_names`: the paths of the modules whose
    training flags the signature lists, in order."""
    (sig0, spec0), (sig1, spec1) = old, new
    p0, p1 = dict(sig0), dict(sig1)
    t0, v0, c0 = leaves(fn, spec0)
    t1, v1, c1 = leaves(fn, spec1)
    out = []
    for part in ("grad mode", "default dtype"):
        if p0.get(part) != p1.get(part):
            out.append(f"{part}: {p0.get(part)} -> {p1.get(part)}")
    for path in sorted(set(c0) | set(c1)):
        if c0.get(path) != c1.get(path):
            out.append(f"{path}: structure {c0.get(path)} -> {c1.get(path)}")
    for name, a, b in zip(t1, p0.get("tensors", ()), p1.get("tensors", ())):
        if a != b:
            out += _tensor_changes(name, a, b)
    if len(t0) != len(t1) and not out:
        out.append(f"number of tensor arguments: {len(t0)} -> {len(t1)}")
    for path in v1:
        if path in v0 and v0[path] is not v1[path] and _differ(v0[path], v1[path]):
            out.append(f"{path}: {_short.repr(v0[path])} -> {_short.repr(v1[path])}")
        elif path not in v0 and not any(path.startswith(c) for c in c0 if c0.get(c) != c1.get(c)):
            out.append(f"{path}: new argument {_short.repr(v1[path])}")
    if p0.get("autocast") != p1.get("autocast"):
        out.append(f"autocast: {p0.get('autocast')} -> {p1.get('autocast')}")
    f0, f1 = p0.get("module training flags"), p1.get("module training flags")
    if f0 is not None and f1 is not None and f0 != f1:
        flips = [(n, a, b) for n, a, b in zip(module_names, f0, f1) if a != b]
        roots = [f for f in flips if not any(f[0].startswith(g[0] + ".") for g in flips if g is not f)]
        out += [f"{n}.training: {a} -> {b}" for n, a, b in roots[:4]]
        if len(roots) > 4:
            out.append(f"(and {len(roots) - 4} more modules' training flags)")
    if p0.get("module parameters and buffers") != p1.get("module parameters and buffers"):
        out.append("a module's parameter or buffer was replaced by another tensor")
    return out


def settings_changes(name, old, new):
    """What differs between two optimizer settings (trace.settings_of): `SGD param group 0
    momentum: nonzero -> 0` (a program input the traced update branched on: only its zeroness is
    assumed; its repr says which), `nesterov: True -> False`."""
    def show(assumed, value):   # a program input's assumption (optim.optimizer.Zeroness) names its side
        describe = getattr(assumed, "describe", None)
        return describe(value) if describe is not None else _short.repr(value)
    out = [f"{name}'s parameter groups: {len(old) - 1} -> {len(new) - 1}"] if len(old) != len(new) else []
    for gi, (a, b) in enumerate(zip(old[:-1], new[:-1])):
        out += [f"{name} param group {gi} {k}: {_short.repr(a.get(k))} -> {show(a.get(k), b.get(k))}"
                for k in sorted(set(a) | set(b), key=str) if a.get(k) != b.get(k)]
    if old[-1:] != new[-1:]:
        out.append(f"{name}'s flat parameter buffers were replaced")
    return out or [f"{name}'s settings changed"]


def state_changes(opt, held):
    """Which state tensors a compiled step read are no longer the optimizer's: `SGD state
    momentum_buffer of parameter 0 was replaced`."""
    index = {id(p): i for i, p in enumerate(p for g in opt.param_groups for p in g["params"])}
    return [f"{type(opt).__name__} state {k} of parameter {index.get(id(p), '?')} was replaced (load_state_dict "
            f"or a reset gives new tensors)" for p, k, t in held if opt.state.get(p, {}).get(k) is not t]
