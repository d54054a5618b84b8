"""Crafted artifacts. Each starts from a real exported program, is tampered with, and has its hashes
recomputed (they are checksums, not signatures), so only validation stands between the file and the
code generator. Each must fail with ArtifactError before any code is generated, and the canary file
that a successful injection would create must never appear. Then: member names, counts and sizes
(zip bombs), the state arrays, `gradc run -o DIR` confinement, and the control that every graph gradc
itself makes for the op database passes the same validation."""
import hashlib
import io
import json
import os
import struct
import subprocess
import sys
import tracemalloc
import warnings
import zipfile
import zlib

import numpy as np
import pytest

import gradc
import gradc.nn.functional as F
from gradc import nn
from gradc.codegen import templates
from gradc.runtime.artifact_graph import MAX_ELEMENTS, check_graph_data

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class CodeGenerated(Exception):
    """Raised if code generation starts on an artifact that should have been refused."""


def program():
    """A small program that uses gather, matmul, erf, reductions, slice, concat, permute, reshape,
    expand, cast, argmax, a constant table and a random draw (dropout)."""
    gradc.manual_seed(0)
    emb, lin = nn.Embedding(10, 4), nn.Linear(4, 6)

    def fn(x, idx):
        scale = gradc.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])   # made while tracing: a constant table
        h = F.layer_norm(F.gelu(lin(x + emb(idx))), (6,)) * scale
        s = h[:, 1:5:2]
        c = gradc.cat([s, s * 2.0], dim=1)
        e = s[:, :1].expand(3, 5)
        return (c.sum(dim=1), h.t().amax(dim=0), (h > 0).float().argmax(dim=1), h.reshape(2, 9),
                F.dropout(e, 0.5))
    return fn, (gradc.randn(3, 4), gradc.tensor([1, 2, 3]))


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    fn, args = program()
    return gradc.export(fn, *args).save(tmp_path_factory.mktemp("original") / "original.gradc")


@pytest.fixture
def canary(tmp_path):
    return tmp_path / "CANARY"


@pytest.fixture
def no_codegen(monkeypatch):
    """Code generation fails the test if it starts: every refusal must come before it."""
    def reached(*args, **kwargs):
        raise CodeGenerated("code generation started on an artifact that validation should have refused")
    monkeypatch.setattr(templates, "environment", reached)


def members_of(path):
    with zipfile.ZipFile(path) as z:
        return [(i.filename, z.read(i)) for i in z.infolist()]


def write_zip(path, members, compression=zipfile.ZIP_DEFLATED):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # duplicate names are part of some attacks
        with zipfile.ZipFile(path, "w", compression) as z:
            for name, data in members:
                z.writestr(name, data)
    return path


DEEP = "@deeper than any JSON encoder nests@"   # forge writes 50000 nested lists in its place


def _dumps(data):
    return json.dumps(data).replace(json.dumps(DEEP), "[" * 50000 + "1" + "]" * 50000).encode()


def forge(original, out, graph=None, manifest=None, state=None, members=None):
    """A tampered copy of `original`: edit functions for the graph and manifest JSON, the {name: array}
    state, or the member list; graph.json's hash is recomputed, as anyone can."""
    mem = dict(members_of(original))
    m = json.loads(mem["manifest.json"])
    if graph is not None:
        g = json.loads(mem["graph.json"])
        graph(g)
        mem["graph.json"] = _dumps(g)
    m["graph_hash"] = hashlib.sha256(mem["graph.json"]).hexdigest()
    if manifest is not None:
        manifest(m)
    mem["manifest.json"] = _dumps(m)
    if state is not None:
        with np.load(io.BytesIO(mem["state.npz"])) as f:
            arrays = {k: f[k] for k in f.files}
        buf = io.BytesIO()
        state(arrays, buf)
        mem["state.npz"] = buf.getvalue()
    items = list(mem.items())
    if members is not None:
        items = members(items)
    return write_zip(out, items)


def node(g, op, k=0):
    return [n for n in g["nodes"] if n["op"] == op][k]


def attr(op, key, value):
    def edit(g):
        node(g, op)["attrs"][key] = value
    return edit


