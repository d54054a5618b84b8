"""Fusion pass: partition the graph into groups that run as one loop over rows.

A group is a connected set of row-local nodes that share a row count R (their outputs' leading
dimension): elementwise ops, expand/reshape that keep the rows, reductions over the other axes
(softmax, layer_norm, the loss become few groups), and - at the group's end - sums or maxima over
the rows themselves, accumulated across blocks. A node joins its producers' group only when that
creates no cycle between groups (checked on the graph). Every refused merge records why, so the
dump can show where each boundary is and the reason for it. Groups are stored as the node
attribute `group` (part of the IR); `fuse` returns the group table and the boundaries, which the
scheduler reads; backends lower each group as one unit (a blocked NumPy loop, a CUDA kernel)."""
import networkx as nx

from ..ops import OPS
from ..lowered_sizes import hint
from .layout import sink_permutes
from .rows import flatten_rows

ROW_REDUCE = "row-reduce"


def row_role(graph, nid):
    """How a node can take part in a row loop: None (it cannot), "local" (each block of rows of
    the output needs only the same rows of its row-shaped operands), or ROW_REDUCE (it sums or
    maximises over the rows: done by accumulating blocks, and only at the end of a group)."""
    d = graph.node(nid)
    op, shape = d["op"], d["shape"]
    if op in ("input", "const"):
        return None
    prim = OPS[op]
    args = graph.args(nid)
    if prim.elementwise:
        return "local" if len(shape) >= 1 and shape[0] > 1 else None
    if op == "expand":
        return "local" if len(shape) >= 1 and shape[0] > 1 else None
    if op == "reshape":
        src = graph.node(args[0])["shape"]
        return "local" if len(shape) >= 1 and len(src) >= 1 and shape[0] == src[0] > 1 else None
    if op in ("sum", "max"):
        src = graph.node(args[0])["shape"]
        if len(src) < 1 or src[0] <= 1:
            return None
        if op == "sum" and graph.node(args[0])["dtype"] == "float16":
            return None  # its own kernel accumulates in float32; a group's blocks would add in float16
        axes = d["attrs"]["axes"]
        if 0 not in axes:
            return "local"
        return ROW_REDUCE if len(src) >= 1 else None
    return None


def rows_of(graph, nid):
    """The row count a node's loop runs over (the leading dim of its operand for a row reduction)."""
    if row_role(graph, nid) == ROW_REDUCE:
        return graph.node(graph.args(nid)[0])["shape"][0]
    return graph.node(nid)["shape"][0]


def reads_rows(graph, user, arg):
    """Whether member `user` indexes its operand `arg` along the loop's rows: the operand's axis 0
    is the user's iteration axis 0. Elementwise ops and expand align shapes from the right, so an
    operand of lower rank (an (N, D) operand of an (N, N, D) result) or with a leading 1 is read
    whole for every row (broadcast across rows), even when its leading extent equals the rows.
    Blocking the rows is legal only where this holds for every edge inside the group."""
    role = row_role(graph, user)
    return role is not None and _reads_rows(graph, user, arg, role, rows_of(graph, user))


def _reads_rows(graph, user, arg, role, rows):
    s, d = graph.node(arg)["shape"], graph.node(user)
    if len(s) < 1:
        return False
    # A reshape's rows compare as row_role compares them (a guard where symbolic). Any other
    # member's operand broadcasts to it, so its leading size is the rows, or 1, at every size the
    # trace holds for: the value at the sizes being lowered answers for all of them, without a
    # guard (an operand equal to the rows only at some sizes would split the lowering there).
    if (s[0] != rows) if d["op"] == "reshape" else (hint(s[0]) != hint(rows)):
        return False
    if role == ROW_REDUCE or d["op"] in ("sum", "max", "reshape"):
        return True   # their one operand: the loop runs over its leading axis
    return len(s) == len(d["shape"])


