"""What makes compiling and calling cheap must not change what runs: the IR queries the passes lean
on, the trace hook that finds the globals a call read (and the tools that own the trace or profile
function while it runs), and the per-call fast path of a compiled function."""
import cProfile
import random
import sys

import networkx as nx
import numpy as np
import pytest

import gradc
from gradc import nn
from gradc.ir import Graph

SCALE = 2.0


def _random_graph(rng):
    g = Graph()
    ids = [g.add("input", shape=(), dtype="float32") for _ in range(3)]
    for _ in range(rng.randint(1, 40)):
        ids.append(g.add(rng.choice(["add", "mul", "where"]), [rng.choice(ids) for _ in range(rng.randint(1, 3))]))
    for _ in range(4):  # uses moved to a newer node: ids no longer follow the order of the edges
        a, b = rng.choice(ids[3:]), g.add("neg", [rng.choice(ids[:3])])
        if not nx.has_path(g.g, a, b):
            g.replace_uses(a, b)
    return g


def test_topological_order_and_operands_match_networkx():
    rng = random.Random(0)
    for _ in range(300):
        g = _random_graph(rng)
        assert g.topological() == list(nx.lexicographical_topological_sort(g.g))
        for v in g.g.nodes:
            want = [u for u, _, _ in sorted(g.g.in_edges(v, data="index"), key=lambda e: e[2])]
            assert g.args(v) == want
            assert sorted(g.users(v)) == sorted(set(g.g.successors(v)))


def test_prune_keeps_exactly_the_ancestors_of_outputs():
    rng = random.Random(1)
    for _ in range(100):
        g = _random_graph(rng)
        g.outputs = rng.sample(sorted(g.g.nodes), 2)
        live = set(g.outputs).union(*(nx.ancestors(g.g, o) for o in g.outputs))
        want = {n for n in g.g.nodes if n in live or g.node(n)["op"] == "input"}
        g.prune()
        assert set(g.g.nodes) == want


def test_a_cycle_is_reported():
    g = Graph()
    a = g.add("input", shape=(), dtype="float32")
    b = g.add("neg", [a])
    c = g.add("neg", [b])
    g.g.add_edge(c, b, index=1, grad=False)
    with pytest.raises(gradc.GradcError, match="not acyclic"):
        g.topological()


def _scaled(x):
    return x * SCALE


def test_guards_hold_under_a_debuggers_trace_function(monkeypatch):
    """With a trace function installed (a debugger, coverage), the globals a trace reads are still
    found (through the profile function) and the tool's trace function is left in place."""
    events = []

    def tool(frame, event, arg):
        events.append(event)
        return None
    step = gradc.compile(_scaled, backend="numpy")
    x = gradc.tensor([1.0, 2.0])
    old = sys.gettrace()
    sys.settrace(tool)
    try:
        first = step(x).numpy()
        monkeypatch.setattr(sys.modules[__name__], "SCALE", 3.0)
        second = step(x).numpy()
        assert sys.gettrace() is tool
    finally:
        sys.settrace(old)
    assert events, "the tool's trace function stopped being called"
    np.testing.assert_array_equal(first, [2.0, 4.0])
    np.testing.assert_array_equal(second, [3.0, 6.0])
    assert step.trace_count == 2 and "global SCALE: 2.0 -> 3.0" in step.recompile_reasons[-1]


def test_compiling_under_cprofile():
    step = gradc.compile(_scaled, backend="numpy")
    x = gradc.tensor([1.0, 2.0])
    prof = cProfile.Profile()
    prof.enable()
    try:
        out = step(x).numpy()
    finally:
        prof.disable()
    assert sys.getprofile() is None
    np.testing.assert_array_equal(out, [2.0, 4.0])


def test_fast_path_sees_rebound_modules_kwargs_and_python_values():
    gradc.manual_seed(0)
    model = nn.Linear(3, 2)
    other = nn.Linear(3, 2)

    def fn(x, scale=1.0, flip=False):
        y = model(x) * scale
        return -y if flip else y
    step = gradc.compile(fn, backend="numpy")
    x = gradc.randn(4, 3)
    for kwargs in ({}, {"flip": True}, {"scale": 2.0}, {}):
        with gradc.no_grad():
            np.testing.assert_allclose(step(x, **kwargs).numpy(), fn(x, **kwargs).numpy(), rtol=1e-6)
    model = other   # the closure cell now holds another module: its weights, not the old ones
    with gradc.no_grad():
        np.testing.assert_allclose(step(x).numpy(), other(x).numpy(), rtol=1e-6)
