"""Validation of an artifact's graph.json, and the limits and JSON reading every artifact check shares.

A graph from a file is checked against the op table before it becomes a `Graph`: every op must be
a primitive of `gradc.ops.OPS` (or an input / constant), take as many operands as its entry says,
carry only the attributes its shape rule takes, each of the kind its name says (axes, permutations,
slice bounds, shapes, dtype names, ...), and record exactly the shape and dtype that the op's own
rules infer from its operands. So a new op is covered as soon as it is in the table. Every failure
is an ArtifactError; nothing here evaluates anything from the file."""
import inspect
import json
import re

from .. import dtypes as D
from ..errors import ArtifactError, GradcError
from ..ops import OPS

GRAPH = "graph.json"
SPECIAL = ("input", "const")

# Limits no real program comes near; past them a file is refused before anything is allocated.
MAX_DIMS = 32
MAX_ELEMENTS = 1 << 32          # elements of any one tensor (16 GiB of float32)
MAX_JSON_DEPTH = 64             # nesting of manifest.json and graph.json
MAX_NODES = 1 << 20
MAX_EDGES = 1 << 22
MAX_CONSTANTS = 1 << 16
_INT_LIMIT = 1 << 62            # attribute integers, node ids, random bounds

# what gradc.naming writes: `x`, `fc1.weight`, `exp_avg of 0.weight`, `batch[0]` (display text only)
_INPUT_NODE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\[\] ]{0,127}\Z")
_TABLE_NAME = re.compile(r"c[0-9]{1,9}\Z")
_NODE_FIELDS = {"id", "op", "shape", "dtype", "attrs", "where"}
_OPTIONAL_FIELDS = {"phase", "group"}
_TOP_FIELDS = {"format", "nodes", "edges", "inputs", "outputs", "constants"}


# ---------------------------------------------------------------------------------------------- shared checks
def is_int(x):
    return isinstance(x, int) and not isinstance(x, bool) and -_INT_LIMIT < x < _INT_LIMIT


def numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def shape_ok(s):
    """A list of at most MAX_DIMS non-negative sizes holding at most MAX_ELEMENTS elements."""
    return (isinstance(s, (list, tuple)) and len(s) <= MAX_DIMS and all(is_int(v) and v >= 0 for v in s)
            and numel(s) <= MAX_ELEMENTS)


def load_json(text, member):
    """Parsed JSON of a member, refusing nesting deeper than MAX_JSON_DEPTH."""
    try:
        data = json.loads(text)
    except RecursionError:
        raise ArtifactError(f"{member} is nested too deeply to be a gradc artifact") from None
    except ValueError as e:
        raise ArtifactError(f"{member} is not valid JSON ({e})") from None
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise ArtifactError(f"{member} is nested more than {MAX_JSON_DEPTH} levels deep; no gradc artifact is")
        if isinstance(value, dict):
            stack += [(v, depth + 1) for v in value.values()]
        elif isinstance(value, list):
            stack += [(v, depth + 1) for v in value]
    return data


def fits_dtype(value, dtype):
    """Whether a JSON scalar is a value of the gradc dtype named `dtype` (what add_const writes)."""
    if dtype == "bool":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if dtype == "int64":
        return isinstance(value, int) and -(1 << 63) <= value < (1 << 63)
    return isinstance(value, (int, float)) and (not isinstance(value, int) or abs(value) < 1 << 1024)


# ---------------------------------------------------------------------------------------------- attributes
def _rule_params(prim):
    """(attribute names the op takes, those without a default): the keyword parameters of its rules."""
    names, required = set(), set()
    for rule in (prim.shape_rule, prim.dtype_rule):
        for p in list(inspect.signature(rule).parameters.values())[1:]:   # the first is shapes / dtypes
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
                names.add(p.name)
                if p.default is p.empty and rule is prim.shape_rule:
                    required.add(p.name)
    return names, required


_PARAMS = {}


def op_attributes(op):
    if op not in _PARAMS:
        _PARAMS[op] = _rule_params(OPS[op])
    return _PARAMS[op]


def _plain(v, depth=0):
    """Numbers, bools, None and (nested) lists of them: all an attribute of unknown kind may be."""
    if v is None or isinstance(v, bool) or is_int(v) or isinstance(v, float):
        return True
    return isinstance(v, list) and depth < 3 and len(v) <= 64 and all(_plain(x, depth + 1) for x in v)


def _ints(v, n=None):
    return isinstance(v, list) and len(v) <= MAX_DIMS and all(is_int(x) for x in v) and (n is None or len(v) == n)


