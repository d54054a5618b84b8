"""Ahead-of-time artifacts: a Program saved as one zip file and loaded back without the model's code.

An artifact holds data only: the optimised IR (graph.json), the state tensors (state.npz), a manifest
saying how arguments, state and outputs bind to the graph, and the generated source for people to
read. Loading validates all of it, then regenerates the code from the IR through the templates; the
shipped source is checked against the manifest but never executed or imported."""
import hashlib
import inspect
import io
import json
import math
import os
import re
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from .. import __version__
from .. import dtypes as D
from ..errors import ArtifactError, GradcError
from ..tensor import CPU, Tensor
from .artifact_checks import (FORMAT, FORMAT_VERSION, GRAPH, MANIFEST, NAME, SOURCE_DIR, STATE, check_wiring,
                              parse_graph, parse_manifest, read_members, read_state, spec_from_data)

_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed, so the same program saves to the same bytes

ONE_SHOT = ("this function creates new state the first time it runs (for example optimizer state: SGD's "
            "momentum buffers, Adam's moments), so the traced program is only valid for that first call and "
            "cannot be saved. Run one step first (eagerly or compiled), then export the step, so the state "
            "exists and is saved with the program")


# ---------------------------------------------------------------------------------------------- export
def export(fn, *example_args, backend="auto", amp=None):
    """Trace `fn(*example_args)` into a Program without running it, ready for `Program.save`.

    Only positional arguments are supported; tensors among them become the program's inputs (the
    shapes and dtypes of the examples are fixed), other values are baked in. State the function
    reads (parameters, buffers, optimizer state) is named after the modules and optimizers it is
    reachable from (the module itself, a bound method's object, a closure or a global)."""
    prog = trace(fn, *example_args, backend=backend, amp=amp)
    if prog.one_shot:
        raise ArtifactError(f"gradc.export({getattr(fn, '__name__', type(fn).__name__)}): {ONE_SHOT}")
    return prog


def trace(fn, *example_args, backend="auto", amp=None):
    """What export does, short of refusing a program that creates state (`gradc dump` shows those)."""
    from ..autograd import no_grad
    from ..compiler import CompiledFunction
    from ..pytree import flatten
    fuse = True
    if isinstance(fn, CompiledFunction):
        backend = fn.backend if backend == "auto" else backend
        amp = fn.amp if amp is None else amp
        fuse, fn = fn.fuse, fn.fn
    cf = CompiledFunction(fn, backend=backend, amp=amp, fuse=fuse)
    prog = cf.lower(*example_args)
    if prog.backward is not None:
        # The outputs need grad: a loaded program runs without autograd, so save the inference form
        # (no saved activations, no backward program).
        with no_grad():
            prog = cf.lower(*example_args)
    flat, _ = flatten(list(example_args))
    prog.artifact_info = {
        "inputs": [{"name": n, "shape": list(t.shape), "dtype": t.dtype.name}
                   for n, t in zip(_input_names(fn, example_args, len(flat)), flat)],
        "state_names": _state_names(fn, prog.bindings), "amp": amp, "fuse": fuse}
    return prog


def _input_names(fn, args, n):
    """Names of the flat tensor arguments: the parameter names of `fn` where it has them."""
    from ..nn import Module
    from ..pytree import flatten
    names = []
    try:
        sig = inspect.signature(fn.forward if isinstance(fn, Module) else fn)
        bound = sig.bind(*args)
        for pname, value in bound.arguments.items():
            leaves, _ = flatten(value)
            names += [pname] if isinstance(value, Tensor) else [f"{pname}_{j}" for j in range(len(leaves))]
    except (TypeError, ValueError):
        names = []
    if len(names) != n:
        names = [f"input{i}" for i in range(n)]
    return _unique([_sanitise(x, f"input{i}") for i, x in enumerate(names)])


def _roots(fn):
    """(prefix, object) pairs the function's state is reachable from, most specific first."""
    from ..nn import Module
    from ..optim.optimizer import Optimizer
    roots = []
    if isinstance(fn, Module):
        roots.append(("", fn))
    func = getattr(fn, "__func__", fn)
    owner = getattr(fn, "__self__", None)
    if isinstance(owner, Module):
        roots.append(("", owner))
    elif owner is not None and hasattr(owner, "__dict__"):
        roots += list(vars(owner).items())
    code = getattr(func, "__code__", None)
    if code is not None:
        for name, cell in zip(code.co_freevars, getattr(func, "__closure__", None) or ()):
            try:
                roots.append((name, cell.cell_contents))
            except ValueError:  # an empty cell
                pass
        glb = getattr(func, "__globals__", {})
        roots += [(name, glb[name]) for name in code.co_names if name in glb]
    return [(p, o) for p, o in roots if isinstance(o, (Module, Optimizer, Tensor))]


