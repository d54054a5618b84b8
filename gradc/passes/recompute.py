"""Saved activations vs recomputation: what the forward keeps for the backward.

A min-cut over the joint graph, as PyTorch's partitioner does: each forward value costs its bytes
to keep; matmuls, reductions and other expensive ops must run in the forward (they are never
recomputed); cheap elementwise values and views may be recomputed where the backward needs them,
so they are kept only when that is the cheaper cut. The backward then reads recomputed copies,
which fuse into its own groups, and the forward values nobody keeps are dropped."""
import networkx as nx

from ..ops import OPS

_VIEWS = ("reshape", "permute", "expand")
INF = float("inf")


def is_backward(graph, n):
    return graph.node(n).get("phase") in ("backward", "recompute")


def _input_copy(graph, n):
    """n is an input seen through views and casts (e.g. the float16 copy of a weight)."""
    while graph.node(n)["op"] in _VIEWS + ("cast",):
        n = graph.args(n)[0]
    return graph.node(n)["op"] == "input"


def recomputable(graph, n):
    """Cheap elementwise values and views; not a cast of a program input (an fp16 copy of a weight
    is made once per step and kept, not made again in the backward)."""
    d = graph.node(n)
    if d["op"] == "cast" and _input_copy(graph, n):
        return False
    return d["op"] in _VIEWS or (d["op"] in OPS and OPS[d["op"]].elementwise)


def saved_values(graph):
    """Forward activations that backward nodes read (copies of inputs, such as a weight's float16
    cast, are parameters rather than activations and are not counted)."""
    return sorted({u for u, v in graph.g.edges() if is_backward(graph, v) and not is_backward(graph, u)
                   and graph.node(u)["op"] not in ("input", "const") and not _input_copy(graph, u)})


def saved_bytes(graph):
    return sum(graph.nbytes(n) for n in saved_values(graph))


def choose_saved(graph):
    """Rewrite the backward to recompute cheap forward values where that saves memory.
    Returns (bytes saved before, bytes saved after)."""
    needed = saved_values(graph)
    before = sum(graph.nbytes(n) for n in needed)
    if not needed:
        return before, before
    fwd = [n for n in graph.g.nodes if not is_backward(graph, n) and graph.node(n)["op"] not in ("input", "const")]
    fwd_set = set(fwd)
    outputs = set(graph.outputs)
    net = nx.DiGraph()
    for n in fwd:  # a program output lives anyway: keeping it for the backward is free
        net.add_edge(("in", n), ("out", n), capacity=0 if n in outputs else graph.nbytes(n))
        if not recomputable(graph, n):
            net.add_edge("source", ("in", n), capacity=INF)
        for a in graph.args(n):
            if a in fwd_set:
                net.add_edge(("out", a), ("in", n), capacity=INF)
    for n in needed:
        net.add_edge(("out", n), "sink", capacity=INF)
    if "source" not in net:
        net.add_node("source")
    _, (reachable, _) = nx.minimum_cut(net, "source", "sink")
    keep = {n for n in fwd if ("in", n) in reachable and ("out", n) not in reachable}
    keep |= {n for n in fwd if not recomputable(graph, n)}  # whatever the cut, these are never redone
    if set(needed) <= keep:
        return before, before
    clones = {}

    def recompute(n):
        d = graph.node(n)
        if n in keep or n not in fwd_set:
            return n
        if n not in clones:
            args = [recompute(a) for a in graph.args(n)]
            clones[n] = graph.add(d["op"], args, d["shape"], d["dtype"], d["attrs"], d["where"])
            graph.node(clones[n])["phase"] = "recompute"
        return clones[n]

    for u, v, k, data in list(graph.g.edges(keys=True, data=True)):
        if is_backward(graph, v) and u in fwd_set and u not in keep:
            graph.g.remove_edge(u, v, k)
            graph.g.add_edge(recompute(u), v, **data)
    from .simplify import eliminate_dead_code
    eliminate_dead_code(graph)
    return before, saved_bytes(graph)
