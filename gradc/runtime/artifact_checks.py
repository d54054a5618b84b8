"""Validation of artifact files, before anything in them is used: the zip container (member names,
counts, sizes and compression, bounded before anything is inflated), the manifest's schema, the
graph (artifact_graph: every node against the op table), the agreement of manifest and graph, and the
state arrays (each .npy header checked before its data is read). The hashes in an artifact are
checksums against accidents, not signatures: everything here assumes the file may be hostile. Every
failure is an ArtifactError that names the member and the field; nothing here executes or unpickles
anything from the file."""
import io
import re
import struct
import zipfile
import zlib

import numpy as np

from ..version import __version__
from .. import dtypes as D
from ..errors import ArtifactError
from .artifact_graph import GRAPH, MAX_NODES, is_int, load_json, numel, parse_graph, shape_ok  # noqa: F401

FORMAT = "gradc-artifact"
FORMAT_VERSION = 1
MANIFEST, STATE, SOURCE_DIR = "manifest.json", "state.npz", "source/"
NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,199}\Z")   # state, input and output names (npz keys, files)
_SOURCE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,99}\Z")
_HEX64 = re.compile(r"[0-9a-f]{64}\Z")

MAX_MEMBERS = 64                                   # manifest, graph, state and a few source files
_LIMITS = {MANIFEST: 16 << 20, GRAPH: 256 << 20}   # bytes a member may inflate to; sources: _SOURCE_LIMIT
_SOURCE_LIMIT = 64 << 20
_ARRAY_OVERHEAD = 16 << 10                         # per state array: .npy header and zip entry
_NPY_HEADER_LIMIT = 10000                          # NumPy's own default for untrusted .npy headers


# ---------------------------------------------------------------------------------------------- the container
def _zip_entry_count(f, size):
    """Entries the zip directory claims, read from its end record before zipfile parses the directory."""
    tail_len = min(size, 22 + 0xFFFF)
    f.seek(size - tail_len)
    tail = f.read(tail_len)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or at + 22 > len(tail):
        return None   # zipfile reports the damage
    count = struct.unpack("<H", tail[at + 10:at + 12])[0]
    if count == 0xFFFF and at >= 20 and tail[at - 20:at - 16] == b"PK\x06\x07":   # zip64: the count is elsewhere
        (offset,) = struct.unpack("<Q", tail[at - 12:at - 4])
        if offset + 40 <= size:
            f.seek(offset)
            record = f.read(40)
            if record[:4] == b"PK\x06\x06":
                count = struct.unpack("<Q", record[32:40])[0]
    return count


def _member_name_ok(name):
    return name in (MANIFEST, GRAPH, STATE) or (name.startswith(SOURCE_DIR)
                                                and bool(_SOURCE_NAME.match(name[len(SOURCE_DIR):])))


def _inflate(zf, info, chunk=1 << 20):
    """A member's bytes, inflated a chunk at a time: zipfile stops at the declared size and checks the
    CRC, and no single step inflates more than `chunk` bytes (reading it whole would inflate all of
    the compressed data at once, whatever the declared size)."""
    parts = []
    with zf.open(info) as f:
        while True:
            part = f.read(chunk)
            if not part:
                return b"".join(parts)
            parts.append(part)


def state_limit(m):
    """The most bytes state.npz may hold for the state a (validated) manifest declares."""
    return sum(numel(s["shape"]) * D.ALL[s["dtype"]].itemsize + _ARRAY_OVERHEAD for s in m["state"]) + (64 << 10)


def read_members(path):
    """{member name: text (bytes for the state)} of an artifact file, each member checked before it is
    inflated: only the members an artifact has, each within its size limit."""
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise ArtifactError(f"{path}: no such file") from None
    except OSError as e:
        raise ArtifactError(f"{path}: cannot be read ({e.strerror or e})") from None
    with f:
        return _read_open(path, f)


