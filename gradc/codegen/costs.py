"""What each unit of a scheduled program moves through memory: the rows of `prog.stats["kernels_bytes"]`
and the byte counts the profiler (GRADC_PROFILE) divides by each unit's time.

A C kernel's counts are the kernel IR's own (every load and store it emits). A unit that runs
through NumPy counts each operand it reads once and each value it writes to planned storage once:
the traffic of one pass, which NumPy's blocked loops approach and never beat (their block-sized
scratch stays in cache). Views move nothing."""
from ..passes.memory import VIEW_OPS, stored
from .templates import where as safe_where


def unit_costs(graph, units, kernel_ir=()):
    """[{name, kind, ops, bytes_read, bytes_written, where}] in execution order, one per unit."""
    kernels = {k.id: k for k in kernel_ir}
    outputs = set(graph.outputs)
    rows = []
    for u in units:
        members = list(u.members)
        where = safe_where(graph.node(members[0])["where"])
        ops = " ".join(graph.node(m)["op"] for m in members)
        k = kernels.get(members[0])
        if u.kind != "group" and getattr(k, "ops", None) not in ("col2im", "im2col"):   # (a C kernel of its own)
            k = None
        if k is not None:
            rows.append(dict(name=k.name, kind="c kernel", ops=ops, bytes_read=k.bytes_read,
                             bytes_written=k.bytes_written, where=where))
            continue
        if u.kind == "group":
            inside = set(members)
            reads = {a for m in members for a in graph.args(m) if a not in inside}
            writes = [m for m in members if stored(graph, u, m, outputs)]
            rows.append(dict(name=f"g{u.id}", kind="numpy group", ops=ops,
                             bytes_read=sum(graph.nbytes(a) for a in reads),
                             bytes_written=sum(graph.nbytes(m) for m in writes), where=where))
            continue
        n = members[0]
        view = graph.node(n)["op"] in VIEW_OPS
        rows.append(dict(name=f"op{n}", kind="view" if view else "numpy op", ops=ops,
                         bytes_read=0 if view else sum(graph.nbytes(a) for a in set(graph.args(n))),
                         bytes_written=0 if view else graph.nbytes(n), where=where))
    return rows
