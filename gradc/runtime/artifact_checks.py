"""Validation of artifact files, before anything in them is used: the zip container, the manifest's
schema, a whitelist over every field of the graph (ops, attributes, names, edges), the agreement of
manifest and graph, and the state arrays. Every failure is an ArtifactError that names the member and
the field; nothing here executes or unpickles anything from the file."""
import inspect
import io
import json
import re
import zipfile
import zlib

import numpy as np

from .. import __version__
from .. import dtypes as D
from ..errors import ArtifactError, GradcError
from ..ops import OPS

FORMAT = "gradc-artifact"
FORMAT_VERSION = 1
MANIFEST, GRAPH, STATE, SOURCE_DIR = "manifest.json", "graph.json", "state.npz", "source/"
_JSON_LIMIT = 256 << 20          # bytes of manifest.json / graph.json that a sane artifact never exceeds
NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,199}\Z")   # state and input names (npz keys, CLI)
_INPUT_NODE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}\Z")
_TABLE_NAME = re.compile(r"c[0-9]{1,9}\Z")
_SOURCE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,99}\Z")
_NODE_FIELDS = {"id", "op", "shape", "dtype", "attrs", "where"}


def read_members(path):
    """{member name: text (bytes for the state)} of the required members and the shipped source."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ArtifactError(f"{path}: no such file") from None
    except OSError as e:
        raise ArtifactError(f"{path}: cannot be read ({e.strerror or e})") from None
    if not raw:
        raise ArtifactError(f"{path} is empty: it is not a gradc artifact")
    if not raw.startswith(b"PK\x03\x04"):
        raise ArtifactError(f"{path} is not a gradc artifact: it is not a zip archive (artifacts are written by "
                            "Program.save and `gradc compile`)")
    try:
        zf = zipfile.ZipFile(io.BytesIO(raw))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as e:
        raise ArtifactError(f"{path} is truncated or its zip directory is corrupt ({e}); the save was interrupted "
                            "or the file was cut short in transfer: save it again") from None
    names = set(zf.namelist())
    missing = [m for m in (MANIFEST, GRAPH, STATE) if m not in names]
    if missing:
        raise ArtifactError(f"{path} is missing {', '.join(missing)}: it is not a complete gradc artifact")
    members = {}
    for name in [MANIFEST, GRAPH, STATE] + sorted(n for n in names if n.startswith(SOURCE_DIR)):
        info = zf.getinfo(name)
        if name != STATE and info.file_size > _JSON_LIMIT:
            raise ArtifactError(f"{path}: member {name} claims {info.file_size} bytes, more than any artifact holds")
        try:
            data = zf.read(name)
        except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, NotImplementedError) as e:
            raise ArtifactError(f"{path}: member {name} is corrupt ({e}); save the artifact again") from None
        if name == STATE:
            members[name] = data
            continue
        try:
            members[name] = data.decode("utf-8")
        except UnicodeDecodeError:
            raise ArtifactError(f"{path}: member {name} is not UTF-8 text") from None
    return members


def spec_from_data(data, n_returned, where="out_spec"):
    """The output pytree spec back from its JSON form (the inverse of artifact._spec_to_data)."""
    if not isinstance(data, dict) or len(data) != 1:
        raise ArtifactError(f"manifest.json: {where} must be an object with one key, got {data!r:.80}")
    (kind, body), = data.items()
    if kind == "tensor":
        if not _is_int(body) or not 0 <= body < n_returned:
            raise ArtifactError(f"manifest.json: {where} names output {body!r}, but the program returns {n_returned}")
        return ("T", body)
    if kind == "value":
        if not (body is None or isinstance(body, (bool, int, float, str))):
            raise ArtifactError(f"manifest.json: {where} holds a value of type {type(body).__name__}")
        return ("V", body)
    if kind in ("tuple", "list") and isinstance(body, list):
        return (tuple if kind == "tuple" else list,
                tuple(spec_from_data(v, n_returned, f"{where}.{i}") for i, v in enumerate(body)))
    if kind == "dict" and isinstance(body, list):
        items = []
        for i, item in enumerate(body):
            if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], (str, int))
                    and not isinstance(item[0], bool)):
                raise ArtifactError(f"manifest.json: {where}.{i} must be a [key, spec] pair")
            items.append((item[0], spec_from_data(item[1], n_returned, f"{where}.{item[0]}")))
        return (dict, tuple(items))
    raise ArtifactError(f"manifest.json: {where} has unknown kind {kind!r}")


def _fail(where, what):
    raise ArtifactError(f"{MANIFEST}: {where}: {what}")


def _is_int(x):
    return isinstance(x, int) and not isinstance(x, bool)


def _want(d, key, check, what, where=""):
    if not isinstance(d, dict) or key not in d:
        _fail(where or key, f"missing field {key!r}")
    value = d[key]
    if not check(value):
        _fail(f"{where}.{key}" if where else key, f"expected {what}, got {value!r:.80}")
    return value


def _random_spec_ok(v):
    return (isinstance(v, list) and len(v) == 5 and v[0] in ("rand", "randn", "randint", "randperm")
            and _shape_ok(v[1]) and v[2] in D.ALL and _is_int(v[3]) and _is_int(v[4]) and abs(v[3]) < 1 << 62
            and abs(v[4]) < 1 << 62)


def _shape_ok(s):
    return isinstance(s, list) and len(s) <= 32 and all(_is_int(v) and 0 <= v < 1 << 40 for v in s)


def parse_manifest(text):
    try:
        m = json.loads(text)
    except ValueError as e:
        raise ArtifactError(f"{MANIFEST} is not valid JSON ({e})") from None
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        kind = m.get("format") if isinstance(m, dict) else type(m).__name__
        raise ArtifactError(f"{MANIFEST} does not describe a gradc artifact (format {kind!r})")
    version = m.get("format_version")
    if version != FORMAT_VERSION:
        raise ArtifactError(f"artifact format version {version!r} is not supported by gradc {__version__} (it reads "
                            f"version {FORMAT_VERSION}); export the program again with this version of gradc")
    _want(m, "gradc_version", lambda v: isinstance(v, str), "a version string")
    _want(m, "backend", lambda v: v in ("numpy", "cuda"), "'numpy' or 'cuda'")
    _want(m, "amp", lambda v: v in (None, "fp16"), "null or 'fp16'")
    _want(m, "fuse", lambda v: isinstance(v, bool), "true or false")
    _want(m, "block_bytes", lambda v: _is_int(v) and 0 < v <= 1 << 30, "a positive byte count")
    n_ret = _want(m, "n_returned", lambda v: _is_int(v) and v >= 0, "a count")
    _want(m, "graph_hash", lambda v: isinstance(v, str) and re.fullmatch("[0-9a-f]{64}", v), "a sha256 hex digest")
    srcs = _want(m, "source_sha256", lambda v: isinstance(v, dict) and v, "an object of file hashes")
    for n, h in srcs.items():
        if not _SOURCE_NAME.match(n) or not (isinstance(h, str) and re.fullmatch("[0-9a-f]{64}", h)):
            _fail("source_sha256", f"bad entry {n!r}: {h!r:.80}")
    for key in ("inputs", "outputs", "state", "bindings", "effects"):
        _want(m, key, lambda v: isinstance(v, list), "a list")
    for i, s in enumerate(m["inputs"]):
        w = f"inputs[{i}]"
        _want(s, "name", lambda v: isinstance(v, str) and NAME.match(v), "a plain name", w)
        _want(s, "shape", lambda v: v is None or _shape_ok(v), "a shape", w)
        _want(s, "dtype", lambda v: v is None or v in D.ALL, "a dtype name", w)
    if len({s["name"] for s in m["inputs"]}) != len(m["inputs"]):
        _fail("inputs", "input names are not unique")
    if len(m["outputs"]) != n_ret:
        _fail("outputs", f"{len(m['outputs'])} entries for {n_ret} returned tensors")
    for i, s in enumerate(m["outputs"]):
        _want(s, "shape", _shape_ok, "a shape", f"outputs[{i}]")
        _want(s, "dtype", lambda v: v in D.ALL, "a dtype name", f"outputs[{i}]")
    for i, s in enumerate(m["state"]):
        w = f"state[{i}]"
        _want(s, "name", lambda v: isinstance(v, str) and NAME.match(v), "a plain name", w)
        _want(s, "shape", _shape_ok, "a shape", w)
        _want(s, "dtype", lambda v: v in D.ALL, "a dtype name", w)
        _want(s, "requires_grad", lambda v: isinstance(v, bool), "true or false", w)
    state_names = [s["name"] for s in m["state"]]
    if len(set(state_names)) != len(state_names):
        _fail("state", "state names are not unique")
    used = []
    for i, b in enumerate(m["bindings"]):
        w = f"bindings[{i}]"
        kind = _want(b, "kind", lambda v: v in ("arg", "state", "grad", "random"), "'arg', 'state', 'grad' or "
                     "'random'", w)
        if kind == "random":
            _want(b, "spec", _random_spec_ok, "[kind, shape, dtype, low, high] of a random draw", w)
        elif kind == "arg":
            _want(b, "index", lambda v: _is_int(v) and 0 <= v < len(m["inputs"]), "an input position", w)
        elif kind == "state":
            used.append(_want(b, "name", lambda v: v in state_names, "the name of a state entry", w))
        else:
            _want(b, "owner", lambda v: _is_int(v) and 0 <= v < i and m["bindings"][v].get("kind") in ("arg", "state"),
                  "the position of an earlier arg or state binding", w)
            name = _want(b, "name", lambda v: v is None or v in state_names, "null or a state name", w)
            if name is not None:
                if m["bindings"][b["owner"]]["kind"] != "state":
                    _fail(w, "gradient data is only stored for state tensors")
                used.append(name)
    if sorted(used) != sorted(state_names):
        _fail("state", "every state entry must be bound exactly once")
    for i, e in enumerate(m["effects"]):
        w = f"effects[{i}]"
        kind = _want(e, "kind", lambda v: v in ("data", "grad"), "'data' or 'grad'", w)
        _want(e, "slot", lambda v: _is_int(v) and 0 <= v < len(m["bindings"])
              and m["bindings"][v]["kind"] in ("arg", "state"), "the position of an arg or state binding", w)
        _want(e, "out", lambda v: (v is None and kind == "grad") or (_is_int(v) and v >= 0), "an output position", w)
    m["out_spec"] = m.get("out_spec")
    spec_from_data(m["out_spec"], n_ret)  # checks it
    if "stats" in m and not isinstance(m["stats"], dict):
        _fail("stats", "expected an object")
    return m


def _plain_value(v, depth=0):
    """Numbers, bools, None, and (nested) lists of them: all an op attribute may be."""
    if v is None or isinstance(v, (bool, int)):
        return True
    if isinstance(v, float):
        return True
    if isinstance(v, list) and depth < 3 and len(v) <= 64:
        return all(_plain_value(x, depth + 1) for x in v)
    return False


_ATTRS = {}


def _allowed_attrs(op):
    """Attribute names an op accepts: the keyword parameters of its shape rule."""
    if op not in _ATTRS:
        params = inspect.signature(OPS[op].shape_rule).parameters.values()
        _ATTRS[op] = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)} - {"shapes"}
    return _ATTRS[op]


def _check_graph_data(data):
    """Whitelist every field of graph.json before it is turned into a Graph: ops from the op table,
    attributes of the kinds those ops take, names that are generated, edges between real nodes."""
    def bad(what):
        raise ArtifactError(f"{GRAPH}: {what}; the graph was modified or corrupted (export the program again)")

    if not isinstance(data, dict):
        bad("not a JSON object")
    for key, kind in (("nodes", list), ("edges", list), ("inputs", list), ("outputs", list), ("constants", dict)):
        if not isinstance(data.get(key), kind):
            bad(f"field {key!r} is missing or not a {kind.__name__}")
    consts = data["constants"]
    for name, c in consts.items():
        if not _TABLE_NAME.match(name) or not isinstance(c, dict):
            bad(f"constant {name!r:.40} has a bad name or body")
        if c.get("dtype") not in D.ALL or not _shape_ok(c.get("shape")) or not isinstance(c.get("data"), list):
            bad(f"constant {name!r} has a bad dtype, shape or data")
        if len(c["data"]) != int(np.prod(c["shape"], dtype=np.int64)) or not all(
                isinstance(x, (int, float)) for x in c["data"]):
            bad(f"constant {name!r}: its data does not fill shape {c['shape']} with numbers")
    ids = set()
    for n in data["nodes"]:
        if not isinstance(n, dict) or not _NODE_FIELDS <= set(n) <= _NODE_FIELDS | {"phase", "group"}:
            bad(f"node {str(n)[:80]} does not have the fields id, op, shape, dtype, attrs, where (and optionally "
                "phase, group) only")
        nid, op, attrs = n["id"], n["op"], n["attrs"]
        if not _is_int(nid) or not 0 <= nid < 1 << 62 or nid in ids:
            bad(f"node id {nid!r:.40} is not a fresh non-negative integer")
        if n.get("phase", "backward") not in ("backward", "recompute") or not _is_int(n.get("group", 0)) or n.get("group", 0) < 0:
            bad(f"node %{nid} has a bad phase or group marker")
        ids.add(nid)
        if not isinstance(op, str) or (op not in OPS and op not in ("input", "const")):
            bad(f"node %{nid} has unknown op {op!r:.60}")
        if not _shape_ok(n["shape"]) or n["dtype"] not in D.ALL:
            bad(f"node %{nid} has a bad shape {n['shape']!r:.60} or dtype {n['dtype']!r:.40}")
        if n["where"] is not None and not (isinstance(n["where"], str) and len(n["where"]) <= 1000
                                           and n["where"].isprintable()):
            bad(f"node %{nid} has a bad source location {n['where']!r:.60}")
        if not isinstance(attrs, dict):
            bad(f"node %{nid}: attrs is not an object")
        if op == "input":
            name = attrs.get("name")
            if set(attrs) != {"name"} or not isinstance(name, str) or not _INPUT_NODE_NAME.match(name):
                bad(f"input node %{nid} has attributes {attrs!r:.80} (expected only a plain 'name')")
        elif op == "const":
            ok = (set(attrs) == {"fill"} and _plain_value(attrs["fill"]) and not isinstance(attrs["fill"], list)) or \
                 (set(attrs) == {"table"} and attrs["table"] in consts)
            if not ok:
                bad(f"const node %{nid} has attributes {attrs!r:.80} (expected a numeric 'fill' or a known 'table')")
        else:
            allowed = _allowed_attrs(op)
            for k, v in attrs.items():
                if k not in allowed:
                    bad(f"node %{nid} ({op}) has attribute {k!r:.40}, which {op} does not take")
                if k == "dtype":
                    if v not in D.ALL:
                        bad(f"node %{nid} ({op}): attribute dtype={v!r:.60} is not a known dtype name")
                elif not _plain_value(v):
                    bad(f"node %{nid} ({op}): attribute {k}={v!r:.60} is not a number, bool, None or tuple of them")
    for e in data["edges"]:
        if not (isinstance(e, list) and len(e) == 4 and e[0] in ids and e[1] in ids and _is_int(e[0])
                and _is_int(e[1]) and _is_int(e[2]) and 0 <= e[2] < 1 << 16 and isinstance(e[3], bool)):
            bad(f"edge {e!r:.80} is not [operand node, user node, position, grad flag] between existing nodes")
    for key in ("inputs", "outputs"):
        if not all(_is_int(i) and i in ids for i in data[key]):
            bad(f"{key} name nodes that do not exist")
    if len(set(data["inputs"])) != len(data["inputs"]):
        bad("an input is listed twice")
    if {n["id"] for n in data["nodes"] if n["op"] == "input"} != set(data["inputs"]):
        bad("the input nodes and the list of inputs differ")


def parse_graph(text):
    from ..ir import Graph
    try:
        data = json.loads(text)
    except ValueError as e:
        raise ArtifactError(f"{GRAPH} is not valid JSON ({e})") from None
    _check_graph_data(data)
    try:
        graph = Graph.from_dict(data)
        graph.verify()
    except GradcError as e:
        raise ArtifactError(f"{GRAPH} is inconsistent: {e}") from None
    except (KeyError, TypeError, ValueError, OverflowError) as e:
        raise ArtifactError(f"{GRAPH} is malformed ({type(e).__name__}: {e})") from None
    return graph


def check_wiring(m, graph):
    """The manifest and the graph must agree on every input, state entry, effect and output."""
    def node(nid):
        d = graph.node(nid)
        return list(d["shape"]), d["dtype"]

    if len(m["bindings"]) != len(graph.inputs):
        _fail("bindings", f"{len(m['bindings'])} bindings for a graph with {len(graph.inputs)} inputs")
    state = {s["name"]: s for s in m["state"]}
    seen_args = set()
    for slot, (b, nid) in enumerate(zip(m["bindings"], graph.inputs)):
        shape, dtype = node(nid)
        if b["kind"] == "arg":
            spec = m["inputs"][b["index"]]
            if b["index"] in seen_args:
                _fail(f"bindings[{slot}]", f"input {b['index']} is bound twice")
            seen_args.add(b["index"])
            if spec["shape"] is not None and (spec["shape"], spec["dtype"]) != (shape, dtype):
                _fail(f"inputs[{b['index']}]", f"declares {spec['dtype']}{spec['shape']} but the graph's input is "
                                               f"{dtype}{shape}")
        elif b["kind"] == "random":
            spec = b["spec"]
            if (spec[1], spec[2]) != (shape, dtype):
                _fail(f"bindings[{slot}]", f"draws {spec[2]}{spec[1]} into a graph input of {dtype}{shape}")
        elif b["kind"] == "state" or b["name"] is not None:
            s = state[b["name"]]
            if (s["shape"], s["dtype"]) != (shape, dtype):
                _fail(f"state {b['name']!r}", f"declares {s['dtype']}{s['shape']} but the graph reads {dtype}{shape}")
        if b["kind"] == "grad":
            oshape, _ = node(graph.inputs[b["owner"]])
            if oshape != shape:
                _fail(f"bindings[{slot}]", f"a gradient of shape {shape} for a tensor of shape {oshape}")
    for i, e in enumerate(m["effects"]):
        if e["out"] is None:
            continue
        if e["out"] >= len(graph.outputs):
            _fail(f"effects[{i}]", f"output {e['out']} does not exist (the graph has {len(graph.outputs)})")
        target, value = node(graph.inputs[e["slot"]]), node(graph.outputs[e["out"]])
        if (e["kind"] == "data" and value != target) or (e["kind"] == "grad" and value[0] != target[0]):
            _fail(f"effects[{i}]", f"writes {value[1]}{value[0]} into a tensor of {target[1]}{target[0]}")
    if m["n_returned"] > len(graph.outputs):
        _fail("n_returned", f"{m['n_returned']} returned values but the graph has {len(graph.outputs)} outputs")
    for i, (spec, nid) in enumerate(zip(m["outputs"], graph.outputs)):
        if (spec["shape"], spec["dtype"]) != node(nid):
            _fail(f"outputs[{i}]", f"declares {spec['dtype']}{spec['shape']} but the graph returns "
                                   f"{node(nid)[1]}{node(nid)[0]}")


def read_state(raw, m):
    try:
        npz = np.load(io.BytesIO(raw), allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise ArtifactError(f"{STATE} is not a readable .npz archive ({e})") from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise ArtifactError(f"{STATE} is a single array, not an .npz archive of named arrays")
    with npz:
        names = {s["name"] for s in m["state"]}
        files = set(npz.files)
        if files != names:
            missing, extra = sorted(names - files), sorted(files - names)
            raise ArtifactError(f"{STATE} does not hold the state the manifest lists"
                                + (f"; missing: {', '.join(missing)}" if missing else "")
                                + (f"; unexpected: {', '.join(extra)}" if extra else ""))
        arrays = {}
        for s in m["state"]:
            try:
                arr = npz[s["name"]]
            except ValueError as e:
                if "pickle" in str(e) or "Object arrays" in str(e):
                    raise ArtifactError(f"{STATE}: array {s['name']!r} holds Python objects; artifacts hold numeric "
                                        "arrays only (object arrays are never unpickled)") from None
                raise ArtifactError(f"{STATE}: array {s['name']!r} is corrupt ({e})") from None
            except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
                raise ArtifactError(f"{STATE}: array {s['name']!r} is corrupt ({e})") from None
            if arr.dtype.hasobject or arr.dtype not in D._BY_NP or D._BY_NP[arr.dtype].name != s["dtype"]:
                raise ArtifactError(f"{STATE}: array {s['name']!r} has dtype {arr.dtype}, but the program needs "
                                    f"{s['dtype']}")
            if list(arr.shape) != s["shape"]:
                raise ArtifactError(f"{STATE}: array {s['name']!r} has shape {tuple(arr.shape)}, but the program needs "
                                    f"{tuple(s['shape'])}")
            arrays[s["name"]] = np.array(arr, order="C")  # writable, owned, 0-d stays 0-d
    return arrays
