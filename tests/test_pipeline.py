"""The public lowering pipeline: gradc.lower.lower(graph, spec) -> Program.

A traced graph lowered by hand gives what the compiled function gives (and what eager mode and
hand-computed values give); the stages run in the documented order and say what they did; a
Program gets every field when it is built; the typed Spec refuses what does not fit; the layers
import downward only."""
import ast
import os
import pathlib

import networkx as nx
import numpy as np
import pytest

import gradc
import gradc.nn.functional as F
from gradc import nn, optim
from gradc.ir import Graph
from gradc.lower import GRAPH_STAGES, STAGES, Gradients, Spec, lower
from gradc.passes.fusion import describe, fuse
from gradc.passes.liveness import by_storage, last_uses
from gradc.runtime import cache
from gradc.runtime.program import Program
from gradc.runtime.wiring import Binding

PKG = pathlib.Path(gradc.__file__).parent


def _mlp():
    gradc.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16), nn.GELU(), nn.LayerNorm(16), nn.Linear(16, 3))


def _data(n=8):
    rng = np.random.default_rng(1)
    return gradc.from_numpy(rng.standard_normal((n, 6)).astype(np.float32)), gradc.from_numpy(rng.integers(0, 3, n))


# ---------------------------------------------------------------------------------------------- results
def test_lowering_a_traced_graph_equals_the_compiled_function_and_eager():
    model = _mlp()
    x, _ = _data()
    step = gradc.compile(model)
    with gradc.no_grad():
        # (one line: graph nodes record the caller's file:line)
        prog, same = lower(*step.trace(x)), step.lower(x)
        want = model(x).numpy()
        compiled = step(x).numpy()
    assert isinstance(prog, Program) and prog.backward is None
    np.testing.assert_allclose(prog(x).numpy(), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(compiled, want, rtol=1e-5, atol=1e-6)
    assert prog.stats["graph_hash"] == same.stats["graph_hash"] and prog.source == same.source


def test_lowering_a_traced_training_step_runs_the_step():
    """Whole-step capture through lower(): the Program writes the new parameters and optimizer
    state back, as the eager step does."""
    eager_model, model = _mlp(), _mlp()
    x, y = _data()

    def make_step(m):
        opt = optim.SGD(m.parameters(), lr=0.1, momentum=0.9)

        def step(x, y):
            opt.zero_grad()
            loss = F.cross_entropy(m(x), y)
            loss.backward()
            opt.step()
            return loss
        return step
    eager_step, step = make_step(eager_model), make_step(model)
    eager_step(x, y)
    step(x, y)  # creates the momentum buffers, so the traced program is reusable
    want = [eager_step(x, y).item() for _ in range(3)]
    graph, spec = gradc.compile(step).trace(x, y)
    assert not spec.one_shot and spec.gradients is None   # backward ran while tracing
    prog = lower(graph, spec)
    got = [prog(x, y).item() for _ in range(3)]
    np.testing.assert_allclose(got, want, rtol=1e-5)
    for (name, p), q in zip(eager_model.named_parameters(), model.parameters()):
        np.testing.assert_allclose(q.detach().numpy(), p.detach().numpy(), rtol=1e-5, atol=1e-6, err_msg=name)


def test_autodiff_stage_gives_hand_computed_gradients():
    """Spec.gradients: the returned loss of lower()'s Program backpropagates through the backward
    program; d/dx and d/dw of sum(tanh(x @ w)) by hand."""
    rng = np.random.default_rng(2)
    xa, wa = rng.standard_normal((4, 3)).astype(np.float32), rng.standard_normal((3, 5)).astype(np.float32)
    x, w = gradc.from_numpy(xa).requires_grad_(), gradc.from_numpy(wa).requires_grad_()
    graph, spec = gradc.compile(lambda x, w: (x @ w).tanh().sum()).trace(x, w)
    assert spec.gradients == Gradients(outputs=(0,), wrt=(0, 1))
    prog = lower(graph, spec)
    assert prog.backward is not None
    loss = prog(x, w)
    loss.backward()
    t = np.tanh(xa @ wa)
    np.testing.assert_allclose(loss.item(), t.sum(), rtol=1e-5)
    np.testing.assert_allclose(x.grad.numpy(), (1 - t ** 2) @ wa.T, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(w.grad.numpy(), xa.T @ (1 - t ** 2), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend", ["numpy", "cuda"])
def test_lowering_a_hand_built_graph(backend):
    """A graph made with the IR API (no tracing): lower() with a default Spec runs it on arrays."""
    g = Graph()
    x = g.add_input("x", (5, 4), "float32")
    e = g.add("exp", [x], (5, 4), "float32")
    two = g.add_const(np.full((5, 4), 2.0, np.float32))
    y = g.add("mul", [e, two], (5, 4), "float32")
    s = g.add("sum", [y], (5,), "float32", {"axes": (1,), "keepdim": False})
    g.outputs = [s, y]
    prog = lower(g, Spec(backend=backend))
    assert [st.name for st in prog.stages] == list(STAGES)
    assert prog.n_returned == 2 and prog.bindings == []
    if backend == "cuda":
        assert "__global__" in prog.source["kernels.cu"]
        return
    a = np.random.default_rng(3).standard_normal((5, 4)).astype(np.float32)
    got_s, got_y = prog.execute([a])
    np.testing.assert_allclose(got_y, np.exp(a) * 2, rtol=1e-6)
    np.testing.assert_allclose(got_s, (np.exp(a) * 2).sum(1), rtol=1e-5)


# ---------------------------------------------------------------------------------------------- stages
def test_stages_run_in_the_documented_order_and_report_what_they_did():
    model = _mlp()
    x, y = _data()
    opt = optim.SGD(model.parameters(), lr=0.1)

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss
    for amp, fuse in ((None, True), ("fp16", True), ("fp16", False)):
        prog = gradc.compile(step, amp=amp, fuse=fuse).lower(x, y)
        assert [s.name for s in prog.stages] == list(STAGES)
        assert {s.part for s in prog.stages} == {"graph", "program"}
        info = {s.name: s.info for s in prog.stages}
        assert info["autodiff"]["skipped"] and info["split"]["skipped"]
        assert {k: info["simplify"][k] for k in prog.stats["simplify"]} == prog.stats["simplify"]
        assert info["simplify"]["nodes_before"] == prog.stats["traced_nodes"]
        assert info["recompute"]["saved_bytes_after"] == prog.stats["saved_activation_bytes"]
        assert info["fusion"].get("fused_groups", 0) == prog.stats["fused_groups"]
        assert ("skipped" in info["fusion"]) == (not fuse)
        assert info["schedule"]["units"] == prog.stats["kernels"]
        assert info["memory"]["buffer_bytes"] == prog.stats["buffer_bytes"]
        casts = [n for n in prog.ir.op_nodes() if prog.ir.node(n)["op"] == "cast"
                 and prog.ir.node(n)["dtype"] == "float16"]
        assert (len(casts) > 0) == (amp == "fp16")
        if not fuse:  # (fusion may merge recomputed casts into the values they copy)
            assert info["amp"]["casts_to_float16"] == len(casts)
        assert info["amp"]["float16_values"] >= info["amp"]["casts_to_float16"]
        assert all(s.seconds >= 0 for s in prog.stages)
        assert prog.stats["compile_seconds"] >= prog.stats["trace_seconds"]


def test_split_programs_record_both_parts_backward_first():
    model = _mlp()
    x, y = _data()
    prog = gradc.compile(lambda x, y: F.cross_entropy(model(x), y)).lower(x, y)
    names = [(s.part, s.name) for s in prog.stages]
    per_part = list(STAGES[len(GRAPH_STAGES):])
    assert names == ([("graph", n) for n in GRAPH_STAGES] + [("backward", n) for n in per_part]
                     + [("forward", n) for n in per_part])
    info = {s.name: s.info for s in prog.stages if s.part == "graph"}
    assert info["autodiff"]["gradients"] == len(list(model.parameters()))
    assert info["split"]["saved"] == len(prog.backward.wiring["saved_outputs"])
    assert prog.backward.program.stages == prog.stages[:len(GRAPH_STAGES) + len(per_part)]
    # The forward's statistics are those of the joint graph the passes saw.
    assert prog.stats["traced_nodes"] == info["simplify"]["nodes_before"] > prog.stats["nodes"]
    assert prog.stats["backward"] == prog.backward.program.stats


def test_an_artifact_is_regenerated_by_the_pipeline(tmp_path):
    model = _mlp()
    x, _ = _data()
    with gradc.no_grad():
        prog = gradc.export(model, x)
    path = prog.save(tmp_path / "m.gradc")
    loaded = gradc.load(path)
    assert loaded.pipeline is lower and loaded.spec.optimize is False
    info = {s.name: s.info for s in loaded.stages}
    assert info["simplify"]["skipped"] and info["recompute"]["skipped"]
    assert loaded.source == prog.source
    assert loaded.artifact_info["path"] == str(path) and loaded.stats["artifact"] == str(path)
    with gradc.no_grad():
        np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------------- Program fields
@pytest.fixture
def frozen_programs(monkeypatch):
    """Record every attribute set, and every stats entry written, on a Program after its
    constructor returned."""
    late = []

    class Stats(dict):
        def __setitem__(self, k, v):
            late.append(f"stats[{k!r}]")
            super().__setitem__(k, v)

    init = Program.__init__

    def wrapped(self, *args, **kwargs):
        init(self, *args, **kwargs)
        object.__setattr__(self, "stats", Stats(self.stats))
        object.__setattr__(self, "_built", True)

    def setattr_(self, name, value):
        if getattr(self, "_built", False):
            late.append(name)
        object.__setattr__(self, name, value)
    monkeypatch.setattr(Program, "__init__", wrapped)
    monkeypatch.setattr(Program, "__setattr__", setattr_)
    return late


def test_programs_get_every_field_at_construction(frozen_programs, tmp_path):
    model = _mlp()
    x, y = _data()
    aot = gradc.compile(lambda x, y: F.cross_entropy(model(x), y)).lower(x, y)
    with gradc.no_grad():
        exported = gradc.export(model, x)
    loaded = gradc.load(exported.save(tmp_path / "m.gradc"))
    cuda = gradc.compile(model, backend="cuda").lower(x)
    assert frozen_programs == []
    for prog in (aot, aot.backward.program, exported, loaded, cuda):
        assert prog.stages and prog.spec is not None and prog.pipeline is lower
        assert prog.stats["nodes"] == len(prog.ir) and prog.kernels
    assert aot.backward is not None and aot.stats["backward"] is aot.backward.program.stats
    assert exported.artifact_info["inputs"] == [{"name": "input", "shape": [8, 6], "dtype": "float32"}]
    assert all(name.startswith("g") and "__global__" in src for name, src in cuda.kernels)


def test_replace_builds_a_new_program():
    g = Graph()
    x = g.add_input("x", (3,), "float32")
    g.outputs = [g.add("neg", [x], (3,), "float32")]
    prog = lower(g, Spec())
    other = prog.replace(artifact_info={"inputs": [{"name": "x"}]})
    assert other is not prog and other.artifact_info == {"inputs": [{"name": "x"}]} and prog.artifact_info is None
    assert other.source == prog.source and other.stages == prog.stages
    np.testing.assert_array_equal(other.execute([np.ones(3, np.float32)])[0], -np.ones(3, np.float32))
    with pytest.raises(gradc.GradcError, match="unknown field"):
        prog.replace(colour="red")


# ---------------------------------------------------------------------------------------------- the spec
def _tiny():
    g = Graph()
    x = g.add_input("x", (2, 2), "float32")
    g.outputs = [g.add("exp", [x], (2, 2), "float32")]
    return g


@pytest.mark.parametrize("kwargs,match", [
    ({"backend": "auto"}, "backend"),
    ({"backend": "fortran"}, "backend"),
    ({"fuse": 1}, "fuse"),
    ({"block_bytes": 0}, "block_bytes"),
    ({"n_returned": -1}, "n_returned"),
    ({"gradients": {"outputs": (0,)}}, "gradients"),
])
def test_spec_refuses_bad_fields(kwargs, match):
    with pytest.raises(gradc.GradcError, match=match):
        Spec(**kwargs)


def test_spec_must_fit_the_graph():
    with pytest.raises(gradc.GradcError, match="n_returned"):
        lower(_tiny(), Spec(n_returned=2))
    with pytest.raises(gradc.GradcError, match="binds 2 inputs"):
        lower(_tiny(), Spec(bindings=[Binding("arg", 0)] * 2))
    with pytest.raises(gradc.GradcError, match="Gradients.wrt"):
        lower(_tiny(), Spec(gradients=Gradients(outputs=(0,), wrt=(3,))))
    with pytest.raises(gradc.GradcError, match="Spec"):
        lower(_tiny(), {"backend": "numpy"})
    with pytest.raises(gradc.GradcError, match="non-negative"):
        Gradients(outputs=(-1,), wrt=())


# ---------------------------------------------------------------------------------------------- pass results
def test_fusion_returns_its_result_and_describe_reads_it():
    def fn(x, w):
        y = x.exp()
        return y + (y @ w)
    graph, spec = gradc.compile(fn).trace(gradc.randn(4, 4), gradc.randn(4, 4))
    result = fuse(graph)
    assert not hasattr(graph, "groups") and not hasattr(graph, "boundaries")
    members = {n for info in result.groups.values() for n in info["members"]}
    assert members == {n for n in graph.g.nodes if graph.node(n).get("group") is not None}
    assert any("matmul" in why or "cycle" in why for _, _, why in result.boundaries)
    assert describe(graph, result) == describe(graph)


def test_liveness_is_the_last_reading_step():
    g = Graph()
    x = g.add_input("x", (4,), "float32")
    a = g.add("exp", [x], (4,), "float32")
    r = g.add("reshape", [a], (2, 2), "float32", {"shape": (2, 2)})
    b = g.add("neg", [x], (4,), "float32")
    c = g.add("neg", [r], (2, 2), "float32")
    steps = [[a], [r, b], [c]]
    assert last_uses(g, steps) == {x: 1, a: 1, r: 2}
    assert by_storage(last_uses(g, steps), {r: a}) == {x: 1, a: 2}


def test_one_size_rule():
    assert gradc.dtypes.nbytes((3, 4), "float16") == 24
    assert gradc.dtypes.nbytes((), gradc.float64) == 8
    assert gradc.dtypes.nbytes((2, 0, 5), "int64") == 0
    g = _tiny()
    assert g.nbytes(g.outputs[0]) == 16


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "out.bin"
    cache.atomic_write(target, b"old")
    mask = os.umask(0o022)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask

    def failing(f):
        f.write(b"partial")
        raise OSError("disk full")
    with pytest.raises(OSError, match="disk full"):
        cache.atomic_write(target, failing)
    assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]
    cache.atomic_write(target, lambda f: f.write(b"new"))
    assert target.read_bytes() == b"new"


# ---------------------------------------------------------------------------------------------- layering
def _imports():
    """{module: {(imported module, imported name)}} over gradc, imports inside functions included."""
    mods = {}
    for p in PKG.rglob("*.py"):
        parts = list(p.relative_to(PKG.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = p
    out = {}
    for name, p in mods.items():
        pkg = name if p.name == "__init__.py" else name.rsplit(".", 1)[0]
        found = set()
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.Import):
                found |= {(a.name, None) for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = pkg.split(".")[:len(pkg.split(".")) - node.level + 1] if node.level else []
                mod = ".".join(base + ([node.module] if node.module else []))
                for a in node.names:
                    found.add((f"{mod}.{a.name}", None) if f"{mod}.{a.name}" in mods else (mod, a.name))
        out[name] = {(m, n) for m, n in found if m in mods}
    return out


PIPELINE = ("gradc.compiler", "gradc.lower", "gradc.spec", "gradc.debug", "gradc.artifacts", "gradc.version")


def _ours(m):
    return m in PIPELINE or m.startswith(("gradc.runtime", "gradc.passes", "gradc.codegen", "gradc.ir"))


def test_runtime_never_imports_the_compiler():
    below = ("gradc.compiler", "gradc.tracer", "gradc.lower", "gradc.passes", "gradc.codegen", "gradc.debug")
    for mod, deps in _imports().items():
        if mod.startswith("gradc.runtime"):
            bad = sorted(m for m, _ in deps if m.startswith(below))
            assert not bad, f"{mod} imports {bad}"


def test_pipeline_modules_import_downward_only_and_no_private_names():
    imports = _imports()
    g = nx.DiGraph((m, d) for m, deps in imports.items() for d, _ in deps if d != m)
    for cycle in nx.strongly_connected_components(g):
        assert len(cycle) == 1 or not any(_ours(m) for m in cycle), sorted(cycle)
    for mod, deps in imports.items():
        if _ours(mod):
            private = sorted(f"{m}.{n}" for m, n in deps if n and n.startswith("_") and not n.startswith("__"))
            assert not private, f"{mod} imports private names {private}"
