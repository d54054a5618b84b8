"""Compiled forward, eager backward: when a compiled call returns tensors that require grad (and
did not call backward itself), the joint forward+backward graph is split in two programs.

The forward program also returns the activations the backward needs; each returned tensor gets an
autograd Node whose VJP runs the backward program, so `loss.backward()` after a compiled forward
works as in eager mode and fills `.grad` of the parameters and inputs."""
import numpy as np

from ..autograd import Node
from ..ir import Graph
from ..tensor import Tensor


def split(graph, n_forward_outputs, grad_nodes, cot_inputs):
    """Split `graph` into (forward Graph, backward Graph, saved node ids).

    The forward graph keeps the original inputs and outputs plus the saved activations; the
    backward graph takes the saved activations, then the cotangents, and returns `grad_nodes`
    (None entries stay None)."""
    import networkx as nx
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

    fwd = Graph()
    fwd.g = graph.g.subgraph(set(graph.g.nodes) - backward_nodes).copy()
    fwd.inputs = [i for i in graph.inputs if i not in cot_set]
    fwd.outputs = list(graph.outputs[:n_forward_outputs]) + saved
    fwd.constants = dict(graph.constants)

    bg = Graph()
    bg.g = graph.g.subgraph(bwd | consts | set(saved)).copy()
    for s in saved:  # saved activations enter the backward graph as inputs
        bg.g.remove_edges_from(list(bg.g.in_edges(s, keys=True)))
        bg.g.nodes[s].update(op="input", attrs={"name": f"saved{s}"})
    bg.inputs = list(saved) + list(cot_inputs)
    bg.constants = dict(graph.constants)
    bg.outputs = [g for g in grad_nodes if g is not None]
    for part in (fwd, bg):
        part._ids = iter(range(max(graph.g.nodes) + 1, 1 << 62))
    return fwd, bg, saved


class _CompiledBackward:
    """Autograd's view of a compiled forward: its VJP runs the backward program."""
    name, saves = "compiled", frozenset()

    def __init__(self, bprog, wiring):
        self.bprog, self.wiring = bprog, wiring

    def vjp(self, ctx, g):
        w = self.wiring
        cots = []
        for k, (shape, dtype) in enumerate(w["cot_specs"]):
            cots.append(g._data if k == ctx.attrs["index"] else np.zeros(shape, dtype=dtype))
        outs = iter(self.bprog.execute(list(ctx.attrs["saved"]) + cots))
        grads = []
        for has, dtype, need in zip(w["has_grad"], ctx.dtypes, ctx.needs):
            arr = next(outs) if has else None
            grads.append(Tensor._wrap(arr, dtype, g.device) if (arr is not None and need) else None)
        return tuple(grads)


def attach_backward(prog, tensors, outs, returned):
    """Give the returned tensors that need it an autograd Node backed by the backward program."""
    bprog, w = prog.backward
    if not hasattr(prog, "_vjp_prim"):
        prog._vjp_prim = _CompiledBackward(bprog, w)
    saved = [outs[i] for i in w["saved_outputs"]]
    args = [tensors[s] for s in w["wrt_slots"]]
    if not any(a.requires_grad for a in args):
        return
    for k, pos in enumerate(w["grad_outputs"]):
        out = returned[pos]
        out._grad_fn = Node(prog._vjp_prim, {"saved": saved, "index": k}, args, out)
        out.requires_grad = True
