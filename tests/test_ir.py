"""The IR (gradc.ir.Graph): JSON round trips, content hashes that are stable across traces and
processes, the verifier, and each simplify pass on small hand-built graphs (node counts, and the
graph's values before and after, computed op by op with gradc.debug.evaluate)."""
import ast
import json
import math
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import gradc
from gradc import nn
from gradc.debug import evaluate
from gradc.errors import GradcError
from gradc.ir import Graph
from gradc.passes import simplify as S
from gradc.testing import assert_close


# ---------------------------------------------------------------------------- helpers
def outputs_of(graph, inputs):
    values = evaluate(graph, inputs)
    return [np.asarray(values[o]) for o in graph.outputs]


def assert_same_values(before, after):
    assert len(before) == len(after)
    for b, a in zip(before, after):
        assert b.shape == a.shape and b.dtype == a.dtype, (b.shape, a.shape, b.dtype, a.dtype)
        np.testing.assert_array_equal(a, b)


def check_pass(graph, run_pass, inputs, expect_fired, expect_nodes, expect_ops=None):
    """Run one pass; it fires `expect_fired` times, leaves `expect_nodes` nodes (and exactly the
    multiset of ops `expect_ops`, when given), and the outputs keep their values."""
    graph.verify()
    before = outputs_of(graph, inputs)
    fired = run_pass(graph)
    graph.verify()
    assert fired == expect_fired, f"pass fired {fired} times, expected {expect_fired}"
    assert len(graph) == expect_nodes, graph.to_text()
    if expect_ops is not None:
        assert sorted(graph.node(n)["op"] for n in graph.g.nodes) == sorted(expect_ops), graph.to_text()
    assert_same_values(before, outputs_of(graph, inputs))


