"""Autodiff pass: append the backward subgraph to a traced graph.

Walks the nodes between the differentiated value and the inputs in reverse topological order and
applies each primitive's VJP rule from the op table (the rules eager autograd uses). The VJPs run
under the tracer, so their tensor ops become new graph nodes; fan-out gradients are summed and
broadcast dimensions reduced exactly as in eager mode. Only edges recorded with grad=True carry
gradient (no_grad regions and detach() stop it), and gradients nobody needs are never built."""
from .. import dtypes as D
from ..autograd import backprop
from ..internal import internal
from ..ops import OPS, Ctx


def _grad_region(graph, root, wrt):
    """Nodes on a gradient path from any of `wrt` to `root` (over the edges recorded with grad=True;
    a node none of whose edges carries gradient is on no such path, not even as an end)."""
    pred, succ = graph.g._pred, graph.g._succ

    def grad_nbrs(adj, n):
        return [m for m, keys in adj[n].items() if any(d["grad"] for d in keys.values())]

    def reach(starts, adj):
        seen, todo = set(starts), list(starts)
        while todo:
            for m in grad_nbrs(adj, todo.pop()):
                if m not in seen:
                    seen.add(m)
                    todo.append(m)
        return seen

    def on_grad_edge(n):
        return bool(grad_nbrs(pred, n) or grad_nbrs(succ, n))

    if not on_grad_edge(root):
        return set()
    return reach([root], pred) & reach([w for w in wrt if on_grad_edge(w)], succ)


_backprop_internally = internal(backprop)


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
    pred = graph.g._pred

    def expand(n):
        d = graph.node(n)
        edges = sorted(((u, e) for u, keys in pred[n].items() for e in keys.values()), key=lambda ue: ue[1]["index"])
        args = [u for u, _ in edges]
        needs = tuple(e["grad"] and u in region for u, e in edges)
        if not any(needs):
            return None
        ctx = Ctx([tracer.sym(a) for a in args], tracer.sym(n), tuple(graph.node(a)["shape"] for a in args),
                  tuple(D.ALL[graph.node(a)["dtype"]] for a in args), d["attrs"], needs)
        tracer.where_override = f"{d['where']} (grad of {d['op']})" if d["where"] else f"(grad of {d['op']})"
        return OPS[d["op"]], ctx, [a if need else None for a, need in zip(args, needs)]

    def done(n):
        tracer.where_override = None
    # gradc's own VJPs run none of the user's code: then the walk runs with the read hook off
    walk = _backprop_internally if all(OPS[graph.node(n)["op"]].closed for n in order) else backprop
    visited = set(walk(order, cot, expand, done))
    grads = {w: tracer.node_of(cot[w]) for w in wrt if w in cot}
    for n in graph.g.nodes:  # mark the backward subgraph (the recompute pass partitions on it)
        if n >= first_new:
            graph.node(n)["phase"] = "backward"
    return grads, visited