def _read_open(path, f):
    try:
        f.seek(0, 2)
        size = f.tell()
        f.seek(0)
        magic = f.read(4)
    except OSError as e:
        raise ArtifactError(f"{path}: cannot be read ({e.strerror or e})") from None
    if not size:
        raise ArtifactError(f"{path} is empty: it is not a gradc artifact")
    if magic != b"PK\x03\x04":
        raise ArtifactError(f"{path} is not a gradc artifact: it is not a zip archive (artifacts are written by "
                            "Program.save and `gradc compile`)")
    count = _zip_entry_count(f, size)
    if count is not None and count > MAX_MEMBERS:
        raise ArtifactError(f"{path} has {count} members; a gradc artifact has at most {MAX_MEMBERS}")
    try:
        zf = zipfile.ZipFile(f)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, OSError) as e:
        raise ArtifactError(f"{path} is truncated or its zip directory is corrupt ({e}); the save was interrupted "
                            "or the file was cut short in transfer: save it again") from None
    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS:
        raise ArtifactError(f"{path} has {len(infos)} members; a gradc artifact has at most {MAX_MEMBERS}")
    by_name = {}
    for info in infos:
        name = info.filename
        if not _member_name_ok(name):
            raise ArtifactError(f"{path}: member {name!r:.80} is not part of a gradc artifact (an artifact holds "
                                f"{MANIFEST}, {GRAPH}, {STATE} and {SOURCE_DIR}<file> only); refusing it")
        if name in by_name:
            raise ArtifactError(f"{path}: member {name} appears twice")
        if info.flag_bits & 0x1:
            raise ArtifactError(f"{path}: member {name} is encrypted; gradc artifacts are not")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise ArtifactError(f"{path}: member {name} uses zip compression method {info.compress_type}; "
                                "artifacts are stored or deflated")
        by_name[name] = info
    missing = [m for m in (MANIFEST, GRAPH, STATE) if m not in by_name]
    if missing:
        raise ArtifactError(f"{path} is missing {', '.join(missing)}: it is not a complete gradc artifact")

    def read(name, limit):
        info = by_name[name]
        if info.file_size > limit:
            raise ArtifactError(f"{path}: member {name} inflates to {info.file_size} bytes, more than the {limit} "
                                "an artifact of this program may hold; refusing to read it")
        try:
            data = _inflate(zf, info)
        except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, NotImplementedError, OSError) as e:
            raise ArtifactError(f"{path}: member {name} is corrupt ({e}); save the artifact again") from None
        if name == STATE:
            return data
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise ArtifactError(f"{path}: member {name} is not UTF-8 text") from None

    members = {MANIFEST: read(MANIFEST, _LIMITS[MANIFEST])}
    manifest = parse_manifest(members[MANIFEST])
    members[GRAPH] = read(GRAPH, _LIMITS[GRAPH])
    for name in sorted(n for n in by_name if n.startswith(SOURCE_DIR)):
        if name[len(SOURCE_DIR):] not in manifest["source_sha256"]:
            raise ArtifactError(f"{path}: member {name} is not listed in {MANIFEST}")
        members[name] = read(name, _SOURCE_LIMIT)
    members[STATE] = read(STATE, state_limit(manifest))
    return members


# ---------------------------------------------------------------------------------------------- the manifest
def spec_from_data(data, n_returned, where="out_spec"):
    """The output pytree spec back from its JSON form (the inverse of artifact._spec_to_data)."""
    if not isinstance(data, dict) or len(data) != 1:
        raise ArtifactError(f"manifest.json: {where} must be an object with one key, got {data!r:.80}")
    (kind, body), = data.items()
    if kind == "tensor":
        if not is_int(body) or not 0 <= body < n_returned:
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
            items.append((item[0], spec_from_data(item[1], n_returned, f"{where}.{item[0]!s:.40}")))
        return (dict, tuple(items))
    raise ArtifactError(f"manifest.json: {where} has unknown kind {kind!r:.40}")


def _fail(where, what):
    raise ArtifactError(f"{MANIFEST}: {where}: {what}")


def _want(d, key, check, what, where=""):
    if not isinstance(d, dict) or key not in d:
        _fail(where or key, f"missing field {key!r}")
    value = d[key]
    if not check(value):
        _fail(f"{where}.{key}" if where else key, f"expected {what}, got {value!r:.80}")
    return value


def _random_spec_ok(v):
    """[kind, shape, dtype, low, high] as gradc.random.sample draws it."""
    if not (isinstance(v, list) and len(v) == 5 and v[0] in ("rand", "randn", "randint", "randperm")
            and shape_ok(v[1]) and v[2] in D.ALL and is_int(v[3]) and is_int(v[4])):
        return False
    kind, shape, dtype, low, high = v
    if kind in ("rand", "randn"):
        return D.ALL[dtype].is_floating_point
    if kind == "randint":
        return low < high
    return low == 0 and shape == [high] and dtype == "int64"   # randperm(n)


def _name_ok(v):
    return isinstance(v, str) and bool(NAME.match(v))