def nested(depth):
    v = [1]
    for _ in range(depth):
        v = [v]
    return v


def refused(path, match):
    with pytest.raises(gradc.ArtifactError, match=match) as info:
        gradc.load(path)
    assert "regenerated" not in str(info.value)   # refused by validation, not by the final hash comparison
    return str(info.value)


def test_forged_copy_without_changes_loads_and_runs(original, tmp_path):
    """The control: forging without tampering gives a working artifact, so every refusal below is
    caused by its edit alone."""
    fn, args = program()
    loaded = gradc.load(forge(original, tmp_path / "same.gradc"))
    gradc.manual_seed(7)
    got = loaded(*args)
    gradc.manual_seed(7)
    with gradc.no_grad():
        want = fn(*args)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------------- the graph
def code(canary):
    return f"__import__('os').system('touch {canary}')"


GRAPH_ATTACKS = {
    # identifiers and strings that would reach generated source
    "op-name-injection": (lambda g, c: node(g, "erf").update(op=f'erf"].eager; {code(c)}; K = _OPS["erf'),
                          "unknown op"),
    "attr-name-injection": (lambda g, c: node(g, "sum")["attrs"].update({f"x={code(c)}": 1}), "does not take"),
    "perm-code-string": (lambda g, c: attr("permute", "perm", code(c))(g), "perm=.* is not a permutation"),
    "cast-dtype-injection": (lambda g, c: attr("cast", "dtype", f"float32); {code(c)}; (")(g),
                             "is not a known dtype name"),
    "cast-dtype-object": (lambda g, c: attr("cast", "dtype", "object")(g), "is not a known dtype name"),
    "keepdim-string": (lambda g, c: attr("sum", "keepdim", f"True); {code(c)}; (")(g), "is not true or false"),
    "input-name-injection": (lambda g, c: node(g, "input")["attrs"].update(name=f"x=open({str(c)!r}, 'w')"),
                             "expected only a plain 'name'"),
    "const-table-name-injection": (lambda g, c: _rename_table(g, f'c0"]; {code(c)}; _ = consts["c0'),
                                   "bad name or body"),
    "const-fill-code": (lambda g, c: node(g, "const")["attrs"].update(fill=code(c)), "'fill' value of its dtype"),
    "const-fill-wrong-kind": (lambda g, c: node(g, "const")["attrs"].update(fill=True), "'fill' value of its dtype"),
    "const-table-strings": (lambda g, c: _first_table(g)["data"].__setitem__(0, code(c)), "does not fill shape"),
    "where-newline": (lambda g, c: node(g, "erf").update(where=f"model.py:1\n{code(c)}"), "bad source location"),
    # attributes checked by kind
    "perm-repeated": (lambda g, c: attr("permute", "perm", [0, 0])(g), "is not a permutation"),
    "perm-bools": (lambda g, c: attr("permute", "perm", [True, False])(g), "is not a permutation"),
    "perm-too-long": (lambda g, c: attr("permute", "perm", [2, 0, 1])(g), "does not fit its operands"),
    "axes-out-of-range": (lambda g, c: attr("sum", "axes", [7])(g), "axes=.* is not a sorted list"),
    "axes-repeated": (lambda g, c: attr("sum", "axes", [1, 1])(g), "axes=.* is not a sorted list"),
    "axes-negative": (lambda g, c: attr("max", "axes", [-1])(g), "axes=.* is not a sorted list"),
    "slice-step-zero": (lambda g, c: attr("slice", "steps", [1, 0])(g), "step >= 1"),
    "slice-step-negative": (lambda g, c: attr("slice", "steps", [1, -2])(g), "step >= 1"),
    "slice-past-the-end": (lambda g, c: attr("slice", "stops", [3, 50])(g), "dim 1 slices 1:50:2 of a dimension"),
    "slice-start-after-stop": (lambda g, c: node(g, "slice")["attrs"].update(starts=[2, 1], stops=[1, 5]),
                               "dim 0 slices 2:1:1"),
    "slice-bounds-short": (lambda g, c: attr("slice", "starts", [0])(g), "must each hold 2 integers"),
    "concat-axis": (lambda g, c: attr("concat", "axis", 5)(g), "axis=5 is not a dim"),
    "gather-axis": (lambda g, c: attr("gather", "axis", 9)(g), "axis=9 is not a dim"),
    "argmax-axis-string": (lambda g, c: attr("argmax", "axis", "1")(g), "is not a dim"),
    "missing-attribute": (lambda g, c: node(g, "sum")["attrs"].pop("keepdim"), "lacks attribute.*keepdim"),
    "reshape-absurd-shape": (lambda g, c: attr("reshape", "shape", [1 << 31, 1 << 31])(g), "shape=.* is not a shape"),
    "expand-negative-shape": (lambda g, c: attr("expand", "shape", [-3, 5])(g), "shape=.* is not a shape"),
    # shapes, dtypes and element counts of nodes
    "node-absurd-shape": (lambda g, c: node(g, "matmul").update(shape=[1 << 30, 1 << 30]),
                          f"bad shape.*at most {MAX_ELEMENTS} elements"),
    "node-negative-dim": (lambda g, c: node(g, "matmul").update(shape=[-3, 6]), "bad shape"),
    "node-too-many-dims": (lambda g, c: node(g, "matmul").update(shape=[1] * 40), "bad shape"),
    "node-wrong-dtype-name": (lambda g, c: node(g, "erf").update(dtype="float128"), "dtype 'float128'"),
    "node-records-other-dtype": (lambda g, c: node(g, "erf").update(dtype="float64"),
                                 "records float64.* operands give float32"),
    "node-records-other-shape": (lambda g, c: node(g, "matmul").update(shape=[3, 7]),
                                 "records float32\\[3, 7\\] but its operands give float32\\[3, 6\\]"),
    # wiring
    "extra-operand": (lambda g, c: g["edges"].append([node(g, "input")["id"], node(g, "erf")["id"], 1, False]),
                      "has 2 operand\\(s\\); erf takes 1"),
    "concat-without-operands": (lambda g, c: _drop_operands(g, node(g, "concat")["id"]), "has 0 operand"),
    "two-operands-one-position": (lambda g, c: _duplicate_position(g, node(g, "matmul")["id"]),
                                  "two operands at position"),
    # nesting and structure
    "attr-nested-deeply": (lambda g, c: node(g, "sum")["attrs"].update(axes=nested(100)), "nested more than 64"),
    "attr-nested-very-deeply": (lambda g, c: node(g, "sum")["attrs"].update(axes=DEEP), "nested too deeply"),
    "unknown-top-level-field": (lambda g, c: g.update(code=code(c)), "unknown field"),
}