def _state_names(fn, bindings):
    """{slot: readable name} for the "state" bindings; unnamed tensors become state<slot>."""
    from ..nn import Module
    from ..optim.optimizer import Optimizer
    named = {}
    roots = _roots(fn)
    for prefix, obj in roots:
        if isinstance(obj, Module):
            for n, t in list(obj.named_parameters()) + list(obj.named_buffers()):
                named.setdefault(id(t), f"{prefix}.{n}" if prefix else n)
        elif isinstance(obj, Tensor):
            named.setdefault(id(obj), prefix)
    for prefix, obj in roots:
        if isinstance(obj, Optimizer):
            params = [p for g in obj.param_groups for p in g["params"]]
            for i, p in enumerate(params):
                pname = named.get(id(p), f"param{i}")
                for key, value in obj.state.get(p, {}).items():
                    if isinstance(value, Tensor):
                        named.setdefault(id(value), f"{prefix}.{pname}.{key}")
    names = {slot: _sanitise(named.get(id(b.ref), ""), f"state{slot}")
             for slot, b in enumerate(bindings) if b.kind == "state"}
    return dict(zip(names, _unique(list(names.values()))))


def _sanitise(name, fallback):
    name = re.sub(r"[^A-Za-z0-9_.\-]", "_", str(name))[:200]
    return name if NAME.match(name) else fallback


def _unique(names):
    seen, out = set(), []
    for n in names:
        m, k = n, 1
        while m in seen:
            m, k = f"{n}_{k}", k + 1
        seen.add(m)
        out.append(m)
    return out


# ---------------------------------------------------------------------------------------------- save
def state_names(prog):
    """{slot: name} of a program's state bindings (readable names when known, else state<slot>)."""
    known = (getattr(prog, "artifact_info", None) or {}).get("state_names") or {}
    names = [known.get(s) or f"state{s}" for s, b in enumerate(prog.bindings) if b.kind == "state"]
    slots = [s for s, b in enumerate(prog.bindings) if b.kind == "state"]
    return dict(zip(slots, _unique(names)))


def state_dict(prog):
    """{name: Tensor} of the state a program reads and writes: its own tensors, not copies."""
    return {name: prog.bindings[slot].ref for slot, name in state_names(prog).items()}


def _host(t):
    data = t._data
    if data is None:
        raise ArtifactError("a state tensor is being traced right now; save the program outside compiled code")
    return np.array(data if isinstance(data, np.ndarray) else data.get(), order="C")  # 0-d stays 0-d


