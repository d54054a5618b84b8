"""The generated code is a function of the program alone: not of where Python put its objects, and
not of the shortcuts the passes take to be fast (each is checked against the plain computation)."""
import numpy as np
import pytest

import gradc
from gradc import nn, optim, tracer as trace
from gradc.passes import fusion
from gradc.workloads import WORKLOADS


def _first_step(opt_cls=optim.Adam, **options):
    gradc.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    opt = opt_cls(model.parameters(), lr=1e-2, **options)
    x = gradc.randn(4, 6)

    def step(x):
        opt.zero_grad()
        loss = (model(x) ** 2).mean()
        loss.backward()
        opt.step()
        return loss
    return step, x


def test_new_state_is_returned_in_graph_order_whatever_the_order_it_was_made_in(monkeypatch):
    # (with dampening, SGD's first step copies the gradient into new state while traced too)
    step, x = _first_step(optim.SGD, momentum=0.9, dampening=0.1)
    graph, spec = gradc.compile(step, backend="numpy").trace(x)
    new = [e.out for e in spec.effects if e.kind == "new"]
    assert len(new) == 4   # the momentum buffers of four parameters, made by the first step
    nodes = [graph.outputs[i] for i in new]
    assert nodes == sorted(nodes)
    step, x = _first_step(optim.SGD, momentum=0.9, dampening=0.1)
    prog = gradc.compile(step, backend="numpy").lower(x)
    escaped = trace.Tracer.escaped

    def reversed_first(self, keep):
        self.created.reverse()
        return escaped(self, keep)
    monkeypatch.setattr(trace.Tracer, "escaped", reversed_first)
    step, x = _first_step(optim.SGD, momentum=0.9, dampening=0.1)
    again = gradc.compile(step, backend="numpy").lower(x)
    assert again.source == prog.source


@pytest.mark.parametrize("key", ["W1", "W3"])
def test_fusion_with_the_bounded_cycle_check_equals_the_full_search(key, monkeypatch):
    fn, args = WORKLOADS[key].build("small")
    graph, _ = gradc.compile(fn, backend="numpy").trace(*args)
    full = graph.copy()
    fast = fusion.fuse(graph)
    unbounded = fusion.Grouping.__init__

    def without_positions(self, graph, position=None):
        unbounded(self, graph, None)
    monkeypatch.setattr(fusion.Grouping, "__init__", without_positions)
    slow = fusion.fuse(full)
    assert fast.groups == slow.groups and fast.boundaries == slow.boundaries
    assert graph.to_json() == full.to_json()
    assert len(fast.groups) > 3


def test_compiled_equals_eager_after_the_first_adam_step():
    step, x = _first_step()
    eager_step, ex = _first_step()
    compiled = gradc.compile(step, backend="numpy")
    for _ in range(3):
        np.testing.assert_allclose(compiled(x).detach().numpy(), eager_step(ex).detach().numpy(), rtol=1e-5, atol=1e-6)


def _cut_network(rng, n):
    """A network shaped like the recompute pass's: a split node per value, INF edges elsewhere."""
    net = {"source": {}}
    for v in range(n):
        net.setdefault(("in", v), {})[("out", v)] = int(rng.choice([0, 4, 8, 64, 4096, int(rng.integers(1, 99))]))
        if rng.random() < 0.3:
            net["source"][("in", v)] = float("inf")
        for a in rng.choice(v, size=min(v, int(rng.integers(0, 3))), replace=False) if v else ():
            net.setdefault(("out", int(a)), {})[("in", v)] = float("inf")
        if rng.random() < 0.25:
            net.setdefault(("out", v), {})["sink"] = float("inf")
    net.setdefault(("out", n - 1), {})["sink"] = float("inf")
    return net


def test_the_recompute_cut_is_networkx_minimum_cut():
    import networkx as nx
    from gradc.passes.recompute import source_side
    rng = np.random.default_rng(3)
    for trial in range(150):
        net = _cut_network(rng, int(rng.integers(1, 40)))
        g = nx.DiGraph()
        g.add_node("source")
        for u, out in net.items():
            for v, c in out.items():
                g.add_edge(u, v, capacity=c)
        _, (reachable, _) = nx.minimum_cut(g, "source", "sink")
        assert source_side(net, "source", "sink") == reachable, trial