def rand(*shape, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def traced_graph(fn, *args):
    """The traced (unoptimised) graph of fn(*args)."""
    cf = gradc.compile(fn)
    tracer, _, _ = cf._trace(args, {}, lowering=True)
    return tracer.graph


def sample_fn(x, m):
    table = gradc.tensor([[1.0, -2.0, 3.5], [0.25, float("inf"), -float("inf")]])
    y = gradc.where(m, x * 2.0 + table, float("-inf"))
    return y.softmax(-1), (x.exp() * 1.0).sum(0)


def sample_args():
    return gradc.tensor(rand(2, 3)), gradc.tensor(np.array([[True, False, True], [True, False, False]]))


# ---------------------------------------------------------------------------- JSON and hashing
def hand_built():
    g = Graph()
    x = g.add_input("x", (2, 3), "float32")
    ninf = g.add_const(np.full((2, 3), -np.inf, dtype=np.float32))
    pinf = g.add_const(np.full((1,), np.inf, dtype=np.float32))
    nan = g.add_const(np.float64(np.nan))
    table = g.add_const(np.array([[1.0, np.inf, -np.inf], [np.nan, 0.5, -0.0]], dtype=np.float32))
    cmp = g.add("gt", [x, table], (2, 3), "bool", where="user.py:3")
    w = g.add("where", [cmp, x, ninf], (2, 3), "float32", where="user.py:4")
    s = g.add("sum", [w], (3,), "float32", {"axes": (0,), "keepdim": False}, where="user.py:5")
    m = g.add("minimum", [s, g.add("expand", [pinf], (3,), "float32", {"shape": (3,)})], (3,), "float32")
    g.outputs = [m, nan, table]
    return g


def test_json_round_trip_is_exact_with_constants_and_inf_fills():
    for g in (hand_built(), traced_graph(sample_fn, *sample_args())):
        g.verify()
        text = g.to_json()
        back = Graph.from_json(text)
        assert back.to_json() == text
        assert back.hash() == g.hash()
        back.verify()
        assert back.inputs == g.inputs and back.outputs == g.outputs
        for k, v in g.constants.items():
            np.testing.assert_array_equal(back.constants[k], v)
            assert back.constants[k].dtype == v.dtype
        fills = [d["attrs"]["fill"] for _, d in back.g.nodes(data=True) if d["op"] == "const" and "fill" in d["attrs"]]
        assert any(isinstance(f, float) and math.isinf(f) for f in fills), fills
    # The values survive too (evaluate both on the same inputs; NaNs compare equal).
    g = hand_built()
    x = rand(2, 3)
    for a, b in zip(outputs_of(g, [x]), outputs_of(Graph.from_json(g.to_json()), [x])):
        np.testing.assert_array_equal(a, b)


def test_json_round_trip_keeps_phase_and_group_marks():
    gradc.manual_seed(0)
    lin = gradc.nn.Linear(3, 2)
    prog = gradc.compile(lambda x: lin(x).tanh().sum()).lower(gradc.tensor(rand(4, 3), requires_grad=True))
    for part in (prog.ir, prog.backward[0].ir):
        back = Graph.from_json(part.to_json())
        assert back.to_json() == part.to_json() and back.hash() == part.hash()


def test_json_changes_change_the_hash():
    g = hand_built()
    h = g.hash()
    data = json.loads(g.to_json())
    data["nodes"][1]["attrs"]["fill"] = 0.0
    assert Graph.from_dict(data).hash() != h
    g2 = hand_built()
    key = next(k for k, v in g2.constants.items() if v.ndim == 2)
    g2.constants[key] = g2.constants[key].copy()
    g2.constants[key][0, 0] = 2.0
    assert g2.hash() != h


def test_hash_is_stable_across_two_traces():
    g1 = traced_graph(sample_fn, *sample_args())
    g2 = traced_graph(sample_fn, *sample_args())
    assert g1.to_json() == g2.to_json() and g1.hash() == g2.hash()
    p1 = gradc.compile(sample_fn).lower(*sample_args())
    p2 = gradc.compile(sample_fn).lower(*sample_args())
    assert p1.ir.hash() == p2.ir.hash()
    assert p1.source == p2.source


HASH_SCRIPT = textwrap.dedent("""
    import numpy as np
    import gradc
    from gradc import nn

    gradc.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.GELU(), nn.LayerNorm(4), nn.Linear(4, 2))
    x = gradc.tensor(np.arange(6, dtype=np.float32).reshape(2, 3), requires_grad=True)
    prog = gradc.compile(model).lower(x)
    print(prog.ir.hash(), prog.backward[0].ir.hash())
""")


def test_hash_is_stable_across_processes(tmp_path):
    script = tmp_path / "hash_me.py"
    script.write_text(HASH_SCRIPT)
    env = dict(os.environ, GRADC_CACHE_DIR=str(tmp_path / "cache"))
    results = []
    for seed in ("1", "12345"):  # different str-hash seeds: no set/dict ordering leaks into the hash
        env["PYTHONHASHSEED"] = seed
        run = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                             timeout=120)
        assert run.returncode == 0, run.stderr
        results.append(run.stdout.strip())
    assert results[0] == results[1]
    assert len(results[0].split()) == 2 and all(len(h) == 64 for h in results[0].split())


# ---------------------------------------------------------------------------- verify
def small():
    g = Graph()
    x = g.add_input("x", (3,), "float32")
    e = g.add("exp", [x], (3,), "float32")
    g.outputs = [e]
    return g, x, e


def test_verify_accepts_a_well_formed_graph():
    g, _, _ = small()
    assert g.verify() is g


def test_verify_catches_an_unknown_op():
    g, x, _ = small()
    g.outputs.append(g.add("frobnicate", [x], (3,), "float32"))
    with pytest.raises(GradcError, match="unknown op 'frobnicate'"):
        g.verify()


def test_verify_catches_wrong_arity():
    g, x, _ = small()
    g.outputs.append(g.add("exp", [x, x], (3,), "float32"))
    with pytest.raises(GradcError, match="takes 1 operands, got 2"):
        g.verify()
    g, x, _ = small()
    g.outputs.append(g.add("add", [x], (3,), "float32"))
    with pytest.raises(GradcError, match="takes 2 operands, got 1"):
        g.verify()