def _pack(prog):
    """The artifact's members {name: bytes}, in the order they are written."""
    from ..compiler import _generate
    from ..ir import Graph
    from ..passes.simplify import eliminate_dead_code
    from . import tuning
    info = getattr(prog, "artifact_info", None) or {}
    if prog.one_shot or any(e.kind == "new" for e in prog.effects):
        raise ArtifactError(f"Program.save: {ONE_SHOT}")
    graph = prog.ir
    if prog.backward is not None:  # a loaded program runs without autograd: drop the saved activations
        graph = graph.copy()
        graph.outputs = graph.outputs[:len(graph.outputs) - len(prog.backward[1]["saved_outputs"])]
        eliminate_dead_code(graph)
    graph_json = graph.to_json()
    fuse = info.get("fuse", True) if "fuse" in info else any(
        d.get("group") is not None for _, d in prog.ir.g.nodes(data=True))
    block_bytes = int(info.get("block_bytes") or tuning.block_bytes())

    names = state_names(prog)
    state, arrays, bindings = [], {}, []
    for slot, b in enumerate(prog.bindings):
        if b.kind == "arg":
            bindings.append({"kind": "arg", "index": int(b.ref)})
        elif b.kind == "state":
            arrays[names[slot]] = _host(b.ref)
            state.append({"name": names[slot], "requires_grad": bool(b.ref.requires_grad)})
            bindings.append({"kind": "state", "name": names[slot]})
        elif b.kind == "random":   # drawn afresh on every call from gradc's generator (gradc.manual_seed)
            kind, shape, dtype, low, high = b.ref
            bindings.append({"kind": "random", "spec": [kind, list(shape), dtype, int(low), int(high)]})
        elif b.kind != "grad":
            raise ArtifactError(f"Program.save: inputs bound as {b.kind!r} cannot be saved by this version of gradc")
        else:
            owner = prog.bindings[b.owner]
            if owner.kind == "grad":
                raise ArtifactError("Program.save: the program reads the .grad of a .grad tensor; not supported")
            entry = {"kind": "grad", "owner": int(b.owner), "name": None}
            if owner.kind == "state":
                if owner.ref.grad is None:
                    raise ArtifactError(f"Program.save: the program reads .grad of {names[b.owner]!r}, which is None "
                                        "now; run a step first or set the gradient")
                entry["name"] = _unique(list(arrays) + [names[b.owner] + ".grad"])[-1]
                arrays[entry["name"]] = _host(owner.ref.grad)
                state.append({"name": entry["name"], "requires_grad": False})
            bindings.append(entry)
    for s in state:
        s.update(shape=list(arrays[s["name"]].shape), dtype=D.from_numpy_dtype(arrays[s["name"]].dtype).name)

    inputs = info.get("inputs") or _inputs_from_graph(prog, graph)
    effects = [{"kind": e.kind, "slot": int(e.slot), "out": None if e.out is None else int(e.out)}
               for e in prog.effects]
    out_spec = _spec_to_data(prog.out_spec)
    outputs = [{"name": f"output{i}", "shape": list(graph.node(o)["shape"]), "dtype": graph.node(o)["dtype"]}
               for i, o in enumerate(graph.outputs[:prog.n_returned])]
    # The code is regenerated from the saved graph exactly as gradc.load will, and its hash recorded.
    regen = _generate(Graph.from_json(graph_json), prog.bindings, _parts(prog.effects, prog.n_returned),
                      prog.out_spec, fuse, optimize_graph=False, block_bytes=block_bytes, backend=prog.backend)
    source = {name: text for name, text in sorted(regen.source.items())}
    manifest = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "gradc_version": __version__,
        "backend": prog.backend, "amp": info.get("amp"), "fuse": bool(fuse), "block_bytes": block_bytes,
        "inputs": inputs, "outputs": outputs, "out_spec": out_spec, "n_returned": int(prog.n_returned),
        "state": state, "bindings": bindings, "effects": effects,
        "graph_hash": _sha(graph_json), "source_sha256": {n: _sha(t) for n, t in source.items()},
        "stats": _plain_stats(regen.stats)}
    members = {MANIFEST: json.dumps(manifest, indent=1, sort_keys=True) + "\n", GRAPH: graph_json,
               STATE: _npz_bytes(arrays)}
    members.update({SOURCE_DIR + n: t for n, t in source.items()})
    return members


def _inputs_from_graph(prog, graph):
    """Input specs when the example arguments are not known (a Program from CompiledFunction.lower)."""
    refs = {b.ref: nid for b, nid in zip(prog.bindings, graph.inputs) if b.kind == "arg"}
    n = max(refs, default=-1) + 1
    specs = []
    for i in range(n):
        d = graph.node(refs[i]) if i in refs else None
        specs.append({"name": f"input{i}", "shape": list(d["shape"]) if d else None,
                      "dtype": d["dtype"] if d else None})
    return specs


def _parts(effects, n_returned):
    return {"effects": effects, "n_returned": n_returned, "guards": [], "one_shot": False}


def _sha(text):
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()


def _plain_stats(stats):
    return json.loads(json.dumps({k: v for k, v in stats.items() if k != "backward"}, default=str))


