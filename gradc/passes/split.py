"""Forward/backward split: a joint graph (forward plus the gradients of its returned outputs)
becomes two graphs, for a compiled forward whose backward runs when the caller calls backward().

The forward graph keeps the original inputs and outputs and also returns the activations the
backward needs (which ones the recompute pass chose on the joint graph); the backward graph takes
those activations, then the cotangents, and returns the gradients."""
import networkx as nx


def split(graph, n_forward_outputs, grad_nodes, cot_inputs):
    """Split `graph` into (forward Graph, backward Graph, saved node ids).

    The forward graph keeps the original inputs and outputs plus the saved activations; the
    backward graph takes the saved activations, then the cotangents, and returns `grad_nodes`
    (None entries stay None)."""
    cot_set = set(cot_inputs)
    backward_nodes = set(cot_set)
    for c in cot_inputs:
        backward_nodes |= nx.descendants(graph.g, c)
    # Values the recompute pass copied into the backward run there, not in the forward program.
    backward_nodes |= {n for n, d in graph.g.nodes(data=True) if d.get("phase") in ("backward", "recompute")}
    needed = set()
    for g in grad_nodes:
        if g is not None:
            needed |= nx.ancestors(graph.g, g) | {g}
    bwd = (needed & backward_nodes) | cot_set
    saved = sorted({u for n in bwd - cot_set for u in graph.args(n)} - bwd
                   | {g for g in grad_nodes if g is not None and g not in bwd})
    saved = [n for n in saved if graph.node(n)["op"] != "const"]
    consts = {u for n in bwd for u in graph.args(n) if graph.node(u)["op"] == "const"}
    consts |= {g for g in grad_nodes if g is not None and graph.node(g)["op"] == "const"}

    fwd = graph.subgraph(set(graph.g.nodes) - backward_nodes, [i for i in graph.inputs if i not in cot_set],
                         list(graph.outputs[:n_forward_outputs]) + saved)
    bg = graph.subgraph(bwd | consts | set(saved), list(saved) + list(cot_inputs),
                        [g for g in grad_nodes if g is not None])
    for s in saved:  # saved activations enter the backward graph as inputs
        bg.g.remove_edges_from(list(bg.g.in_edges(s, keys=True)))
        bg.g.nodes[s].update(op="input", attrs={"name": f"saved{s}"})
    return fwd, bg, saved


def saved_bytes(graph, saved):
    """Bytes the forward program hands to the backward program (each saved value once)."""
    return sum(graph.nbytes(n) for n in set(saved))