def test_verify_catches_a_wrong_recorded_shape_or_dtype():
    g, x, _ = small()
    g.outputs.append(g.add("exp", [x], (4,), "float32"))
    with pytest.raises(GradcError, match=r"records float32\[4\].*give float32\[3\]"):
        g.verify()
    g, x, _ = small()
    g.outputs.append(g.add("sum", [x], (3,), "float32", {"axes": (0,), "keepdim": False}))
    with pytest.raises(GradcError, match="records"):
        g.verify()
    g, x, _ = small()
    g.outputs.append(g.add("exp", [x], (3,), "float64"))
    with pytest.raises(GradcError, match="records float64"):
        g.verify()


def test_verify_catches_a_cycle():
    g, x, e = small()
    t = g.add("tanh", [e], (3,), "float32")
    g.g.remove_edge(x, e)
    g.g.add_edge(t, e, index=0, grad=False)  # e = exp(tanh(e))
    with pytest.raises(GradcError, match="acyclic|cycle"):
        g.verify()


def test_verify_catches_bad_operand_positions_and_missing_constants():
    g, x, _ = small()
    a = g.add("add", [x, x], (3,), "float32")
    for _, _, k, d in list(g.g.in_edges(a, keys=True, data=True)):
        d["index"] = 0
    g.outputs.append(a)
    with pytest.raises(GradcError):
        g.verify()
    g, _, _ = small()
    c = g.add_const(np.arange(3, dtype=np.float32))
    del g.constants[g.node(c)["attrs"]["table"]]
    with pytest.raises(GradcError, match="missing or mismatched"):
        g.verify()


# ---------------------------------------------------------------------------- simplify passes
def test_dce_removes_only_dead_nodes():
    g = Graph()
    x = g.add_input("x", (3,), "float32")
    unused = g.add_input("unused", (3,), "float32")
    e = g.add("exp", [x], (3,), "float32")
    dead1 = g.add("neg", [x], (3,), "float32")
    g.add("tanh", [dead1], (3,), "float32")
    g.add("mul", [unused, unused], (3,), "float32")
    g.outputs = [e]
    check_pass(g, S.eliminate_dead_code, [rand(3), rand(3, seed=1)], 3, 3, ["input", "input", "exp"])
    assert g.inputs == [x, unused]  # inputs are the call signature: they stay


def test_cse_merges_equal_ops_only():
    g = Graph()
    x = g.add_input("x", (3,), "float32")
    y = g.add_input("y", (3,), "float32")
    a1 = g.add("exp", [x], (3,), "float32")
    a2 = g.add("exp", [x], (3,), "float32")
    b = g.add("exp", [y], (3,), "float32")                   # other operand: kept
    s1 = g.add("sum", [a1], (), "float32", {"axes": (0,), "keepdim": False})
    s2 = g.add("sum", [a2], (1,), "float32", {"axes": (0,), "keepdim": True})  # other attrs: kept
    c1 = g.add_const(np.float32(2.0))
    c2 = g.add_const(np.float32(2.0))
    c3 = g.add_const(np.float64(2.0))                        # other dtype: kept
    m1 = g.add("mul", [a1, c1], (3,), "float32")
    m2 = g.add("mul", [a2, c2], (3,), "float32")
    d = g.add("sub", [m1, m2], (3,), "float32")
    xy = g.add("sub", [x, y], (3,), "float32")
    yx = g.add("sub", [y, x], (3,), "float32")               # operand order matters: kept
    g.outputs = [d, xy, yx, b, s1, s2, c3]
    # merged: a2 -> a1, c2 -> c1, then m2 -> m1 (same op on now-equal operands)
    check_pass(g, S.eliminate_common_subexpressions, [rand(3), rand(3, seed=1)], 3, len(g) - 3)
    ops = sorted(g.node(n)["op"] for n in g.g.nodes)
    assert ops.count("exp") == 2 and ops.count("mul") == 1 and ops.count("sub") == 3 and ops.count("const") == 2
    assert ops.count("sum") == 2