def _check_attrs(bad, nid, op, attrs, ins, out):
    """Each attribute checked by its kind, which its name says (the same names mean the same thing in
    every op of the table). `ins` are the operand shapes, `out` the recorded output shape."""
    names, required = op_attributes(op)
    for k in attrs:
        if k not in names:
            bad(f"node %{nid} ({op}) has attribute {k!r:.40}, which {op} does not take")
    missing = sorted(required - set(attrs))
    if missing:
        bad(f"node %{nid} ({op}) lacks attribute(s) {', '.join(missing)}")
    rank = max(len(ins[0]) if ins else 0, len(out))   # axes name dims of the first operand or of the result

    def fail(k, what):
        bad(f"node %{nid} ({op}): attribute {k}={attrs[k]!r:.60} is not {what}")

    for k, v in attrs.items():
        if k == "axes":
            if not (_ints(v) and all(0 <= a < rank for a in v) and list(v) == sorted(set(v))):
                fail(k, f"a sorted list of distinct dims in 0..{rank - 1}")
        elif k == "axis":
            if not (v is None or (is_int(v) and 0 <= v < max(rank, 1))):
                fail(k, f"a dim in 0..{max(rank, 1) - 1}")
        elif k == "perm":
            if not (_ints(v) and sorted(v) == list(range(len(v)))):
                fail(k, "a permutation of 0..n-1")
        elif k == "shape":
            if not shape_ok(v):
                fail(k, f"a shape (at most {MAX_DIMS} non-negative sizes, at most {MAX_ELEMENTS} elements)")
        elif k == "size":
            if not (is_int(v) and 0 <= v <= MAX_ELEMENTS):
                fail(k, "a size")
        elif k == "keepdim":
            if not isinstance(v, bool):
                fail(k, "true or false")
        elif k == "dtype":
            if v not in D.ALL:
                fail(k, f"a known dtype name ({', '.join(D.ALL)})")
        elif k in ("starts", "stops", "steps"):
            pass   # checked together below
        elif k == "what":   # message text (rendered as a JSON string literal, which nothing can escape)
            if not (isinstance(v, str) and len(v) <= 200 and v.isprintable()):
                fail(k, "a line of message text (at most 200 printable characters)")
        elif not _plain(v):
            fail(k, "a number, bool, None or tuple of them")
    if {"starts", "stops", "steps"} & set(attrs):
        full = attrs["shape"] if "shape" in attrs else (ins[0] if ins else [])
        starts, stops, steps = (attrs.get(k) for k in ("starts", "stops", "steps"))
        n = len(full)
        if not (_ints(starts, n) and _ints(stops, n) and _ints(steps, n)):
            bad(f"node %{nid} ({op}): starts, stops and steps must each hold {n} integers (one per dim of "
                f"{list(full)})")
        for d, (a, b, c) in enumerate(zip(starts, stops, steps)):
            if not (c >= 1 and 0 <= a <= b <= full[d]):
                bad(f"node %{nid} ({op}): dim {d} slices {a}:{b}:{c} of a dimension of size {full[d]} (need "
                    "0 <= start <= stop <= size and step >= 1)")


def _tuples(x):
    """Attribute values as the op rules receive them at run time (lists become tuples)."""
    if isinstance(x, dict):
        return {k: _tuples(v) for k, v in x.items()}
    if isinstance(x, list):
        return tuple(_tuples(v) for v in x)
    return x


def _check_inferred(bad, nid, n, operands):
    """The op's own rules, applied to the recorded operand shapes and dtypes, must give this node's record."""
    op = n["op"]
    try:
        shape, dtype = OPS[op].infer([tuple(s) for s, _ in operands], [D.ALL[d] for _, d in operands],
                                     _tuples(n["attrs"]))
    except Exception as e:   # any failure of a rule on these operands is a rejection, whatever its type
        bad(f"node %{nid} ({op}) does not fit its operands ({type(e).__name__}: {e})")
    if list(shape) != list(n["shape"]) or dtype.name != n["dtype"]:
        bad(f"node %{nid} ({op}) records {n['dtype']}{list(n['shape'])} but its operands give {dtype.name}"
            f"{list(shape)}")


