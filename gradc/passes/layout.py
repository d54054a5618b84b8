"""Layout pass, run before row flattening: elementwise ops and reductions whose big operands are
all the same permuted view work in the memory order of the values they view, and the permute
moves to their result.

A convolution computes channels-last (N, H, W, C) memory and returns it as the (N, C, H, W)
view PyTorch's layout asks for; the bias add and ReLU after it, and their gradients, then read a
permuted view. Row flattening needs its operands as contiguous rows, so each such op began with a
transposing copy of its input (and the next convolution's channels-last view of the result copied
it back). Here `add(permute(x, p), b)` becomes `permute(add(x, b'), p)` (b' is the small operand,
a bias, in x's order), so the chain after a convolution runs over its memory as it lies, and
`permute(permute(y, p), q)` of the next convolution folds to y. A sum or max over permuted axes
reduces the matching axes of the viewed value (a bias gradient over (N, H, W) of channels-last
memory is one reduction over rows) unless that turns a row-friendly reduction into one that is not.

An op is moved only when every operand as large as its result is the same permute (the others are
small broadcasts: scalars, biases), so no new transposing read appears; random ops are not
elementwise here and program outputs keep their node."""
from math import prod

from ..ops import OPS
from ..lowered_sizes import hint
from .simplify import apply_identities, eliminate_dead_code

_SMALL = 4   # an operand with at most 1/_SMALL of the result's elements may be permuted (a copy of its own)


def _inverse(perm):
    return tuple(sorted(range(len(perm)), key=perm.__getitem__))


def row_friendly(rank, axes):
    """True when reducing `axes` of a rank-`rank` value is a reduction the row flattening keeps
    whole: every leading axis (a total over rows) or trailing axes from axis 2 on."""
    axes = sorted(axes)
    if rank < 3 or not axes:
        return False
    p = 0
    while p < len(axes) and axes[p] == p:
        p += 1
    return p >= 2 or p == 0 and axes[0] >= 2


class _Sinker:
    def __init__(self, graph):
        self.graph = graph
        self.made = {}   # (operand, perm) -> the operand in the viewed value's order
        self.moved = 0

    def add(self, op, args, shape, dtype, attrs, like):
        g = self.graph
        d = g.node(like)
        nid = g.add(op, args, shape, dtype, attrs, d["where"])
        if d.get("phase"):
            g.node(nid)["phase"] = d["phase"]
        return nid

    def common_perm(self, nid):
        """The permutation every full-size operand of nid views its source through, or None."""
        g = self.graph
        d = g.node(nid)
        shape, n = tuple(d["shape"]), prod(d["shape"])
        perm = None
        for a in g.args(nid):
            da = g.node(a)
            size = prod(da["shape"])
            if hint(size) * _SMALL <= hint(n):   # (cost only: operand() rewrites an operand of any size)
                continue
            if da["op"] != "permute" or tuple(da["shape"]) != shape:
                return None
            p = tuple(da["attrs"]["perm"])
            if perm is not None and p != perm:
                return None
            perm = p
        return perm

    def operand(self, a, perm, like):
        """Operand a of an op over the permuted shape, as the op over the source's order reads it."""
        g = self.graph
        da = g.node(a)
        r = len(perm)
        if da["op"] == "permute" and tuple(da["attrs"]["perm"]) == perm:
            return g.args(a)[0]
        if (a, perm) in self.made:
            return self.made[(a, perm)]
        shape = tuple(da["shape"])
        if all(s == 1 for s in shape):   # a scalar broadcasts the same in any order
            return a
        padded = (1,) * (r - len(shape)) + shape
        inv = _inverse(perm)
        target = tuple(padded[i] for i in inv)
        big = [i for i in range(r) if padded[i] != 1]
        if all(perm[i] < perm[j] for i, j in zip(big, big[1:])):
            # the same dims in the same order: a reshape (leading ones dropped: broadcasting adds them)
            while len(target) > 1 and target[0] == 1:
                target = target[1:]
            new = a if target == shape else self.add("reshape", [a], target, da["dtype"], {"shape": target}, like)
        else:
            src = a if padded == shape else self.add("reshape", [a], padded, da["dtype"], {"shape": padded}, like)
            new = self.add("permute", [src], target, da["dtype"], {"perm": inv}, like)
        self.made[(a, perm)] = new
        return new

    def elementwise(self, nid, perm):
        g = self.graph
        d = g.node(nid)
        args = [self.operand(a, perm, nid) for a in g.args(nid)]
        src_shape = tuple(d["shape"][i] for i in _inverse(perm))
        inner = self.add(d["op"], args, src_shape, d["dtype"], d["attrs"], nid)
        return self.add("permute", [inner], d["shape"], d["dtype"], {"perm": perm}, nid)

    def reduction(self, nid, perm):
        g = self.graph
        d = g.node(nid)
        r, axes, keep = len(perm), tuple(sorted(d["attrs"]["axes"])), bool(d["attrs"].get("keepdim"))
        new_axes = tuple(sorted(perm[a] for a in axes))
        if row_friendly(r, axes) and not row_friendly(r, new_axes):
            return None
        x = g.args(nid)[0]
        src = g.args(x)[0]
        src_shape = tuple(g.node(src)["shape"])
        kept = [i for i in range(r) if i not in axes]
        if keep:
            out_shape = tuple(1 if j in new_axes else src_shape[j] for j in range(r))
            after = perm
        else:
            out_shape = tuple(src_shape[j] for j in range(r) if j not in new_axes)
            order = sorted(perm[i] for i in kept)
            after = tuple(order.index(perm[i]) for i in kept)
        inner = self.add(d["op"], [src], out_shape, d["dtype"], {**d["attrs"], "axes": new_axes}, nid)
        if after == tuple(range(len(after))):
            return inner
        return self.add("permute", [inner], d["shape"], d["dtype"], {"perm": after}, nid)

    def run(self):
        g = self.graph
        outputs = set(g.outputs)
        for nid in g.topological():
            if nid not in g or nid in outputs:
                continue
            d = g.node(nid)
            if d["op"] in ("input", "const") or 0 in d["shape"]:
                continue
            prim = OPS[d["op"]]
            new = None
            if prim.elementwise and len(d["shape"]) >= 2:
                perm = self.common_perm(nid)
                if perm is not None:
                    new = self.elementwise(nid, perm)
            elif d["op"] in ("sum", "max") and set(d["attrs"]) <= {"axes", "keepdim"} and d["attrs"]["axes"]:
                (x,) = g.args(nid)
                dx = g.node(x)
                if dx["op"] == "permute":
                    new = self.reduction(nid, tuple(dx["attrs"]["perm"]))
            if new is not None:
                g.replace_uses(nid, new)
                g.remove(nid)
                self.moved += 1
        if self.moved:
            for _ in range(4):   # permute(permute(y, p), q) -> y where the next op undoes the view
                if not apply_identities(g):
                    break
            eliminate_dead_code(g)
        return self.moved