def test_constant_folding():
    g = Graph()
    x = g.add_input("x", (2, 2), "float32")
    two = g.add_const(np.float32(2.0))
    three = g.add_const(np.float32(3.0))
    six = g.add("mul", [two, three], (), "float32")
    table = g.add_const(np.array([[0.5, 1.0], [1.5, 2.0]], dtype=np.float32))
    ex = g.add("exp", [table], (2, 2), "float32")
    y = g.add("mul", [x, six], (2, 2), "float32")
    z = g.add("add", [y, ex], (2, 2), "float32")
    g.outputs = [z]
    check_pass(g, S.fold_constants, [rand(2, 2)], 2, 8)  # folded nodes go at once, their operands stay
    S.eliminate_dead_code(g)
    assert sorted(g.node(n)["op"] for n in g.g.nodes) == ["add", "const", "const", "input", "mul"]
    consts = [n for n in g.g.nodes if g.node(n)["op"] == "const"]
    values = sorted(float(np.asarray(g.const_value(n)).sum()) for n in consts)
    np.testing.assert_allclose(values, sorted([6.0, float(np.exp(np.float32([0.5, 1, 1.5, 2])).sum())]), rtol=1e-6)


def test_identity_mul_one_and_add_zero():
    g = Graph()
    x = g.add_input("x", (2, 3), "float32")
    one = g.add_const(np.float32(1.0))
    zero = g.add_const(np.zeros((2, 3), np.float32))
    minus_zero = g.add_const(np.full((2, 3), -0.0, np.float32))
    a = g.add("mul", [x, one], (2, 3), "float32")
    b = g.add("add", [minus_zero, a], (2, 3), "float32")
    c = g.add("div", [b, one], (2, 3), "float32")
    d = g.add("sub", [c, zero], (2, 3), "float32")
    t = g.add("tanh", [d], (2, 3), "float32")
    g.outputs = [t]
    check_pass(g, S.apply_identities, [rand(2, 3)], 4, 5)
    S.eliminate_dead_code(g)
    assert sorted(g.node(n)["op"] for n in g.g.nodes) == ["input", "tanh"]
    assert g.args(t) == [x]


def test_adding_plus_zero_is_kept_for_floats():
    """-0.0 + 0.0 is +0.0: folding x + 0 -> x would give -0.0 where eager code gives +0.0."""
    g = Graph()
    x = g.add_input("x", (2,), "float32")
    zero = g.add_const(np.zeros((2,), np.float32))
    g.outputs = [g.add("add", [x, zero], (2,), "float32")]
    assert S.apply_identities(g) == 0
    i = g.add_input("i", (2,), "int64")
    izero = g.add_const(np.zeros((2,), np.int64))
    g.outputs = [g.add("add", [i, izero], (2,), "int64")]
    assert S.apply_identities(g) == 1


def test_identity_does_not_drop_a_broadcasting_unit():
    g = Graph()
    x = g.add_input("x", (3,), "float32")
    ones = g.add_const(np.ones((2, 3), np.float32))
    a = g.add("mul", [x, ones], (2, 3), "float32")  # x * 1 broadcasts: not the identity
    g.outputs = [a]
    check_pass(g, S.apply_identities, [rand(3)], 0, 3)


def test_identity_double_transpose():
    g = Graph()
    x = g.add_input("x", (2, 3, 4), "float32")
    p1 = g.add("permute", [x], (4, 2, 3), "float32", {"perm": (2, 0, 1)})
    p2 = g.add("permute", [p1], (2, 3, 4), "float32", {"perm": (1, 2, 0)})
    e = g.add("exp", [p2], (2, 3, 4), "float32")
    q1 = g.add("permute", [x], (3, 2, 4), "float32", {"perm": (1, 0, 2)})
    q2 = g.add("permute", [q1], (4, 3, 2), "float32", {"perm": (2, 0, 1)})
    g.outputs = [e, q2]
    x_val = rand(2, 3, 4)
    before = outputs_of(g, [x_val])
    S.simplify(g)
    g.verify()
    assert_same_values(before, outputs_of(g, [x_val]))
    # the transpose pair that cancels is gone; the other pair became a single permute of x
    assert g.args(e) == [x]
    perms = [n for n in g.g.nodes if g.node(n)["op"] == "permute"]
    assert len(perms) == 1 and g.args(perms[0]) == [x] and g.node(perms[0])["attrs"]["perm"] == (2, 1, 0)
    assert len(g) == 3


