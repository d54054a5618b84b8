"""Ahead-of-time artifacts: a Program saved as one zip file and loaded back without the model's code.

An artifact holds data only: the optimised IR (graph.json), the state tensors (state.npz), a manifest
saying how arguments, state and outputs bind to the graph, and the generated source for people to
read. Loading validates all of it, then regenerates the code from the IR through the templates; the
shipped source is checked against the manifest but never executed or imported."""
import hashlib
import io
import json
import math
import re
import warnings
import zipfile
from pathlib import Path

import numpy as np

from .. import dtypes as D
from ..errors import ArtifactError, GradcError
from ..device import CPU
from ..ir import Graph
from ..pytree import is_dict
from ..tensor import Tensor
from ..spec import Spec
from ..version import __version__
from .artifact_checks import (FORMAT, FORMAT_VERSION, GRAPH, MANIFEST, NAME, SOURCE_DIR, STATE, check_wiring,
                              parse_graph, parse_manifest, read_members, read_state, spec_from_data)
from .cache import atomic_write
from .wiring import Binding, Effect

_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed, so the same program saves to the same bytes

ONE_SHOT = ("this function creates new state the first time it runs (for example optimizer state: SGD's "
            "momentum buffers, Adam's moments), so the traced program is only valid for that first call and "
            "cannot be saved. Run one step first (eagerly or compiled), then export the step, so the state "
            "exists and is saved with the program")


# ---------------------------------------------------------------------------------------------- names
def safe_name(name, fallback):
    """`name` with characters outside [A-Za-z0-9_.-] replaced, or `fallback` if that is no valid name."""
    name = re.sub(r"[^A-Za-z0-9_.\-]", "_", str(name))[:200]
    return name if NAME.match(name) else fallback


def unique_names(names):
    """The names with later duplicates suffixed _1, _2, ..."""
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
    return dict(zip(slots, unique_names(names)))


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
    from . import tuning
    info = getattr(prog, "artifact_info", None) or {}
    if prog.one_shot or any(e.kind == "new" for e in prog.effects):
        raise ArtifactError(f"Program.save: {ONE_SHOT}")
    if any(e.kind == "requires_grad" for e in prog.effects):
        raise ArtifactError("Program.save: the traced function sets requires_grad of a tensor it reads, which an "
                            "artifact cannot replay; set it outside the compiled function")
    graph = prog.ir
    if prog.backward is not None:  # a loaded program runs without autograd: drop the saved activations
        graph = graph.copy()
        graph.outputs = graph.outputs[:len(graph.outputs) - len(prog.backward[1]["saved_outputs"])]
        graph.prune()
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
                entry["name"] = unique_names(list(arrays) + [names[b.owner] + ".grad"])[-1]
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
    if prog.pipeline is None:
        raise ArtifactError("Program.save: this Program was not built by gradc.lower, so its code cannot be "
                            "regenerated for an artifact; lower the graph with gradc.lower.lower")
    regen = prog.pipeline(Graph.from_json(graph_json), _regen_spec(prog.backend, fuse, block_bytes, prog.bindings,
                                                                   prog.effects, prog.n_returned, prog.out_spec))
    source = {name: text for name, text in sorted(regen.source.items())}
    manifest = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "gradc_version": __version__,
        "backend": prog.backend, "requested_backend": info.get("requested_backend") or prog.backend,
        "amp": info.get("amp"), "fuse": bool(fuse), "block_bytes": block_bytes,
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