def _tables(g):
    return [n for n in g["nodes"] if n["op"] == "const" and "table" in n["attrs"]]


def _first_table(g):
    return g["constants"][_tables(g)[0]["attrs"]["table"]]


def _rename_table(g, new):
    n = _tables(g)[0]
    g["constants"][new] = g["constants"].pop(n["attrs"]["table"])
    n["attrs"]["table"] = new


def _drop_operands(g, nid):
    g["edges"] = [e for e in g["edges"] if e[1] != nid]


def _duplicate_position(g, nid):
    for e in g["edges"]:
        if e[1] == nid:
            e[2] = 0


def test_graph_attacks_cover_every_attribute_kind(original):
    """The program has each op these attacks tamper with (else an attack would fail on a missing node)."""
    g = json.loads(dict(members_of(original))["graph.json"])
    ops = {n["op"] for n in g["nodes"]}
    assert {"permute", "sum", "max", "slice", "concat", "gather", "argmax", "cast", "reshape", "expand", "erf",
            "matmul"} <= ops
    assert _tables(g) and any("group" in n for n in g["nodes"])


@pytest.mark.parametrize("name", sorted(GRAPH_ATTACKS))
def test_tampered_graph_is_refused_before_code_generation(original, tmp_path, canary, no_codegen, name):
    edit, match = GRAPH_ATTACKS[name]
    refused(forge(original, tmp_path / "bad.gradc", graph=lambda g: edit(g, canary)), match)
    assert not canary.exists()