def test_identity_reshape_of_reshape():
    g = Graph()
    x = g.add_input("x", (2, 6), "float32")
    r1 = g.add("reshape", [x], (3, 4), "float32", {"shape": (3, 4)})
    r2 = g.add("reshape", [r1], (4, 3), "float32", {"shape": (4, 3)})
    r3 = g.add("reshape", [r2], (2, 6), "float32", {"shape": (2, 6)})
    n = g.add("neg", [r3], (2, 6), "float32")
    r4 = g.add("reshape", [n], (12,), "float32", {"shape": (12,)})
    g.outputs = [r2, r4]
    x_val = rand(2, 6)
    before = outputs_of(g, [x_val])
    S.simplify(g)
    g.verify()
    assert_same_values(before, outputs_of(g, [x_val]))
    assert g.args(n) == [x]  # reshape(reshape(reshape(x))) back to x's shape is x
    out_r2 = g.outputs[0]
    assert g.node(out_r2)["op"] == "reshape" and g.args(out_r2) == [x]
    assert sorted(g.node(k)["op"] for k in g.g.nodes) == ["input", "neg", "reshape", "reshape"]


def test_identity_expand_of_a_scalar_constant():
    g = Graph()
    x = g.add_input("x", (2, 3), "float32")
    c = g.add_const(np.float32(0.5))
    r = g.add("reshape", [c], (1, 1), "float32", {"shape": (1, 1)})
    e = g.add("expand", [r], (2, 3), "float32", {"shape": (2, 3)})
    m = g.add("mul", [x, e], (2, 3), "float32")
    g.outputs = [m]
    x_val = rand(2, 3)
    before = outputs_of(g, [x_val])
    fired = S.apply_identities(g)
    S.eliminate_dead_code(g)
    g.verify()
    assert fired == 2
    assert_same_values(before, outputs_of(g, [x_val]))
    (const,) = [n for n in g.g.nodes if g.node(n)["op"] == "const"]
    assert g.node(const)["shape"] == (2, 3) and g.node(const)["attrs"] == {"fill": 0.5}
    assert len(g) == 3 and g.args(m) == [x, const]


def test_identity_cast_to_same_dtype():
    g = Graph()
    x = g.add_input("x", (3,), "float32")
    same = g.add("cast", [x], (3,), "float32", {"dtype": "float32"})
    wide = g.add("cast", [same], (3,), "float64", {"dtype": "float64"})  # a real cast: kept
    g.outputs = [wide]
    check_pass(g, S.apply_identities, [rand(3)], 1, 2)
    S.eliminate_dead_code(g)
    assert sorted(g.node(n)["op"] for n in g.g.nodes) == ["cast", "input"] and g.args(wide) == [x]


def test_simplify_to_fixed_point_on_a_traced_graph_keeps_values():
    x, m = sample_args()
    g = traced_graph(sample_fn, x, m)
    inputs = [x.numpy(), m.numpy()]
    before = outputs_of(g, inputs)
    n_before = len(g)
    counts = S.simplify(g)
    g.verify()
    assert len(g) < n_before and counts["identities"] >= 1  # at least the `* 1.0`
    after = outputs_of(g, inputs)
    for a, b in zip(after, before):
        np.testing.assert_array_equal(a, b)
    assert S.simplify(g) == {"identities": 0, "fold": 0, "cse": 0, "dce": 0}  # a fixed point


# ---------------------------------------------------------------------------- generated code is safe
# no '.': PyTorch and gradc refuse it in a module or parameter name; the rest is as hostile as it gets
INJECT = "x__import__('os');getattr(__import__('os'),'system')('echo pwned')"


def _identifiers_and_strings(source):
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            yield node.id
        elif isinstance(node, ast.Attribute):
            yield node.attr
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.value
        elif isinstance(node, (ast.FunctionDef, ast.arg)):
            yield getattr(node, "name", None) or node.arg