class Grouping:
    """Union of nodes into groups, with the cycle check done on the node graph.

    `position` (optional) is {node: index} of the topological order in which nodes are added with
    `new`: then the cycle check stops at nodes after the newest one (no group holds them, and nothing they reach
    comes before them), which gives the same answer as searching everything downstream. The
    graph must not change while a Grouping is in use (roles and operands are remembered)."""

    def __init__(self, graph, position=None):
        self.graph = graph
        self.group = {}       # node -> group id
        self.members = {}     # group id -> set of nodes
        self.boundaries = []  # (producer, consumer, reason)
        self.position = position
        self.horizon = -1     # position of the newest grouped node (with `position`)
        self._roles, self._args = {}, {}

    def new(self, nid):
        self.group[nid] = nid
        self.members[nid] = {nid}
        if self.position is not None:
            self.horizon = max(self.horizon, self.position[nid])

    def role(self, nid):
        """row_role of nid, computed once."""
        r = self._roles.get(nid, self)
        if r is self:
            r = self._roles[nid] = row_role(self.graph, nid)
        return r

    def args(self, nid):
        a = self._args.get(nid)
        if a is None:
            a = self._args[nid] = self.graph.args(nid)
        return a

    def rows(self, nid):
        if self.role(nid) == ROW_REDUCE:
            return self.graph.node(self.args(nid)[0])["shape"][0]
        return self.graph.node(nid)["shape"][0]

    def reads(self, user, arg):
        """reads_rows(graph, user, arg), with the user's role and rows remembered."""
        role = self.role(user)
        return role is not None and _reads_rows(self.graph, user, arg, role, self.rows(user))

    def _creates_cycle(self, a, b):
        """Would merging groups a and b put a path a -> outside -> b (or back) into one group? The
        path runs over the quotient graph: a node of another group stands for all of that group
        (groups run as units), so a path that enters a group anywhere leaves it from any member."""
        succ, inside = self.graph.g._succ, self.members[a] | self.members[b]
        position, horizon = self.position, self.horizon
        for src, dst in ((a, b), (b, a)):
            target = self.members[dst]
            frontier = [v for n in self.members[src] for v in succ[n] if v not in inside]
            if position is not None:   # beyond the newest grouped node nothing leads back
                frontier = [v for v in frontier if position[v] <= horizon]
            seen = set(frontier)
            while frontier:
                n = frontier.pop()
                gid = self.group.get(n)
                for m in (self.members[gid] if gid is not None and gid not in (a, b) else (n,)):
                    for v in succ[m]:
                        if v in target:
                            return True
                        if v not in seen and v not in inside and (position is None or position[v] <= horizon):
                            seen.add(v)
                            frontier.append(v)
        return False

    def _reduce_feeds_inside(self, a, b):
        """Would the merged group hold a reduction over the rows and one of its users? (The user
        would read the partial result of the current block.)"""
        succ, inside = self.graph.g._succ, self.members[a] | self.members[b]
        return any(self.role(n) == ROW_REDUCE and any(v in inside for v in succ[n]) for n in inside)

    def _broadcast_inside(self, a, b):
        """Would the merged group hold an edge whose user reads its operand whole? (The operand
        exists only one block at a time inside the loop.) Edges inside a or b were checked already."""
        for src, dst in ((a, b), (b, a)):
            inside = self.members[src]
            for m in self.members[dst]:
                if any(p in inside and not self.reads(m, p) for p in self.args(m)):
                    return True
        return False

    def try_merge(self, producer, consumer):
        a, b = self.group[producer], self.group[consumer]
        if a == b:
            return True
        reason = None
        if self.role(producer) == ROW_REDUCE:
            reason = "a reduction over the rows finishes only after the whole loop"
        elif self.rows(producer) != self.rows(consumer):
            reason = f"different row counts ({self.rows(producer)} vs {self.rows(consumer)})"
        elif not self.reads(consumer, producer):
            reason = "the value is broadcast across rows (its leading axis is not the loop's)"
        elif self._broadcast_inside(a, b):
            reason = "a member would read another member of the group whole (broadcast across rows)"
        elif self._reduce_feeds_inside(a, b):
            reason = "a reduction over the rows would feed a member of its own group"
        elif self._creates_cycle(a, b):
            reason = "merging would create a cycle between groups"
        if reason:
            self.boundaries.append((producer, consumer, reason))
            return False
        keep, gone = (a, b) if len(self.members[a]) >= len(self.members[b]) else (b, a)
        for n in self.members.pop(gone):
            self.group[n] = keep
            self.members[keep].add(n)
        return True