def test_fusion_markers_without_fusion_are_refused(original, tmp_path, no_codegen):
    refused(forge(original, tmp_path / "bad.gradc", manifest=lambda m: m.update(fuse=False)),
            "fusion-group markers.*fuse=false")


# ---------------------------------------------------------------------------------------------- the manifest
def _random_binding(m):
    return next(b for b in m["bindings"] if b["kind"] == "random")


MANIFEST_ATTACKS = {
    "output-name-parent": (lambda m, c: m["outputs"][0].update(name="../escape"), "outputs\\[0\\].name"),
    "output-name-absolute": (lambda m, c: m["outputs"][0].update(name=str(c)), "outputs\\[0\\].name"),
    "output-name-nested": (lambda m, c: m["outputs"][0].update(name="sub/x"), "outputs\\[0\\].name"),
    "output-names-repeat": (lambda m, c: m["outputs"][1].update(name=m["outputs"][0]["name"]),
                            "output names are not unique"),
    "state-name-path": (lambda m, c: m["state"][0].update(name="../x"), "state\\[0\\].name"),
    "input-absurd-shape": (lambda m, c: m["inputs"][0].update(shape=[1 << 40, 1 << 40]), "inputs\\[0\\].shape"),
    "state-absurd-shape": (lambda m, c: m["state"][0].update(shape=[1 << 33]), "state\\[0\\].shape"),
    "state-dtype-name": (lambda m, c: m["state"][0].update(dtype="object"), "state\\[0\\].dtype"),
    "randint-empty-range": (lambda m, c: _random_binding(m).update(spec=["randint", [3, 5], "int64", 5, 5]),
                            "spec: expected \\[kind, shape"),
    "rand-integer-dtype": (lambda m, c: _random_binding(m)["spec"].__setitem__(2, "int64"),
                           "spec: expected \\[kind, shape"),
    "random-kind": (lambda m, c: _random_binding(m)["spec"].__setitem__(0, code(c)), "spec: expected \\[kind"),
    "source-name-path": (lambda m, c: m["source_sha256"].update({"../../evil.py": "0" * 64}), "source_sha256"),
    "version-control-chars": (lambda m, c: m.update(gradc_version="0.1\n" + code(c)), "gradc_version"),
    "block-bytes": (lambda m, c: m.update(block_bytes=1 << 40), "block_bytes"),
    "backend": (lambda m, c: m.update(backend="c; " + code(c)), "backend"),
    "out-spec-nested-deeply": (lambda m, c: m.update(out_spec=_nested_spec(100)), "nested more than 64"),
    "out-spec-nested-very-deeply": (lambda m, c: m.update(out_spec=DEEP), "nested too deeply"),
}


def _nested_spec(depth):
    spec = {"tensor": 0}
    for _ in range(depth):
        spec = {"tuple": [spec]}
    return spec


@pytest.mark.parametrize("name", sorted(MANIFEST_ATTACKS))
def test_tampered_manifest_is_refused_before_code_generation(original, tmp_path, canary, no_codegen, name):
    edit, match = MANIFEST_ATTACKS[name]
    refused(forge(original, tmp_path / "bad.gradc", manifest=lambda m: edit(m, canary)), match)
    assert not canary.exists()


# ---------------------------------------------------------------------------------------------- the container
def add_member(name, data=b"x"):
    return lambda items: items + [(name, data)]


@pytest.mark.parametrize("name", ["../evil.py", "/tmp/evil.py", "source/../../evil.py", "source/sub/x.py",
                                  "source/", "./manifest.json", "state.npz/x", "payload.py"])
def test_member_names_outside_the_layout_are_refused(original, tmp_path, no_codegen, name):
    refused(forge(original, tmp_path / "bad.gradc", members=add_member(name)), "is not part of a gradc artifact")


def test_unlisted_source_and_duplicate_members_are_refused(original, tmp_path, no_codegen):
    refused(forge(original, tmp_path / "a.gradc", members=add_member("source/extra.py", b"import os\n")),
            "source/extra.py is not listed")
    refused(forge(original, tmp_path / "b.gradc", members=lambda items: items + [items[0]]), "appears twice")


