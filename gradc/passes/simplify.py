"""Simplify passes over the IR: dead-code elimination, common-subexpression elimination, constant
folding and algebraic identities, run together to a fixed point by `simplify`."""
import math

import numpy as np

from .. import dtypes as D
from ..ops import OPS
from ..symint import is_live, is_symbolic

_FOLD_LIMIT = 4096  # fold non-uniform constants only up to this many elements


def eliminate_dead_code(graph):
    """Remove nodes that no output depends on (inputs always stay: they are the call signature)."""
    return graph.prune()


def _key(graph, nid):
    d = graph.node(nid)
    if d["op"] == "input" or d["op"] != "const" and OPS[d["op"]].kind == "collective":
        return None  # a collective talks to the other ranks: two of them are two exchanges
    if d["op"] == "const":
        v = graph.const_value(nid) if "table" in d["attrs"] else d["attrs"].get("fill", d["attrs"].get("arange"))
        payload = v.tobytes() if isinstance(v, np.ndarray) else repr(v)
        return ("const", d["shape"], d["dtype"], payload)
    return (d["op"], tuple(graph.args(nid)), repr(sorted(d["attrs"].items())), d["dtype"])


def eliminate_common_subexpressions(graph, order=None):
    """Merge nodes that compute the same op on the same operands (e.g. each weight cast once).
    `order`: graph.topological() when the caller has it (the passes here take it too)."""
    seen, merged = {}, 0
    for nid in graph.topological() if order is None else order:
        key = _key(graph, nid)
        if key is None:
            continue
        first = seen.setdefault(key, nid)
        if first != nid:
            graph.replace_uses(nid, first)
            graph.remove(nid)
            merged += 1
    return merged


def fold_constants(graph, order=None):
    """Evaluate ops whose operands are all constants, when the result stays small or uniform."""
    folded = 0
    for nid in graph.topological() if order is None else order:
        d = graph.node(nid)
        if d["op"] in ("input", "const"):
            continue
        args = graph.args(nid)
        if not args or not all(_known(graph, a) for a in args) or OPS[d["op"]].kind == "collective":
            continue
        uniform = OPS[d["op"]].elementwise and all("fill" in graph.node(a)["attrs"] for a in args)
        if not uniform and (is_symbolic(d["shape"]) or math.prod(d["shape"]) > _FOLD_LIMIT):
            continue
        if uniform:
            # Uniform operands give a uniform result: evaluate on one element.
            fills = [graph.node(a)["attrs"]["fill"] for a in args]
            if any(map(is_live, fills)):   # (a value computed from a symbolic size: computed when it runs)
                continue
            vals = [np.asarray(f, dtype=D.ALL[graph.node(a)["dtype"]].np) for f, a in zip(fills, args)]
            one = np.full((), OPS[d["op"]].eager(np, *vals, **d["attrs"]), dtype=D.ALL[d["dtype"]].np)
            # (stored as its fill, as add_const stores a uniform array: a symbolic shape has no array)
            fill = one.item() if math.prod(d["shape"]) else 0
            new = graph.add("const", shape=d["shape"], dtype=d["dtype"], attrs={"fill": fill}, where=d["where"])
        else:
            value = np.asarray(OPS[d["op"]].eager(np, *[graph.const_value(a) for a in args], **d["attrs"]))
            # (np.array, not ascontiguousarray, which would make 0-d 1-d)
            new = graph.add_const(np.array(value, dtype=D.ALL[d["dtype"]].np, order="C"), where=d["where"])
        graph.replace_uses(nid, new)
        graph.remove(nid)
        folded += 1
    return folded


def _known(graph, nid):
    """Whether nid is a constant whose value is known while lowering (an arange of a symbolic size
    is made when the program is, for the call's sizes)."""
    d = graph.node(nid)
    return d["op"] == "const" and not ("arange" in d["attrs"] and is_symbolic(d["shape"]))


def _fill(graph, nid):
    d = graph.node(nid)
    return d["attrs"].get("fill") if d["op"] == "const" else None


def _scalar_fill(graph, nid):
    """The constant value of nid if it is a uniform constant, possibly behind reshape/expand."""
    while graph.node(nid)["op"] in ("reshape", "expand"):
        nid = graph.args(nid)[0]
    return _fill(graph, nid)


