"""Schedule: order the fused groups and the remaining ops into a list of units.

A unit is one fused group (lowered as one loop or kernel) or one op. Units come in a topological
order of the quotient graph, ties broken by node id so that the same graph always renders the
same bytes. The state updates of a training step (an optimizer's parameters and moments, written
back after the run) come last, together, after every other unit: once the backward is done with
every gradient and every state it reads, so that each update may write its state in place and
consecutive independent updates can run as one launch (one multi-tensor kernel on CUDA)."""
import networkx as nx

from ..errors import GradcError


class Unit:
    __slots__ = ("kind", "id", "members", "rows")

    def __init__(self, kind, id, members, rows=None):
        self.kind, self.id, self.members, self.rows = kind, id, members, rows

    def __repr__(self):
        return f"Unit({self.kind} {self.id}: {self.members})"


def schedule(graph, groups, updates=()):
    """[Unit] in execution order (inputs and constants are not units). `groups` is the table the
    fusion pass returned (`Fusion.groups`; {} when fusion did not run). `updates` are the graph
    outputs that are state updates (the program writes them back into its state inputs): the
    units that compute them, and every unit that reads what they compute, run after all others."""
    unit_of = {}
    for n, d in graph.g.nodes(data=True):
        if d["op"] in ("input", "const"):
            continue
        if "group" in d and d["group"] not in groups:
            raise GradcError(f"IR node %{n} is in fusion group {d['group']}, which the group table lacks; "
                             "schedule with the table that fuse() returned for this graph")
        unit_of[n] = ("g", d["group"]) if "group" in d else ("n", n)
    q = nx.DiGraph()
    q.add_nodes_from(set(unit_of.values()))
    q.add_edges_from((unit_of[u], unit_of[v]) for u, v in graph.g.edges()
                     if u in unit_of and v in unit_of and unit_of[u] != unit_of[v])
    late = set()
    for n in updates:
        u = unit_of.get(n)
        if u is not None and u not in late:
            late.add(u)
            late |= nx.descendants(q, u)
    # every predecessor of a unit that is not late is not late either: the early units come first
    order = nx.lexicographical_topological_sort(q, key=lambda u: (u in late, u[1], u[0]))
    units = []
    for kind, ident in order:
        if kind == "g":
            info = groups[ident]
            units.append(Unit("group", ident, list(info["members"]), info["rows"]))
        else:
            units.append(Unit("op", ident, [ident]))
    return units