def test_too_many_members(original, tmp_path, no_codegen):
    many = lambda items: items + [(f"source/f{i}.py", b"") for i in range(70)]  # noqa: E731
    refused(forge(original, tmp_path / "bad.gradc", members=many), "members; a gradc artifact has at most 64")


def _patch_sizes(raw, name, file_size=None, flags=None, method=None):
    """Rewrite the sizes, flags or compression method a zip records for member `name` (local header and
    central directory)."""
    raw = bytearray(raw)
    enc = name.encode()
    for sig, size_at, flag_at, method_at, name_at in ((b"PK\x03\x04", 22, 6, 8, 30), (b"PK\x01\x02", 24, 8, 10, 46)):
        at = raw.find(sig)
        while at >= 0:
            n = struct.unpack("<H", raw[at + name_at - 4:at + name_at - 2])[0] if sig == b"PK\x03\x04" else \
                struct.unpack("<H", raw[at + 28:at + 30])[0]
            if raw[at + name_at:at + name_at + n] == enc:
                if file_size is not None:
                    raw[at + size_at:at + size_at + 4] = struct.pack("<I", file_size)
                if flags is not None:
                    raw[at + flag_at:at + flag_at + 2] = struct.pack("<H", flags)
                if method is not None:
                    raw[at + method_at:at + method_at + 2] = struct.pack("<H", method)
            at = raw.find(sig, at + 4)
    return bytes(raw)


def _low_memory_refusal(path, match):
    tracemalloc.start()
    try:
        refused(path, match)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, f"refusing the file allocated {peak} bytes"


def test_member_claiming_4_gib_is_refused_unread(original, tmp_path, no_codegen):
    raw = forge(original, tmp_path / "a.gradc").read_bytes()
    path = tmp_path / "b.gradc"
    source = next(n for n, _ in members_of(original) if n.startswith("source/"))
    for member, limit_name in (("graph.json", "graph.json"), ("state.npz", "state.npz"),
                               (source, source), ("manifest.json", "manifest.json")):
        path.write_bytes(_patch_sizes(raw, member, file_size=0xFFFFFFF0))
        _low_memory_refusal(path, f"member {limit_name} inflates to 4294967280 bytes")


def test_state_that_really_inflates_past_its_declared_arrays_is_refused(original, tmp_path, no_codegen):
    bomb = zlib.compress(bytes(64 << 20), 9)   # 64 MiB of zeros in ~64 KiB
    assert len(bomb) < 1 << 20
    items = [(n, d) for n, d in members_of(forge(original, tmp_path / "a.gradc"))]
    path = tmp_path / "bomb.gradc"
    with zipfile.ZipFile(path, "w") as z:
        for name, data in items:
            if name == "state.npz":
                info = zipfile.ZipInfo(name)
                info.compress_type = zipfile.ZIP_DEFLATED
                z.writestr(info, bytes(64 << 20))
            else:
                z.writestr(name, data)
    _low_memory_refusal(path, "member state.npz inflates to 67108864 bytes")


def test_member_that_inflates_past_its_declared_size_is_cut_off(original, tmp_path, no_codegen):
    """A member that lies about its size: reading stops at the declared size and the CRC fails."""
    items = [(n, d) for n, d in members_of(forge(original, tmp_path / "a.gradc"))]
    graph = dict(items)["graph.json"]
    path = tmp_path / "liar.gradc"
    with zipfile.ZipFile(path, "w") as z:
        for name, data in items:
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, graph + b" " * (64 << 20) if name == "graph.json" else data)
    path.write_bytes(_patch_sizes(path.read_bytes(), "graph.json", file_size=len(graph)))
    _low_memory_refusal(path, "member graph.json is corrupt")


