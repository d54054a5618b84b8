"""NumPy code generation: a scheduled graph becomes one Python module with a single entry function
of straight-line NumPy (no per-op dispatch, no autograd bookkeeping)."""
from .. import __version__
from ..errors import GradcError
from ..ops import OPS
from .templates import macros, render, where as safe_where

# Ops whose template calls the op table's eager kernel.
_KERNEL_OPS = ("sigmoid", "erf", "sum", "argmax", "pad", "gather", "scatter_add", "matmul")


def name_of(nid):
    return f"v{nid}"


def generate(graph, schedule):
    """Render the module source for `graph`, statements in `schedule` order."""
    ops = macros("numpy/ops.j2")
    stmts, kernels, table_consts, fill_consts = [], set(), [], []
    params = [name_of(n) for n in graph.inputs]
    dies_after = _last_uses(graph, schedule)
    for nid in schedule:
        d = graph.node(nid)
        op = d["op"]
        if op == "input":
            continue
        if op == "const":
            if "table" in d["attrs"]:
                table_consts.append((name_of(nid), d["attrs"]["table"]))
            else:
                fill_consts.append((name_of(nid), d["shape"], d["attrs"]["fill"], d["dtype"]))
            continue
        if op not in OPS or not hasattr(ops, op):
            raise GradcError(f"the numpy backend has no template for op {op!r}")
        if op in _KERNEL_OPS:
            kernels.add(op)
        expr = getattr(ops, op)(*[name_of(a) for a in graph.args(nid)], **d["attrs"])
        stmts.append({"name": name_of(nid), "expr": expr.strip(), "where": safe_where(d["where"]),
                      "dels": [name_of(a) for a in dies_after.get(nid, ())]})
    return render("numpy/module.py.j2", version=__version__, graph_hash=graph.hash()[:16], kernels=sorted(kernels),
                  table_consts=table_consts, fill_consts=fill_consts, params=params, stmts=stmts,
                  outputs=[name_of(o) for o in graph.outputs])


def _last_uses(graph, schedule):
    """{node: operands whose last use it is}: the generated code drops them right there, so a
    program keeps no intermediate alive longer than eager execution would."""
    keep = set(graph.outputs) | {n for n in graph.g.nodes if graph.node(n)["op"] == "const"}
    last = {}
    for nid in schedule:
        for a in graph.args(nid):
            last[a] = nid
    out = {}
    for a, nid in last.items():
        if a not in keep:
            out.setdefault(nid, []).append(a)
    return {k: sorted(v) for k, v in out.items()}