def _is_unit(graph, op, nid, dtype):
    """nid is the constant that leaves the other operand unchanged: 1 for * and /, 0 for -, and for
    + of floats only -0.0 (+0.0 turns -0.0 into +0.0, which eager code would show)."""
    fill = _scalar_fill(graph, nid)
    if fill is None or is_live(fill):   # (a value computed from a symbolic size: not known to be 1)
        return False
    if op in ("mul", "div"):
        return fill == 1
    if op == "add" and D.ALL[dtype].is_floating_point:
        return fill == 0 and bool(np.signbit(fill))
    return fill == 0


def _swaps_last_two(perm):
    n = len(perm)
    return n >= 2 and tuple(perm) == tuple(range(n - 2)) + (n - 1, n - 2)


def apply_identities(graph, order=None):
    """x*1, x+(-0.0), x-0, x/1 -> x (x+0 for integers); double permute, reshape of reshape, no-op reshape/cast/permute;
    expand of a uniform constant -> a bigger uniform constant; neg(neg(x)) -> x; (A @ B).T ->
    B.T @ A.T for 2-D matmuls."""
    changed = 0
    for nid in graph.topological() if order is None else order:
        if nid not in graph:
            continue
        d = graph.node(nid)
        op, args, shape = d["op"], graph.args(nid), d["shape"]
        repl = None
        if op in ("mul", "div", "add", "sub"):
            a, b = args
            if _is_unit(graph, op, b, d["dtype"]) and graph.node(a)["shape"] == shape:
                repl = a
            elif op in ("mul", "add") and _is_unit(graph, op, a, d["dtype"]) and graph.node(b)["shape"] == shape:
                repl = b
        elif op in ("reshape", "expand") and graph.node(args[0])["shape"] == shape:
            repl = args[0]
        elif op == "cast" and graph.node(args[0])["dtype"] == d["dtype"]:
            repl = args[0]
        elif op == "permute" and tuple(d["attrs"]["perm"]) == tuple(range(len(shape))):
            repl = args[0]
        elif op == "neg" and graph.node(args[0])["op"] == "neg":
            repl = graph.args(args[0])[0]
        elif op == "reshape" and graph.node(args[0])["op"] == "reshape":
            repl = graph.add("reshape", [graph.args(args[0])[0]], shape, d["dtype"], d["attrs"], d["where"])
        elif op == "permute" and _swaps_last_two(d["attrs"]["perm"]) and graph.node(args[0])["op"] == "matmul" \
                and len(graph.users(args[0])) == 1 and len(shape) == 2:
            # (A @ B).T -> B.T @ A.T: the transposes are free views for BLAS and the result comes out
            # contiguous (a transposed weight gradient would slow every elementwise op reading it).
            a, b = graph.args(args[0])
            bt = graph.add("permute", [b], graph.node(b)["shape"][::-1], d["dtype"], {"perm": (1, 0)}, d["where"])
            at = graph.add("permute", [a], graph.node(a)["shape"][::-1], d["dtype"], {"perm": (1, 0)}, d["where"])
            repl = graph.add("matmul", [bt, at], shape, d["dtype"], {}, d["where"])
            for n in (bt, at, repl):
                if graph.node(args[0]).get("phase"):
                    graph.node(n)["phase"] = graph.node(args[0])["phase"]
        elif op == "permute" and graph.node(args[0])["op"] == "permute":
            inner = graph.node(args[0])["attrs"]["perm"]
            perm = tuple(inner[p] for p in d["attrs"]["perm"])
            repl = graph.add("permute", [graph.args(args[0])[0]], shape, d["dtype"], {"perm": perm}, d["where"])
        elif op in ("expand", "reshape") and _fill(graph, args[0]) is not None:
            repl = graph.add("const", shape=shape, dtype=d["dtype"], attrs={"fill": _fill(graph, args[0])},
                             where=d["where"])
        if repl is not None:
            graph.replace_uses(nid, repl)
            graph.remove(nid)
            changed += 1
    return changed


def simplify(graph, max_rounds=20):
    """Run the simplify passes until nothing changes; returns how often each pass fired."""
    counts = {"identities": 0, "fold": 0, "cse": 0, "dce": 0}
    order = None   # the topological order, until a pass changes the graph (one that fires nothing changes nothing)
    for _ in range(max_rounds):
        step = {}
        for name, run in (("identities", apply_identities), ("fold", fold_constants),
                          ("cse", eliminate_common_subexpressions)):
            if order is None:
                order = graph.topological()
            step[name] = run(graph, order)
            if step[name]:
                order = None
        step["dce"] = eliminate_dead_code(graph)
        if step["dce"]:
            order = None
        for k, v in step.items():
            counts[k] += v
        if not any(step.values()):
            break
    return counts