def test_encrypted_and_unknown_compression_members_are_refused(original, tmp_path, no_codegen):
    raw = forge(original, tmp_path / "a.gradc").read_bytes()
    (tmp_path / "enc.gradc").write_bytes(_patch_sizes(raw, "state.npz", flags=0x1))
    refused(tmp_path / "enc.gradc", "state.npz is encrypted")
    (tmp_path / "method.gradc").write_bytes(_patch_sizes(raw, "graph.json", method=99))
    refused(tmp_path / "method.gradc", "compression method 99")


# ---------------------------------------------------------------------------------------------- the state
class Payload:
    """Unpickling this would create the canary."""

    def __init__(self, canary):
        self.canary = str(canary)

    def __reduce__(self):
        return (os.system, (f"touch {self.canary}",))


def _save_npz(arrays, buf, **overrides):
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for name, a in arrays.items():
            data = overrides.get(name)
            if data is None:
                one = io.BytesIO()
                np.lib.format.write_array(one, a, allow_pickle=True)
                data = one.getvalue()
            z.writestr(name + ".npy", data)


def _first_state(arrays):
    return next(iter(arrays))


def _header_only(shape, dtype="<f4"):
    """A .npy header for `shape` followed by a single element's bytes."""
    one = io.BytesIO()
    np.lib.format.write_array_header_1_0(one, {"descr": dtype, "fortran_order": False, "shape": shape})
    return one.getvalue() + b"\0" * 4


STATE_ATTACKS = {
    "pickled-object": (lambda a, buf, c: _save_npz(dict(a, **{_first_state(a): np.array([Payload(c)] * 1, dtype=object)}),
                                                   buf), "holds Python objects"),
    "header-claims-huge-shape": (lambda a, buf, c: _save_npz(a, buf, **{_first_state(a): _header_only((1 << 20, 1 << 20))}),
                                 "has shape \\(1048576, 1048576\\)"),
    "big-endian": (lambda a, buf, c: _save_npz(dict(a, **{_first_state(a): a[_first_state(a)].astype(">f4")}), buf),
                   "has dtype >f4"),
    "truncated-data": (lambda a, buf, c: _save_npz(a, buf, **{_first_state(a): _header_only(a[_first_state(a)].shape)}),
                       "is truncated|is corrupt"),
    "inner-bomb": (lambda a, buf, c: _inner_bomb(a, buf), "array .* inflates to [0-9]+ bytes"),
    "extra-array": (lambda a, buf, c: _save_npz(dict(a, extra=np.zeros(3, np.float32)), buf), "unexpected: extra"),
}


def _inner_bomb(arrays, buf):
    """The first array's .npy padded with 64 MiB of zeros, deflated to a few KiB."""
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, a in arrays.items():
            one = io.BytesIO()
            np.lib.format.write_array(one, a)
            z.writestr(name + ".npy", one.getvalue() + (bytes(64 << 20) if name == _first_state(arrays) else b""))


@pytest.mark.parametrize("name", sorted(STATE_ATTACKS))
def test_tampered_state_is_refused(original, tmp_path, canary, no_codegen, name):
    edit, match = STATE_ATTACKS[name]
    path = forge(original, tmp_path / "bad.gradc", state=lambda a, buf: edit(a, buf, canary))
    _low_memory_refusal(path, match)
    assert not canary.exists()


def test_fortran_ordered_state_loads_with_its_values(original, tmp_path):
    """A valid variation of state.npz (a Fortran-ordered array) still loads, with the same values."""
    def fortran(arrays, buf):
        name = next(k for k, v in arrays.items() if v.ndim == 2)
        _save_npz(dict(arrays, **{name: np.asfortranarray(arrays[name])}), buf)
    a, b = gradc.load(original), gradc.load(forge(original, tmp_path / "f.gradc", state=fortran))
    for (n, t), (m, u) in zip(a.state_dict().items(), b.state_dict().items()):
        assert n == m
        np.testing.assert_array_equal(t.detach().numpy(), u.detach().numpy())


# ---------------------------------------------------------------------------------------------- gradc run -o DIR
def gradc_cmd(*args, cwd):
    return subprocess.run([sys.executable, "-m", "gradc", *map(str, args)], cwd=str(cwd), capture_output=True,
                          text=True, timeout=240)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("inputs")
    _, (x, idx) = program()
    np.save(root / "x.npy", x.numpy())
    np.save(root / "idx.npy", idx.numpy())
    return ["-i", f"x={root / 'x.npy'}", "-i", f"idx={root / 'idx.npy'}"]


