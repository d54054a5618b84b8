"""Autodiff pass: append the backward subgraph to a traced graph.

Walks the nodes between the differentiated value and the inputs in reverse topological order and
applies each primitive's VJP rule from the op table (the rules eager autograd uses). The VJPs run
under the tracer, so their tensor ops become new graph nodes; fan-out gradients are summed and
broadcast dimensions reduced exactly as in eager mode. Only edges recorded with grad=True carry
gradient (no_grad regions and detach() stop it), and gradients nobody needs are never built."""
import networkx as nx

from .. import dtypes as D
from ..autograd import backprop
from ..ops import OPS, Ctx


def _grad_region(graph, root, wrt):
    """Nodes on a gradient path from any of `wrt` to `root`."""
    g = graph.g
    grad_edges = g.edge_subgraph([(u, v, k) for u, v, k, d in g.edges(keys=True, data=True) if d["grad"]])
    if root not in grad_edges:
        return set()
    up = nx.ancestors(grad_edges, root) | {root}
    down = set()
    for w in wrt:
        if w in grad_edges:
            down |= nx.descendants(grad_edges, w) | {w}
    return up & down


def differentiate(tracer, roots, wrt):
    """Gradients of the `roots` [(node, cotangent node)] with respect to the nodes `wrt`.

    Returns ({wrt node: gradient node}, set of forward nodes whose VJP ran)."""
    graph = tracer.graph
    first_new = max(graph.g.nodes, default=-1) + 1
    region = set().union(*(_grad_region(graph, root, wrt) for root, _ in roots))
    wrt_set = set(wrt)
    cot = {}
    for root, seed in roots:
        cot[root] = tracer.sym(seed) if root not in cot else cot[root] + tracer.sym(seed)
    order = [n for n in reversed(graph.topological()) if n in region and n not in wrt_set]

    def expand(n):
        d = graph.node(n)
        edges = sorted(graph.g.in_edges(n, data=True), key=lambda e: e[2]["index"])
        args = [u for u, _, _ in edges]
        needs = tuple(e[2]["grad"] and e[0] in region for e in edges)
        if not any(needs):
            return None
        ctx = Ctx([tracer.sym(a) for a in args], tracer.sym(n), tuple(graph.node(a)["shape"] for a in args),
                  tuple(D.ALL[graph.node(a)["dtype"]] for a in args), d["attrs"], needs)
        tracer.where_override = f"{d['where']} (grad of {d['op']})" if d["where"] else f"(grad of {d['op']})"
        return OPS[d["op"]], ctx, [a if need else None for a, need in zip(args, needs)]

    def done(n):
        tracer.where_override = None
    visited = set(backprop(order, cot, expand, done))
    grads = {w: tracer.node_of(cot[w]) for w in wrt if w in cot}
    for n in graph.g.nodes:  # mark the backward subgraph (the recompute pass partitions on it)
        if n >= first_new:
            graph.node(n)["phase"] = "backward"
    return grads, visited