class Fusion:
    """What `fuse` decided: `groups` {group id: {"members": [...], "rows": R}} in topological
    order of their members, and `boundaries` [(producer, consumer, reason)] for every refused merge."""
    __slots__ = ("groups", "boundaries")

    def __init__(self, groups, boundaries):
        self.groups, self.boundaries = groups, boundaries

    def stats(self):
        fused = [g for g in self.groups.values() if len(g["members"]) > 1]
        return {"groups": len(self.groups), "fused_groups": len(fused),
                "fused_ops": sum(len(g["members"]) for g in fused), "boundaries": len(self.boundaries)}


def fuse(graph):
    """Assign every row-local node a group (node attribute `group`); returns a `Fusion` (the group
    table and the boundaries with their reasons). Leading dims are flattened into rows first
    (gradc.passes.rows), so reductions over the last axis of (B, T, D) values run along rows;
    before that, ops over permuted views work in their source's memory order (gradc.passes.layout)."""
    sink_permutes(graph)
    flatten_rows(graph)
    order = graph.topological()
    position = {n: i for i, n in enumerate(order)}
    grouping = Grouping(graph, position)
    for nid in order:
        if grouping.role(nid) is None:
            continue
        grouping.new(nid)
        for a in grouping.args(nid):
            if a in grouping.group:
                grouping.try_merge(a, nid)
            elif graph.node(a)["op"] not in ("input", "const"):
                grouping.boundaries.append((a, nid, f"{graph.node(a)['op']} is not fused (runs as its own kernel)"))
    for n in graph.g.nodes:
        graph.node(n).pop("group", None)
    # the graph is unchanged since `order` was taken: the first member in it is the smallest position
    for gid, members in grouping.members.items():
        first = min(members, key=position.__getitem__)
        for n in members:
            graph.node(n)["group"] = first
    _merge_recomputed(graph)
    table = {}
    for n in graph.topological():
        gid = graph.node(n).get("group")
        if gid is not None:
            table.setdefault(gid, {"members": [], "rows": rows_of(graph, n)})["members"].append(n)
    _check_acyclic(graph)
    # a boundary at a recomputed copy that was merged away is no boundary any more
    return Fusion(table, [b for b in grouping.boundaries if b[0] in graph and b[1] in graph])


def _merge_recomputed(graph):
    """A value the backward recomputes that landed in the same group as the value it copies is
    the same work twice in one loop: use the original (the group keeps it in scratch anyway)."""
    seen = {}
    for n in graph.topological():
        d = graph.node(n)
        if "group" not in d:
            continue
        key = (d["group"], d["op"], tuple(graph.args(n)), repr(sorted(d["attrs"].items())), d["dtype"])
        first = seen.setdefault(key, n)
        if first != n and d.get("phase") == "recompute":
            graph.replace_uses(n, first)
            graph.remove(n)


def _check_acyclic(graph):
    """The quotient graph of groups must be a DAG (the legality condition of fusion)."""
    q = nx.DiGraph()
    unit = {n: graph.node(n).get("group", ("node", n)) for n in graph.g.nodes}
    q.add_nodes_from(set(unit.values()))
    q.add_edges_from((unit[u], unit[v]) for u, v in graph.g.edges() if unit[u] != unit[v])
    if not nx.is_directed_acyclic_graph(q):
        raise AssertionError(f"fusion produced a cycle between groups: {nx.find_cycle(q)}")


def describe(graph, fusion=None):
    """Readable fusion report of `graph`: each group, its ops, and every boundary with its reason.
    Without the `Fusion` that `fuse` returned for it, fusion is run again on a copy (it is a
    deterministic function of the graph), so a Program's graph can be described on its own."""
    if fusion is None:
        probe = graph.copy()
        fusion = fuse(probe)
        graph = probe
    lines = []
    for gid, info in sorted(fusion.groups.items()):
        ops = [graph.node(n)["op"] for n in info["members"]]
        lines.append(f"group g{gid}: {len(ops)} ops over {info['rows']} rows: {' '.join(ops)}")
    for p, c, why in fusion.boundaries:
        lines.append(f"boundary %{p} ({graph.node(p)['op']}) -> %{c} ({graph.node(c)['op']}): {why}")
    return "\n".join(lines) + "\n"