def test_run_output_names_cannot_leave_the_output_folder(original, tmp_path, inputs):
    out = tmp_path / "out"
    for i, name in enumerate(["../escape", str(tmp_path / "absolute"), "../../etc/x"]):
        bad = forge(original, tmp_path / f"bad{i}.gradc", manifest=lambda m: m["outputs"][0].update(name=name))
        r = gradc_cmd("run", bad, *inputs, "-o", out, cwd=tmp_path)
        assert r.returncode == 1 and "ArtifactError" in r.stderr and "outputs[0].name" in r.stderr, r.stderr
    assert not (tmp_path / "escape.npy").exists() and not (tmp_path / "absolute.npy").exists()
    assert not out.exists() or not any(out.iterdir())


def test_run_replaces_a_symlink_in_the_output_folder_instead_of_writing_through_it(original, tmp_path, inputs):
    outside = tmp_path / "precious.txt"
    outside.write_text("keep me")
    out = tmp_path / "out"
    out.mkdir()
    (out / "output0.npy").symlink_to(outside)
    r = gradc_cmd("run", original, *inputs, "-o", out, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert outside.read_text() == "keep me"
    assert not (out / "output0.npy").is_symlink()
    assert np.load(out / "output0.npy").shape == (3,)


def test_confined_refuses_names_that_leave_the_folder(tmp_path):
    from gradc.cli import CLIError, confined
    root = tmp_path / "out"
    root.mkdir()
    assert confined(root, "kernels/g0.py") == root / "kernels" / "g0.py"
    for name in ["../x", "/etc/passwd", "a/../../x", "./x", "", "a//b", "x\0y"]:
        with pytest.raises(CLIError, match="refusing to write"):
            confined(root, name)
    (root / "link").symlink_to(tmp_path)
    with pytest.raises(CLIError, match="symbolic link"):
        confined(root, "link/x.npy")


# ---------------------------------------------------------------------------------------------- no false refusals
def _op_programs():
    """One traced whole step (forward and backward) per op-database row."""
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    try:
        from opdb import ROWS
    finally:
        sys.path.pop(0)
    for row in ROWS:
        sample = row.samples()[0]
        diff = row.diff_args(sample)
        xs = sample.tensors("float32", requires_grad=diff)

        def step(*xs, row=row, sample=sample, diff=diff):
            outs = row.fn(*xs, **sample.kwargs)
            outs = tuple(outs) if isinstance(outs, (tuple, list)) else (outs,)
            losses = [o.sum() for o in outs if isinstance(o, gradc.Tensor) and o.requires_grad]
            if losses:
                sum(losses[1:], losses[0]).backward()
            return outs, [xs[i].grad for i in diff]
        yield row.name, step, xs

    def sliced(x):   # the slice's gradient is a pad
        (x[:, 1:4:2] ** 2).sum().backward()
        return x.grad
    yield "slice-backward", sliced, (gradc.randn(4, 5, requires_grad=True),)
    from gradc.ops.collective import all_reduce   # lowering runs nothing: no process group needed
    yield "all_reduce", lambda x: all_reduce(x * 2.0, "avg") + 1.0, (gradc.ones(3, 2),)


def test_every_graph_gradc_makes_for_the_op_database_passes_validation():
    checked, ops = 0, set()
    for name, step, xs in _op_programs():
        try:
            prog = gradc.compile(step, fullgraph=True).lower(*xs)
        except gradc.TraceError:
            continue   # value-dependent shapes (boolean masks) cannot be traced at all
        data = json.loads(prog.ir.to_json())
        check_graph_data(data)   # raises ArtifactError on a false refusal
        ops |= {n["op"] for n in data["nodes"]}
        checked += 1
    assert checked > 50
    from gradc.ops import OPS
    assert not set(OPS) - ops, f"no traced graph used {sorted(set(OPS) - ops)}; add a row to tests/opdb.py"