def _slab(graph, nid, shape):
    """(axis, start, stop) when node nid is a pad of its operand into one slab of `shape` along
    one axis (every other axis whole, steps of one), else None."""
    d = graph.node(nid)
    if d["op"] != "pad" or tuple(d["shape"]) != shape or len(graph.users(nid)) != 1 or \
            graph.node(graph.args(nid)[0])["dtype"] != d["dtype"]:
        return None
    a = d["attrs"]
    if any(st != 1 for st in a["steps"]):
        return None
    cut = [i for i, (lo, hi, n) in enumerate(zip(a["starts"], a["stops"], shape)) if (lo, hi) != (0, n)]
    if len(cut) != 1:
        return None
    return cut[0], a["starts"][cut[0]], a["stops"][cut[0]]


def _add_leaves(graph, nid, shape, dtype):
    """The operands of a tree of adds (inner adds used only inside it) rooted at nid."""
    leaves, todo = [], [nid]
    while todo:
        n = todo.pop()
        d = graph.node(n)
        if d["op"] == "add" and tuple(d["shape"]) == shape and d["dtype"] == dtype and \
                (n == nid or len(graph.users(n)) == 1):
            todo.extend(reversed(graph.args(n)))
        else:
            leaves.append(n)
    return leaves


def pads_to_concat(graph):
    """A sum of pads that tile one axis of their shape (the gradient of slicing a value into
    parts, q, k and v of one projection) is the concatenation of the parts: one copy instead
    of a zeroed buffer per part and the adds; a permute of the result moves onto the parts, so
    the concatenation writes the order its reader wants. Returns how many sums were replaced."""
    done = 0
    for nid in graph.topological():
        if nid not in graph:
            continue
        d = graph.node(nid)
        if d["op"] != "add" or nid in graph.outputs:
            continue
        shape = tuple(d["shape"])
        leaves = _add_leaves(graph, nid, shape, d["dtype"])
        slabs = [_slab(graph, n, shape) if graph.node(n)["dtype"] == d["dtype"] else None for n in leaves]
        if len(leaves) < 2 or None in slabs or len(set(leaves)) < len(leaves) or len({s[0] for s in slabs}) != 1:
            continue
        axis = slabs[0][0]
        parts = sorted(zip(slabs, leaves), key=lambda p: p[0][1])
        edges = [0] + [s[2] for s, _ in parts]
        if any(s[1] != e for (s, _), e in zip(parts, edges)) or edges[-1] != shape[axis]:
            continue   # gaps or overlaps: not a concatenation
        srcs = [graph.args(n)[0] for _, n in parts]
        users = graph.users(nid)
        if len(users) == 1 and graph.node(users[0])["op"] == "permute" and users[0] not in graph.outputs:
            perm = tuple(graph.node(users[0])["attrs"]["perm"])
            srcs = [_permuted(graph, s, perm, users[0]) for s in srcs]
            nid, axis, shape = users[0], perm.index(axis), tuple(graph.node(users[0])["shape"])
        cat = graph.add("concat", srcs, shape, d["dtype"], {"axis": axis}, graph.node(nid)["where"])
        if graph.node(nid).get("phase"):
            graph.node(cat)["phase"] = graph.node(nid)["phase"]
        graph.replace_uses(nid, cat)
        done += 1
    if done:
        eliminate_dead_code(graph)
    return done


def _permuted(graph, src, perm, like):
    d = graph.node(src)
    shape = tuple(d["shape"][i] for i in perm)
    nid = graph.add("permute", [src], shape, d["dtype"], {"perm": perm}, graph.node(like)["where"])
    if graph.node(like).get("phase"):
        graph.node(nid)["phase"] = graph.node(like)["phase"]
    return nid


def sink_permutes(graph):
    """Rewrite `graph` in place as the module docs say; returns how many ops were moved."""
    pads_to_concat(graph)
    return _Sinker(graph).run()