def parse_manifest(text):
    m = load_json(text, MANIFEST)
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        kind = m.get("format") if isinstance(m, dict) else type(m).__name__
        raise ArtifactError(f"{MANIFEST} does not describe a gradc artifact (format {kind!r:.60})")
    version = m.get("format_version")
    if version != FORMAT_VERSION:
        raise ArtifactError(f"artifact format version {version!r:.40} is not supported by gradc {__version__} (it "
                            f"reads version {FORMAT_VERSION}); export the program again with this version of gradc")
    _want(m, "gradc_version", lambda v: isinstance(v, str) and len(v) <= 64 and v.isprintable(), "a version string")
    _want(m, "backend", lambda v: v in ("numpy", "c", "cuda"), "'numpy', 'c' or 'cuda'")
    if "requested_backend" in m:   # what the exporter asked for ("auto": the best backend where it loads)
        _want(m, "requested_backend", lambda v: v in ("auto", "numpy", "c", "cuda"), "'auto', 'numpy', 'c' or 'cuda'")
    _want(m, "amp", lambda v: v in (None, "fp16"), "null or 'fp16'")
    _want(m, "fuse", lambda v: isinstance(v, bool), "true or false")
    _want(m, "block_bytes", lambda v: is_int(v) and 0 < v <= 1 << 30, "a positive byte count")
    n_ret = _want(m, "n_returned", lambda v: is_int(v) and 0 <= v <= MAX_NODES, "a count")
    _want(m, "graph_hash", lambda v: isinstance(v, str) and _HEX64.match(v), "a sha256 hex digest")
    srcs = _want(m, "source_sha256", lambda v: isinstance(v, dict) and 0 < len(v) < MAX_MEMBERS,
                 "an object of file hashes")
    for n, h in srcs.items():
        if not _SOURCE_NAME.match(n) or not (isinstance(h, str) and _HEX64.match(h)):
            _fail("source_sha256", f"bad entry {n!r:.80}: {h!r:.80}")
    for key in ("inputs", "outputs", "state", "bindings", "effects"):
        _want(m, key, lambda v: isinstance(v, list) and len(v) <= MAX_NODES, "a list")
    for i, s in enumerate(m["inputs"]):
        w = f"inputs[{i}]"
        _want(s, "name", _name_ok, "a plain name", w)
        _want(s, "shape", lambda v: v is None or shape_ok(v), "a shape", w)
        _want(s, "dtype", lambda v: v is None or v in D.ALL, "a dtype name", w)
    if len({s["name"] for s in m["inputs"]}) != len(m["inputs"]):
        _fail("inputs", "input names are not unique")
    if len(m["outputs"]) != n_ret:
        _fail("outputs", f"{len(m['outputs'])} entries for {n_ret} returned tensors")
    for i, s in enumerate(m["outputs"]):
        w = f"outputs[{i}]"
        # names become file names (`gradc run -o DIR` writes DIR/<name>.npy): plain names only, no paths
        _want(s, "name", _name_ok, "a plain name (letters, digits, _ . -; no path)", w)
        _want(s, "shape", shape_ok, "a shape", w)
        _want(s, "dtype", lambda v: v in D.ALL, "a dtype name", w)
    if len({s["name"] for s in m["outputs"]}) != len(m["outputs"]):
        _fail("outputs", "output names are not unique")
    for i, s in enumerate(m["state"]):
        w = f"state[{i}]"
        _want(s, "name", _name_ok, "a plain name", w)
        _want(s, "shape", shape_ok, "a shape", w)
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
            _want(b, "index", lambda v: is_int(v) and 0 <= v < len(m["inputs"]), "an input position", w)
        elif kind == "state":
            used.append(_want(b, "name", lambda v: v in state_names, "the name of a state entry", w))
        else:
            _want(b, "owner", lambda v: is_int(v) and 0 <= v < i and m["bindings"][v].get("kind") in ("arg", "state"),
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
        _want(e, "slot", lambda v: is_int(v) and 0 <= v < len(m["bindings"])
              and m["bindings"][v]["kind"] in ("arg", "state"), "the position of an arg or state binding", w)
        _want(e, "out", lambda v: (v is None and kind == "grad") or (is_int(v) and v >= 0), "an output position", w)
    m["out_spec"] = m.get("out_spec")
    spec_from_data(m["out_spec"], n_ret)  # checks it
    if "stats" in m and not isinstance(m["stats"], dict):
        _fail("stats", "expected an object")
    return m


# ---------------------------------------------------------------------------------------------- manifest and graph
def check_wiring(m, graph):
    """The manifest and the graph must agree on every input, state entry, effect and output."""
    def node(nid):
        d = graph.node(nid)
        return list(d["shape"]), d["dtype"]

    if len(m["bindings"]) != len(graph.inputs):
        _fail("bindings", f"{len(m['bindings'])} bindings for a graph with {len(graph.inputs)} inputs")
    if not m["fuse"] and any("group" in d for _, d in graph.g.nodes(data=True)):
        # fusion never ran for such a program, and the scheduler would trust the markers
        raise ArtifactError(f"{GRAPH}: nodes carry fusion-group markers but {MANIFEST} says fuse=false; the "
                            "graph was modified (export the program again)")
    state = {s["name"]: s for s in m["state"]}
    seen_args = set()
    for slot, (b, nid) in enumerate(zip(m["bindings"], graph.inputs)):
        shape, dtype = node(nid)
        if b["kind"] == "arg":
            spec = m["inputs"][b["index"]]
            if b["index"] in seen_args:
                _fail(f"bindings[{slot}]", f"input {b['index']} is bound twice")
            seen_args.add(b["index"])
            if spec["shape"] is None or (spec["shape"], spec["dtype"]) != (shape, dtype):
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


# ---------------------------------------------------------------------------------------------- the state
def read_state(raw, m):
    """{name: array} of state.npz: exactly the arrays the manifest lists, each .npy header checked
    (dtype, shape, size) before its data is read; object arrays are never unpickled."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(raw))
        infos = zf.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as e:
        raise ArtifactError(f"{STATE} is not a readable .npz archive ({e})") from None
    want = {s["name"] + ".npy": s for s in m["state"]}
    names = [i.filename for i in infos]
    if len(set(names)) != len(names):
        raise ArtifactError(f"{STATE} holds an array twice")
    if set(names) != set(want):
        missing = sorted(n[:-4] for n in set(want) - set(names))
        extra = sorted(n[:80] for n in set(names) - set(want))
        raise ArtifactError(f"{STATE} does not hold the state the manifest lists"
                            + (f"; missing: {', '.join(missing)}" if missing else "")
                            + (f"; unexpected: {', '.join(e[:-4] if e.endswith('.npy') else e for e in extra)}"
                               if extra else ""))
    arrays = {}
    for info in infos:
        s = want[info.filename]
        arrays[s["name"]] = _read_array(zf, info, s)
    return arrays


def _read_array(zf, info, s):
    name, dtype, shape = s["name"], D.ALL[s["dtype"]].np, tuple(s["shape"])
    nbytes = numel(shape) * dtype.itemsize
    if info.flag_bits & 0x1 or info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise ArtifactError(f"{STATE}: array {name!r} is encrypted or uses an unknown compression")
    if info.file_size > nbytes + _ARRAY_OVERHEAD:
        raise ArtifactError(f"{STATE}: array {name!r} inflates to {info.file_size} bytes, but {s['dtype']}"
                            f"{list(shape)} needs {nbytes}; refusing to read it")
    try:
        with zf.open(info) as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                header = np.lib.format.read_array_header_1_0(f, max_header_size=_NPY_HEADER_LIMIT)
            elif version == (2, 0):
                header = np.lib.format.read_array_header_2_0(f, max_header_size=_NPY_HEADER_LIMIT)
            else:
                raise ValueError(f"unsupported .npy version {version}")
            got_shape, fortran, got_dtype = header
            if got_dtype.hasobject:
                raise ArtifactError(f"{STATE}: array {name!r} holds Python objects; artifacts hold numeric arrays "
                                    "only (object arrays are never unpickled)")
            if got_dtype != dtype:
                raise ArtifactError(f"{STATE}: array {name!r} has dtype {got_dtype}, but the program needs "
                                    f"{s['dtype']}")
            if tuple(got_shape) != shape:
                raise ArtifactError(f"{STATE}: array {name!r} has shape {tuple(got_shape)}, but the program needs "
                                    f"{shape}")
            data = f.read(nbytes)
    except ArtifactError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error, SyntaxError) as e:
        raise ArtifactError(f"{STATE}: array {name!r} is corrupt ({e})") from None
    if len(data) != nbytes:
        raise ArtifactError(f"{STATE}: array {name!r} is truncated ({len(data)} of {nbytes} bytes)")
    arr = np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")
    return np.array(arr, order="C")   # writable, owned, 0-d stays 0-d
