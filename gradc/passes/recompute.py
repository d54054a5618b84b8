"""Saved activations vs recomputation: what the forward keeps for the backward.

A min-cut over the joint graph, as PyTorch's partitioner does: each forward value costs its bytes
to keep; matmuls, reductions and other expensive ops must run in the forward (they are never
recomputed); cheap elementwise values and views may be recomputed where the backward needs them,
so they are kept only when that is the cheaper cut. The backward then reads recomputed copies,
which fuse into its own groups, and the forward values nobody keeps are dropped.

The cut is the one networkx.minimum_cut gives: its source side is every node that cannot reach
the sink in the residual network of a maximum flow. That set is the same for every maximum flow
(no residual edge crosses any minimum cut towards the sink), so the max-flow algorithm here (Dinic's,
over plain dicts: the network is small and networkx's general machinery cost more than the cut)
decides nothing about which values are kept."""
from ..errors import GradcError
from ..ops import OPS
from ..lowered_sizes import hint

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
    nodes = graph.g._node
    return sorted({u for u, users in graph.g._succ.items() if nodes[u].get("phase") not in ("backward", "recompute")
                   and nodes[u]["op"] not in ("input", "const") and any(is_backward(graph, v) for v in users)
                   and not _input_copy(graph, u)})


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
    net = {"source": {}}   # u -> {v: capacity}; a repeated edge keeps its last capacity, as in a DiGraph
    for n in fwd:  # a program output lives anyway: keeping it for the backward is free
        # (capacities at the sizes being lowered: any cut is correct, this one is least at them)
        net.setdefault(("in", n), {})[("out", n)] = 0 if n in outputs else hint(graph.nbytes(n))
        if not recomputable(graph, n):
            net["source"][("in", n)] = INF
        for a in graph.args(n):
            if a in fwd_set:
                net.setdefault(("out", a), {})[("in", n)] = INF
    for n in needed:
        net.setdefault(("out", n), {})["sink"] = INF
    reachable = source_side(net, "source", "sink")
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


def source_side(net, source, sink):
    """The source side of the minimum cut of network `net` ({u: {v: capacity}}, capacities >= 0,
    INF allowed): the nodes that cannot reach `sink` in the residual network of a maximum flow."""
    res = {}
    for u, out in net.items():
        res.setdefault(u, {}).update(out)
        for v in out:
            res.setdefault(v, {}).setdefault(u, 0)
    res.setdefault(source, {})
    res.setdefault(sink, {})
    while True:   # Dinic: a blocking flow along shortest residual paths, until none is left
        level, queue = {source: 0}, [source]
        for u in queue:
            for v, c in res[u].items():
                if c > 0 and v not in level:
                    level[v] = level[u] + 1
                    queue.append(v)
        if sink not in level:
            break
        arcs = {u: list(res[u]) for u in level}
        at = dict.fromkeys(level, 0)
        while True:
            path = [source]
            while path and path[-1] != sink:
                u = path[-1]
                nxt, i = None, at[u]
                while i < len(arcs[u]):
                    v = arcs[u][i]
                    if res[u][v] > 0 and level.get(v) == level[u] + 1:
                        nxt = v
                        break
                    i += 1
                at[u] = i
                if nxt is None:   # a dead end: no arc into it is worth trying again in this phase
                    path.pop()
                    if path:
                        at[path[-1]] += 1
                else:
                    path.append(nxt)
            if not path:
                break
            push = min(res[path[k]][path[k + 1]] for k in range(len(path) - 1))
            if push == INF:
                raise GradcError("recompute: the cut network has a path of unbounded capacity")
            for k in range(len(path) - 1):
                u, v = path[k], path[k + 1]
                res[u][v] -= push
                res[v][u] += push
    reaches, todo = {sink}, [sink]
    while todo:
        v = todo.pop()
        for u in res[v]:
            if u not in reaches and res[u][v] > 0:
                reaches.add(u)
                todo.append(u)
    return set(res) - reaches