def _assert_no_code_from(source, *needles):
    """No identifier, attribute or string literal of the generated code carries user text, and the
    code does nothing but the program (no import besides numpy, ctypes and gradc's op table; a C
    unit: no user text outside its comments, no header besides math.h and stdlib.h)."""
    if source.startswith("/*"):   # the C backend's translation unit
        code = re.sub(r"/\*.*?\*/", " ", source, flags=re.S)
        for n in needles:
            assert n not in code, n
        assert set(re.findall(r"#include\s*(\S+)", code)) <= {"<math.h>", "<stdlib.h>"}
        return
    names = [s for s in _identifiers_and_strings(source) if s]
    for n in needles:
        assert not any(n in s for s in names), n
    assert "system" not in names and "__import__" not in names and "os" not in names
    tree = ast.parse(source)
    imports = [a.name for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
               for a in node.names]
    # gettrace (from sys): the C host runs kernels one call each under a profiler or debugger
    assert set(imports) <= {"numpy", "ctypes", "OPS", "gettrace"}, imports


class Holder(nn.Module):
    """Runs its children in order, then scales by its own parameters: whatever they are named."""

    def forward(self, x):
        for m in self.children():
            x = m(x)
        for _, p in self.named_parameters(recurse=False):
            x = x * p
        return x


def test_crafted_module_and_parameter_names_never_reach_generated_code(capfd):
    gradc.manual_seed(0)
    model = Holder()
    model.add_module(INJECT, nn.Linear(3, 2))
    setattr(model, "y__import__('os').system('echo pwned')", nn.Linear(2, 2))  # setattr does not check
    model.register_parameter("p" + INJECT, nn.Parameter(gradc.ones(2) * 1.5))
    assert sum("pwned" in n for n, _ in model.named_parameters()) == 5  # the names did take
    x = gradc.tensor(rand(4, 3), requires_grad=True)
    cf = gradc.compile(model)
    out = cf(x)
    out.sum().backward()
    prog = cf.lower(x)
    sources = list(prog.source.values()) + list(prog.backward[0].source.values())
    for src in sources:
        assert "pwned" not in src and "__import__" not in src, "a user's name reached the generated source"
        _assert_no_code_from(src, "pwned")
    assert "pwned" not in capfd.readouterr().out
    assert_close(out, model(x))
    # The whole-step program (parameters and their .grad as inputs and outputs) is clean too.
    step = gradc.compile(lambda x: model(x).sum().backward())
    step(x)
    for src in step.lower(x).source.values():
        assert "pwned" not in src and "__import__" not in src
        _assert_no_code_from(src, "pwned")


def test_odd_characters_in_the_user_file_path_never_reach_generated_code(tmp_path):
    odd = tmp_path / "we'ird \"dir\"\n;__import__('os').system('echo pwned')#"
    odd.mkdir()
    path = odd / "mod$ule;os.system('x') \"q\".py"
    path.write_text("def user_fn(x):\n    return (x * 2.0).tanh() + 1.0\n")
    namespace = {}
    exec(compile(path.read_text(), str(path), "exec"), namespace)
    user_fn = namespace["user_fn"]
    for text in gradc.compile(user_fn, backend="c").lower(gradc.tensor(rand(3))).source.values():
        _assert_no_code_from(text, "pwned", "os.system")
        assert str(path) not in text and str(odd) not in text
    # the NumPy module: every op statement carries the location as a comment
    prog = gradc.compile(user_fn, backend="numpy").lower(gradc.tensor(rand(3)))
    src = prog.source["program.py"]
    _assert_no_code_from(src, "pwned", "os.system")
    assert str(path) not in src and str(odd) not in src
    # Locations stay, sanitised to safe characters inside one comment line: the path's newline,
    # quotes and the like cannot end the comment or open a string.
    for line in src.splitlines():
        if "pwned" in line:
            code, _, comment = line.partition("#")
            assert "pwned" not in code and "'" not in comment and '"' not in comment and ";" not in comment, line
    locs = [line.split("#", 1)[1] for line in src.splitlines() if "np.tanh(" in line.split("#", 1)[0]]
    assert locs and all("mod?ule" in loc for loc in locs), locs
    assert_close(gradc.compile(user_fn)(gradc.tensor(rand(3))), user_fn(gradc.tensor(rand(3))))
