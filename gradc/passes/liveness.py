"""Liveness: for steps run in order (the scheduled units of a program, the calls a backend emits,
or the members of one fused group), the last step that reads each value.

This is the one liveness analysis of the compiler: the memory plan reuses a buffer once the value
in it is dead, the backends drop names after their last use and size block scratch with it, and
the planned peak of a call is computed from it."""


def last_uses(graph, steps):
    """{value: index of the last step that reads it}; `steps` lists the nodes each step runs, in
    execution order. Values no step reads are absent."""
    last = {}
    for i, members in enumerate(steps):
        for m in members:
            for a in graph.args(m):
                last[a] = i
    return last


def by_storage(last, root):
    """Per-value last uses gathered per storage: a view keeps what it looks at alive, so a root
    lives until the last read of any value that views it. `root` maps a value to its root (values
    missing from it are their own root)."""
    out = {}
    for v, i in last.items():
        r = root.get(v, v)
        if out.get(r, -1) < i:
            out[r] = i
    return out