def _npz_bytes(arrays):
    """An .npz (what np.savez writes: one .npy per array in a zip), never pickled."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, arr in arrays.items():
            one = io.BytesIO()
            np.lib.format.write_array(one, arr, allow_pickle=False)
            zf.writestr(_zinfo(name + ".npy", zipfile.ZIP_STORED), one.getvalue())
    return buf.getvalue()


def _zinfo(name, compression=zipfile.ZIP_DEFLATED):
    zi = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
    zi.compress_type = compression
    zi.external_attr = 0o644 << 16
    return zi


def save(prog, path):
    """Write `prog` to `path` as one artifact file. Atomic: the file is written beside the target,
    synced, then renamed over it, so an interrupted save leaves any previous file intact."""
    members = _pack(prog)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            with zipfile.ZipFile(f, "w") as zf:
                for name, data in members.items():
                    zf.writestr(_zinfo(name, zipfile.ZIP_STORED if name == STATE else zipfile.ZIP_DEFLATED),
                                data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass
    return path


def _umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# ---------------------------------------------------------------------------------------------- pytree specs
def _spec_to_data(spec):
    """The output pytree spec as plain JSON data (tuples and named tuples become tuples)."""
    if spec is None:
        return None
    kind, body = spec
    if kind == "T":
        return {"tensor": int(body)}
    if kind == "V":
        if body is None or isinstance(body, (bool, int, str)) or (isinstance(body, float) and math.isfinite(body)):
            return {"value": body}
        raise ArtifactError(f"the function returns a Python value of type {type(body).__name__} ({body!r:.60}), "
                            "which an artifact cannot hold; return tensors, numbers, strings or None")
    if kind is dict:
        for k, _ in body:
            if not isinstance(k, (str, int)) or isinstance(k, bool):
                raise ArtifactError(f"the function returns a dict with key {k!r}; artifacts hold str or int keys only")
        return {"dict": [[k, _spec_to_data(v)] for k, v in body]}
    return {"list" if kind is list else "tuple": [_spec_to_data(v) for v in body]}


# ---------------------------------------------------------------------------------------------- load
def load(path):
    """Read, validate and rebuild a saved program. Nothing in the file is executed: the code is
    regenerated from the validated graph. The Program owns fresh state tensors made from the file."""
    from ..compiler import _generate
    from ..trace import Binding
    from ..runtime.program import Effect
    path = Path(path)
    members = read_members(path)
    manifest = parse_manifest(members[MANIFEST])
    graph_text = members[GRAPH]
    if _sha(graph_text) != manifest["graph_hash"]:
        raise ArtifactError(f"{GRAPH} does not match the hash recorded in {MANIFEST}: the graph was modified "
                            "after saving; export the program again")
    graph = parse_graph(graph_text)
    check_wiring(manifest, graph)
    arrays = read_state(members[STATE], manifest)
    for name, digest in manifest["source_sha256"].items():
        member = SOURCE_DIR + name
        if member not in members:
            raise ArtifactError(f"the artifact is missing {member} (listed in {MANIFEST})")
        if _sha(members[member]) != digest:
            raise ArtifactError(f"{member} does not match its hash in {MANIFEST}: the shipped source was edited. "
                                "It is never run (gradc regenerates the code from the graph); export again "
                                "rather than editing it")

    # Everything is checked: build fresh state and regenerate the program from the graph.
    from ..device import is_available
    on_gpu = manifest["backend"] == "cuda" and is_available()  # without a GPU it can still be dumped
    tensors = {}
    for s in manifest["state"]:
        t = Tensor._wrap(arrays[s["name"]], D.ALL[s["dtype"]], CPU)
        t = t.cuda() if on_gpu else t
        t.requires_grad = bool(s["requires_grad"])
        tensors[s["name"]] = t
    bindings = []
    for b in manifest["bindings"]:
        if b["kind"] == "arg":
            bindings.append(Binding("arg", b["index"]))
        elif b["kind"] == "state":
            bindings.append(Binding("state", tensors[b["name"]]))
        elif b["kind"] == "random":
            kind, shape, dtype, low, high = b["spec"]
            bindings.append(Binding("random", (kind, tuple(shape), dtype, low, high)))
        else:
            owner = bindings[b["owner"]]
            if b["name"] is not None and owner.kind == "state":
                owner.ref.grad = tensors[b["name"]]
            bindings.append(Binding("grad", None, b["owner"]))
    effects = [Effect(e["kind"], e["slot"], e["out"]) for e in manifest["effects"]]
    out_spec = spec_from_data(manifest["out_spec"], manifest["n_returned"])
    try:
        prog = _generate(graph, bindings, _parts(effects, manifest["n_returned"]), out_spec, manifest["fuse"],
                         optimize_graph=False, block_bytes=manifest["block_bytes"], backend=manifest["backend"])
    except (GradcError, KeyError, TypeError, ValueError, IndexError) as e:
        raise ArtifactError(f"{path}: the graph cannot be compiled by this gradc ({type(e).__name__}: {e})") from None
    regenerated = {n: _sha(t) for n, t in prog.source.items()}
    if regenerated != manifest["source_sha256"]:
        raise ArtifactError(
            f"{path}: the code regenerated from {GRAPH} does not match the artifact's source hash "
            f"(written by gradc {manifest['gradc_version']}, this is gradc {__version__}): either the graph "
            "was modified or this version generates different code; export the program again with this version")
    names = {slot: b["name"] for slot, b in enumerate(manifest["bindings"]) if b["kind"] == "state"}
    prog.artifact_info = {"inputs": manifest["inputs"], "amp": manifest["amp"], "fuse": manifest["fuse"],
                          "block_bytes": manifest["block_bytes"], "path": str(path), "manifest": manifest,
                          "state_names": names}
    prog.stats["artifact"] = str(path)
    return prog


def read_manifest(path):
    """The validated manifest of an artifact (for tools that only describe it)."""
    return parse_manifest(read_members(Path(path))[MANIFEST])