# ---------------------------------------------------------------------------------------------- the graph
def check_graph_data(data):
    """Whitelist every field of graph.json before it is turned into a Graph."""
    def bad(what):
        raise ArtifactError(f"{GRAPH}: {what}; the graph was modified or corrupted (export the program again)")

    if not isinstance(data, dict):
        bad("not a JSON object")
    extra = set(data) - _TOP_FIELDS
    if extra:
        bad(f"unknown field(s) {', '.join(sorted(map(str, extra)))[:80]}")
    for key, kind, limit in (("nodes", list, MAX_NODES), ("edges", list, MAX_EDGES), ("inputs", list, MAX_NODES),
                             ("outputs", list, MAX_NODES), ("constants", dict, MAX_CONSTANTS)):
        if not isinstance(data.get(key), kind):
            bad(f"field {key!r} is missing or not a {kind.__name__}")
        if len(data[key]) > limit:
            bad(f"{len(data[key])} {key}, more than the {limit} any artifact holds")
    consts = data["constants"]
    for name, c in consts.items():
        if not _TABLE_NAME.match(name) or not isinstance(c, dict) or set(c) != {"dtype", "shape", "data"}:
            bad(f"constant {name!r:.40} has a bad name or body")
        if c["dtype"] not in D.ALL or not shape_ok(c["shape"]) or not isinstance(c["data"], list):
            bad(f"constant {name!r} has a bad dtype, shape or data")
        if len(c["data"]) != numel(c["shape"]) or not all(fits_dtype(x, c["dtype"]) for x in c["data"]):
            bad(f"constant {name!r}: its data does not fill shape {c['shape']} with {c['dtype']} values")
    nodes = {}
    for n in data["nodes"]:
        if not isinstance(n, dict) or not _NODE_FIELDS <= set(n) <= _NODE_FIELDS | _OPTIONAL_FIELDS:
            bad(f"node {str(n)[:80]} does not have the fields id, op, shape, dtype, attrs, where (and optionally "
                "phase, group) only")
        nid, op, attrs = n["id"], n["op"], n["attrs"]
        if not is_int(nid) or nid < 0 or nid in nodes:
            bad(f"node id {nid!r:.40} is not a fresh non-negative integer")
        nodes[nid] = n
        if n.get("phase", "backward") not in ("backward", "recompute") or not is_int(n.get("group", 0)) \
                or n.get("group", 0) < 0:
            bad(f"node %{nid} has a bad phase or group marker")
        if not isinstance(op, str) or (op not in OPS and op not in SPECIAL):
            bad(f"node %{nid} has unknown op {op!r:.60}")
        if not shape_ok(n["shape"]) or n["dtype"] not in D.ALL:
            bad(f"node %{nid} has a bad shape {n['shape']!r:.60} or dtype {n['dtype']!r:.40} (a shape is at most "
                f"{MAX_DIMS} non-negative sizes, at most {MAX_ELEMENTS} elements; dtypes are {', '.join(D.ALL)})")
        if n["where"] is not None and not (isinstance(n["where"], str) and len(n["where"]) <= 1000
                                           and n["where"].isprintable()):
            bad(f"node %{nid} has a bad source location {n['where']!r:.60}")
        if not isinstance(attrs, dict):
            bad(f"node %{nid}: attrs is not an object")
        if op == "input":
            name = attrs.get("name")
            if set(attrs) != {"name"} or not isinstance(name, str) or not _INPUT_NODE_NAME.match(name):
                bad(f"input node %{nid} has attributes {attrs!r:.80} (expected only a plain 'name')")
        elif op == "const":
            ok = (set(attrs) == {"fill"} and fits_dtype(attrs["fill"], n["dtype"])) or \
                 (set(attrs) == {"table"} and attrs["table"] in consts)
            if not ok:
                bad(f"const node %{nid} has attributes {attrs!r:.80} (expected a 'fill' value of its dtype "
                    f"{n['dtype']} or a known 'table')")
    operands = {nid: {} for nid in nodes}
    for e in data["edges"]:
        if not (isinstance(e, list) and len(e) == 4 and is_int(e[0]) and is_int(e[1]) and e[0] in nodes
                and e[1] in nodes and is_int(e[2]) and 0 <= e[2] < 1 << 16 and isinstance(e[3], bool)):
            bad(f"edge {e!r:.80} is not [operand node, user node, position, grad flag] between existing nodes")
        if e[2] in operands[e[1]]:
            bad(f"node %{e[1]} has two operands at position {e[2]}")
        operands[e[1]][e[2]] = e[0]
    for nid, n in nodes.items():
        args = operands[nid]
        if sorted(args) != list(range(len(args))):
            bad(f"node %{nid}: operand positions {sorted(args)} are not 0..n-1")
        if n["op"] in SPECIAL:
            if args:
                bad(f"node %{nid}: {n['op']} takes no operands")
            continue
        nin = OPS[n["op"]].nin
        if (nin is not None and len(args) != nin) or (nin is None and not args):
            bad(f"node %{nid} ({n['op']}) has {len(args)} operand(s); {n['op']} takes "
                f"{nin if nin is not None else 'one or more'}")
        ins = [(nodes[args[i]]["shape"], nodes[args[i]]["dtype"]) for i in range(len(args))]
        _check_attrs(bad, nid, n["op"], n["attrs"], [s for s, _ in ins], n["shape"])
        _check_inferred(bad, nid, n, ins)
    for key in ("inputs", "outputs"):
        if not all(is_int(i) and i in nodes for i in data[key]):
            bad(f"{key} name nodes that do not exist")
    if len(set(data["inputs"])) != len(data["inputs"]):
        bad("an input is listed twice")
    if {nid for nid, n in nodes.items() if n["op"] == "input"} != set(data["inputs"]):
        bad("the input nodes and the list of inputs differ")


def parse_graph(text):
    """The validated Graph of a graph.json text."""
    from ..ir import Graph
    data = load_json(text, GRAPH)
    check_graph_data(data)
    try:
        graph = Graph.from_dict(data)
        graph.verify()
    except GradcError as e:
        raise ArtifactError(f"{GRAPH} is inconsistent: {e}") from None
    except (KeyError, TypeError, ValueError, OverflowError, IndexError) as e:
        raise ArtifactError(f"{GRAPH} is malformed ({type(e).__name__}: {e})") from None
    return graph
