"""The IR: a thin `Graph` over networkx.MultiDiGraph.

A node is one primitive application (or an `input` / `const`): its op name, output shape, dtype
name, attributes, and the user's file:line that created it. An edge runs from an operand to its
user and carries the operand's position (`index`), so `f(x, x)` has two parallel edges. Graph-level
lists name the program's inputs and outputs."""
import hashlib
import heapq
import itertools
import json
import marshal

import networkx as nx
import numpy as np

from .. import dtypes as D
from ..errors import GradcError
from ..ops import OPS
from ..lowered_sizes import rebound, symbols_of
from ..symint import SymInt, concrete, show

SPECIAL = ("input", "const")
# Node keys written only when set: "phase" marks the backward ("backward") and the forward values
# it recomputes ("recompute"); "group" is the fusion group.
_OPTIONAL = ("phase", "group")
FORMAT_VERSION = 1


class Graph:
    def __init__(self):
        self.g = nx.MultiDiGraph()
        self.inputs = []       # node ids, in call order
        self.outputs = []      # node ids, in return order (may repeat)
        self.constants = {}    # name -> ndarray, for const nodes too large to inline
        self._ids = itertools.count()

    # ------------------------------------------------------------------ building
    def add(self, op, args=(), shape=(), dtype="float32", attrs=None, where=None, grad_edges=None):
        nid = next(self._ids)
        self._put(nid, {"op": op, "shape": tuple(shape), "dtype": dtype, "attrs": dict(attrs or {}), "where": where},
                  [(a, i, bool(grad_edges[i]) if grad_edges else False) for i, a in enumerate(args)])
        return nid

    def _put(self, nid, data, operands=()):
        """A new node and its operand edges (operand, index, grad), written into the adjacency dicts
        directly, as MultiDiGraph's add_node and add_edge (key = index) would: tracing and reading a
        cached program add a thousand nodes, and networkx's per-call checks were a tenth of that."""
        g = self.g
        if nid in g._node:
            raise GradcError(f"IR node %{nid} exists already")
        g._node[nid], g._succ[nid], g._pred[nid] = data, {}, {}
        for a, i, grad in operands:
            self._link(a, nid, i, grad)
        cache = getattr(g, "__networkx_cache__", None)   # (what networkx >= 3.3 clears on every change)
        if cache:
            cache.clear()

    def _link(self, u, v, index, grad):
        g = self.g
        if u not in g._node or v not in g._node:
            raise GradcError(f"IR edge %{u} -> %{v} names a node that does not exist")
        keys = g._pred[v].get(u)
        if keys is None:
            keys = g._pred[v][u] = g._succ[u][v] = {}
        elif index in keys:
            raise GradcError(f"IR node %{v} has two operand edges from %{u} at position {index}")
        keys[index] = {"index": index, "grad": grad}

    def add_input(self, name, shape, dtype, where=None):
        nid = self.add("input", shape=shape, dtype=dtype, attrs={"name": name}, where=where)
        self.inputs.append(nid)
        return nid

    def add_const(self, value, where=None):
        """A constant: uniform arrays are stored as a fill value, others in the constants table."""
        value = np.asarray(value)
        dtype = D.from_numpy_dtype(value.dtype).name
        flat = value.reshape(-1)
        if value.size and (flat == flat[0]).all() or value.size == 0:
            fill = flat[0].item() if value.size else 0
            return self.add("const", shape=value.shape, dtype=dtype, attrs={"fill": fill}, where=where)
        name = f"c{len(self.constants)}"
        self.constants[name] = value
        return self.add("const", shape=value.shape, dtype=dtype, attrs={"table": name}, where=where)

    # ------------------------------------------------------------------ queries
    # The queries below read networkx's adjacency dicts (`_node`, `_pred`, `_succ`: plain dicts that
    # MultiDiGraph keeps for exactly this, stable across networkx 2.x and 3.x) instead of its
    # read-only views, which cost more per lookup than the passes spend on the answer.
    def node(self, nid):
        return self.g._node[nid]

    def args(self, nid):
        """Operand node ids of nid in argument order."""
        pred = self.g._pred[nid]
        if len(pred) == 1:   # one operand node (possibly used at several positions)
            (u, keys), = pred.items()
            return [u] * len(keys)
        if len(pred) == 2:   # two operand nodes, each at one position: the binary ops
            (u, ku), (v, kv) = pred.items()
            if len(ku) == 1 and len(kv) == 1:
                iu, iv = next(iter(ku.values()))["index"], next(iter(kv.values()))["index"]
                if iu != iv:
                    return [u, v] if iu < iv else [v, u]
        at = {}
        for u, keys in pred.items():
            for d in keys.values():
                at[d["index"]] = u
        return [at[i] for i in sorted(at)]

    def users(self, nid):
        return list(self.g._succ[nid])

    def __len__(self):
        return self.g.number_of_nodes()

    def __contains__(self, nid):
        return nid in self.g

    def op_nodes(self):
        return [n for n, d in self.g._node.items() if d["op"] not in SPECIAL]

    def topological(self):
        """A deterministic topological order (ties broken by node id: the smallest ready node
        comes first, as networkx.lexicographical_topological_sort orders them)."""
        pred, succ = self.g._pred, self.g._succ
        waiting = {n: sum(map(len, p.values())) for n, p in pred.items()}
        ready = [n for n, k in waiting.items() if not k]
        heapq.heapify(ready)
        order = []
        while ready:
            n = heapq.heappop(ready)
            order.append(n)
            for v, keys in succ[n].items():
                waiting[v] -= len(keys)
                if not waiting[v]:
                    heapq.heappush(ready, v)
        if len(order) != len(waiting):
            raise GradcError(f"IR is not acyclic: cycle through nodes {nx.find_cycle(self.g)}")
        return order

    def nbytes(self, nid):
        """Bytes of node nid's value."""
        d = self.node(nid)
        return D.nbytes(d["shape"], d["dtype"])

    def const_value(self, nid):
        d = self.node(nid)
        if "table" in d["attrs"]:
            return self.constants[d["attrs"]["table"]]
        if "arange" in d["attrs"]:   # (an arange of sizes a guard of the lowering fixed)
            return np.arange(*d["attrs"]["arange"]).astype(D.ALL[d["dtype"]].np)
        return np.full(d["shape"], d["attrs"]["fill"], dtype=D.ALL[d["dtype"]].np)

    # ------------------------------------------------------------------ editing
    def replace_uses(self, old, new):
        """Point every use of `old` (and program outputs) at `new`."""
        for _, v, k, data in list(self.g.out_edges(old, keys=True, data=True)):
            self.g.remove_edge(old, v, k)
            self.g.add_edge(new, v, **data)
        self.outputs = [new if o == old else o for o in self.outputs]

    def remove(self, nid):
        self.g.remove_node(nid)

    def prune(self):
        """Remove the nodes no output depends on (inputs stay: they are the call signature);
        returns how many were removed."""
        live, todo, pred = set(self.outputs), list(self.outputs), self.g._pred
        while todo:
            for u in pred[todo.pop()]:
                if u not in live:
                    live.add(u)
                    todo.append(u)
        dead = [n for n in self.g.nodes if n not in live and self.node(n)["op"] != "input"]
        self.g.remove_nodes_from(dead)
        return len(dead)

    def copy(self):
        other = Graph()
        other.g = self.g.copy()
        for n in other.g.nodes:
            other.g.nodes[n]["attrs"] = dict(other.g.nodes[n]["attrs"])
        other.inputs, other.outputs = list(self.inputs), list(self.outputs)
        other.constants = dict(self.constants)
        other._ids = itertools.count(max(self.g.nodes, default=-1) + 1)
        return other

    def with_sizes(self, sizes, values):
        """A copy in which every symbolic size of `sizes` (gradc.symint) in shapes and attributes is
        its value for these sizes: the graph of one trace with dynamic dimensions, made concrete to lower."""
        other = self.copy()
        for d in other.g._node.values():
            d["shape"], d["attrs"] = concrete(d["shape"], sizes, values), concrete(d["attrs"], sizes, values)
            if "fill" in d["attrs"] and d["op"] == "const":   # (a size's value in the node's dtype, as add_const)
                d["attrs"]["fill"] = np.asarray(d["attrs"]["fill"], D.ALL[d["dtype"]].np).item()
            made = d["attrs"].pop("arange", None)
            if made is not None:   # (gradc.arange of a dynamic size: a table constant of this size)
                name = f"c{len(other.constants)}"
                other.constants[name] = np.arange(*made).astype(D.ALL[d["dtype"]].np)
                d["attrs"]["table"] = name
        return other

    def symbols(self):
        """The names of the symbolic sizes (gradc.symint) its shapes and attributes hold, sorted."""
        return symbols_of([(d["shape"], d["attrs"]) for d in self.g._node.values()])

    def rebound(self, sizes, values, target):
        """A copy whose symbolic sizes of `sizes` are sizes of `target` instead (gradc.symint.rebound):
        the graph of a trace with dynamic dimensions, to lower for every size."""
        other = self.copy()
        for d in other.g._node.values():
            d["shape"] = rebound(d["shape"], sizes, values, target)
            d["attrs"] = rebound(d["attrs"], sizes, values, target)
        return other

    def subgraph(self, nodes, inputs, outputs):
        """A Graph of `nodes` and the edges among them, with these inputs and outputs. Nodes added
        to it later are numbered after every node of this graph, so ids stay unique across parts."""
        other = Graph()
        other.g = self.g.subgraph(nodes).copy()
        other.inputs, other.outputs = list(inputs), list(outputs)
        other.constants = dict(self.constants)
        other._ids = itertools.count(max(self.g.nodes, default=-1) + 1)
        return other

    # ------------------------------------------------------------------ checking
    def verify(self):
        """Check every node against the op table and the graph's own invariants."""
        self.topological()   # raises on a cycle, naming it
        pred = self.g._pred
        for nid, d in self.g._node.items():
            op, args = d["op"], self.args(nid)
            if d["dtype"] not in D.ALL:
                raise GradcError(f"IR node %{nid}: unknown dtype {d['dtype']!r}")
            if op in SPECIAL:
                if args:
                    raise GradcError(f"IR node %{nid}: {op} takes no operands")
                if op == "const" and "table" in d["attrs"]:
                    v = self.constants.get(d["attrs"]["table"])
                    if v is None or tuple(v.shape) != d["shape"] or D.from_numpy_dtype(v.dtype).name != d["dtype"]:
                        raise GradcError(f"IR node %{nid}: constant {d['attrs']['table']!r} is missing or mismatched")
                continue
            prim = OPS.get(op)
            if prim is None:
                raise GradcError(f"IR node %{nid}: unknown op {op!r}")
            indices = sorted(e.get("index") for keys in pred[nid].values() for e in keys.values())
            if indices != list(range(len(indices))):
                raise GradcError(f"IR node %{nid} ({op}): operand positions {indices} are not 0..n-1")
            shapes = [self.node(a)["shape"] for a in args]
            dts = [D.ALL[self.node(a)["dtype"]] for a in args]
            try:
                shape, dtype = prim.infer(shapes, dts, d["attrs"])
            except (GradcError, TypeError, KeyError, ValueError) as e:
                raise GradcError(f"IR node %{nid} ({op}) is ill-formed: {e}") from None
            if shape != d["shape"] or dtype.name != d["dtype"]:
                raise GradcError(f"IR node %{nid} ({op}) records {d['dtype']}{list(d['shape'])} but its operands "
                                 f"give {dtype.name}{list(shape)}")
        for nid in self.inputs:
            if nid not in self.g or self.node(nid)["op"] != "input":
                raise GradcError(f"IR input %{nid} is not an input node")
        for nid in self.outputs:
            if nid not in self.g:
                raise GradcError(f"IR output %{nid} does not exist")
        return self

    # ------------------------------------------------------------------ serialisation
    def to_dict(self):
        nodes = [dict({"id": n, "op": d["op"], "shape": _jsonable(d["shape"]), "dtype": d["dtype"],
                       "attrs": _jsonable(d["attrs"]), "where": d["where"]},
                      **{k: d[k] for k in _OPTIONAL if k in d}) for n, d in sorted(self.g._node.items())]
        edges = sorted([u, v, d["index"], d["grad"]] for u, nbrs in self.g._succ.items()
                       for v, keys in nbrs.items() for d in keys.values())
        consts = {k: {"dtype": D.from_numpy_dtype(v.dtype).name, "shape": list(v.shape),
                      "data": v.reshape(-1).tolist()} for k, v in sorted(self.constants.items())}
        return {"format": FORMAT_VERSION, "nodes": nodes, "edges": edges, "inputs": list(self.inputs),
                "outputs": list(self.outputs), "constants": consts}

    def to_json(self, indent=None):
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True, allow_nan=True)

    @classmethod
    def from_dict(cls, data):
        if data.get("format") != FORMAT_VERSION:
            raise GradcError(f"IR format {data.get('format')!r} is not supported (expected {FORMAT_VERSION})")
        g = cls()
        for n in data["nodes"]:
            d = {"op": str(n["op"]), "shape": tuple(int(s) for s in n["shape"]), "dtype": str(n["dtype"]),
                 "attrs": _from_json(n["attrs"]), "where": n["where"]}
            if n.get("phase") in ("backward", "recompute"):
                d["phase"] = str(n["phase"])
            if "group" in n:
                d["group"] = int(n["group"])
            g._put(int(n["id"]), d)
        for u, v, i, grad in data["edges"]:
            g._link(int(u), int(v), int(i), bool(grad))
        g.inputs = [int(i) for i in data["inputs"]]
        g.outputs = [int(o) for o in data["outputs"]]
        for k, c in data["constants"].items():
            g.constants[k] = np.array(c["data"], dtype=D.ALL[c["dtype"]].np).reshape(c["shape"])
        g._ids = itertools.count(max(g.g.nodes, default=-1) + 1)
        return g

    @classmethod
    def from_json(cls, text):
        return cls.from_dict(json.loads(text))

    def hash(self):
        """A stable content hash: equal graphs hash equal across runs and processes (of one Python
        version). It hashes marshal's version-0 form of to_dict(): exact and invertible like the
        JSON text, without references that depend on object identity, and written in a quarter of
        json.dumps's time."""
        data = self.to_dict()
        try:
            raw = marshal.dumps(data, 0)
        except ValueError:   # (an attribute marshal cannot write)
            raw = json.dumps(data, sort_keys=True, allow_nan=True).encode()
        return hashlib.sha256(raw).hexdigest()

    # ------------------------------------------------------------------ display
    def format_node(self, nid):
        d = self.node(nid)
        args = ", ".join(f"%{a}" for a in self.args(nid))
        attrs = ", ".join(f"{k}={v}" for k, v in sorted(d["attrs"].items()))
        inner = ", ".join(x for x in (args, attrs) if x)
        shape = ", ".join(show(n.p, n.sizes) if isinstance(n, SymInt) else str(n) for n in d["shape"])
        return f"%{nid} = {d['op']}({inner}) : {d['dtype']}[{shape}]"   # (a symbolic size by what it is)

    def to_text(self):
        from ..codegen.templates import render
        rows = [(self.format_node(n), self.node(n)["where"] or "") for n in self.topological()]
        return render("ir/graph.txt.j2", rows=rows, outputs=self.outputs)

    def to_dot(self):
        from ..codegen.templates import render
        nodes = [(n, self.format_node(n).split(" = ", 1)[1], self.node(n)["op"]) for n in self.topological()]
        edges = sorted((u, v, d["index"]) for u, v, d in self.g.edges(data=True))
        return render("ir/graph.dot.j2", nodes=nodes, edges=edges, outputs=self.outputs)

    def __repr__(self):
        return f"<gradc.ir.Graph {len(self)} nodes, {len(self.inputs)} inputs, {len(self.outputs)} outputs>"


def _jsonable(x):
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (tuple, list)):
        return [_jsonable(v) for v in x]
    if isinstance(x, SymInt):   # (a graph being lowered for symbolic sizes: the expression; after, a number)
        return f"<size {x!r}>" if x.sizes.open else x.hint
    return x


def _from_json(x):
    if isinstance(x, dict):
        return {k: _from_json(v) for k, v in x.items()}
    if isinstance(x, list):
        return tuple(_from_json(v) for v in x)
    return x
