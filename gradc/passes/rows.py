"""Row flattening, the first step of fusion: leading dims become one row axis.

A fused group loops over rows (its values' axis 0) and keeps each row's elements together. A
layer norm over (B, T, D) reduces over the last axis, so its natural rows are the B*T rows of D
elements, and an attention softmax over (B, H, T, T) has B*H*T rows of T. Written at rank 3 or 4
the group would run over only B rows, with reductions over part of each row, which the blocked
loops and the kernel IR handle badly or not at all. This pass rewrites every elementwise op, and
every sum or max over trailing axes (or over all leading axes), of rank >= 3 so that it works on
(prod(lead), *rest): its operands are reshaped (a view of a contiguous value), and its users that
still want the original shape read a reshape back. Nodes that share a lead connect directly, so a
layer norm, a softmax or their backward become rank-2 chains that fuse into one group.

An operand broadcast over part of the lead (attention's (T, T) mask against (B, H, T, T)) cannot
be viewed as rows: it is expanded to the full shape first (one copy, the size of the op's output).
A reshape of a reshape reads the first one's source (row-major order makes them the same)."""
from math import prod

from ..ops import OPS


def _lead_of(graph, nid, shape_of):
    """(k, new attrs, source shape) when node nid can work on rows made of its first k axes
    (`shape_of(node)`: a node's shape before this pass)."""
    d = graph.node(nid)
    op, shape = d["op"], tuple(d["shape"])
    if op in ("input", "const") or 0 in shape:
        return None
    prim = OPS[op]
    if prim.elementwise:
        if len(shape) < 3:
            return None
        return len(shape) - 1, dict(d["attrs"]), shape
    if op == "expand":   # a row value (or one for every row) widened along the row
        src = shape_of(graph.args(nid)[0])
        k = len(shape) - 1
        if len(shape) < 3:
            return None
        if not (src[:k] == shape[:k] or all(s == 1 for s in src[:k])):
            # widened along trailing axes of the lead (a pooling's gradient over its window): rows
            # of the leading axes it keeps, each widened inside the row
            k = next((j for j in range(k - 1, 0, -1) if len(src) == len(shape) and src[:j] == shape[:j]), 0)
            if k < 1:
                return None
        return k, {**d["attrs"], "shape": (prod(shape[:k]),) + shape[k:]}, shape
    if op in ("sum", "max"):
        src = shape_of(graph.args(nid)[0])
        axes = tuple(sorted(d["attrs"]["axes"]))
        if len(src) < 3 or 0 in src or not axes:
            return None
        p = 0
        while p < len(axes) and axes[p] == p:
            p += 1
        if p >= 2:      # all leading axes reduced (a bias gradient): one reduction over the rows
            k = min(p, len(src) - 1)   # a total keeps its last axis as the row (never rows of one element)
            new = (0,) + tuple(a - k + 1 for a in axes if a >= k)
        elif p == 0 and axes[0] >= 2:   # trailing axes only: a reduction along each row
            k = axes[0]
            new = tuple(a - k + 1 for a in axes)
        else:
            return None
        attrs = dict(d["attrs"])
        attrs["axes"] = new
        return k, attrs, src
    return None