def _regen_spec(backend, fuse, block_bytes, bindings, effects, n_returned, out_spec):
    """How a saved graph is lowered again: already optimised, no autodiff, reusable on every call."""
    return Spec(backend=backend, fuse=bool(fuse), optimize=False, block_bytes=int(block_bytes), bindings=bindings,
                effects=effects, n_returned=n_returned, out_spec=out_spec)


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
    """Write `prog` to `path` as one artifact file. Atomic (cache.atomic_write): an interrupted
    save leaves any previous file intact."""
    members = _pack(prog)

    def write(f):
        with zipfile.ZipFile(f, "w") as zf:
            for name, data in members.items():
                zf.writestr(_zinfo(name, zipfile.ZIP_STORED if name == STATE else zipfile.ZIP_DEFLATED), data)
    return atomic_write(path, write)


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
    if is_dict(kind):   # (a dict subclass loads back as a plain dict: an artifact holds data, not classes)
        for k, _ in body:
            if not isinstance(k, (str, int)) or isinstance(k, bool):
                raise ArtifactError(f"the function returns a dict with key {k!r}; artifacts hold str or int keys only")
        return {"dict": [[k, _spec_to_data(v)] for k, v in body]}
    return {"list" if kind is list else "tuple": [_spec_to_data(v) for v in body]}


# ---------------------------------------------------------------------------------------------- load
def load(path, pipeline):
    """Read, validate and rebuild a saved program. Nothing in the file is executed: the code is
    regenerated from the validated graph by `pipeline` (gradc.lower.lower, handed down by gradc.load:
    the runtime does not import the compiler). The Program owns fresh state tensors made from the file."""
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
    def regenerate(backend):
        try:
            return pipeline(graph, _regen_spec(backend, manifest["fuse"], manifest["block_bytes"], bindings, effects,
                                               manifest["n_returned"], out_spec))
        except (GradcError, KeyError, TypeError, ValueError, IndexError) as e:
            raise ArtifactError(f"{path}: the graph cannot be compiled by this gradc ({type(e).__name__}: {e})") \
                from None

    prog = regenerate(manifest["backend"])
    regenerated = {n: _sha(t) for n, t in prog.source.items()}
    if regenerated != manifest["source_sha256"]:
        raise ArtifactError(
            f"{path}: the code regenerated from {GRAPH} does not match the artifact's source hash "
            f"(written by gradc {manifest['gradc_version']}, this is gradc {__version__}): either the graph "
            "was modified or this version generates different code; export the program again with this version")
    backend = backend_here(manifest["backend"], manifest.get("requested_backend", manifest["backend"]), path)
    if backend != manifest["backend"]:   # checked as saved; the code that runs is generated for this machine
        prog = regenerate(backend)
    names = {slot: b["name"] for slot, b in enumerate(manifest["bindings"]) if b["kind"] == "state"}
    return prog.replace(stats={**prog.stats, "artifact": str(path), "artifact_backend": manifest["backend"]},
                        artifact_info={"inputs": manifest["inputs"], "amp": manifest["amp"], "fuse": manifest["fuse"],
                                       "block_bytes": manifest["block_bytes"], "path": str(path),
                                       "manifest": manifest, "state_names": names,
                                       "requested_backend": manifest.get("requested_backend", manifest["backend"])})


def backend_here(saved, requested, path="the artifact"):
    """The backend a saved program runs on here. A CUDA program stays CUDA (without a GPU it can
    still be dumped). A CPU program exported with backend "auto" gets the best CPU backend of this
    machine (native.choose_backend: GRADC_BACKEND, else c where a compiler works, else numpy); one
    exported for c runs on c, or on numpy with a notice where no C compiler works; numpy stays numpy."""
    from . import native
    if saved == "cuda":
        return "cuda"
    want = saved
    if requested == "auto":
        with warnings.catch_warnings():   # the notice below names the artifact instead
            warnings.simplefilter("ignore")
            chosen = native.choose_backend(False)
        want = chosen if chosen in ("numpy", "c") else saved
    if (want == "c" or saved == "c") and not native.available():
        native.notice_fallback(f"{path} was saved for backend 'c', but this machine cannot build C "
                               f"({native.probe()['error']}): its code was regenerated for NumPy")
        return "numpy"
    return want


def read_manifest(path):
    """The validated manifest of an artifact (for tools that only describe it)."""
    return parse_manifest(read_members(Path(path))[MANIFEST])