class _Rewriter:
    def __init__(self, graph):
        self.graph = graph
        self.lead = {}      # flattened node -> the lead shape its rows are made of (None: not row-indexed)
        self.orig = {}      # flattened node -> its original shape
        self.back = {}      # flattened node -> reshape back to its original shape
        self.views = {}     # (source, shape) -> reshape node
        self.expanded = {}  # (source, shape) -> expand node

    def reshape(self, src, shape, where):
        g = self.graph
        while g.node(src)["op"] == "reshape":   # reshape(reshape(x, a), b) is reshape(x, b)
            src = g.args(src)[0]
        shape = tuple(shape)
        if tuple(g.node(src)["shape"]) == shape:
            return src
        key = (src, shape)
        if key not in self.views:
            self.views[key] = g.add("reshape", [src], shape, g.node(src)["dtype"], {"shape": shape}, where=where)
        return self.views[key]

    def original(self, a):
        """Node a in its original shape (a reshape back when a was flattened)."""
        if a not in self.orig or tuple(self.graph.node(a)["shape"]) == self.orig[a]:
            return a
        if a not in self.back:
            self.back[a] = self.reshape(a, self.orig[a], self.graph.node(a)["where"])
        return self.back[a]

    def operand(self, a, lead, rank, where):
        """Operand a of a node of `rank` dims working on rows of `lead`, as that node must read it."""
        g, k = self.graph, len(lead)
        if self.lead.get(a) == lead and len(self.orig[a]) == rank:
            return a
        o = self.original(a)
        sa = tuple(g.node(o)["shape"])
        ra, width = len(sa), rank - k
        if ra == rank and sa[:k] == lead:
            return self.reshape(o, (prod(lead),) + sa[k:], where)
        if ra <= width:
            return o
        if all(s == 1 for s in sa[:ra - width]):
            return self.reshape(o, sa[ra - width:], where)
        # broadcast over part of the lead: expand it to the rows it is read for
        padded = (1,) * (rank - ra) + sa
        full = lead + padded[k:]
        src = self.reshape(o, padded, where)
        if (src, full) not in self.expanded:   # one copy however many ops read it
            self.expanded[(src, full)] = g.add("expand", [src], full, g.node(o)["dtype"], {"shape": full}, where=where)
        return self.reshape(self.expanded[(src, full)], (prod(lead),) + padded[k:], where)

    def shorter_lead(self, n, k, shape):
        """The lead an elementwise op takes: a full-size operand made of rows of fewer leading axes
        (an expand widened inside its rows) sets it, so the two connect without a copy."""
        for a in self.graph.args(n):
            lead = self.lead.get(a)
            if lead is not None and len(lead) < k and self.orig[a] == tuple(shape) and tuple(shape[:len(lead)]) == lead:
                k = len(lead)
        return k

    def rewire(self, nid, i, new):
        g = self.graph.g
        for u, _, key, data in list(g.in_edges(nid, keys=True, data=True)):
            if data["index"] == i:
                if u == new:
                    return
                g.remove_edge(u, nid, key)
                g.add_edge(new, nid, **data)
                return

    def run(self):
        g = self.graph
        for n in g.topological():
            if n not in g or g.node(n)["op"] in ("input", "const"):
                continue
            d = g.node(n)
            plan = _lead_of(g, n, lambda a: self.orig.get(a, tuple(g.node(a)["shape"])))
            args = g.args(n)
            if plan is None:
                for i, a in enumerate(args):
                    if a in self.orig:
                        # a reshape reads the flattened value directly (same row-major order)
                        self.rewire(n, i, a if d["op"] == "reshape" else self.original(a))
                continue
            k, attrs, src_shape = plan
            if OPS[d["op"]].elementwise:
                k = self.shorter_lead(n, k, src_shape)
            lead = src_shape[:k]
            for i, a in enumerate(args):
                new = self.operand(a, lead, len(src_shape), d["where"])
                if d["op"] == "expand" and len(g.node(new)["shape"]) < 2:   # expand keeps the rank
                    new = self.reshape(new, (1,) + tuple(g.node(new)["shape"]), d["where"])
                self.rewire(n, i, new)
            shape = tuple(d["shape"])
            self.orig[n] = shape
            reduces_rows = d["op"] in ("sum", "max") and 0 in attrs["axes"]
            if reduces_rows:
                new_shape = (1,) + shape[k:] if d["attrs"].get("keepdim") else shape
                self.lead[n] = None
            else:
                new_shape = (prod(lead),) + shape[k:]
                self.lead[n] = lead
            d["shape"], d["attrs"] = new_shape, attrs
        outputs = []
        for o in g.outputs:
            outputs.append(self.original(o) if o in self.orig else o)
        g.outputs = outputs
        for n in list(g.g.nodes):   # a reshape that undid the flattening: read the rows directly
            d = g.node(n)
            if d["op"] == "reshape" and g.args(n)[0] in self.orig and \
                    tuple(g.node(g.args(n)[0])["shape"]) == tuple(d["shape"]):
                g.replace_uses(n, g.args(n)[0])
                g.remove(n)
        return len(self.orig)


def flatten_rows(graph):
    """Rewrite `graph` in place as the module docs say; returns how many nodes now work on rows."""
    return _Rewriter(graph).run()
